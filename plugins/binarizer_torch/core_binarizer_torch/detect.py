"""What kind of torch file a file is, from its name and its first bytes or zip entries, without
importing torch: ``binarization_type = "auto"`` asks every installed binarizer, and a server
serving an ONNX file should not pay for ``import torch``.

TorchScript archives, exported programs (``.pt2``) and ``torch.save`` files are all zip
archives (first bytes ``PK\\x03\\x04``); their entries tell them apart:

- TorchScript (``torch.jit.save``): ``<archive>/code/...`` (the scripted Python, as
  TorchScript source) and ``<archive>/constants.pkl``;
- an exported program (``torch.export.save``): ``<archive>/models/...`` holding the
  serialised graph (JSON), and ``<archive>/archive_format``, or, before torch 2.6, the
  ``serialized_exported_program.json`` entry;
- ``torch.save``: ``<archive>/data.pkl`` without ``code/``: a pickle (a whole module, or a
  state_dict).

``torch.save(..., _use_new_zipfile_serialization=False)`` writes the legacy format: a pickle
stream that starts with torch's magic number.
"""

from __future__ import annotations

import io
import zipfile
from typing import Literal

from core.components import LoadedFile

Kind = Literal["torchscript", "exported_program", "torch_save", "legacy_torch_save"]

ZIP_MAGIC = b"PK\x03\x04"
#: ``pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)``: the first record of a legacy
#: ``torch.save`` file (torch.serialization.MAGIC_NUMBER).
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + b"."

#: Suffixes of files written by ``torch.save`` (a pickled module or a state_dict).
SAVE_SUFFIXES = (".pt", ".pth")
#: Suffixes of TorchScript archives.
SCRIPT_SUFFIXES = (".ts", ".ptl")
#: Suffixes of exported programs.
EXPORTED_SUFFIXES = (".pt2",)

#: The entry names (after the archive's top folder) that mark each kind of zip archive.
EXPORTED_PROGRAM_ENTRIES = ("archive_format", "serialized_exported_program.json")


def kind_of(file: LoadedFile) -> tuple[Kind | None, str]:
    """The kind of torch file ``file`` is, from its content, and why; ``None`` when its
    content says it is none of them (or there is no content to look at). Never raises."""
    head = file.head(len(LEGACY_MAGIC))
    if not head:
        return None, "no bytes to look at"
    if head.startswith(LEGACY_MAGIC):
        return "legacy_torch_save", "the file starts with torch's legacy torch.save magic number"
    if not head.startswith(ZIP_MAGIC):
        return None, "not a zip archive, nor a legacy torch.save file"
    names = _zip_names(file)
    if names is None:
        return None, "the file starts like a zip archive but its entries cannot be read"
    entries = {name.split("/", 1)[1] for name in names if "/" in name}
    folders = {entry.split("/", 1)[0] for entry in entries if "/" in entry}
    if "code" in folders and "constants.pkl" in entries:
        return "torchscript", "a TorchScript archive (code/ and constants.pkl)"
    graphs = [e for e in entries if e.startswith("models/") and e.endswith(".json")]
    if graphs or any(entry in entries for entry in EXPORTED_PROGRAM_ENTRIES):
        return "exported_program", "an exported program archive (torch.export.save)"
    if "data.pkl" in entries and "code" not in folders:
        return "torch_save", "a torch.save archive (data.pkl without code/)"
    return None, "a zip archive without the entries of a torch file"


def _zip_names(file: LoadedFile) -> list[str] | None:
    """The entry names of the zip archive ``file`` (its central directory only)."""
    try:
        if file.raw_data is not None:
            with zipfile.ZipFile(io.BytesIO(file.raw_data)) as archive:
                return archive.namelist()
        if file.path is not None:
            with zipfile.ZipFile(file.path) as archive:
                return archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, RuntimeError):
        return None
    return None
