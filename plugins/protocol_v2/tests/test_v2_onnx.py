"""V2 over ONNX models, driven by tritonclient's InferenceServerClient as its users drive it.

Needs core-storage-disk and core-binarizer-onnx (the test extra). The models are built here
with ``onnx.helper``: an identity model with one input/output pair per V2 datatype, and a
model with a fixed input shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import core_binarizer_onnx  # noqa: F401
import core_storage_disk  # noqa: F401
import httpx
import numpy as np
import onnx
import pytest
import tritonclient.http as httpclient
from onnx import TensorProto, helper
from tritonclient.utils import InferenceServerException

#: V2 datatype -> (ONNX element type, numpy dtype, sample data of shape [2, 3])
SAMPLES: dict[str, tuple[int, Any, np.ndarray[Any, Any]]] = {
    "BOOL": (TensorProto.BOOL, np.bool_, np.array([[True, False, True], [False, False, True]])),
    "UINT8": (TensorProto.UINT8, np.uint8, np.array([[0, 1, 255], [7, 8, 9]], dtype=np.uint8)),
    "UINT16": (TensorProto.UINT16, np.uint16, np.array([[0, 1, 65535], [7, 8, 9]], dtype=np.uint16)),
    "UINT32": (TensorProto.UINT32, np.uint32, np.array([[0, 1, 2**32 - 1], [7, 8, 9]], dtype=np.uint32)),
    "UINT64": (TensorProto.UINT64, np.uint64, np.array([[0, 1, 2**63], [7, 8, 9]], dtype=np.uint64)),
    "INT8": (TensorProto.INT8, np.int8, np.array([[-128, 0, 127], [7, 8, 9]], dtype=np.int8)),
    "INT16": (TensorProto.INT16, np.int16, np.array([[-32768, 0, 32767], [7, 8, 9]], dtype=np.int16)),
    "INT32": (TensorProto.INT32, np.int32, np.array([[-(2**31), 0, 2**31 - 1], [7, 8, 9]], dtype=np.int32)),
    "INT64": (TensorProto.INT64, np.int64, np.array([[-(2**63), 0, 2**63 - 1], [7, 8, 9]], dtype=np.int64)),
    "FP16": (TensorProto.FLOAT16, np.float16, np.array([[0.5, -1.25, 65504], [1, 2, 3]], dtype=np.float16)),
    "FP32": (TensorProto.FLOAT, np.float32, np.array([[0.1, -2.5, 3e38], [1, 2, 3]], dtype=np.float32)),
    "FP64": (TensorProto.DOUBLE, np.float64, np.array([[0.1, -2.5, 1e300], [1, 2, 3]], dtype=np.float64)),
    "BYTES": (TensorProto.STRING, np.object_,
              np.array([["a", "héllo", ""], ["x y", "日本", "z"]], dtype=np.object_)),
}


def identity_model(path: Path) -> None:
    """One ``in_<TYPE>`` -> ``out_<TYPE>`` identity per datatype, shape [batch, 3]."""
    nodes, inputs, outputs = [], [], []
    for name, (elem, _, _) in SAMPLES.items():
        inputs.append(helper.make_tensor_value_info(f"in_{name}", elem, ["batch", 3]))
        outputs.append(helper.make_tensor_value_info(f"out_{name}", elem, ["batch", 3]))
        nodes.append(helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"]))
    graph = helper.make_graph(nodes, "identity_all", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def fixed_model(path: Path) -> None:
    """``x`` FP32 [2, 4] -> ``y`` = x * 2 and ``total`` = sum over axis 1."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
    total = helper.make_tensor_value_info("total", TensorProto.FLOAT, [2])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["y"]),
        helper.make_node("ReduceSum", ["x", "axes"], ["total"], keepdims=0),
    ]
    graph = helper.make_graph(nodes, "fixed", [x], [y, total], initializer=[two, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def onnx_config(path: Path, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name, "version": "3",
        "storage_type": "disk",
        "storage_kwargs": {"path_to_files": str(path), "need_load_file": False},
        "binarization_type": "onnx",
        **extra,
    }


@pytest.fixture(scope="module")
def identity(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("onnx") / "identity.onnx"
    identity_model(path)
    return serve(onnx_config(path, "identity"))


@pytest.fixture(scope="module")
def fixed(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("onnx") / "fixed.onnx"
    fixed_model(path)
    return serve(onnx_config(path, "fixed"))


def all_inputs(binary: bool) -> list[Any]:
    inputs = []
    for name, (_, _, sample) in SAMPLES.items():
        tensor = httpclient.InferInput(f"in_{name}", list(sample.shape), name)
        tensor.set_data_from_numpy(sample, binary_data=binary)
        inputs.append(tensor)
    return inputs


def check_all(result: Any) -> None:
    for name, (_, dtype, sample) in SAMPLES.items():
        got = result.as_numpy(f"out_{name}")
        assert got is not None, name
        assert got.shape == sample.shape, name
        if name == "BYTES":
            assert [x.decode() if isinstance(x, bytes) else x for x in got.ravel()] == list(sample.ravel())
        else:
            assert got.dtype == dtype, name
            np.testing.assert_array_equal(got, sample, err_msg=name)


def test_every_datatype_binary_mode(identity: Any) -> None:
    client = httpclient.InferenceServerClient(identity.address)
    result = client.infer("identity", all_inputs(binary=True), request_id="req-1")
    check_all(result)
    response = result.get_response()
    assert response["id"] == "req-1"
    assert response["model_name"] == "identity" and response["model_version"] == "3"
    types = {o["name"]: o["datatype"] for o in response["outputs"]}
    assert types == {f"out_{n}": n for n in SAMPLES}


def test_every_datatype_json_mode(identity: Any) -> None:
    client = httpclient.InferenceServerClient(identity.address)
    outputs = [httpclient.InferRequestedOutput(f"out_{n}", binary_data=False) for n in SAMPLES]
    result = client.infer("identity", all_inputs(binary=False), outputs=outputs)
    check_all(result)
    for output in result.get_response()["outputs"]:
        assert "data" in output and "parameters" not in output


def test_mixed_binary_and_json_and_version(identity: Any) -> None:
    client = httpclient.InferenceServerClient(identity.address)
    inputs = all_inputs(binary=True)
    inputs[0].set_data_from_numpy(SAMPLES["BOOL"][2], binary_data=False)
    outputs = [httpclient.InferRequestedOutput("out_FP32", binary_data=True),
               httpclient.InferRequestedOutput("out_BYTES", binary_data=False)]
    result = client.infer("identity", inputs, model_version="3", outputs=outputs)
    names = [o["name"] for o in result.get_response()["outputs"]]
    assert names == ["out_FP32", "out_BYTES"]  # only the requested outputs, in request order
    np.testing.assert_array_equal(result.as_numpy("out_FP32"), SAMPLES["FP32"][2])
    assert result.as_numpy("out_INT8") is None


def test_metadata(identity: Any) -> None:
    client = httpclient.InferenceServerClient(identity.address)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("identity") and client.is_model_ready("identity", "3")
    meta = client.get_model_metadata("identity")
    assert meta["name"] == "identity" and meta["versions"] == ["3"]
    assert {i["name"]: (i["datatype"], i["shape"]) for i in meta["inputs"]} == {
        f"in_{n}": (n, [-1, 3]) for n in SAMPLES
    }
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {f"out_{n}": n for n in SAMPLES}
    assert client.get_model_metadata("identity", "3") == meta
    server = client.get_server_metadata()
    assert "binary_tensor_data" in server["extensions"]


def test_unknown_model_and_version_are_404(identity: Any) -> None:
    client = httpclient.InferenceServerClient(identity.address)
    for call in (lambda: client.get_model_metadata("nope"),
                 lambda: client.get_model_metadata("identity", "9"),
                 lambda: client.infer("nope", all_inputs(True)),
                 lambda: client.infer("identity", all_inputs(True), model_version="9")):
        with pytest.raises(InferenceServerException) as caught:
            call()
        assert caught.value.status() == "404"
        assert "unknown" in caught.value.message()
    assert not client.is_model_ready("nope")
    response = httpx.get(identity.url + "/v2/models/nope")
    assert response.status_code == 404 and set(response.json()) == {"error"}


def test_shape_errors(fixed: Any) -> None:
    client = httpclient.InferenceServerClient(fixed.address)
    good = np.arange(8, dtype=np.float32).reshape(2, 4)
    tensor = httpclient.InferInput("x", [2, 4], "FP32")
    tensor.set_data_from_numpy(good)
    result = client.infer("fixed", [tensor])
    np.testing.assert_array_equal(result.as_numpy("y"), good * 2)
    np.testing.assert_array_equal(result.as_numpy("total"), good.sum(axis=1))

    wrong = httpclient.InferInput("x", [4, 2], "FP32")  # the model wants [2, 4]
    wrong.set_data_from_numpy(good.reshape(4, 2))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("fixed", [wrong])
    assert caught.value.status() == "400"
    assert "shape [4, 2]" in caught.value.message() and "[2, 4]" in caught.value.message()

    # the declared shape does not match the data sent (raw JSON, as any client could send)
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3]}]}
    response = httpx.post(fixed.url + "/v2/models/fixed/infer", json=body)
    assert response.status_code == 400
    assert "holds 8 element(s) but the data has 3" in response.json()["error"]

    # binary data whose size does not fit the shape
    header = b'{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","parameters":{"binary_data_size":12}}]}'
    response = httpx.post(fixed.url + "/v2/models/fixed/infer", content=header + b"\0" * 12,
                          headers={"Inference-Header-Content-Length": str(len(header))})
    assert response.status_code == 400 and "needs 32 bytes, got 12" in response.json()["error"]


