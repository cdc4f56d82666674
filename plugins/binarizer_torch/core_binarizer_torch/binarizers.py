"""The ``torchscript`` and ``torch`` binarizers.

``torchscript`` reads TorchScript archives (``torch.jit.load``): no Python code from the file
runs. ``torch`` reads what may run the file's code, so it loads a file only where the config
trusts it, as the pickle binarizer does: a whole pickled ``nn.Module``
(``torch.load(weights_only=False)``) and an exported program (``torch.export.load``, ``.pt2``,
which unpickles parts of the archive: torch's own documentation says never to load one from an
untrusted source); and, safely, a ``state_dict`` (``weights_only=True``) loaded into the module
class named by ``module``, and TorchScript. Both return a
:class:`core_binarizer_torch.model.TorchModel`.

This module imports torch only when a binarizer is built with a device other than the CPU or
loads a file: ``binarization_type = "auto"`` asks :meth:`detect` of every installed
binarizer, and that must stay cheap.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import io
import logging
import os
import pickle
import re
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, ClassVar

import attrs
from core import progress
from core.analysis import Tensor
from core.components import Binarizer, LoadedFile
from core.errors import ConfigError, ModelLoadError

from core_binarizer_torch.detect import EXPORTED_SUFFIXES, SAVE_SUFFIXES, SCRIPT_SUFFIXES, kind_of

if TYPE_CHECKING:
    import torch

    from core_binarizer_torch.model import TorchModel

logger = logging.getLogger("core")

#: Scores for ``binarization_type = "auto"`` (see the README's table).
CONTENT_SCORE = 0.95
LEGACY_SCORE = 0.7
NAME_ONLY_SCORE = 0.5

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CLASS_PATH = re.compile(r"^[A-Za-z_][\w.]*[:.][A-Za-z_]\w*$")
#: Element types of the ``inputs`` setting (numpy names, as core.Tensor takes them).
INPUT_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


# ---------------------------------------------------------------------- settings


def _check_device(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    label = instance.label
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{label}: binarization_kwargs.device must be a device name such as "
                          f"'cpu' or 'cuda:0', got {value!r}")
    if value == "cpu":
        return
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, ValueError) as error:
        raise ConfigError(f"{label}: binarization_kwargs.device = {value!r} is not a torch device "
                          f"('cpu', 'cuda', 'cuda:N'): {_one_line(error)}") from None
    if device.type == "cpu":
        return
    backend = getattr(torch, device.type, None)
    available = getattr(backend, "is_available", None)
    if not callable(available) or not available():
        raise ConfigError(
            f"{label}: binarization_kwargs.device = {value!r}, but this torch "
            f"({torch.__version__}) has no {device.type} device (torch.{device.type}."
            f"is_available() is false); use device = 'cpu', or install a torch build for "
            f"{device.type} on a machine that has one"
        )
    count = getattr(backend, "device_count", None)
    if device.index is not None and callable(count) and device.index >= count():
        last = f"{device.type}:{count() - 1}"
        raise ConfigError(f"{label}: binarization_kwargs.device = {value!r}, but this machine has "
                          f"{count()} {device.type} device(s): {device.type}:0 to {last}")


def _check_threads(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{instance.label}: binarization_kwargs.num_threads must be a whole "
                          f"number of at least 1 (or unset: torch's default, one per core), got "
                          f"{value!r}")


def _to_inputs(value: Any) -> Any:
    """``{name: {dtype, shape}}`` -> ``{name: core.Tensor}``; anything else is left for the
    validator to refuse."""
    if not isinstance(value, Mapping):
        return value
    result = {}
    for name, spec in value.items():
        if isinstance(spec, Tensor):
            result[str(name)] = spec
            continue
        where = f"binarization_kwargs.inputs.{name}"
        if not isinstance(spec, Mapping) or set(spec) - {"dtype", "shape"} or "dtype" not in spec:
            raise ConfigError(f"torch binarizers: {where} must be {{ dtype = \"float32\", shape "
                              f"= [-1, 4] }} (shape optional; -1 for a dimension of any size), "
                              f"got {spec!r}")
        dtype, shape = spec["dtype"], spec.get("shape")
        if dtype not in INPUT_DTYPES:
            raise ConfigError(f"torch binarizers: {where}.dtype must be one of "
                              f"{', '.join(INPUT_DTYPES)}, got {dtype!r}")
        if shape is not None and not (isinstance(shape, list) and all(map(_is_dimension, shape))):
            raise ConfigError(f"torch binarizers: {where}.shape must be a list of sizes, -1 for "
                              f"a dimension of any size (the rows), got {shape!r}")
        dims = None if shape is None else tuple(None if d is None or d == -1 else d for d in shape)
        result[str(name)] = Tensor(dtype, dims)
    return result


def _is_dimension(value: Any) -> bool:
    """A size in an ``inputs`` shape: a whole number, -1 or None for any size."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= -1)


