"""core.results: the ``local`` result store through the contract suite (in a directory, and in
memory for a process alone), and the payloads core writes and reads back."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from core import errors
from core.components import ResultState
from core.config import Config
from core.errors import ConfigError, NotFound, PredictError, RequestError
from core.ml import build
from core.plugins import load_plugins
from core.results import LocalResultStore, decode, encode, server_directory
from core.testing import ContractStorage, ResultStoreContract


class TestLocalResultStore(ResultStoreContract):
    name = "local"

    def test_registered_under_its_name(self) -> None:  # core's own: by core.builtin, no distribution
        entry = load_plugins(entry_points=False).result_stores.entries["local"]
        assert entry.cls is LocalResultStore and entry.plugin == "core.builtin"

    @pytest.fixture
    def result_store(self, tmp_path: Path) -> LocalResultStore:
        return LocalResultStore(directory=str(tmp_path / "results"))


class TestLocalResultStoreInMemory(TestLocalResultStore):
    """A process alone (pytest's has no parent process): the answers stay in memory."""

    @pytest.fixture
    def result_store(self) -> LocalResultStore:
        store = LocalResultStore()
        assert not store.shared
        return store

    def test_another_process_sees_the_results(self, result_store: LocalResultStore) -> None:
        """In memory, no other process of the server exists to look: the store says it is not
        shared, and its answers are read back in this process."""
        assert not result_store.shared

        async def check(store: LocalResultStore) -> None:
            await store.put("only-here", b"kept in memory", 60)
            assert await store.get("only-here") == (ResultState.READY, b"kept in memory")

        self.run(result_store, check)


def test_a_directory_store_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = LocalResultStore(directory=str(tmp_path))

    async def write() -> None:
        await store.put_pending("a" * 32, 60)
        await store.put("a" * 32, b"x", 60)
        await store.put("a" * 32, b"y", 60)  # refused

    asyncio.run(write())
    assert sorted(os.listdir(tmp_path)) == ["a" * 32 + ".done"]


def test_a_directory_that_cannot_be_made_is_one_config_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError) as caught:
        build("result store", LocalResultStore, {"directory": str(tmp_path / "file" / "sub")},
              "result_store_kwargs")
    assert "cannot create the directory" in str(caught.value) and "\n" not in str(caught.value)


def test_a_process_alone_has_no_server_directory() -> None:
    assert server_directory() is None


def test_the_default_and_an_unknown_result_store() -> None:
    assert Config().result_store_type == "local"
    plugins = load_plugins(entry_points=False)
    assert plugins.result_stores.get("local") is LocalResultStore
    with pytest.raises(ConfigError) as caught:
        plugins.result_stores.get("redis")
    message = str(caught.value)
    assert "unknown result store 'redis' in result_store_type; installed: local" in message
    assert "pip install core-result-store-redis" in message


@pytest.mark.parametrize("key, value", [("result_store_type", "redis"),
                                        ("result_store_kwargs", {"directory": "/tmp/x"})])
def test_a_result_store_without_long_predictions_is_refused(key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        Config(**{key: value})
    assert str(caught.value) == (f"config key {key!r} is set but is_long_predict = false: only long "
                                 "predictions keep results in a store; set is_long_predict = true or "
                                 "remove it")
    assert Config(is_long_predict=True, mode="worker_and_queue", **{key: value}).is_long_predict


def test_a_result_round_trips() -> None:
    import numpy as np

    assert decode(encode({"a": np.arange(3), "b": [1.5, None]})) == {"a": [0, 1, 2], "b": [1.5, None]}


@pytest.mark.parametrize("error", [
    PredictError("the model raised: ValueError: poison"),
    NotFound("gone", loc=["path", "predict_id"]),
    errors.ServiceUnavailable("stopping", headers={"Retry-After": "1"}),
])
def test_an_error_round_trips_as_the_same_error(error: RequestError) -> None:
    with pytest.raises(type(error)) as caught:
        decode(encode(error))
    again = caught.value
    assert type(again) is type(error)
    assert (again.status_code, again.type, again.msg, again.details, again.headers) == \
        (error.status_code, error.type, error.msg, error.details, error.headers)


def test_a_plugin_error_class_keeps_its_status_and_type() -> None:
    class TeapotError(RequestError):
        status_code = 418
        type = "teapot"

    with pytest.raises(RequestError) as caught:
        decode(encode(TeapotError("short and stout")))
    assert (caught.value.status_code, caught.value.type, caught.value.msg) == (418, "teapot", "short and stout")
    assert RequestError.status_code == 400  # the class is untouched


def test_ready_state_values() -> None:
    assert [state.value for state in ResultState] == ["missing", "pending", "ready"]


class _ObjectStorage(ContractStorage):
    hands_over_objects = True


def _long(**settings: object) -> Config:
    return Config(**{"storage_type": f"{__name__}._ObjectStorage", "mode": "worker_and_queue",
                     "is_long_predict": True, **settings})


def test_validate_checks_the_result_store_of_long_predictions(tmp_path: Path) -> None:
    from core.cli import check_config
    from core.plugins import reset_plugins

    reset_plugins()
    assert "result store 'local'" in check_config(_long(result_store_kwargs={"directory": str(tmp_path)}))
    assert not any("result store" in line for line in check_config(_long(is_long_predict=False)))
    with pytest.raises(ConfigError, match="unknown result store 'nope' in result_store_type"):
        check_config(_long(result_store_type="nope"))
    with pytest.raises(ConfigError, match="result_store_kwargs for result store LocalResultStore: .*'dir'"):
        check_config(_long(result_store_kwargs={"dir": "x"}))


def test_a_put_sweeps_the_expired_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.results

    monkeypatch.setattr(core.results, "SWEEP_SECONDS", 0.0)
    store = LocalResultStore(directory=str(tmp_path))

    async def write() -> None:
        await store.put("old", b"x", 0.2)
        await store.put_pending("stale", 0.2)
        await store.put("kept", b"y", 60)
        await asyncio.sleep(0.4)
        await store.put("new", b"z", 60)  # sweeps, without anyone asking for the old ones

    asyncio.run(write())
    assert sorted(os.listdir(tmp_path)) == ["kept.done", "new.done"]


def test_in_memory_a_put_sweeps_the_expired_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    import core.results

    monkeypatch.setattr(core.results, "SWEEP_SECONDS", 0.0)
    store = LocalResultStore()

    async def write() -> None:
        await store.put("old", b"x", 0.2)
        await asyncio.sleep(0.4)
        await store.put("new", b"z", 60)

    asyncio.run(write())
    assert sorted(store._memory) == ["new"]
