"""The remote storage tests' servers and helpers (their fixtures are in ``conftest.py``).

Real servers, all on 127.0.0.1:

* ``s3``: moto's S3 API server (``ThreadedMotoServer``) in this process, with a bucket
  ``models``; it counts the GETs of each key from werkzeug's request log;
* ``web``: a ``ThreadingHTTPServer`` serving files from a dict, with an ETag, counting GETs,
  and told per file to drop the connection half way, answer 403, or stall;
* ``serve``: core's own hypercorn servers (:func:`core.testing.server_fixture`).
"""

from __future__ import annotations

import hashlib
import http.server
import logging
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import onnx
import pytest
from core.testing import free_port
from onnx import TensorProto, helper

from core_storage_remote import RemoteStorage

MODELS = Path(__file__).parent / "models"
if str(MODELS) not in sys.path:
    sys.path.insert(0, str(MODELS))

#: The credentials moto takes; any value works, which the secrets test relies on.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def pickle_model() -> bytes:
    """A cloudpickled :class:`remote_models.Doubler`."""
    from remote_models import Doubler

    return bytes(cloudpickle.dumps(Doubler()))


def onnx_model() -> bytes:
    """An ONNX graph ``Y = X + X`` for ``X`` of shape ``[batch, 2]``."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "X"], ["Y"])],
        "doubler",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


class _GetCounter(logging.Handler):
    """Counts werkzeug's ``"GET /bucket/key ..."`` request lines of the moto server."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        line = re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage())  # werkzeug's colours
        found = re.search(r'"GET (/[^ ?]+)[^"]*" 20[06]', line)
        if found:
            self.gets[found.group(1)] += 1


class S3:
    """The moto server: its endpoint, a boto3 client, and the GETs it answered per path."""

    def __init__(self, endpoint: str, counter: _GetCounter) -> None:
        import boto3

        self.endpoint = endpoint
        self.client = boto3.client("s3", endpoint_url=endpoint, **{
            "aws_access_key_id": "testing", "aws_secret_access_key": "testing",
            "region_name": "us-east-1"})
        self._counter = counter

    @property
    def env(self) -> dict[str, str]:
        """What a server needs to reach it: ``AWS_ENDPOINT_URL`` and the credentials."""
        return {"AWS_ENDPOINT_URL": self.endpoint, **AWS_ENV}

    def put(self, key: str, data: bytes, bucket: str = "models") -> str:
        """Upload ``data``; its ``s3://`` URL."""
        self.client.put_object(Bucket=bucket, Key=key, Body=data)
        return f"s3://{bucket}/{key}"

    def gets(self, bucket: str, key: str) -> int:
        """How many GETs of ``bucket/key`` the server answered."""
        return self._counter.gets[f"/{bucket}/{key}"]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    counter = _GetCounter()
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.addHandler(counter)
    werkzeug.setLevel(logging.INFO)
    werkzeug.propagate = False
    server.start()
    try:
        s3 = S3(f"http://127.0.0.1:{port}", counter)
        s3.client.create_bucket(Bucket="models")
        yield s3
    finally:
        server.stop()
        werkzeug.removeHandler(counter)


@pytest.fixture
def s3(s3_server: S3, monkeypatch: pytest.MonkeyPatch) -> S3:
    """The moto server, with this process's environment pointing at it."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server


class Web:
    """The HTTP server: ``files`` by path, GETs counted by path, and per-path behaviours."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.files: dict[str, bytes] = {}
        self.gets: Counter[str] = Counter()
        self.drop: dict[str, int] = {}  # path -> how many more GETs to cut half way
        self.denied: set[str] = set()
        self.stall: dict[str, float] = {}  # path -> seconds to wait before answering
        self.delay = 0.0  # seconds between the two halves of every GET body
        self.lock = threading.Lock()

    def put(self, path: str, data: bytes) -> str:
        """Serve ``data`` at ``path``; its URL."""
        self.files[path] = data
        return self.url + path


def _handler(web: Web) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _head(self) -> bytes | None:
            path = self.path.split("?", 1)[0]
            if path in web.stall:
                time.sleep(web.stall[path])
            if path in web.denied:
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            data = web.files.get(path)
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", '"' + hashlib.md5(data).hexdigest() + '"')
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            return data

        def do_HEAD(self) -> None:
            self._head()

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            data = self._head()
            if data is None:
                return
            with web.lock:
                web.gets[path] += 1
                cut = web.drop.get(path, 0) > 0
                if cut:
                    web.drop[path] -= 1
            half = len(data) // 2
            self.wfile.write(data[:half])
            self.wfile.flush()
            if cut:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            time.sleep(web.delay)
            self.wfile.write(data[half:])

    return Handler


@pytest.fixture
def web() -> Iterator[Web]:
    port = free_port()
    state = Web(port)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """An empty cache folder."""
    folder = tmp_path / "cache"
    folder.mkdir()
    return folder


def cached_files(cache: Path) -> list[str]:
    """Every file in the cache but the locks and version records, relative to it."""
    return sorted(
        os.path.relpath(os.path.join(root, name), cache)
        for root, _, names in os.walk(cache) for name in names
        if not name.endswith(".lock") and name != "version.json"
    )


def load_in_a_process(url: str, cache: str) -> None:
    """Load ``url`` into ``cache`` (the target of the two-processes test)."""
    RemoteStorage(path_to_files=url, cache_dir=cache).load()