def test_bad_requests_are_400(fixed: Any) -> None:
    url = fixed.url + "/v2/models/fixed/infer"
    cases = [
        (b"not json", "not valid JSON"),
        (b'{"inputs": []}', "non-empty list"),
        (b'{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP99","data":[1]}]}', "unknown datatype"),
        (b'{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP64","data":[1,2,3,4,5,6,7,8]}]}',
         "the model expects FP32"),
        (b'{"inputs":[{"name":"z","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]}',
         "unknown input"),
        (b'{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,"a"]}]}',
         "element 7 must be a number"),
        (b'{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,1e39]}]}',
         "1e+39 is out of range for FP32"),
        (b'{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}],'
         b'"outputs":[{"name":"nope"}]}', "unknown output"),
        (b'{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]}', "non-negative"),
    ]
    for body, message in cases:
        response = httpx.post(url, content=body)
        assert response.status_code == 400, (body, response.text)
        assert message in response.json()["error"], (body, response.text)
    response = httpx.post(url, content=b"{}", headers={"Inference-Header-Content-Length": "99"})
    assert response.status_code == 400 and "Inference-Header-Content-Length" in response.json()["error"]


def test_nested_json_data_and_json_response(fixed: Any) -> None:
    body = {"id": "n1", "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                                     "data": [[1, 2, 3, 4], [5, 6, 7, 8]]}],
            "outputs": [{"name": "total"}]}
    response = httpx.post(fixed.url + "/v2/models/fixed/versions/3/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"model_name": "fixed", "model_version": "3", "id": "n1", "outputs": [
        {"name": "total", "datatype": "FP32", "shape": [2], "data": [10.0, 26.0]}]}


