"""Answers (core.http.responses): a result JSON cannot carry is a clear JSON error in the route's
format, with the predict id and no traceback in the log."""

from __future__ import annotations

import httpx
import pytest
from serving import object_config


@pytest.fixture(scope="module")
def echo(serve_module):
    """A model that returns its rows as it got them (dict rows, so nothing turns them into an
    array on the way in)."""
    return serve_module(object_config("models:echo_model"))


def deep(depth: int) -> str:
    return '{"X": [{"a": ' + "[" * depth + "1" + "]" * depth + "}]}"


def test_a_result_nested_deeper_than_json_answers_is_a_clear_error_without_a_traceback(echo):
    # the request is within what JSON carries (200 levels); the model's answer is not (300)
    body = deep(200)[:-1] + ', "wrap": 100}'
    response = httpx.post(f"{echo.url}/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 500, response.text
    body = response.json()
    assert body["detail"][0]["type"] == "transform_error"
    assert "could not turn the result into JSON: Recursion limit reached" in body["detail"][0]["msg"]
    assert body["predict_id"] == response.headers["X-Predict-Id"]
    assert "Traceback" not in echo.log(), echo.log()


def test_a_request_nested_1000_deep_in_dict_rows_is_a_4xx(echo):
    response = httpx.post(f"{echo.url}/predict", content=deep(1000), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0] == {"loc": ["body", "X"], "msg": "is nested deeper than 254 levels",
                                             "type": "too_deep"}


def test_a_shallow_echo_is_served(echo):
    response = httpx.post(f"{echo.url}/predict", content=deep(50), headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
