"""Request bodies under the gate's limits (core.http.body), on core's ``POST /predict``: the size
limit whatever way the body comes (chunked, compressed), its encodings and its content type."""

from __future__ import annotations

import gzip
import zlib

import httpx
import pytest
from hostile import MEMORY_BOUND, MiB, gzip_bomb, streamed
from serving import object_config

from core.http.body import MediaTypes, UnsupportedMediaType

ROWS = b'{"X": [[1, 2], [3, 4]]}'
#: A JSON body of any length: ``{"X": [[1,1,1,...]]}``
HEAD, FILLER, TAIL = b'{"X": [[1', b",1" * (MiB // 2), b"]]}"


@pytest.fixture(scope="module")
def server(serve_module):
    return serve_module(object_config("models:sum_model", max_body_size=10 * MiB))


def post(server, content, **headers: str) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", content=content,
                      headers={"content-type": "application/json", **headers}, timeout=60)


def assert_core_error(response: httpx.Response, status: int, fragment: str) -> dict:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    predict_id = response.headers["X-Predict-Id"]
    assert len(predict_id) == 32 and int(predict_id, 16) >= 0
    assert body["predict_id"] == predict_id
    assert fragment in body["detail"][0]["msg"], body
    return body["detail"][0]


def test_a_chunked_body_over_the_limit_is_413_and_the_worker_stays_small(server):
    """No Content-Length: the limit holds while the body streams in, so 100 MiB sent against
    a 10 MiB limit is refused once 10 MiB are in, and the worker never holds more."""
    response = post(server, streamed(HEAD, FILLER, 100 * MiB, TAIL, server))
    detail = assert_core_error(response, 413, "max_body_size")
    assert detail["type"] == "body_too_large"
    assert response.headers["connection"] == "close"
    assert server.peak_memory() < MEMORY_BOUND
    assert post(server, ROWS).json() == {"predict_result": [3.0, 7.0]}  # still serving


@pytest.mark.parametrize("method", ["gzip", "deflate"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_compressed_body_that_inflates_past_the_limit_is_413(server, method, chunked):
    """~600 KiB that inflate to 600 MiB: the limit is on the decompressed size, and
    decompression stops at it."""
    bomb = gzip_bomb(HEAD, FILLER, 600, TAIL, method)
    assert len(bomb) < MiB
    content = iter([bomb[i:i + 65536] for i in range(0, len(bomb), 65536)]) if chunked else bomb
    response = post(server, content, **{"content-encoding": method})
    assert_core_error(response, 413, "the decompressed body is over the limit (max_body_size)")
    assert server.peak_memory() < MEMORY_BOUND


@pytest.mark.parametrize(("encoding", "compress"), [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),  # HTTP's deflate is the zlib format (RFC 9110)
    ("GZIP", gzip.compress),
    ("identity", lambda body: body),
])
def test_a_compressed_body_is_served(server, encoding, compress):
    response = post(server, compress(ROWS), **{"content-encoding": encoding})
    assert response.status_code == 200, response.text
    assert response.json() == {"predict_result": [3.0, 7.0]}


def test_a_compressed_body_just_under_the_limit_is_served(server):
    """The limit is on what the body inflates to: 9 MiB of JSON sent as a few KiB of gzip."""
    body = gzip_bomb(ROWS[:-1], b" " * MiB, 9, b"}")
    assert len(body) < 16 * 1024
    response = post(server, body, **{"content-encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert response.json() == {"predict_result": [3.0, 7.0]}


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
def test_an_unknown_encoding_is_415_naming_what_is_taken(server, encoding):
    response = post(server, ROWS, **{"content-encoding": encoding})
    detail = assert_core_error(response, 415, "send gzip, deflate or none")
    assert detail["loc"] == ["header", "content-encoding"]


@pytest.mark.parametrize(("content", "fragment"), [
    (b"\x1f\x8b\x08\x00garbage, not a deflate stream", "not valid for its Content-Encoding"),
    (b"plain text, not gzip", "not valid for its Content-Encoding"),
    (gzip.compress(ROWS)[:-6], "the compressed data ends early"),
    (gzip.compress(ROWS) + b"trailing bytes", "data follows the end of the compressed stream"),
], ids=["bad-stream", "not-gzip", "truncated", "trailing-data"])
def test_a_corrupt_gzip_body_is_400(server, content, fragment):
    response = post(server, content, **{"content-encoding": "gzip"})
    detail = assert_core_error(response, 400, fragment)
    assert detail["loc"] == ["body"]
    assert response.headers["connection"] == "close"  # the rest of the body is not read


@pytest.mark.parametrize("content_type", [
    "text/plain",  # what a cross-site <form enctype="text/plain"> posts
    "text/plain; charset=utf-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
])
def test_a_body_that_is_not_json_is_415_before_it_reaches_the_model(server, content_type):
    """A browser sends these three types cross-site without a CORS preflight: a form on any
    web page could run predictions if ``/predict`` took them."""
    response = post(server, ROWS, **{"content-type": content_type})
    detail = assert_core_error(response, 415, "this route takes application/json")
    assert detail["loc"] == ["header", "content-type"]
    assert response.headers["connection"] == "close"
    assert content_type.split(";")[0] in detail["msg"]


@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json",
    None,  # curl --data-binary and other non-browser clients may send none
])
def test_json_bodies_are_taken(server, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = httpx.post(f"{server.url}/predict", content=ROWS, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"predict_result": [3.0, 7.0]}


def test_a_refused_type_stays_refused_after_taken_ones_are_remembered(server):
    """The route remembers the Content-Types it took (one lookup a request); a refused one is
    never remembered, and a flood of distinct types cannot grow what is remembered."""
    for n in range(80):  # more distinct taken values than are remembered
        response = post(server, ROWS, **{"content-type": f"application/json; x={n}"})
        assert response.status_code == 200, response.text
    for _ in range(2):
        response = post(server, ROWS, **{"content-type": "text/plain"})
        assert_core_error(response, 415, "this route takes application/json")
    assert post(server, ROWS, **{"content-type": "application/json; x=79"}).status_code == 200


def test_what_a_route_remembers_of_content_types_is_bounded():
    types = MediaTypes(("application/json", ""))
    for n in range(3 * MediaTypes.REMEMBERED):
        types.check(f"application/json; x={n}".encode())
    assert len(types._taken) == MediaTypes.REMEMBERED
    with pytest.raises(UnsupportedMediaType):
        types.check(b"text/plain")
    assert b"text/plain" not in types._taken