def test_batching_architecture(serve: Any, tmp_path: Path) -> None:
    """The V2 endpoint goes through architecture_predict: a batching server answers too."""
    path = tmp_path / "identity.onnx"
    identity_model(path)
    server = serve(onnx_config(path, "batched", mode="batching"))
    client = httpclient.InferenceServerClient(server.address, concurrency=4)
    pending = [client.async_infer("batched", all_inputs(binary=True), request_id=str(i)) for i in range(4)]
    for i, request in enumerate(pending):
        result = request.get_result()
        assert result.get_response()["id"] == str(i)
        check_all(result)


def test_a_string_input_that_is_not_utf8_is_400(identity: Any) -> None:
    """ONNX strings are UTF-8: other bytes used to reach the model as the text of their
    Python repr (``"b'\\xff'"``) and come back 200."""
    client = httpclient.InferenceServerClient(identity.address)
    inputs = all_inputs(binary=True)
    bad = np.array([["a", "b", "c"], ["d", b"\xffok", "f"]], dtype=np.object_)
    inputs[-1].set_data_from_numpy(bad, binary_data=True)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("identity", inputs)
    assert caught.value.status() == "400"
    assert "input 'in_BYTES': BYTES element 4" in caught.value.message()
    assert "UTF-8" in caught.value.message()


@pytest.mark.parametrize("binary", [True, False])
def test_an_empty_batch_answers_every_declared_output(identity: Any, binary: bool) -> None:
    """Zero rows: each declared output with zero rows (it used to be one output named
    'predict' in binary mode, and 400 "data is not BOOL" in JSON)."""
    client = httpclient.InferenceServerClient(identity.address)
    inputs = []
    for name, (_, dtype, _) in SAMPLES.items():
        tensor = httpclient.InferInput(f"in_{name}", [0, 3], name)
        tensor.set_data_from_numpy(np.zeros((0, 3), dtype=dtype), binary_data=binary)
        inputs.append(tensor)
    outputs = [httpclient.InferRequestedOutput(f"out_{n}", binary_data=binary) for n in SAMPLES]
    result = client.infer("identity", inputs, outputs=None if binary else outputs)
    assert {o["name"]: (o["datatype"], o["shape"]) for o in result.get_response()["outputs"]} == {
        f"out_{n}": (n, [0, 3]) for n in SAMPLES}
    for name in SAMPLES:
        assert result.as_numpy(f"out_{name}").shape == (0, 3)


def odd_names_model(path: Path) -> None:
    """``input:0`` (not a Python identifier) -> ``output:0`` = input + 1."""
    x = helper.make_tensor_value_info("input:0", TensorProto.FLOAT, ["batch", 2])
    y = helper.make_tensor_value_info("output:0", TensorProto.FLOAT, ["batch", 2])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["input:0", "one"], ["output:0"])], "odd",
                              [x], [y], initializer=[one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_the_graphs_names_even_when_not_identifiers(serve: Any, tmp_path: Path) -> None:
    """V2 speaks the graph's names: ``core.Tensor.name`` carries ``input:0`` for the
    argument ``input_0``."""
    path = tmp_path / "odd.onnx"
    odd_names_model(path)
    server = serve(onnx_config(path, "odd"))
    client = httpclient.InferenceServerClient(server.address)
    meta = client.get_model_metadata("odd")
    assert meta["inputs"] == [{"name": "input:0", "datatype": "FP32", "shape": [-1, 2]}]
    assert meta["outputs"] == [{"name": "output:0", "datatype": "FP32", "shape": [-1, 2]}]
    x = httpclient.InferInput("input:0", [1, 2], "FP32")
    x.set_data_from_numpy(np.array([[1, 2]], dtype=np.float32))
    np.testing.assert_array_equal(client.infer("odd", [x]).as_numpy("output:0"), [[2, 3]])
