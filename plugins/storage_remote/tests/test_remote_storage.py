"""The remote storage called directly: the contract suite, the cache, the errors."""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import re
from pathlib import Path

import pytest
from core import progress
from core.errors import ConfigError, ModelLoadError
from core.ml import build
from core.testing import StorageContract
from remote_support import S3, Web, cached_files, load_in_a_process, pickle_model

from core_storage_remote import RemoteStorage

# ---------------------------------------------------------------------- the contract


class TestFileUrlContract(StorageContract):
    name = "remote"

    @pytest.fixture
    def storage(self, tmp_path: Path) -> RemoteStorage:
        (tmp_path / "models").mkdir()
        (tmp_path / "models" / "model.pkl").write_bytes(b"\x80\x05model")
        (tmp_path / "models" / "README.txt").write_text("not the model")
        return RemoteStorage(path_to_files=f"file://{tmp_path}/models/",
                             cache_dir=str(tmp_path / "cache"))


class TestS3WithBytesContract(StorageContract):
    name = "remote"

    @pytest.fixture
    def storage(self, s3: S3, tmp_path: Path) -> RemoteStorage:
        url = s3.put("contract/model.onnx", b"\x08\x07onnx")
        return RemoteStorage(path_to_files=url, need_load_file=True,
                             cache_dir=str(tmp_path / "cache"))


class TestHttpContract(StorageContract):
    name = "remote"

    @pytest.fixture
    def storage(self, web: Web, tmp_path: Path) -> RemoteStorage:
        url = web.put("/m/model.pkl", b"\x80\x05model")
        return RemoteStorage(path_to_files=url, cache_dir=str(tmp_path / "cache"))


# ---------------------------------------------------------------------- finding the file


def test_a_folder_and_a_mask_on_s3(s3: S3, cache: Path) -> None:
    s3.put("folder/a/model.onnx", b"onnx")
    s3.put("folder/a/model.pkl", b"pickle")
    s3.put("folder/a/labels.json", b"{}")
    [file] = RemoteStorage(path_to_files="s3://models/folder/a/", file_mask=r"\.onnx$",
                           cache_dir=str(cache)).load()
    assert file.path is not None and file.path.endswith("/model.onnx")
    assert Path(file.path).read_bytes() == b"onnx"
    assert file.raw_data is None


def test_a_folder_where_the_mask_finds_two_names_them(s3: S3, cache: Path) -> None:
    s3.put("two/model.onnx", b"onnx")
    s3.put("two/model.pkl", b"pickle")
    storage = RemoteStorage(path_to_files="s3://models/two", cache_dir=str(cache))
    with pytest.raises(ConfigError, match=r"2 files in s3://models/two match file_mask .*"
                                          r"model\.onnx, model\.pkl"):
        storage.check()
    assert cached_files(cache) == []


def test_a_folder_holding_an_xgboost_json_model_on_s3(s3: S3, cache: Path) -> None:
    """No pickle or ONNX name in the folder: its one file named like another model format
    is taken, as the disk storage does (:mod:`core.model_files`)."""
    s3.put("gbm/model.json", b'{"learner": {}}')
    s3.put("gbm/README.md", b"not the model")
    [file] = RemoteStorage(path_to_files="s3://models/gbm/", cache_dir=str(cache)).load()
    assert file.path is not None and Path(file.path).read_bytes() == b'{"learner": {}}'
    s3.put("gbm/config.json", b"{}")
    with pytest.raises(ModelLoadError, match=r"no file in s3://models/gbm/ matches the default "
                                             r"file_mask .*, and 2 are named like other model "
                                             r"formats: config\.json, model\.json;"):
        RemoteStorage(path_to_files="s3://models/gbm/", cache_dir=str(cache)).load()


def test_need_load_file_hands_over_the_bytes(web: Web, cache: Path) -> None:
    url = web.put("/raw/model.pkl", b"bytes of the model")
    [file] = RemoteStorage(path_to_files=url, need_load_file=True, cache_dir=str(cache)).load()
    assert bytes(file.raw_data or b"") == b"bytes of the model"
    assert file.path is not None and Path(file.path).read_bytes() == b"bytes of the model"


# ---------------------------------------------------------------------- the cache


