"""Which TensorFlow/Keras format a file is, from its name and first bytes (for a zip, the
list of its entries too), without importing TensorFlow.

The four formats:

- :data:`KERAS`: a Keras 3 ``.keras`` file, a zip holding ``config.json``, ``metadata.json``
  and ``model.weights.h5``;
- :data:`H5`: a legacy Keras HDF5 file (``.h5``), starting with the HDF5 signature;
- :data:`SAVED_MODEL`: a SavedModel folder, handed over as its ``saved_model.pb`` (what the
  ``disk`` storage gives for the folder with ``file_mask = '^saved_model\\.pb$'``) or as
  the folder itself;
- :data:`SAVED_MODEL_ZIP`: a zip holding a SavedModel folder (``saved_model.pb`` at its
  root or in one folder).
"""

from __future__ import annotations

import io
import os
import zipfile

import attrs
from core.components import LoadedFile

KERAS = "keras"
H5 = "h5"
SAVED_MODEL = "saved_model"
SAVED_MODEL_ZIP = "saved_model_zip"

ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: The file that makes a folder a SavedModel (the text form is rare, but TensorFlow reads it).
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
#: Entries of a ``.keras`` zip: ``config.json`` and at least one of the others.
KERAS_CONFIG = "config.json"
KERAS_OTHERS = ("metadata.json", "model.weights.h5", "model.weights.npz")
KERAS_SUFFIXES = (".keras",)
H5_SUFFIXES = (".h5", ".hdf5")

SURE = 0.9  # the name and the content agree, or the name alone when there are no bytes
CONTENT = 0.8  # a zip whose entries are a Keras model or a SavedModel, whatever its name
HDF5_CONTENT = 0.6  # the HDF5 signature without a .h5 name: any HDF5 file starts so
CONTRADICTED = 0.3  # a Keras name on bytes that are not what the name says


@attrs.frozen
class Guess:
    """What :func:`guess` found: the format (``None`` when none), a score from 0 to 1 and the
    reason, as :meth:`core.Binarizer.detect` returns them."""

    kind: str | None
    score: float
    reason: str


def _basename(file: LoadedFile) -> str:
    return os.path.basename((file.path or file.name or "").rstrip("/\\")).lower()


def zip_entries(file: LoadedFile) -> list[str] | None:
    """The names in the zip's central directory (read from the end of the file, cheaply),
    or ``None`` when the file is not a readable zip."""
    try:
        if file.raw_data is not None:
            source: io.BytesIO | str = io.BytesIO(memoryview(file.raw_data))
        elif file.path is not None and os.path.isfile(file.path):
            source = file.path
        else:
            return None
        with zipfile.ZipFile(source) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None


def is_keras_zip(entries: list[str]) -> bool:
    names = set(entries)
    return KERAS_CONFIG in names and any(name in names for name in KERAS_OTHERS)


def saved_model_roots(entries: list[str]) -> list[str]:
    """The folders (``""`` for the root) of a zip's entries that hold a ``saved_model.pb``."""
    roots = []
    for entry in entries:
        folder, _, base = entry.rpartition("/")
        if base in SAVED_MODEL_FILES and folder.count("/") == 0 and folder not in roots:
            roots.append(folder)
    return roots


def guess(file: LoadedFile) -> Guess:
    """The format of ``file`` (see the module docstring and the README's table of scores)."""
    name = _basename(file)
    if file.path is not None and file.raw_data is None and os.path.isdir(file.path):
        found = [n for n in SAVED_MODEL_FILES if os.path.isfile(os.path.join(file.path, n))]
        if found:
            return Guess(SAVED_MODEL, SURE, f"a SavedModel folder (it holds {found[0]})")
        return Guess(None, 0.0, "a folder without saved_model.pb")
    if name in SAVED_MODEL_FILES:
        return Guess(SAVED_MODEL, SURE, f"the file is a SavedModel's {name}")
    head = file.head(8)
    keras_name = name.endswith(KERAS_SUFFIXES)
    h5_name = name.endswith(H5_SUFFIXES)
    if not head:
        if keras_name or h5_name:
            return Guess(KERAS if keras_name else H5, SURE,
                         f"the file name ends with {os.path.splitext(name)[1]}")
        return Guess(None, 0.0, "no Keras or SavedModel file name, and no bytes to look at")
    if head.startswith(HDF5_MAGIC):
        if h5_name:
            return Guess(H5, SURE, "an HDF5 file named .h5 (legacy Keras)")
        return Guess(H5, HDF5_CONTENT, "the file starts with the HDF5 signature (legacy Keras)")
    if head.startswith(ZIP_MAGIC):
        entries = zip_entries(file)
        if entries is not None and is_keras_zip(entries):
            score = SURE if keras_name else CONTENT
            return Guess(KERAS, score, "a zip holding a Keras model (config.json and weights)")
        if entries is not None and saved_model_roots(entries):
            return Guess(SAVED_MODEL_ZIP, CONTENT, "a zip holding a SavedModel (saved_model.pb)")
        if keras_name:
            return Guess(KERAS, CONTRADICTED,
                         "named .keras, but the zip holds no config.json and weights")
        return Guess(None, 0.0, "a zip holding neither a Keras model nor a SavedModel")
    if keras_name or h5_name:
        kind = "zip" if keras_name else "HDF5 file"
        return Guess(KERAS if keras_name else H5, CONTRADICTED,
                     f"named {os.path.splitext(name)[1]}, but the bytes are not a {kind}")
    return Guess(None, 0.0, "neither a Keras (.keras, .h5) nor a SavedModel file")