def _check_inputs(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{instance.label}: binarization_kwargs.inputs must be a table of the "
                          f"forward arguments' tensors, e.g. {{ x = {{ dtype = \"float32\", "
                          f"shape = [-1, 4] }} }}, got {value!r}")


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _check_sha256(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not (isinstance(value, str) and _SHA256.fullmatch(value)):
        raise ConfigError(
            f"{instance.label}: binarization_kwargs.sha256 must be the file's SHA-256 as 64 hex "
            f"digits (sha256sum model.pt), got {value!r}"
        )


def _check_module(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not (isinstance(value, str) and _CLASS_PATH.match(value)):
        raise ConfigError(f"{instance.label}: binarization_kwargs.module must name the model's "
                          f"class as 'package.module:Class', got {value!r}")


def _check_module_kwargs(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{instance.label}: binarization_kwargs.module_kwargs must be a table of "
                          f"the class's constructor arguments, got {value!r}")
    if value and instance.module is None:
        raise ConfigError(f"{instance.label}: binarization_kwargs.module_kwargs is set but module "
                          f"is not: name the class they build, module = 'package.module:Class'")


# ---------------------------------------------------------------------- shared loading


@attrs.define(kw_only=True)
class TorchSettings(Binarizer):
    """The settings both torch binarizers take.

    :param device: where the model runs: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"`` (or any
        device this torch has, ``"mps"``...). A device this machine does not have is a config
        error at start-up.
    :param num_threads: ``torch.set_num_threads`` (threads inside one operator, for the whole
        process); unset: torch's default, one per physical core.
    :param inputs: the tensors forward's arguments take, ``{x = {dtype = "float32", shape =
        [-1, 4]}}`` (-1: any size): the request is then validated against them (a row of the
        wrong width is a 422) and converted to that dtype. Exported programs declare their
        own; this setting overrides them.
    """

    label: ClassVar[str] = "torch binarizer"

    device: str = attrs.field(default="cpu", validator=_check_device)
    num_threads: int | None = attrs.field(default=None, validator=_check_threads)
    inputs: dict[str, Tensor] = attrs.field(factory=dict, converter=_to_inputs,
                                            validator=_check_inputs)

    def deserialize(self, files: list[LoadedFile]) -> TorchModel:
        if not files:
            raise ModelLoadError(f"{self.label}: the storage found no file")
        file = files[0]
        self._set_threads()
        model = self._load(file)
        forward = inspect.signature(model.forward)
        unknown = sorted(set(self.inputs) - set(forward.parameters))
        if unknown:
            raise ConfigError(f"{self.label}: binarization_kwargs.inputs names "
                              f"{', '.join(unknown)}, which {file.display_name}'s forward{forward} "
                              f"does not take")
        logger.info("%s: %s loaded as %s on %s (%d threads)", self.label, file.display_name,
                    model.kind, model.device, _threads())
        return model

    def _load(self, file: LoadedFile) -> TorchModel:
        raise NotImplementedError

    def _set_threads(self) -> None:
        if self.num_threads is not None:
            import torch

            torch.set_num_threads(self.num_threads)

    @contextmanager
    def _source(self, file: LoadedFile, pin: str | None = None) -> Iterator[IO[bytes]]:
        """The file, open for reading; with ``pin``, hashed first and refused, unread, when its
        SHA-256 differs (hash and load through one open file: a rename in between cannot
        slip past the check)."""
        name = file.display_name
        if file.raw_data is not None:
            data = file.raw_data
            if pin is not None:
                self._verify(hashlib.sha256(data).hexdigest(), pin, name)
            yield io.BytesIO(data)
            return
        if file.path is None:
            raise ModelLoadError(f"{self.label}: {name} has neither a path nor bytes")
        try:
            handle = open(file.path, "rb")  # noqa: SIM115 - closed below
        except OSError as error:
            raise ModelLoadError(f"{self.label}: cannot open {file.path}: "
                                 f"{error.strerror or error}") from None
        with handle:
            if pin is not None:
                size = os.fstat(handle.fileno()).st_size
                self._verify(progress.sha256_of(handle, size, name), pin, name)
                handle.seek(0)
            yield handle

    def _verify(self, actual: str, pin: str, name: str) -> None:
        if actual != pin:
            raise ModelLoadError(
                f"{self.label}: refusing to load {name}: its SHA-256 is {actual}, but "
                f"binarization_kwargs.sha256 expects {pin}; the file changed, or the setting is "
                f"out of date"
            )

    def _load_script(self, file: LoadedFile, pin: str | None = None) -> TorchModel:
        """A TorchScript archive: no Python code of the file runs."""
        import torch

        from core_binarizer_torch.model import TorchModel

        device = torch.device(self.device)
        name = file.display_name
        with self._source(file, pin) as source, warnings.catch_warnings():
            # torch 2.13 deprecates TorchScript ("switch to torch.export"): the config chose it
            warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
            try:
                module = torch.jit.load(source, map_location=device)
            except Exception as error:
                raise ModelLoadError(f"{self.label}: torch.jit.load cannot read {name}: "
                                     f"{type(error).__name__}: {_one_line(error)}") from error
        module.eval()
        return TorchModel(module, device=device, kind="torchscript", name=name, inputs=self.inputs)

    def _load_exported(self, file: LoadedFile, pin: str | None) -> TorchModel:
        """An exported program (``torch.export.load``: it unpickles parts of the archive)."""
        import torch

        from core_binarizer_torch.exported import exported_interface
        from core_binarizer_torch.model import TorchModel

        name = file.display_name
        device = torch.device(self.device)
        load = getattr(getattr(torch, "export", None), "load", None)
        if load is None:
            raise ModelLoadError(f"{self.label}: {name} is an exported program, which this "
                                 f"torch ({torch.__version__}) cannot read (torch.export.load is "
                                 f"missing); install torch 2.1 or newer")
        with self._source(file, pin) as source:
            try:
                program = load(source)
            except Exception as error:
                raise ModelLoadError(f"{self.label}: torch.export.load cannot read {name}: "
                                     f"{type(error).__name__}: {_one_line(error)}") from error
        if device.type != "cpu":
            program = _move_program(program, device, self.label, name)
        module = program.module()  # captured in the mode it was exported in (eval() is refused)
        signature, outputs = exported_interface(program, module)
        return TorchModel(module, device=device, kind="exported_program", name=name,
                          signature=signature, outputs=outputs, inputs=self.inputs)


def _move_program(program: Any, device: torch.device, label: str, name: str) -> Any:
    try:
        from torch.export.passes import move_to_device_pass
    except ImportError:
        raise ModelLoadError(f"{label}: this torch cannot move the exported program {name} to "
                             f"{device} (torch.export.passes.move_to_device_pass is missing); "
                             f"export it on that device, or use device = 'cpu'") from None
    return move_to_device_pass(program, device)


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


# ---------------------------------------------------------------------- torchscript


@attrs.define(kw_only=True)
class TorchScriptBinarizer(TorchSettings):
    """TorchScript archives (``torch.jit.save``, read by ``torch.jit.load``): no Python code
    from the file runs (its code is TorchScript, run by torch's own interpreter; its pickles
    are read by torch's restricted unpickler)."""

    label: ClassVar[str] = "torchscript binarizer"

    @classmethod
    def detect(cls, file: LoadedFile) -> tuple[float, str]:
        kind, reason = kind_of(file)
        if kind == "torchscript":
            return CONTENT_SCORE, reason
        if kind is not None:
            return 0.0, f"{reason}: the torch binarizer reads it"
        if file.head(1) is None and file.has_suffix(*SCRIPT_SUFFIXES):  # the name alone
            return NAME_ONLY_SCORE, "the file name ends like a TorchScript archive"
        return 0.0, reason

    def _load(self, file: LoadedFile) -> TorchModel:
        kind, _ = kind_of(file)
        name = file.display_name
        if kind in ("torch_save", "legacy_torch_save"):
            raise ModelLoadError(
                f"{self.label}: {name} is a torch.save file (a pickled module or a state_dict), "
                f"not TorchScript: use binarization_type = 'torch' (with "
                f"binarization_kwargs.module for a state_dict)"
            )
        if kind == "exported_program":
            raise ModelLoadError(
                f"{self.label}: {name} is an exported program (torch.export.save), not "
                f"TorchScript; torch.export.load unpickles parts of it (it may run code), so the "
                f"torch binarizer reads it where the config trusts it: binarization_type = "
                f"'torch', or a sha256 pin"
            )
        return self._load_script(file)


# ---------------------------------------------------------------------- torch.save


@attrs.define(kw_only=True)
class TorchBinarizer(TorchSettings):
    """What ``torch.save`` wrote, a whole ``nn.Module`` or a ``state_dict``; exported programs
    (``torch.export.save``, ``.pt2``); and TorchScript archives (as ``torchscript`` reads them).

    .. warning::

       A pickled module is read by ``torch.load(weights_only=False)``, and an exported program
       by ``torch.export.load``, which unpickles parts of the archive: both can run the file's
       code. So a file is loaded only where the config trusts it: ``binarization_type =
       "torch"``, or ``sha256`` pinning it. A state_dict (``module`` set) is read with
       ``weights_only=True``: tensors and plain containers only, no code.

    :param sha256: the file's expected SHA-256; a file with another digest is refused unread.
    :param module: the class of the model whose state_dict the file holds, as
        ``"package.module:Class"``; the file is then read with ``weights_only=True`` and
        loaded into ``Class(**module_kwargs)`` (strictly: every key must match).
    :param module_kwargs: the class's constructor arguments.
    """

    label: ClassVar[str] = "torch binarizer"
    runs_code: ClassVar[bool] = True  # torch.load(weights_only=False) unpickles: "auto" needs a pin
    pin_setting: ClassVar[str | None] = "sha256"

    sha256: str | None = attrs.field(default=None, converter=_lower, validator=_check_sha256)
    module: str | None = attrs.field(default=None, validator=_check_module)
    module_kwargs: dict[str, Any] = attrs.field(factory=dict, validator=_check_module_kwargs)

    def pinned(self) -> bool:
        """A sha256 pins the file; with ``module`` set the file is read with
        ``weights_only=True``, which runs none of its code, and the code that runs is the
        class the config names."""
        return self.sha256 is not None or self.module is not None

    @classmethod
    def detect(cls, file: LoadedFile) -> tuple[float, str]:
        kind, reason = kind_of(file)
        if kind in ("torch_save", "exported_program"):
            return CONTENT_SCORE, reason
        if kind == "legacy_torch_save":
            suffix = file.has_suffix(*SAVE_SUFFIXES)
            return (CONTENT_SCORE if suffix else LEGACY_SCORE), reason
        if kind is not None:
            return 0.0, f"{reason}: the torchscript binarizer reads it"
        if file.head(1) is None:  # no bytes to look at: the name alone
            if file.has_suffix(*SAVE_SUFFIXES):
                return NAME_ONLY_SCORE, "the file name ends with .pt/.pth (torch.save)"
            if file.has_suffix(*EXPORTED_SUFFIXES):
                return NAME_ONLY_SCORE, "the file name ends with .pt2 (an exported program)"
        return 0.0, reason

    def _load(self, file: LoadedFile) -> TorchModel:
        import torch

        from core_binarizer_torch.model import TorchModel

        kind, _ = kind_of(file)
        name = file.display_name
        if kind == "torchscript" and self.module is None:
            return self._load_script(file, self.sha256)  # the pin holds for every kind of file
        if kind == "exported_program" and self.module is None:
            return self._load_exported(file, self.sha256)
        device = torch.device(self.device)
        cls = self._module_class() if self.module is not None else None
        with self._source(file, self.sha256) as source:
            try:
                loaded = torch.load(source, map_location=device, weights_only=cls is not None)
            except ModuleNotFoundError as error:
                raise ModelLoadError(f"{self.label}: {name} needs the module {error.name!r}, which "
                                     f"is not installed here; install the code the model was "
                                     f"saved with") from error
            except Exception as error:
                hint = ""
                if cls is not None and isinstance(error, pickle.UnpicklingError):
                    hint = (" (weights_only=True reads tensors only: is it a whole pickled module? "
                            "then remove module and module_kwargs, and pin it with sha256)")
                raise ModelLoadError(f"{self.label}: cannot read {name}: {type(error).__name__}: "
                                     f"{_one_line(error)}{hint}") from error
        if cls is not None:
            module = self._build(cls, loaded, name, device)
        elif isinstance(loaded, torch.nn.Module):
            module = loaded
        elif isinstance(loaded, Mapping):
            raise ModelLoadError(
                f"{self.label}: {name} holds a state_dict ({len(loaded)} entries), not a module: "
                f"name its class, binarization_kwargs.module = 'package.module:Class' (and "
                f"module_kwargs for its constructor)"
            )
        else:
            raise ModelLoadError(f"{self.label}: {name} holds a {type(loaded).__name__}, not a "
                                 f"torch.nn.Module")
        module.eval()
        return TorchModel(module, device=device, kind="module", name=name, inputs=self.inputs)

    def _module_class(self) -> type:
        assert self.module is not None
        module_name, _, attr = self.module.replace(":", ".").rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except ImportError as error:
            raise ConfigError(f"{self.label}: binarization_kwargs.module = {self.module!r}: cannot "
                              f"import {module_name!r} ({error})") from None
        except AttributeError:
            raise ConfigError(f"{self.label}: binarization_kwargs.module = {self.module!r}: module "
                              f"{module_name!r} has no {attr!r}") from None
        import torch

        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise ConfigError(f"{self.label}: binarization_kwargs.module = {self.module!r} is not "
                              f"a torch.nn.Module subclass")
        return cls

    def _build(self, cls: type, state: Any, name: str, device: torch.device) -> Any:
        if not isinstance(state, Mapping):
            raise ModelLoadError(f"{self.label}: {name} holds a {type(state).__name__}, not a "
                                 f"state_dict; for a whole pickled module, remove module and "
                                 f"module_kwargs")
        try:
            module = cls(**self.module_kwargs)
        except TypeError as error:
            raise ConfigError(f"{self.label}: {self.module}(**module_kwargs): {error}") from None
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ModelLoadError(f"{self.label}: {name} does not fit {self.module}"
                                 f"(**module_kwargs): {_one_line(error)}") from error
        return module.to(device)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 to put in ``binarization_kwargs.sha256`` (same as ``sha256sum``)."""
    with open(path, "rb") as handle:
        return progress.sha256_of(handle, os.fstat(handle.fileno()).st_size, str(path))
