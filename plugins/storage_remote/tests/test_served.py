"""End to end: real hypercorn servers load their model from moto's S3 server or an HTTP
server through the remote storage, and answer ``POST /predict``."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from remote_support import S3, Web, cached_files, onnx_model, pickle_model

from core_storage_remote import default_cache_dir

MODELS: dict[str, tuple[str, Any]] = {
    # name: (file name, binarization_type)
    "pickle": ("model.pkl", "pickle"),
    "onnx": ("model.onnx", "onnx"),
}


def model_bytes(kind: str) -> bytes:
    return pickle_model() if kind == "pickle" else onnx_model()


def config(url: str, kind: str, cache: Path, **storage_kwargs: Any) -> dict[str, Any]:
    return {
        "name": f"remote-{kind}",
        "storage_type": "remote",
        "storage_kwargs": {"path_to_files": url, "cache_dir": str(cache), **storage_kwargs},
        "binarization_type": MODELS[kind][1],
    }


def predicts(server: Any) -> None:
    """The served model doubles ``X``."""
    answer = httpx.post(f"{server.url}/predict", json={"X": [[1.0, 2.5]]}, timeout=30)
    assert answer.status_code == 200, answer.text
    result = answer.json()["predict_result"]
    if isinstance(result, dict):  # the ONNX model's outputs by name
        result = result["Y"]
    assert result == [[2.0, 5.0]]


def start_failure(log: str) -> str:
    """The one ``cannot start`` line of a server that failed to start, with no traceback."""
    lines = [line for line in log.splitlines() if "core: cannot start: " in line]
    assert len(lines) == 1 and "Traceback" not in log, log
    return lines[0]


@pytest.mark.parametrize("kind", ["pickle", "onnx"])
def test_serves_a_model_from_s3(kind: str, s3: S3, serve: Any, cache: Path) -> None:
    name = MODELS[kind][0]
    url = s3.put(f"served/{kind}/{name}", model_bytes(kind))
    before = s3.gets("models", f"served/{kind}/{name}")
    first = serve(config(url, kind, cache), env=s3.env)
    predicts(first)
    assert s3.gets("models", f"served/{kind}/{name}") == before + 1
    assert "storage remote: downloading s3://models/served/" in first.log()
    first.stop()
    # a restart with the model unchanged: no second download
    again = serve(config(url, kind, cache), env=s3.env)
    predicts(again)
    assert s3.gets("models", f"served/{kind}/{name}") == before + 1
    assert "unchanged, using the cached copy" in again.log()
    info = httpx.get(f"{again.url}/info").json()["model"]
    assert info["storage_type"] == "remote" and info["files"][0]["name"] == name


@pytest.mark.parametrize("kind", ["pickle", "onnx"])
def test_serves_a_model_over_http(kind: str, web: Web, serve: Any, cache: Path) -> None:
    name = MODELS[kind][0]
    url = web.put(f"/{kind}/{name}", model_bytes(kind))
    predicts(serve(config(url, kind, cache)))
    predicts(serve(config(url, kind, cache)))  # a restart: the cache hit
    assert web.gets[f"/{kind}/{name}"] == 1


def test_a_folder_in_a_bucket_with_a_mask(s3: S3, serve: Any, cache: Path) -> None:
    s3.put("folder-served/model.onnx", onnx_model())
    s3.put("folder-served/notes.txt", b"not the model")
    predicts(serve(config("s3://models/folder-served/", "onnx", cache, file_mask=r"\.onnx$"),
                   env=s3.env))


def test_need_load_file_serves_from_the_bytes(web: Web, serve: Any, cache: Path) -> None:
    url = web.put("/bytes/model.onnx", onnx_model())
    predicts(serve(config(url, "onnx", cache, need_load_file=True)))


def test_the_default_cache_is_core_cache_dir(web: Web, serve: Any, tmp_path: Path) -> None:
    url = web.put("/env/model.onnx", onnx_model())
    settings = config(url, "onnx", tmp_path)
    del settings["storage_kwargs"]["cache_dir"]
    predicts(serve(settings, env={"CORE_CACHE_DIR": str(tmp_path / "env-cache")}))
    assert len(cached_files(tmp_path / "env-cache")) == 1
    assert default_cache_dir() != str(tmp_path / "env-cache")  # the test's own env is untouched


def test_two_workers_starting_together_download_once(web: Web, serve: Any, cache: Path) -> None:
    url = web.put("/workers/model.onnx", onnx_model())
    web.delay = 1.0  # the first worker's download is under way when the second asks
    server = serve(config(url, "onnx", cache),
                   command=[sys.executable, "-m", "core", "serve", "--workers", "2"])
    predicts(server)
    log = server.log()
    assert web.gets["/workers/model.onnx"] == 1, log
    assert log.count("storage remote: downloading") == 1, log
    assert log.count("unchanged, using the cached copy") == 1, log


def test_a_cut_download_never_serves(web: Web, serve: Any, cache: Path) -> None:
    from core.testing import Server

    url = web.put("/cut/model.onnx", onnx_model())
    web.drop["/cut/model.onnx"] = 100
    server = Server(config(url, "onnx", cache, retries=1), directory=cache.parent / "s")
    _, log = server.run_to_exit()
    line = start_failure(log)
    assert f"storage remote: download interrupted from {url} after 1 retries" in line
    assert cached_files(cache) == []
    # the server whole again: the next start downloads the file and serves it
    web.drop.clear()
    predicts(serve(config(url, "onnx", cache, retries=1)))


def test_a_wrong_sha256_refuses_to_start(web: Web, cache: Path) -> None:
    from core.testing import Server

    data = pickle_model()
    url = web.put("/pinned/model.pkl", data)
    wrong = hashlib.sha256(data + b"!").hexdigest()
    server = Server(config(url, "pickle", cache, sha256=wrong), directory=cache.parent / "s")
    _, log = server.run_to_exit()
    line = start_failure(log)
    assert f"but storage_kwargs.sha256 expects {wrong}" in line
    assert cached_files(cache) == []


def test_secrets_are_never_shown(s3: S3, serve: Any, cache: Path) -> None:
    key, secret, token = "AKIA-served-key-id", "served-secret-Zq81", "served-token-Tk55"
    url = s3.put("secret/model.onnx", onnx_model())
    server = serve(config(url, "onnx", cache, key=key, secret=secret, token=token,
                          storage_options={"client_kwargs": {"region_name": "us-east-1"}}),
                   env={"AWS_ENDPOINT_URL": s3.endpoint})
    predicts(server)
    seen = [httpx.get(f"{server.url}{path}").text
            for path in ("/info", "/openapi.json", "/health", "/metrics")]
    seen.append(server.log())
    for text in seen:
        for value in (key, secret, token):
            assert value not in text


def test_a_wrong_endpoint_is_one_line_without_the_secret(cache: Path) -> None:
    from core.testing import Server

    secret = "never-printed-Sx42"
    server = Server(config("s3://models/model.onnx", "onnx", cache, key="k-id-Kx42",
                           secret=secret, endpoint_url="http://127.0.0.1:9", retries=1,
                           timeout=2), directory=cache.parent / "s")
    _, log = server.run_to_exit()
    line = start_failure(log)
    assert "storage remote: cannot reach s3://models/model.onnx after 1 retries" in line
    assert secret not in log and "k-id-Kx42" not in log
