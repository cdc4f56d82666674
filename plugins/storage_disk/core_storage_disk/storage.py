"""``DiskStorage``: find the model file on the local disk, by path and file-name mask.

The mask is searched for in each file name (``re.search``), as pymlup's ``DiskStorage`` does,
and may be given as ``file_mask`` (the name in pymlup's docs) or ``files_mask`` (the name in
pymlup's code and example configs).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import attrs
from core.components import LoadedFile, Storage
from core.errors import ConfigError, CoreError, ModelLoadError
from core.model_files import DEFAULT_FILE_MASK, listing, pick
from core.progress import read_file

logger = logging.getLogger("core")


def _to_path(value: Any) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"disk storage: storage_kwargs.path_to_files must be a path to the model file or "
            f"its folder, got {type(value).__name__} {value!r}"
        )
    return value


def _check_mask(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None or isinstance(value, re.Pattern):
        return
    if not isinstance(value, str) or not value:
        raise ConfigError(
            f"disk storage: storage_kwargs.{attribute.name} must be a regular expression string, "
            f"got {type(value).__name__} {value!r}"
        )
    try:
        re.compile(value)
    except re.error as error:
        raise ConfigError(
            f"disk storage: storage_kwargs.{attribute.name} '{value}' is not a valid regular "
            f"expression: {error}"
        ) from None


def _check_bool(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(
            f"disk storage: storage_kwargs.{attribute.name} must be true or false, "
            f"got {type(value).__name__} {value!r}"
        )


@attrs.define(kw_only=True)
class DiskStorage(Storage):
    """The model file on the local disk.

    :param path_to_files: the model file itself, or the folder that holds it.
    :param file_mask: for a folder, a regular expression searched for in each file name
        (``re.search``, as pymlup does: ``model`` finds ``model.pkl``; anchor it with ``^``
        and ``$`` to match whole names); exactly one file may match, or else, of several, one
        whose whole name the mask matches. A string or a compiled pattern. Not used when
        ``path_to_files`` is a file. The default finds ``.pkl``, ``.pckl``, ``.pickle``,
        ``.joblib``, ``.onnx``, ``.cloudpickle``, ``.bin`` and ``.model`` files, in any case;
        when none is there, the one file named like another model format (``.json``,
        ``.ubj``, ``.txt``, ``.pt``...: :mod:`core.model_files`).
    :param files_mask: pymlup's name for ``file_mask``; set one of the two.
    :param need_load_file: read the file's bytes into memory and hand them to the binarizer
        (``LoadedFile.raw_data``). Off by default: the binarizer then reads the file itself,
        so the model's bytes and the model object are never in memory together.
    """

    path_to_files: str = attrs.field(converter=_to_path)
    file_mask: str | re.Pattern[str] | None = attrs.field(default=None, validator=_check_mask)
    files_mask: str | re.Pattern[str] | None = attrs.field(
        default=None, validator=_check_mask, repr=False
    )
    need_load_file: bool = attrs.field(default=False, validator=_check_bool)
    _pattern: re.Pattern[str] = attrs.field(init=False, repr=False)
    _mask_given: bool = attrs.field(init=False, repr=False)
    _mask_key: str = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.file_mask is not None and self.files_mask is not None:
            raise ConfigError(
                "disk storage: storage_kwargs sets both file_mask and files_mask (pymlup's name "
                "for the same setting); keep one"
            )
        mask = self.file_mask if self.file_mask is not None else self.files_mask
        self._mask_given = mask is not None
        self._mask_key = "files_mask" if self.files_mask is not None else "file_mask"
        self._pattern = re.compile(mask if mask is not None else DEFAULT_FILE_MASK)
        self.file_mask, self.files_mask = self._pattern.pattern, None

    def load(self) -> list[LoadedFile]:
        """The one model file; with its bytes when ``need_load_file`` is set.

        For a file of 64 MiB or more the bytes are a ``bytearray`` (read in place, logged
        every tenth of the way); ``LoadedFile.raw_data`` takes any bytes-like object.
        """
        path = self._find(ModelLoadError)
        raw_data = None
        if self.need_load_file:
            try:
                raw_data = read_file(path)
            except OSError as error:
                raise ModelLoadError(
                    f"disk storage: cannot read {path}: {error.strerror or error}"
                ) from None
        return [LoadedFile(path=path, raw_data=raw_data)]

    def check(self) -> None:
        """Raise :class:`~core.errors.ConfigError` if the path is missing, unreadable, or
        a folder in which the mask does not pick one file."""
        path = self._find(ConfigError)
        if not os.access(path, os.R_OK):
            raise ConfigError(f"disk storage: the model file {path} is not readable")

    def _find(self, error: type[CoreError]) -> str:
        given = self.path_to_files
        path = os.path.expanduser(given)
        if os.path.isfile(path):
            name = os.path.basename(path)
            if self._mask_given and not self._pattern.search(name):
                logger.warning(
                    "disk storage: path_to_files names the file %s, so it is used although "
                    "%s '%s' does not match its name (pymlup refused it)",
                    given, self._mask_key, self.file_mask,
                )
            return path
        if not os.path.exists(path):
            where = "" if os.path.isabs(path) else f" (relative to {os.getcwd()})"
            raise error(
                f"disk storage: storage_kwargs.path_to_files {given!r} does not exist{where}"
            )
        if not os.path.isdir(path):
            raise error(f"disk storage: {given!r} is neither a file nor a folder")
        try:
            entries = sorted(os.listdir(path))
        except OSError as problem:
            raise error(
                f"disk storage: cannot list the folder {given!r}: {problem.strerror or problem}"
            ) from None
        files = [name for name in entries if os.path.isfile(os.path.join(path, name))]
        regular = set(files)
        shown = [name if name in regular else name + "/" for name in entries]
        return os.path.join(path, pick(
            files, self._pattern, mask_given=self._mask_given, mask_key=self._mask_key,
            storage="disk storage", where=f"the folder {given!r}",
            holds=f"it holds: {listing(shown)}" if shown else "it is empty", error=error,
        ))