def test_a_second_load_does_not_download_again(web: Web, cache: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    url = web.put("/c/model.pkl", b"version one")
    storage = RemoteStorage(path_to_files=url, cache_dir=str(cache))
    with caplog.at_level(logging.INFO, logger="core"):
        [first] = storage.load()
        [again] = RemoteStorage(path_to_files=url, cache_dir=str(cache)).load()
    assert web.gets["/c/model.pkl"] == 1
    assert first.path == again.path
    assert "unchanged, using the cached copy" in caplog.text


def test_a_changed_model_is_downloaded_again(web: Web, cache: Path) -> None:
    url = web.put("/c/model.pkl", b"version one")
    storage = RemoteStorage(path_to_files=url, cache_dir=str(cache))
    [file] = storage.load()
    web.put("/c/model.pkl", b"version two, longer")
    [file] = RemoteStorage(path_to_files=url, cache_dir=str(cache)).load()
    assert web.gets["/c/model.pkl"] == 2
    assert file.path is not None and Path(file.path).read_bytes() == b"version two, longer"


def test_the_cache_folder_defaults_to_core_cache_dir(web: Web, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORE_CACHE_DIR", str(tmp_path / "from-env"))
    [file] = RemoteStorage(path_to_files=web.put("/e/model.pkl", b"x")).load()
    assert file.path is not None and file.path.startswith(str(tmp_path / "from-env") + os.sep)


def test_a_large_download_logs_its_progress(web: Web, cache: Path, caplog: pytest.LogCaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "PROGRESS_THRESHOLD", 1000)
    monkeypatch.setattr(progress, "CHUNK_SIZE", 500)
    url = web.put("/big/model.pkl", os.urandom(5000))
    with caplog.at_level(logging.INFO, logger="core"):
        RemoteStorage(path_to_files=url, cache_dir=str(cache)).load()
    assert re.search(r"downloading model\.pkl: \d0% ", caplog.text)
    assert "downloading model.pkl: done" in caplog.text


def test_an_interrupted_download_leaves_no_file(web: Web, cache: Path) -> None:
    url = web.put("/cut/model.pkl", pickle_model())
    web.drop["/cut/model.pkl"] = 10
    storage = RemoteStorage(path_to_files=url, cache_dir=str(cache), retries=1)
    with pytest.raises(ModelLoadError) as caught:
        storage.load()
    assert str(caught.value).startswith(
        f"storage remote: download interrupted from {url} after 1 retries")
    assert web.gets["/cut/model.pkl"] == 2
    assert cached_files(cache) == []


def test_a_download_cut_once_is_tried_again_and_whole(web: Web, cache: Path) -> None:
    data = pickle_model()
    url = web.put("/cut/model.pkl", data)
    web.drop["/cut/model.pkl"] = 1
    [file] = RemoteStorage(path_to_files=url, cache_dir=str(cache), retries=1).load()
    assert web.gets["/cut/model.pkl"] == 2
    assert file.path is not None and Path(file.path).read_bytes() == data
    assert cached_files(cache) == [os.path.relpath(file.path, cache)]


def test_a_part_file_left_by_a_killed_process_is_removed(web: Web, cache: Path) -> None:
    url = web.put("/cut/model.pkl", b"whole")
    storage = RemoteStorage(path_to_files=url, cache_dir=str(cache))
    [file] = storage.load()
    assert file.path is not None
    left = Path(file.path + ".part-999999")
    left.write_bytes(b"wh")  # as if a download had been killed half way
    web.put("/cut/model.pkl", b"whole, version two")
    [file] = RemoteStorage(path_to_files=url, cache_dir=str(cache)).load()
    assert not left.exists()
    assert cached_files(cache) == [os.path.relpath(str(file.path), cache)]


def test_a_wrong_sha256_is_refused_and_not_kept(web: Web, cache: Path) -> None:
    url = web.put("/sha/model.pkl", b"not what was pinned")
    storage = RemoteStorage(path_to_files=url, cache_dir=str(cache), sha256="ab" * 32)
    with pytest.raises(ModelLoadError, match=r"has SHA-256 [0-9a-f]{64}, but storage_kwargs"
                                             r"\.sha256 expects (ab){32}"):
        storage.load()
    assert cached_files(cache) == []


def test_the_right_sha256_loads(web: Web, cache: Path) -> None:
    import hashlib

    url = web.put("/sha/model.pkl", b"pinned")
    digest = hashlib.sha256(b"pinned").hexdigest()
    [file] = RemoteStorage(path_to_files=url, cache_dir=str(cache), sha256=digest.upper()).load()
    assert file.path is not None and Path(file.path).read_bytes() == b"pinned"


def test_a_cached_file_changed_on_disk_is_refused_by_sha256(web: Web, cache: Path) -> None:
    import hashlib

    url = web.put("/sha/model.pkl", b"pinned")
    digest = hashlib.sha256(b"pinned").hexdigest()
    [file] = RemoteStorage(path_to_files=url, cache_dir=str(cache), sha256=digest).load()
    assert file.path is not None
    Path(file.path).write_bytes(b"tamper")  # same size: the version record still matches
    with pytest.raises(ModelLoadError, match=r"the cached .* has SHA-256"):
        RemoteStorage(path_to_files=url, cache_dir=str(cache), sha256=digest).load()


def test_two_processes_starting_together_download_once(web: Web, cache: Path) -> None:
    url = web.put("/two/model.pkl", os.urandom(100_000))
    web.delay = 1.0  # the first download is still under way when the second process asks
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=load_in_a_process, args=(url, str(cache)))
                 for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0, 0]
    assert web.gets["/two/model.pkl"] == 1
    assert len(cached_files(cache)) == 1


