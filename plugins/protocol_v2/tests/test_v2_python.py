"""V2 over Python models (core-storage-memory importing an object; core-binarizer-pickle
reading a cloudpickle file): rows from the input tensor, other arguments from parameters."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import core_storage_memory  # noqa: F401
import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

MODELS = '''
import numpy as np

class Scaler:
    def predict(self, X, scale: float = 1.0, label: str = "x"):
        return np.asarray(X, dtype=np.float64) * scale

class TwoOutputs:
    def predict(self, X):
        X = np.asarray(X)
        return {"total": X.sum(axis=1), "names": ["row%d" % i for i in range(len(X))]}

class Broken:
    def predict(self, X):
        raise RuntimeError("the model is broken")

scaler = Scaler()
two = TwoOutputs()
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
    meta = httpclient.InferenceServerClient(scaler.address).get_model_metadata("scaler")
    assert meta["platform"] == "python"
    assert meta["inputs"][0]["name"] == "X"
    assert meta["outputs"][0]["name"] == "predict"


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
