"""A scikit-learn classifier exported by skl2onnx with its default options, driven over V2 by
tritonclient (binary and JSON) and the kserve SDK's REST client.

skl2onnx's default ZipMap makes the probabilities a sequence of maps (one ``{class:
probability}`` per row), which no V2 datatype holds: core serves it as an FP32 ``[rows,
classes]`` tensor whose ``parameters.classes`` lists the classes in column order (what
``zipmap=False`` gives, and what Triton and MLServer users get for probabilities), and the
label as the tensor it is. The models are trained and exported here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import core_binarizer_onnx  # noqa: F401
import core_storage_disk  # noqa: F401
import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

X_TRAIN = np.array([[0, 0], [1, 1], [0, 1], [1, 0], [2, 2], [3, 3], [0, 3], [3, 0]], dtype=np.float32)
ROWS = np.array([[0.1, 0.2], [2.5, 2.4], [3, 0]], dtype=np.float32)


def classifier(labels: list[Any]) -> LogisticRegression:
    return LogisticRegression().fit(X_TRAIN, np.array(labels))


def export(model: LogisticRegression, path: Path) -> Path:
    path.write_bytes(to_onnx(model, X_TRAIN[:1]).SerializeToString())  # default options: ZipMap
    return path


def config(path: Path, name: str) -> dict[str, Any]:
    return {"name": name, "storage_type": "disk", "binarization_type": "onnx",
            "storage_kwargs": {"path_to_files": str(path), "need_load_file": False}}


@pytest.fixture(scope="module")
def fitted() -> LogisticRegression:
    return classifier(["cat", "dog", "cat", "eel", "dog", "eel", "cat", "eel"])


@pytest.fixture(scope="module")
def served(serve: Any, fitted: LogisticRegression, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return serve(config(export(fitted, tmp_path_factory.mktemp("zipmap") / "clf.onnx"), "clf"))


def texts(array: Any) -> list[str]:
    """BYTES elements as text (tritonclient gives bytes in binary mode, str in JSON mode)."""
    return [v.decode() if isinstance(v, bytes) else v for v in array.ravel()]


def rows_input(rows: np.ndarray[Any, Any], binary: bool) -> Any:
    tensor = httpclient.InferInput("X", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [True, False])
def test_the_label_alone(served: Any, fitted: LogisticRegression, binary: bool) -> None:
    client = httpclient.InferenceServerClient(served.address)
    result = client.infer("clf", [rows_input(ROWS, binary)],
                          outputs=[httpclient.InferRequestedOutput("output_label", binary_data=binary)])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["output_label"]
    assert texts(result.as_numpy("output_label")) == list(fitted.predict(ROWS))


@pytest.mark.parametrize("binary", [True, False])
def test_probabilities_are_a_rows_by_classes_tensor(served: Any, fitted: LogisticRegression,
                                                    binary: bool) -> None:
    client = httpclient.InferenceServerClient(served.address)
    result = client.infer("clf", [rows_input(ROWS, binary)], outputs=[
        httpclient.InferRequestedOutput("output_label", binary_data=binary),
        httpclient.InferRequestedOutput("output_probability", binary_data=binary)])
    probabilities = result.as_numpy("output_probability")
    assert probabilities.dtype == np.float32 and probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities, fitted.predict_proba(ROWS), rtol=1e-5)
    described = result.get_output("output_probability")
    assert described["datatype"] == "FP32" and described["shape"] == [3, 3]
    assert described["parameters"]["classes"] == ["cat", "dog", "eel"] == list(fitted.classes_)


def test_every_output_by_default(served: Any, fitted: LogisticRegression) -> None:
    result = httpclient.InferenceServerClient(served.address).infer("clf", [rows_input(ROWS, True)])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["output_label", "output_probability"]
    np.testing.assert_allclose(result.as_numpy("output_probability"), fitted.predict_proba(ROWS), rtol=1e-5)


def test_metadata_tells_the_truth(served: Any) -> None:
    meta = httpclient.InferenceServerClient(served.address).get_model_metadata("clf")
    assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 2]}]
    assert meta["outputs"] == [
        {"name": "output_label", "datatype": "BYTES", "shape": [-1]},
        {"name": "output_probability", "datatype": "FP32", "shape": [-1, -1]},
    ]


def test_integer_classes(serve: Any, tmp_path: Path) -> None:
    fitted = classifier([0, 1, 0, 2, 1, 2, 0, 2])
    server = serve(config(export(fitted, tmp_path / "int.onnx"), "ints"))
    result = httpclient.InferenceServerClient(server.address).infer("ints", [rows_input(ROWS, True)])
    assert result.as_numpy("output_label").tolist() == fitted.predict(ROWS).tolist()
    assert result.get_output("output_probability")["parameters"]["classes"] == [0, 1, 2]
    np.testing.assert_allclose(result.as_numpy("output_probability"), fitted.predict_proba(ROWS), rtol=1e-5)


def test_kserve_rest_client(served: Any, fitted: LogisticRegression) -> None:
    async def infer() -> Any:
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            x = InferInput("X", list(ROWS.shape), "FP32")
            x.set_data_from_numpy(ROWS, binary_data=True)
            request = InferRequest("clf", [x], request_outputs=[
                RequestedOutput("output_probability", {"binary_data": True}),
                RequestedOutput("output_label", {"binary_data": False})])
            return await client.infer(served.url, request, model_name="clf")
        finally:
            await client.close()

    response = asyncio.run(infer())
    label, probability = response.outputs[1], response.outputs[0]
    assert label.name == "output_label" and label.data == list(fitted.predict(ROWS))
    np.testing.assert_allclose(probability.as_numpy(), fitted.predict_proba(ROWS), rtol=1e-5)
    assert probability.parameters["classes"] == ["cat", "dog", "eel"]


def test_an_empty_batch_answers_the_declared_outputs(served: Any) -> None:
    client = httpclient.InferenceServerClient(served.address)
    result = client.infer("clf", [rows_input(np.zeros((0, 2), dtype=np.float32), True)])
    outputs = {o["name"]: (o["datatype"], o["shape"]) for o in result.get_response()["outputs"]}
    assert outputs == {"output_label": ("BYTES", [0]), "output_probability": ("FP32", [0, 0])}
    assert result.as_numpy("output_probability").shape == (0, 0)


def test_predict_still_serves_the_maps(served: Any, fitted: LogisticRegression) -> None:
    response = httpx.post(served.url + "/predict", json={"X": ROWS.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()["predict_result"]
    assert body["output_label"] == list(fitted.predict(ROWS))
    first = body["output_probability"][0]
    assert set(first) == {"cat", "dog", "eel"}
    assert first["cat"] == pytest.approx(fitted.predict_proba(ROWS)[0][0], rel=1e-5)
