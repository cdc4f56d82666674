"""V2 over Python models (core-storage-memory importing an object; core-binarizer-pickle
reading a cloudpickle file): rows from the input tensor, other arguments from parameters."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import core_storage_memory  # noqa: F401
import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from kserve import InferenceRESTClient, RESTConfig
from kserve import InferInput as KInferInput
from kserve import InferRequest as KInferRequest
from tritonclient.utils import InferenceServerException

MODELS = '''
import numpy as np

import core

class Scaler:
    def predict(self, X, scale: float = 1.0, label: str = "x"):
        return np.asarray(X, dtype=np.float64) * scale

class TwoOutputs:
    def predict(self, X):
        X = np.asarray(X)
        return {"total": X.sum(axis=1), "names": ["row%d" % i for i in range(len(X))]}

class Declared:
    """Declares its outputs: the return annotation is what V2 metadata lists and serves."""

    def predict(self, X) -> core.Outputs({
        "total": core.Tensor("float64", (None,)),
        "names": core.Tensor("string", (None,)),
    }):
        X = np.asarray(X, dtype=np.float64)
        return {"total": X.sum(axis=1), "names": ["row%d" % i for i in range(len(X))],
                "debug": "not declared, not served"}

class Labels:
    """One output, declared by a single Tensor: it takes the predict method's name."""

    def predict(self, X, prefix: str = "") -> core.Tensor("string", (None,)):
        return [prefix + str(len(row)) for row in X]

class Forgets:
    """Declares two outputs and returns one."""

    def predict(self, X) -> core.Outputs({"a": core.Tensor("float64"), "b": core.Tensor("float64")}):
        return {"a": np.asarray(X, dtype=np.float64)}

class Flags:
    def predict(self, X):
        return np.asarray(X)

class Broken:
    def predict(self, X):
        raise RuntimeError("the model is broken")

