"""Requests the protocol refuses, as V2 clients see the refusal: tritonclient and the kserve
SDK's REST client read the message of a ``{"error": ...}`` body (httpx where no client can
send the request: a wrong method)."""

from __future__ import annotations

import asyncio
from typing import Any

import core_binarizer_onnx  # noqa: F401
import core_storage_disk  # noqa: F401
import httpx
import numpy as np
import onnx
import pytest
import tritonclient.http as httpclient
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from onnx import TensorProto, helper
from tritonclient.utils import InferenceServerException


@pytest.fixture(scope="module")
def doubler(serve: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``x`` FP32 [batch, 2] -> ``y`` = x * 2 and ``z`` = x + x."""
    path = tmp_path_factory.mktemp("onnx") / "doubler.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 2])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y"]),
                               helper.make_node("Add", ["x", "x"], ["z"])],
                              "doubler", [x], [y, z], initializer=[two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return serve({"name": "doubler", "storage_type": "disk", "binarization_type": "onnx",
                  "storage_kwargs": {"path_to_files": str(path), "need_load_file": False}})


def x_input() -> Any:
    tensor = httpclient.InferInput("x", [1, 2], "FP32")
    tensor.set_data_from_numpy(np.array([[1, 2]], dtype=np.float32))
    return tensor


def kserve_infer(url: str, tensor: InferInput) -> str:
    """The kserve client's error message for a request with ``tensor`` (it must fail)."""
    async def infer() -> str:
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            await client.infer(url, InferRequest("doubler", [tensor]), model_name="doubler")
        except httpx.HTTPStatusError as error:
            return f"{error.response.status_code} {error}"
        finally:
            await client.close()
        raise AssertionError("the request was accepted")

    return asyncio.run(infer())


def test_an_output_requested_twice_is_400(doubler: Any) -> None:
    client = httpclient.InferenceServerClient(doubler.address)
    twice = [httpclient.InferRequestedOutput("y"), httpclient.InferRequestedOutput("y")]
    with pytest.raises(InferenceServerException) as caught:
        client.infer("doubler", [x_input()], outputs=twice)
    assert caught.value.status() == "400"
    assert "output 'y' is requested twice" in caught.value.message()
    result = client.infer("doubler", [x_input()], outputs=[httpclient.InferRequestedOutput("z"),
                                                           httpclient.InferRequestedOutput("y")])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["z", "y"]


def test_unknown_v2_paths_answer_the_protocols_error(doubler: Any) -> None:
    """tritonclient calls endpoints core does not have (model repository, model config): it
    reads the protocol's ``{"error": ...}`` (it used to get core's own error body, and no
    message)."""
    client = httpclient.InferenceServerClient(doubler.address)
    for call in (client.get_model_repository_index, lambda: client.get_model_config("doubler"),
                 lambda: client.load_model("doubler")):
        with pytest.raises(InferenceServerException) as caught:
            call()
        assert caught.value.status() == "404"
        assert "is not a V2 endpoint" in caught.value.message()
    response = httpx.get(doubler.url + "/v2/models/doubler/foo")
    assert response.status_code == 404 and set(response.json()) == {"error"}
    assert "/v2/models/doubler/foo is not a V2 endpoint" in response.json()["error"]


def test_a_wrong_method_is_405_with_allow(doubler: Any) -> None:
    for method, path, allowed in (("GET", "/v2/models/doubler/infer", "POST"),
                                  ("POST", "/v2/models/doubler", "GET"),
                                  ("DELETE", "/v2/health/ready", "GET")):
        response = httpx.request(method, doubler.url + path)
        assert response.status_code == 405, (method, path)
        assert f"{method} is not allowed on {path}" in response.json()["error"]
        assert allowed in response.headers["allow"]
    assert httpx.get(doubler.url + "/predict").status_code == 405  # core's routes are core's


def test_data_nested_too_deep_is_a_clear_400(doubler: Any) -> None:
    nested: Any = [1.0, 2.0]
    for _ in range(70):
        nested = [nested]
    message = kserve_infer(doubler.url, InferInput("x", [1, 2], "FP32", data=nested))
    assert message.startswith("400")
    assert "input 'x': 'data' nests lists more than 64 levels deep" in message


@pytest.mark.parametrize(("shape", "data"), [
    ([0, 2**63], []), ([0, 2**62, 2**62], []), ([0, 2**40, 2**40, 2**40], []), ([1] * 65, [1.0]),
])
def test_shapes_numpy_cannot_hold_are_400(doubler: Any, shape: list[int], data: list[float]) -> None:
    """They used to be 500s (numpy's ValueError reshaping the data)."""
    message = kserve_infer(doubler.url, InferInput("x", shape, "FP32", data=data))
    assert message.startswith("400"), message
    assert "input 'x': shape" in message


def test_a_sequence_request_is_400(doubler: Any) -> None:
    """core serves no sequence (stateful) model: tritonclient's sequence_id is refused, as
    Triton refuses it for a model without sequence batching (it used to be ignored)."""
    client = httpclient.InferenceServerClient(doubler.address)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("doubler", [x_input()], sequence_id=7, sequence_start=True)
    assert caught.value.status() == "400" and "not a sequence model" in caught.value.message()
    result = client.infer("doubler", [x_input()], priority=1, timeout=1000)  # hints: accepted
    np.testing.assert_array_equal(result.as_numpy("y"), [[2, 4]])