# ---------------------------------------------------------------------- errors


def test_an_unknown_scheme_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^storage remote: unknown scheme nope:// in "
                                          r"storage_kwargs\.path_to_files; use s3://"):
        build("storage", RemoteStorage, {"path_to_files": "nope://bucket/m.pkl"},
              "storage_kwargs")


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed")
def test_a_scheme_whose_backend_is_missing_names_the_extra() -> None:
    with pytest.raises(ConfigError, match=re.escape(
            "storage remote: gs:// needs `pip install core-storage-remote[gcs]`")):
        RemoteStorage(path_to_files="gs://bucket/model.pkl")


def test_no_such_key(s3: S3, cache: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"^storage remote: no such bucket or key: "
                                             r"s3://models/missing\.pkl$"):
        RemoteStorage(path_to_files="s3://models/missing.pkl", cache_dir=str(cache)).load()


def test_no_such_bucket(s3: S3, cache: Path) -> None:
    with pytest.raises(ConfigError, match=r"^storage remote: no such bucket or key: "
                                          r"s3://no-bucket/model\.pkl$"):
        RemoteStorage(path_to_files="s3://no-bucket/model.pkl", cache_dir=str(cache)).check()


def test_no_such_file_over_http(web: Web, cache: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"^storage remote: no such file: http://"):
        RemoteStorage(path_to_files=f"{web.url}/nothing.pkl", cache_dir=str(cache)).load()


def test_access_denied(web: Web, cache: Path) -> None:
    url = web.put("/private/model.pkl", b"x")
    web.denied.add("/private/model.pkl")
    with pytest.raises(ModelLoadError, match=r"^storage remote: access denied to http://.*"
                                             r"check the credentials"):
        RemoteStorage(path_to_files=url, cache_dir=str(cache)).load()


def test_a_timeout_names_the_retries(web: Web, cache: Path) -> None:
    url = web.put("/slow/model.pkl", b"x")
    web.stall["/slow/model.pkl"] = 3.0
    storage = RemoteStorage(path_to_files=url, cache_dir=str(cache), retries=1, timeout=0.5)
    with pytest.raises(ModelLoadError, match=rf"^storage remote: network timeout reaching "
                                             rf"{re.escape(url)} after 1 retries"):
        storage.load()
    assert cached_files(cache) == []


def test_a_wrong_endpoint_never_shows_the_secret(cache: Path) -> None:
    secret, key = "wJalrXUtnFEMI-the-secret", "AKIA-the-key-id"
    storage = RemoteStorage(path_to_files="s3://models/model.pkl", cache_dir=str(cache),
                            endpoint_url="http://127.0.0.1:9", key=key, secret=secret,
                            retries=0, timeout=2)
    with pytest.raises(ModelLoadError) as caught:
        storage.load()
    line = str(caught.value)
    assert line.startswith("storage remote: cannot reach s3://models/model.pkl after 0 retries")
    assert "\n" not in line
    assert secret not in line and key not in line
    assert secret not in repr(storage) and key not in repr(storage)


def test_a_url_is_shown_without_its_password_and_query(web: Web, cache: Path) -> None:
    url = web.url.replace("http://", "http://user:hunter22@") + "/none.pkl?X-Amz-Signature=sig99"
    with pytest.raises(ModelLoadError) as caught:
        RemoteStorage(path_to_files=url, cache_dir=str(cache)).load()
    assert "hunter22" not in str(caught.value) and "sig99" not in str(caught.value)
    assert f"{web.url}/none.pkl" in str(caught.value)


@pytest.mark.parametrize(("settings", "message"), [
    ({"path_to_files": 3}, "path_to_files must be the URL"),
    ({"path_to_files": "s3://b/k", "sha256": "abc"}, "sha256 must be the file's SHA-256"),
    ({"path_to_files": "s3://b/k", "retries": -1}, "retries must be a whole number"),
    ({"path_to_files": "s3://b/k", "timeout": 0}, "timeout must be a number of seconds"),
    ({"path_to_files": "s3://b/k", "file_mask": "("}, "is not a valid regular expression"),
    ({"path_to_files": "s3://b/k", "secret": 12345678}, "secret must be a string, got int"),
])
def test_a_wrong_setting_is_one_line(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        build("storage", RemoteStorage, settings, "storage_kwargs")
    assert "\n" not in str(caught.value) and "12345678" not in str(caught.value)
