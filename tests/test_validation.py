"""Request validation (core.validation) against deep nesting, on a real server: ``X`` nested
1,000 levels deep is a 4xx naming what is wrong, for a Python model, a model that declares its
tensors and an ONNX model; never a 500 or a traceback in the log."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from serving import object_config

EXAMPLES = Path(__file__).parent.parent / "examples"


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def post(server, body: str) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", content=body.encode(), headers={"content-type": "application/json"})


def assert_clear_4xx(response: httpx.Response, server, status: int, loc: list, fragment: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == loc
    assert fragment in detail["msg"], detail
    assert "Traceback" not in server.log(), server.log()


def test_deep_rows_of_a_python_model_are_a_4xx(serve):
    server = serve(object_config("models:sum_model"))
    # within what the JSON parser takes (1,024 levels), past what an answer carries (254)
    assert_clear_4xx(post(server, '{"X": ' + nested(1000) + "}"), server, 422, ["body", "X"],
                     "is nested deeper than 254 levels")
    # past it: the parser says so
    assert_clear_4xx(post(server, '{"X": ' + nested(100_000) + "}"), server, 400, ["body"],
                     "invalid JSON: depth limit exceeded")
    assert post(server, '{"X": [[1, 2]]}').json() == {"predict_result": [3.0]}


def test_deep_values_of_a_declared_tensor_are_a_422(serve):
    server = serve(object_config("models:tensor_model"))
    response = post(server, '{"X": ' + nested(1000) + ', "ids": [1], "flags": [true], "small": [1]}')
    assert_clear_4xx(response, server, 422, ["body", "X", 0, 0],
                     "nested deeper than the 2 dimension(s) a float32 tensor here can have")


@pytest.mark.plugins
def test_deep_values_of_an_onnx_input_are_a_422(serve):
    server = serve({"storage_type": "disk", "binarization_type": "onnx",
                    "storage_kwargs": {"path_to_files": str(EXAMPLES / "onnx" / "model.onnx")}})
    response = post(server, '{"X": ' + nested(1000) + "}")
    assert_clear_4xx(response, server, 422, ["body", "X", 0, 0], "nested deeper than the 2 dimension(s)")
    assert post(server, '{"X": [[' + ",".join(["0.1"] * 20) + "]]}").status_code == 200
    # /info shows the outputs the model declares
    outputs = httpx.get(f"{server.url}/info").json()["model"]["outputs"]
    assert outputs == [{"name": "label", "dtype": "int64", "kind": "tensor", "shape": [None]},
                       {"name": "probabilities", "dtype": "float32", "kind": "tensor", "shape": [None, 3]}]


def test_a_float_tensor_out_of_range_is_refused_and_numpy_error_state_is_left_as_it_was():
    """Float tensors are converted with numpy's overflow made an error (a float32 past 3.4e38
    would silently become inf); the state set for that is numpy's own, and is put back after
    each conversion, refused or not, so that the model's numpy code keeps its warnings."""
    import numpy as np

    from core.validation import _to_array

    before = np.geterr()
    with pytest.raises(FloatingPointError):
        _to_array([[1e39, 1.0]], "float32")
    assert np.geterr() == before
    converted = _to_array([[1.5, -2.0]], "float32")
    assert converted.dtype == np.float32 and converted.tolist() == [[1.5, -2.0]]
    assert np.geterr() == before
    assert _to_array([[1e300]], "float64").tolist() == [[1e300]]  # in float64's range
