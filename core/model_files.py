"""Which file of a folder is the model: the rule storages that take a folder share.

A storage given a folder (``path_to_files``) serves the one file whose name ``file_mask``
finds (``re.search``, as pymlup's ``DiskStorage``); of several, the one whose whole name the
mask matches, if there is exactly one. Without a ``file_mask``, :data:`DEFAULT_FILE_MASK`
finds the usual names (pickle, joblib, ONNX); when no file has one, the one file named like
another model format (:data:`OTHER_MODEL_FILES`: XGBoost's ``.json``, LightGBM's ``.txt``,
PyTorch's ``.pt``...) is taken, and logged. Those extensions also name files that are not
models (a ``config.json``, a ``README.txt``), hence the order: a pickle or ONNX file beside
them wins, and two of them is an error, never a guess. The binarizer then recognises the
format by the file's content (``binarization_type = "auto"``).

:func:`pick` applies the rule to a folder's file names; core's disk and remote storages use
it, and so can a third party's (:doc:`docs/plugins.md <../docs/plugins>`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from core.errors import CoreError

logger = logging.getLogger("core")

#: Finds the usual model file names, whatever the case of the extension.
DEFAULT_FILE_MASK = r"(?i)^.+\.(pkl|pckl|pickle|joblib|onnx|cloudpickle|bin|model)$"
#: The names other model formats take, looked for only when no ``file_mask`` is set and no
#: file matches :data:`DEFAULT_FILE_MASK`.
OTHER_MODEL_FILES = r"(?i)^.+\.(json|ubj|txt|pt|pth|pt2|ts|ptl|keras|h5|hdf5)$"
#: How many names an error message lists before "and N more".
LISTED = 20

_OTHER_MODEL_FILES = re.compile(OTHER_MODEL_FILES)


def listing(names: Sequence[str]) -> str:
    """``a, b, c`` (at most :data:`LISTED` names, then "and N more"), for error messages."""
    shown = ", ".join(names[:LISTED])
    more = len(names) - LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def pick(names: Sequence[str], pattern: re.Pattern[str], *, mask_given: bool, mask_key: str,
         storage: str, where: str, holds: str, error: type[CoreError]) -> str:
    """The model file among ``names``, the files of a folder (see the module docstring).

    :param pattern: the compiled ``file_mask`` (:data:`DEFAULT_FILE_MASK` when none is set).
    :param mask_given: whether the config set the mask; the other formats are looked for
        only when it did not.
    :param mask_key: the setting's name in the config (``file_mask``, or pymlup's ``files_mask``).
    :param storage: how the storage's messages begin (``"disk storage"``).
    :param where: the folder, as messages name it (``"the folder 'models'"``).
    :param holds: what the folder holds, for the message when no file is found
        (``"it holds: a.txt, b/"``, ``"it is empty"``).
    :param error: the error to raise (``ConfigError`` when checking, ``ModelLoadError`` when
        loading).
    :raises error: no file, or several, can be told to be the model; the message names them
        and the setting that picks one.
    """
    matches = [name for name in names if pattern.search(name)]
    if len(matches) == 1:
        return matches[0]
    whole = [name for name in matches if pattern.fullmatch(name)]
    if len(whole) == 1:
        return whole[0]
    if matches:
        raise error(
            f"{storage}: {len(matches)} files in {where} match {mask_key} '{pattern.pattern}': "
            f"{listing(matches)}; set storage_kwargs.{mask_key} to pick one (for example "
            f"'^{re.escape(matches[0])}$') or path_to_files to the file"
        )
    others = [] if mask_given else [name for name in names if _OTHER_MODEL_FILES.search(name)]
    if len(others) == 1:
        logger.info("%s: no file in %s matches the default file_mask; using %s, the one file "
                    "named like another model format", storage, where, others[0])
        return others[0]
    if others:
        raise error(
            f"{storage}: no file in {where} matches the default file_mask '{pattern.pattern}', "
            f"and {len(others)} are named like other model formats: {listing(others)}; set "
            f"storage_kwargs.file_mask to pick one (for example '^{re.escape(others[0])}$') or "
            f"path_to_files to the file"
        )
    raise error(
        f"{storage}: no file in {where} matches {mask_key} '{pattern.pattern}'; {holds}. Set "
        f"storage_kwargs.{mask_key} to a regular expression found in the model file's name, or "
        f"path_to_files to the file"
    )
