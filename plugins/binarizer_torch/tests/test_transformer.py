"""The ``torch_tensor`` transformer, and the promise that torch is imported only when a torch
component is used."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import orjson
import pytest
import torch
from core.analysis import Argument, Tensor
from core.errors import ConfigError, PredictTransformDataError
from core.plugins import load_plugins

from core_binarizer_torch.transformer import TorchTensorTransformer

ROWS = Argument("X", "array", is_rows=True)


def as_json(value: object) -> object:
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY))


def test_rows_become_a_tensor_of_torchs_dtype_or_the_configured_one() -> None:
    floats = TorchTensorTransformer().to_model([[1.5, 2.0], [3.0, 4.0]], ROWS)
    assert isinstance(floats, torch.Tensor) and floats.dtype == torch.float32
    assert floats.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert TorchTensorTransformer().to_model([[1, 2]], ROWS).dtype == torch.int64
    assert TorchTensorTransformer("float64").to_model([[1, 2]], ROWS).dtype == torch.float64
    assert TorchTensorTransformer("bool").to_model([[1, 0]], ROWS).tolist() == [[True, False]]


def test_a_declared_dtype_applies_when_none_is_configured() -> None:
    declared = Argument("x", "array", is_rows=True, tensor=Tensor("float32", (None, 2)))
    assert TorchTensorTransformer().to_model([[1, 2]], declared).dtype == torch.float32
    assert TorchTensorTransformer("float16").to_model([[1, 2]], declared).dtype == torch.float16


def test_arrays_and_tensors_are_taken_as_they_are() -> None:
    array = np.arange(6, dtype=np.float32).reshape(3, 2)
    array.flags.writeable = False  # what a V2 binary tensor is: no warning, no error
    tensor = TorchTensorTransformer().to_model(array, ROWS)
    assert tensor.dtype == torch.float32 and tensor.tolist() == array.tolist()
    given = torch.ones(2, 2)
    assert TorchTensorTransformer().to_model(given, ROWS) is given
    strings = np.array([["a", "b"]], dtype=object)
    assert TorchTensorTransformer().to_model(strings, ROWS) is strings


def test_rows_that_make_no_tensor_are_a_422_naming_the_argument() -> None:
    with pytest.raises(PredictTransformDataError) as caught:
        TorchTensorTransformer().to_model([[1.0, 2.0], [3.0]], ROWS)
    assert caught.value.status_code == 422
    assert caught.value.details[0]["loc"] == ["body", "X"]
    assert "cannot make a torch tensor of 'X'" in caught.value.msg


@pytest.mark.parametrize("dtype", ["float128", "string", "Tensor"])
def test_a_dtype_torch_does_not_have_is_a_config_error(dtype: str) -> None:
    with pytest.raises(ConfigError, match=f"dtype_for_predict '{dtype}' is not a torch dtype"):
        TorchTensorTransformer(dtype)


def test_results_become_json() -> None:
    out = TorchTensorTransformer().from_model
    scores = torch.tensor([[1.0, float("nan")]], requires_grad=True) * 2
    assert as_json(out(scores)) == [[2.0, None]]
    assert as_json(out((torch.tensor([1, 2]), torch.tensor([0.5, 1.5])))) == [[1, 2], [0.5, 1.5]]
    assert as_json(out({"label": torch.tensor([3]), "n": 2})) == {"label": [3], "n": 2}
    assert as_json(out(torch.tensor(7))) == 7
    assert as_json(out(torch.tensor([0.5], dtype=torch.bfloat16))) == [0.5]
    assert as_json(out([torch.tensor([True])])) == [[True]]


def test_the_transformer_is_registered_by_path() -> None:
    entry = load_plugins().transformers.entries["torch_tensor"]
    assert entry.distribution == "core-binarizer-torch"
    assert entry.cls is TorchTensorTransformer


def test_torch_is_imported_only_when_a_torch_component_is_used(tmp_path: object) -> None:
    """Loading the plugins, listing them, and auto-detection over a file that is no torch
    file do not import torch; building the transformer does."""
    script = textwrap.dedent("""
        import sys
        from core.components import LoadedFile
        from core.plugins import load_plugins

        plugins = load_plugins()
        assert {"torch", "torchscript"} <= set(plugins.binarizers.names())
        file = LoadedFile(raw_data=b"\\x08\\x07 an onnx file", name="model.onnx")
        for name in ("torch", "torchscript"):
            plugins.binarizers.entries[name].cls.detect(file)
            plugins.binarizers.get(name)()  # built for the CPU
        print("before", "torch" in sys.modules)
        plugins.transformers.get("torch_tensor")()
        print("after", "torch" in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["before", "False", "after", "True"]
