"""core-binarizer-torch: PyTorch models for core.

- binarizer ``torchscript``: TorchScript archives (``torch.jit.load``); no Python code from
  the file runs;
- binarizer ``torch``: what ``torch.save`` wrote, a whole ``nn.Module`` (this unpickles: it
  runs the file's code), and exported programs (``torch.export.load``, ``.pt2``, which
  unpickles parts of the archive), so they are loaded only where the config trusts them, as
  the pickle binarizer's files are; and, safely, a ``state_dict`` with its class named by
  ``module``, and TorchScript;
- transformer ``torch_tensor``: rows as a ``torch.Tensor``, tensors in the result as JSON.

::

    binarization_type = "torchscript"
    binarization_kwargs = { device = "cpu", num_threads = 2 }

Everything is registered by path through the ``core`` entry-point group: torch is imported
when a config names one of them (or ``auto`` loads a torch file), not by every ``core``
command.
"""

from __future__ import annotations

from core.hookspecs import Register, hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "register_binarizers", "register_transformers"]


@hookimpl
def register_binarizers(register: Register) -> None:
    register("torchscript", "core_binarizer_torch.binarizers:TorchScriptBinarizer")
    register("torch", "core_binarizer_torch.binarizers:TorchBinarizer")


@hookimpl
def register_transformers(register: Register) -> None:
    register("torch_tensor", "core_binarizer_torch.transformer:TorchTensorTransformer")