scaler = Scaler()
two = TwoOutputs()
declared = Declared()
labels = Labels()
flags = Flags()
forgets = Forgets()
broken = Broken()
'''


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pymodels")
    (folder / "v2_test_models.py").write_text(textwrap.dedent(MODELS))
    return folder


def memory(name: str, obj: str) -> dict[str, Any]:
    return {"name": name, "storage_type": "memory", "storage_kwargs": {"object": f"v2_test_models:{obj}"}}


@pytest.fixture(scope="module")
def scaler(serve: Any, models_dir: Path) -> Any:
    return serve(memory("scaler", "scaler"), pythonpath=[models_dir])


def rows_input(binary: bool, name: str = "X", dtype: str = "FP32") -> Any:
    data = np.arange(6, dtype=np.float32).reshape(2, 3).astype({"FP32": np.float32, "INT64": np.int64}[dtype])
    tensor = httpclient.InferInput(name, [2, 3], dtype)
    tensor.set_data_from_numpy(data, binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [True, False])
def test_rows_and_parameters(scaler: Any, binary: bool) -> None:
    client = httpclient.InferenceServerClient(scaler.address)
    outputs = [httpclient.InferRequestedOutput("predict", binary_data=binary)]
    result = client.infer("scaler", [rows_input(binary)], parameters={"scale": 2.5}, outputs=outputs,
                          request_id="py-1")
    expected = np.arange(6, dtype=np.float64).reshape(2, 3) * 2.5
    np.testing.assert_array_equal(result.as_numpy("predict"), expected)
    response = result.get_response()
    assert response["id"] == "py-1"
    assert response["outputs"][0]["datatype"] == "FP64"


def test_single_input_of_any_name_feeds_the_rows(scaler: Any) -> None:
    client = httpclient.InferenceServerClient(scaler.address)
    result = client.infer("scaler", [rows_input(True, name="input0", dtype="INT64")])
    np.testing.assert_array_equal(result.as_numpy("predict"), np.arange(6).reshape(2, 3))


def test_bad_parameters_are_400(scaler: Any) -> None:
    client = httpclient.InferenceServerClient(scaler.address)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("scaler", [rows_input(True)], parameters={"nope": 1})
    assert caught.value.status() == "400" and "unknown request parameter 'nope'" in caught.value.message()
    with pytest.raises(InferenceServerException) as caught:
        client.infer("scaler", [rows_input(True)], parameters={"scale": "big"})
    assert caught.value.status() == "400" and "scale" in caught.value.message()


def test_metadata_of_a_python_model(scaler: Any) -> None:
    """A model that declares no outputs: metadata lists none (their names and types are only
    known from a result), as MLServer's metadata does for such a model."""
    meta = httpclient.InferenceServerClient(scaler.address).get_model_metadata("scaler")
    assert meta["platform"] == "python"
    assert meta["inputs"][0]["name"] == "X"
    assert meta["outputs"] == []


def metadata_and_inference_agree(server: Any, model: str) -> list[str]:
    """Every output metadata names is answered when requested alone, and a request naming none
    gets exactly them: the names, in order."""
    client = httpclient.InferenceServerClient(server.address)
    named = [o["name"] for o in client.get_model_metadata(model)["outputs"]]
    for name in named:
        result = client.infer(model, [rows_input(True)], outputs=[httpclient.InferRequestedOutput(name)])
        assert [o["name"] for o in result.get_response()["outputs"]] == [name]
    answered = [o["name"] for o in client.infer(model, [rows_input(True)]).get_response()["outputs"]]
    if named:
        assert answered == named
    return answered


def test_a_dict_result_without_declared_outputs(serve: Any, models_dir: Path) -> None:
    """The result's keys are answered; metadata, which cannot know them, names none (it used
    to name 'predict', which inference then refused)."""
    server = serve(memory("two", "two"), pythonpath=[models_dir])
    assert metadata_and_inference_agree(server, "two") == ["total", "names"]
    client = httpclient.InferenceServerClient(server.address)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("two", [rows_input(True)], outputs=[httpclient.InferRequestedOutput("predict")])
    assert caught.value.status() == "400"
    assert "unknown output 'predict'; the model's outputs are 'total', 'names'" in caught.value.message()


@pytest.fixture(scope="module")
def declared(serve: Any, models_dir: Path) -> Any:
    return serve(memory("declared", "declared"), pythonpath=[models_dir])


def test_declared_outputs_are_the_metadata_and_the_answer(declared: Any) -> None:
    meta = httpclient.InferenceServerClient(declared.address).get_model_metadata("declared")
    assert meta["outputs"] == [{"name": "total", "datatype": "FP64", "shape": [-1]},
                               {"name": "names", "datatype": "BYTES", "shape": [-1]}]
    assert metadata_and_inference_agree(declared, "declared") == ["total", "names"]


def test_an_undeclared_output_is_refused_before_predicting(declared: Any) -> None:
    client = httpclient.InferenceServerClient(declared.address)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("declared", [rows_input(True)], outputs=[httpclient.InferRequestedOutput("debug")])
    assert caught.value.status() == "400"
    assert "unknown output(s) 'debug'; the model's outputs are 'total', 'names'" in caught.value.message()


def test_declared_outputs_with_the_kserve_client(declared: Any) -> None:
    async def infer() -> Any:
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            x = KInferInput("X", [2, 3], "FP32")
            x.set_data_from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3), binary_data=False)
            return await client.infer(declared.url, KInferRequest("declared", [x]), model_name="declared")
        finally:
            await client.close()

    response = asyncio.run(infer())
    assert [o.name for o in response.outputs] == ["total", "names"]
    assert response.outputs[0].datatype == "FP64" and response.outputs[0].data == [3.0, 12.0]
    assert response.outputs[1].data == ["row0", "row1"]


@pytest.fixture(scope="module")
def labels(serve: Any, models_dir: Path) -> Any:
    return serve(memory("labels", "labels"), pythonpath=[models_dir])


def test_a_single_declared_tensor_is_the_predict_output(labels: Any) -> None:
    meta = httpclient.InferenceServerClient(labels.address).get_model_metadata("labels")
    assert meta["outputs"] == [{"name": "predict", "datatype": "BYTES", "shape": [-1]}]
    assert metadata_and_inference_agree(labels, "labels") == ["predict"]


def test_an_empty_batch_gets_the_declared_outputs_with_zero_rows(declared: Any) -> None:
    client = httpclient.InferenceServerClient(declared.address)
    empty = httpclient.InferInput("X", [0, 3], "FP32")
    empty.set_data_from_numpy(np.zeros((0, 3), dtype=np.float32), binary_data=True)
    result = client.infer("declared", [empty])
    assert [(o["name"], o["datatype"], o["shape"]) for o in result.get_response()["outputs"]] == [
        ("total", "FP64", [0]), ("names", "BYTES", [0])]
    assert result.as_numpy("total").shape == (0,)


def test_an_empty_bool_batch_in_json(serve: Any, models_dir: Path) -> None:
    """Zero BOOL elements in JSON (``"data": []``) used to be 400 "data is not BOOL"."""
    server = serve(memory("flags", "flags"), pythonpath=[models_dir])
    client = httpclient.InferenceServerClient(server.address)
    empty = httpclient.InferInput("X", [0, 2], "BOOL")
    empty.set_data_from_numpy(np.zeros((0, 2), dtype=np.bool_), binary_data=False)
    result = client.infer("flags", [empty], outputs=[httpclient.InferRequestedOutput("predict", binary_data=False)])
    assert result.get_response()["outputs"][0]["shape"][0] == 0
    assert result.as_numpy("predict").size == 0


def test_a_text_parameter_input_must_be_utf8(labels: Any) -> None:
    client = httpclient.InferenceServerClient(labels.address)
    prefix = httpclient.InferInput("prefix", [1], "BYTES")
    prefix.set_data_from_numpy(np.array([b"n="], dtype=np.object_))
    result = client.infer("labels", [rows_input(True), prefix])
    assert result.as_numpy("predict").tolist() == [b"n=3", b"n=3"]
    prefix.set_data_from_numpy(np.array([b"\xff"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("labels", [rows_input(True), prefix])
    assert caught.value.status() == "400"
    assert "input 'prefix': BYTES element 0" in caught.value.message() and "UTF-8" in caught.value.message()


def test_dict_results_and_bytes_outputs(serve: Any, models_dir: Path) -> None:
    server = serve(memory("two", "two"), pythonpath=[models_dir])
    client = httpclient.InferenceServerClient(server.address)
    result = client.infer("two", [rows_input(True)])
    np.testing.assert_array_equal(result.as_numpy("total"), [3, 12])
    assert result.as_numpy("names").tolist() == [b"row0", b"row1"]
    result = client.infer("two", [rows_input(False)], outputs=[
        httpclient.InferRequestedOutput("names", binary_data=False)])
    assert result.get_response()["outputs"] == [
        {"name": "names", "datatype": "BYTES", "shape": [2], "data": ["row0", "row1"]}]


def test_a_model_that_raises_is_500_with_the_message(serve: Any, models_dir: Path) -> None:
    server = serve(memory("broken", "broken"), pythonpath=[models_dir])
    response = httpx.post(server.url + "/v2/models/broken/infer", json={
        "inputs": [{"name": "X", "shape": [1, 1], "datatype": "FP32", "data": [1]}]})
    assert response.status_code == 500
    assert "the model is broken" in response.json()["error"]


def test_pickle_file_through_the_pickle_binarizer(serve: Any, tmp_path: Path) -> None:
    import cloudpickle
    import core_binarizer_pickle  # noqa: F401
    import core_storage_disk  # noqa: F401

    class Doubler:
        def predict(self, X: Any) -> Any:
            return np.asarray(X) * 2

    path = tmp_path / "model.pkl"
    path.write_bytes(cloudpickle.dumps(Doubler()))
    server = serve({"name": "doubler", "storage_type": "disk", "binarization_type": "pickle",
                    "storage_kwargs": {"path_to_files": str(path)}})
    client = httpclient.InferenceServerClient(server.address)
    result = client.infer("doubler", [rows_input(True)])
    np.testing.assert_array_equal(result.as_numpy("predict"), np.arange(6).reshape(2, 3) * 2)


def test_gzip_request_compression(scaler: Any) -> None:
    client = httpclient.InferenceServerClient(scaler.address)
    result = client.infer("scaler", [rows_input(True)], request_compression_algorithm="gzip")
    np.testing.assert_array_equal(result.as_numpy("predict"), np.arange(6).reshape(2, 3))


def test_a_result_that_does_not_fit_the_declaration_is_a_logged_500(serve: Any, models_dir: Path) -> None:
    server = serve(memory("forgets", "forgets"), pythonpath=[models_dir])
    client = httpclient.InferenceServerClient(server.address)
    result = client.infer("forgets", [rows_input(True)], outputs=[httpclient.InferRequestedOutput("a")])
    np.testing.assert_array_equal(result.as_numpy("a"), np.arange(6).reshape(2, 3))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("forgets", [rows_input(True)])
    assert caught.value.status() == "500"
    message = "the model declares the output 'b' but its result has no 'b' (it has 'a')"
    assert message in caught.value.message()
    assert message in server.log()
