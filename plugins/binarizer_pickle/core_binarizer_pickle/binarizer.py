"""``PickleBinarizer``: read a model saved with pickle, cloudpickle or joblib.

.. warning::

   Unpickling runs arbitrary code: a pickle file can do anything the server's user can do.
   Only load files you trust, and pin them with ``sha256``, so that a file that changed
   is refused before a single byte of it is unpickled.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from typing import Any

import attrs
import cloudpickle
from core import progress
from core.components import Binarizer, LoadedFile
from core.errors import ConfigError, ModelLoadError

#: File names this binarizer claims with a high score in ``binarization_type = "auto"``.
PICKLE_EXTENSIONS = (".pkl", ".pckl", ".pickle", ".joblib", ".cloudpickle")
EXTENSION_SCORE = 0.9
MARKER_SCORE = 0.6

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _check_sha256(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not (isinstance(value, str) and _SHA256.fullmatch(value)):
        raise ConfigError(
            f"pickle binarizer: binarization_kwargs.sha256 must be the file's SHA-256 as 64 hex "
            f"digits (sha256sum model.pkl), got {value!r}"
        )


@attrs.define(kw_only=True)
class PickleBinarizer(Binarizer):
    """Unpickle the model with ``cloudpickle`` (``joblib`` for ``.joblib`` files, when installed).

    From a path the file is streamed into the unpickler, never read whole first, so that a
    protocol-5 pickle of numpy arrays peaks near the model's size. From ``raw_data`` (a
    storage with ``need_load_file``) the bytes are unpickled in place.

    :param sha256: the file's expected SHA-256 (64 hex digits). When set, the file is hashed
        first and refused, unread, if it differs.
    """

    sha256: str | None = attrs.field(default=None, converter=_lower, validator=_check_sha256)

    runs_code = True  # unpickling runs the file's code: "auto" loads only a pinned file
    pin_setting = "sha256"

    @classmethod
    def detect(cls, file: LoadedFile) -> tuple[float, str]:
        extension = next((ext for ext in PICKLE_EXTENSIONS if file.has_suffix(ext)), None)
        if extension is not None:
            return EXTENSION_SCORE, f"the file name ends with {extension}"
        head = file.head(2)
        if head is None:
            return 0.0, "no file name or bytes to look at"
        if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            return MARKER_SCORE, f"the file starts with the pickle protocol {head[1]} marker"
        return 0.0, "neither a pickle file name nor a pickle protocol 2-5 marker"

    def deserialize(self, files: list[LoadedFile]) -> Any:
        if not files:
            raise ModelLoadError("pickle binarizer: the storage found no file to unpickle")
        file = files[0]
        name = file.display_name
        if file.raw_data is not None:
            data = file.raw_data
            if self.sha256 is not None:
                self._verify(hashlib.sha256(data).hexdigest(), name)
            return self._unpickle(io.BytesIO(data) if self._joblib(file) else data, file)
        if file.path is None:
            raise ModelLoadError(f"pickle binarizer: {name} has neither a path nor bytes")
        try:
            handle = open(file.path, "rb")  # noqa: SIM115 - closed below
        except OSError as error:
            raise ModelLoadError(
                f"pickle binarizer: cannot open {file.path}: {error.strerror or error}"
            ) from None
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if self.sha256 is not None:
                # Hash and unpickle through one open file: replacing the file in between
                # (a rename over it) cannot slip past the check.
                self._verify(progress.sha256_of(handle, size, name), name)
                handle.seek(0)
            if size < progress.PROGRESS_THRESHOLD or self._joblib(file):
                return self._unpickle(handle, file)
            counter = progress.Progress("unpickling", name, size)
            model = self._unpickle(progress.ProgressReader(handle, counter), file)
            counter.finish()
            return model

    def _verify(self, actual: str, name: str) -> None:
        if actual != self.sha256:
            raise ModelLoadError(
                f"pickle binarizer: refusing to unpickle {name}: its SHA-256 is {actual}, but "
                f"binarization_kwargs.sha256 expects {self.sha256}; the file changed, or the "
                f"setting is out of date"
            )

    @staticmethod
    def _joblib(file: LoadedFile) -> bool:
        """A ``.joblib`` file, and joblib is installed to read it."""
        if not file.has_suffix(".joblib"):
            return False
        try:
            import joblib  # noqa: F401
        except ImportError:
            return False
        return True

    def _unpickle(self, source: Any, file: LoadedFile) -> Any:
        name = file.display_name
        try:
            if self._joblib(file):
                import joblib

                return joblib.load(source)
            if isinstance(source, (bytes, bytearray, memoryview)):
                return cloudpickle.loads(source)
            return cloudpickle.load(source)
        except ModuleNotFoundError as error:
            raise ModelLoadError(
                f"pickle binarizer: {name} needs the module {error.name!r}, which is not "
                f"installed here; install the packages the model was saved with"
            ) from error
        except Exception as error:
            hint = ""
            if file.has_suffix(".joblib") and not self._joblib(file):
                hint = (
                    "; .joblib files may need joblib: pip install 'core-binarizer-pickle[joblib]'"
                )
            raise ModelLoadError(
                f"pickle binarizer: cannot unpickle {name}: {type(error).__name__}: {error}{hint}"
            ) from error


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 to put in ``binarization_kwargs.sha256`` (same as ``sha256sum``)."""
    with open(path, "rb") as handle:
        return progress.sha256_of(handle, os.fstat(handle.fileno()).st_size, str(path))
