"""The headers the gate reads, found in one pass (core.http.headers)."""

from __future__ import annotations

from core.http.headers import RequestHeaders


def test_the_four_headers_are_found_and_a_repeated_one_is_read_by_its_first_value():
    headers = RequestHeaders({"headers": [
        (b"host", b"127.0.0.1"), (b"content-type", b"application/json"), (b"x-request-id", b"abc"),
        (b"content-length", b"12"), (b"content-encoding", b"gzip"), (b"content-type", b"text/plain"),
        (b"x-request-id", b"second"),
    ]})
    assert (headers.content_type, headers.content_length, headers.content_encoding, headers.request_id) == (
        b"application/json", b"12", b"gzip", b"abc")


def test_absent_headers_are_none():
    headers = RequestHeaders({"headers": [(b"host", b"127.0.0.1")]})
    assert (headers.content_type, headers.content_length, headers.content_encoding, headers.request_id) == (
        None, None, None, None)
