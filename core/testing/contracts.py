"""The contract suites: :class:`StorageContract`, :class:`BinarizerContract`,
:class:`ArchitectureContract` and :class:`ResultStoreContract` (see :mod:`core.testing` for how
to use them)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import attrs
import numpy as np
import pytest

from core.components import Binarizer, LoadedFile, ResultState, ResultStore, Storage
from core.errors import ConfigError
from core.plugins import Registry, load_plugins

#: The setting the suites pass to prove that unknown settings are refused.
UNKNOWN_SETTING = "no_such_setting_for_the_contract_test"


def constructor_kwargs(component: object) -> dict[str, Any] | None:
    """The keyword arguments that rebuild ``component``, for attrs classes and dataclasses.

    ``None`` for other classes: their suite then needs a ``component_kwargs`` fixture.
    """
    cls = type(component)
    if attrs.has(cls):
        return {
            field.alias: getattr(component, field.name)
            for field in attrs.fields(cls)
            if field.init and field.alias is not None
        }
    if dataclasses.is_dataclass(component):
        return {
            field.name: getattr(component, field.name)
            for field in dataclasses.fields(component)
            if field.init
        }
    return None


def _registered(registry: Registry[Any], name: str | None, cls: type, kind: str) -> None:
    if name is None:
        pytest.skip(f"set `name` on the test class to the name the plugin registers its {kind}")
    assert name in registry.entries, (
        f"no {kind} named {name!r} is registered; installed: {', '.join(registry.names())}. "
        f"Is the plugin installed (pip install -e .) with an entry point in the group 'core'?"
    )
    entry = registry.entries[name]
    assert entry.cls is cls, f"{kind} {name!r} is {entry.cls!r}, not {cls!r}"
    assert entry.distribution is not None, (
        f"{kind} {name!r} was not registered through an installed distribution's entry point"
    )


def _refuses_unknown(kind: str, key: str, cls: type, kwargs: dict[str, Any] | None) -> None:
    from core.ml import build

    if kwargs is None:
        pytest.skip(
            f"{cls.__name__} is neither an attrs class nor a dataclass; give the test class a "
            f"`component_kwargs` fixture returning the keyword arguments that build it"
        )
    with pytest.raises((TypeError, ConfigError)):
        cls(**kwargs, **{UNKNOWN_SETTING: 1})
    with pytest.raises(ConfigError) as caught:
        build(kind, cls, {**kwargs, UNKNOWN_SETTING: 1}, key)
    message = str(caught.value)
    assert UNKNOWN_SETTING in message, f"the error does not name the unknown setting: {message}"
    assert "\n" not in message, f"the error is not one line: {message!r}"


def _assert_same(first: Any, second: Any) -> None:
    np.testing.assert_equal(first, second)


class StorageContract:
    """The checks every storage passes. Subclass it as ``class TestMyStorage(StorageContract)``.

    Provide:

    * :attr:`name`: the name the plugin registers (``register("zip", ZipStorage)``);
    * a ``storage`` fixture returning a ready storage whose files exist (use ``tmp_path``);
    * for a storage that is neither an attrs class nor a dataclass, a ``component_kwargs``
      fixture returning the keyword arguments that build it.
    """

    #: The name the storage is registered under; ``None`` skips the registration check.
    name: ClassVar[str | None] = None

    @pytest.fixture
    def storage(self) -> Storage:
        raise NotImplementedError("the test class must define a `storage` fixture")

    @pytest.fixture
    def component_kwargs(self, storage: Storage) -> dict[str, Any] | None:
        return constructor_kwargs(storage)

    def test_is_a_storage(self, storage: Storage) -> None:
        assert isinstance(storage, Storage)

    def test_load_returns_loaded_files(self, storage: Storage) -> None:
        files = storage.load()
        assert isinstance(files, list), f"load() returned {type(files).__name__}, not a list"
        assert files, "load() returned no files"
        for file in files:
            assert isinstance(file, LoadedFile), f"load() returned {file!r}, not a LoadedFile"

    def test_each_file_has_a_path_bytes_or_object(self, storage: Storage) -> None:
        for file in storage.load():
            assert file.path is not None or file.raw_data is not None or file.obj is not None, (
                f"{file!r} has no path, no raw_data and no obj"
            )
            if file.path is not None:
                assert os.path.exists(file.path), f"{file.path} does not exist on the local disk"
            if file.raw_data is not None:
                memoryview(file.raw_data)  # bytes-like
            assert isinstance(file.display_name, str) and file.display_name

    def test_load_can_be_called_again(self, storage: Storage) -> None:
        first = [file.display_name for file in storage.load()]
        assert [file.display_name for file in storage.load()] == first

    def test_check_passes(self, storage: Storage) -> None:
        storage.check()

    def test_registered_under_its_name(self, storage: Storage) -> None:
        _registered(load_plugins().storages, self.name, type(storage), "storage")

    def test_unknown_setting_is_refused(
        self, storage: Storage, component_kwargs: dict[str, Any] | None
    ) -> None:
        _refuses_unknown("storage", "storage_kwargs", type(storage), component_kwargs)


class BinarizerContract:
    """The checks every binarizer passes. Subclass it as ``class TestMyBinarizer(...)``.

    Provide:

    * :attr:`name`: the name the plugin registers (``register("onnx", OnnxBinarizer)``);
    * a ``binarizer`` fixture returning a binarizer built with the settings to test;
    * a ``model_file`` fixture returning a :class:`~core.components.LoadedFile` of a real
      model file the binarizer reads (write it under ``tmp_path``);
    * optionally a ``predict_input`` fixture returning keyword arguments for the model's
      predict method: the suite then calls it, and compares the predictions of the model
      read from the file's path and from its bytes;
    * :attr:`predict_method_name` when the model's method is not ``predict``;
    * :attr:`reads_raw_data` ``= False`` when the binarizer only reads from a path;
    * :attr:`imported_to_load`: the modules of the framework the binarizer loads models with
      (``("lightgbm",)``), which a server that serves another format must never import: the
      suite checks that loading the plugins and detecting a file leave them unimported.
    """

    name: ClassVar[str | None] = None
    predict_method_name: ClassVar[str] = "predict"
    reads_raw_data: ClassVar[bool] = True
    imported_to_load: ClassVar[tuple[str, ...]] = ()

    @pytest.fixture
    def binarizer(self) -> Binarizer:
        raise NotImplementedError("the test class must define a `binarizer` fixture")

    @pytest.fixture
    def model_file(self) -> LoadedFile:
        raise NotImplementedError("the test class must define a `model_file` fixture")

    @pytest.fixture
    def predict_input(self) -> dict[str, Any] | None:
        return None

    @pytest.fixture
    def component_kwargs(self, binarizer: Binarizer) -> dict[str, Any] | None:
        return constructor_kwargs(binarizer)

    def _predict(self, model: Any, predict_input: dict[str, Any]) -> Any:
        return getattr(model, self.predict_method_name)(**predict_input)

    def test_is_a_binarizer(self, binarizer: Binarizer) -> None:
        assert isinstance(binarizer, Binarizer)

    def test_deserialize_returns_a_model(
        self, binarizer: Binarizer, model_file: LoadedFile, predict_input: dict[str, Any] | None
    ) -> None:
        model = binarizer.deserialize([model_file])
        assert model is not None
        method = getattr(model, self.predict_method_name, None)
        assert callable(method), f"{type(model).__name__} has no {self.predict_method_name}()"
        if predict_input is not None:
            self._predict(model, predict_input)

    def test_loading_the_plugins_and_detecting_import_no_framework(self, model_file: LoadedFile,
                                                                   tmp_path: Any) -> None:
        """In a fresh process: load every plugin, ask the binarizer to detect its file, and
        find none of :attr:`imported_to_load` imported (the framework is imported by
        ``deserialize``), so that installing the plugin costs a server that serves another
        format nothing."""
        if self.name is None:
            raise NotImplementedError("the test class must set `name`, the name the plugin registers")
        if model_file.path:
            file = f"LoadedFile(path={model_file.path!r})"
        else:  # its bytes, through a file: a command line is too short for a model
            saved = tmp_path / "model-bytes"
            saved.write_bytes(bytes(model_file.raw_data or b""))
            file = f"LoadedFile(raw_data=open({str(saved)!r}, 'rb').read(), name={model_file.name!r})"
        code = (
            "import sys\n"
            "from core.components import LoadedFile\n"
            "from core.plugins import load_plugins\n"
            f"score, _ = load_plugins().binarizers.get({self.name!r}).detect({file})\n"
            "assert score > 0, score\n"
            f"print(sorted(m for m in {list(self.imported_to_load)!r} if m in sys.modules))\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[]", f"imported before any model was loaded: {done.stdout.strip()}"

    def test_detect_recognises_its_file(self, binarizer: Binarizer, model_file: LoadedFile) -> None:
        score, reason = type(binarizer).detect(model_file)
        assert isinstance(score, float) and 0.0 < score <= 1.0, f"score {score!r} for its file"
        assert isinstance(reason, str) and reason

    @pytest.mark.parametrize(
        "foreign",
        [
            LoadedFile(raw_data=b"certainly not a model", name="notes.txt"),
            LoadedFile(raw_data=b"", name="empty"),
            LoadedFile(path="/nonexistent/core-contract/model.bin"),
            LoadedFile(),
        ],
        ids=["text", "empty", "missing-path", "nothing"],
    )
    def test_detect_never_raises(self, binarizer: Binarizer, foreign: LoadedFile) -> None:
        score, reason = type(binarizer).detect(foreign)
        assert isinstance(score, float) and 0.0 <= score <= 1.0, f"score {score!r}"
        assert isinstance(reason, str)

    def test_path_and_raw_data_agree(
        self, binarizer: Binarizer, model_file: LoadedFile, predict_input: dict[str, Any] | None
    ) -> None:
        if not self.reads_raw_data:
            pytest.skip("the binarizer reads from a path only (reads_raw_data = False)")
        if model_file.path is None:
            pytest.skip("model_file has no path")
        with open(model_file.path, "rb") as handle:
            raw = handle.read()
        from_path = binarizer.deserialize([LoadedFile(path=model_file.path)])
        from_bytes = binarizer.deserialize([LoadedFile(raw_data=raw, name=model_file.display_name)])
        assert type(from_path) is type(from_bytes)
        if predict_input is not None:
            _assert_same(
                self._predict(from_path, predict_input), self._predict(from_bytes, predict_input)
            )

    def test_registered_under_its_name(self, binarizer: Binarizer) -> None:
        _registered(load_plugins().binarizers, self.name, type(binarizer), "binarizer")

    def test_unknown_setting_is_refused(
        self, binarizer: Binarizer, component_kwargs: dict[str, Any] | None
    ) -> None:
        _refuses_unknown("binarizer", "binarization_kwargs", type(binarizer), component_kwargs)


# ---------------------------------------------------------------------- architectures


class ContractModel:
    """The model :class:`ArchitectureContract` serves: one row sum per row, times ``scale``;
    a row holding ``-1`` makes it raise."""

    def predict(self, X: Any, scale: float = 1.0) -> Any:
        x = np.asarray(X, dtype=np.float64)
        if (x == -1).any():
            raise ValueError("the contract model refuses rows holding -1")
        return x.sum(axis=1) * scale


@attrs.define
class ContractStorage(Storage):
    """Hands the object given as ``UP(ml_model=...)`` to the architecture contract."""

    model: Any = None

    def load(self) -> list[LoadedFile]:
        return [LoadedFile(obj=self.model if self.model is not None else ContractModel(),
                           name="contract-model")]


class ArchitectureContract:
    """The checks every serving architecture passes. Subclass it as
    ``class TestMyArchitecture(ArchitectureContract)``.

    Provide:

    * :attr:`name`: the name the plugin registers (``register("my_mode", MyArchitecture)``),
      or ``None`` for an architecture used by dotted path;
    * an ``architecture_class`` fixture returning the class;
    * optionally a ``settings`` fixture: more config keys for the test server (the mode is set
      for you).

    The suite builds a real :class:`core.UP` around :class:`ContractModel` in-process and runs
    the architecture on an event loop: concurrent requests get exactly their own results, an
    empty request is answered ``[]``, a model error is a :class:`~core.errors.RequestError`,
    ``info()`` reports ``queue_depth`` and ``in_flight``, and ``stop()`` answers everything it
    was given.
    """

    name: ClassVar[str | None] = None

    @pytest.fixture
    def architecture_class(self) -> type:
        raise NotImplementedError("the test class must define an `architecture_class` fixture")

    @pytest.fixture
    def settings(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def up(self, architecture_class: type, settings: dict[str, Any]) -> Any:
        from core.config import Config
        from core.up import UP

        mode = self.name or f"{architecture_class.__module__}.{architecture_class.__qualname__}"
        conf = Config.from_dict({
            "storage_type": f"{__name__}.ContractStorage", "mode": mode, "log_level": "WARNING",
            **settings,
        })
        up = UP(ml_model=ContractModel(), conf=conf)
        up.ml.load()
        up.web.load()
        yield up
        up.ml.close()

    @staticmethod
    def _run(up: Any, scenario: Any, grace: float = 5.0) -> Any:
        import asyncio

        async def main() -> Any:
            architecture = up.web.architecture
            await architecture.start()
            try:
                return await scenario(architecture)
            finally:
                await architecture.stop(grace)

        return asyncio.run(main())

    def test_is_an_architecture(self, architecture_class: type, up: Any) -> None:
        from core.components import Architecture

        assert issubclass(architecture_class, Architecture)
        assert isinstance(up.web.architecture, architecture_class)

    def test_found_by_its_name_or_dotted_path(self, architecture_class: type) -> None:
        registry = load_plugins().architectures
        if self.name is None:  # chosen by dotted path: mode = "package.module.Class"
            path = f"{architecture_class.__module__}.{architecture_class.__qualname__}"
            assert registry.get(path) is architecture_class, f"mode = {path!r} does not resolve"
            return
        assert self.name in registry.entries, (
            f"no architecture named {self.name!r}; installed: {', '.join(registry.names())}"
        )
        assert registry.entries[self.name].cls is architecture_class

    def test_concurrent_requests_get_their_own_rows(self, up: Any) -> None:
        import asyncio

        requests: list[dict[str, Any]] = [
            {"X": [[float(i), float(j)] for j in range(1 + i % 4)], "scale": float(1 + i % 3)}
            for i in range(24)
        ]

        async def scenario(architecture: Any) -> list[Any]:
            return await asyncio.gather(*(
                architecture.predict(up.ml.validate(body), predict_id=f"id-{i}")
                for i, body in enumerate(requests)
            ))

        results: list[Any] = self._run(up, scenario)
        for body, result in zip(requests, results):
            expected = [sum(row) * body["scale"] for row in body["X"]]
            assert np.asarray(result).tolist() == expected, f"{body} -> {result}"

    def test_empty_request_is_answered_with_an_empty_list(self, up: Any) -> None:
        async def scenario(architecture: Any) -> Any:
            return await architecture.predict(up.ml.validate({"X": []}), predict_id="empty")

        assert list(np.asarray(self._run(up, scenario)).tolist()) == []

    def test_model_error_is_a_request_error(self, up: Any) -> None:
        from core.errors import RequestError

        async def scenario(architecture: Any) -> Any:
            with pytest.raises(RequestError) as caught:
                await architecture.predict(up.ml.validate({"X": [[-1.0, 0.0]]}), predict_id="bad")
            good = await architecture.predict(up.ml.validate({"X": [[1.0, 2.0]]}), predict_id="ok")
            return caught.value, good

        error, good = self._run(up, scenario)
        assert "-1" in error.msg
        assert np.asarray(good).tolist() == [3.0]

    def test_info_reports_queue_depth_and_in_flight(self, up: Any) -> None:
        import orjson

        async def scenario(architecture: Any) -> Any:
            return architecture.info()

        info = self._run(up, scenario)
        assert isinstance(info, dict)
        assert isinstance(info.get("queue_depth"), int)
        assert isinstance(info.get("in_flight"), int)
        orjson.dumps(info)

    def test_knows_nothing_of_http(self, architecture_class: type, up: Any) -> None:
        """An architecture gets validated values and returns results: the HTTP edge admits
        requests. Deferred results come back through ``result(predict_id)``."""
        import inspect

        from core.errors import NotFound

        source = inspect.getsource(inspect.getmodule(architecture_class) or architecture_class)
        assert "starlette" not in source, "an architecture must not build HTTP responses or routes"
        assert isinstance(up.web.architecture.deferred, bool)

        async def unknown(architecture: Any) -> Any:
            with pytest.raises(NotFound):
                await architecture.result("no-such-id")

        self._run(up, unknown)

    def test_stop_answers_everything_it_was_given(self, up: Any) -> None:
        import asyncio

        from core.errors import RequestError

        async def scenario(architecture: Any) -> list[Any]:
            tasks = [
                asyncio.ensure_future(
                    architecture.predict(up.ml.validate({"X": [[float(i), 1.0]]}), predict_id=str(i))
                )
                for i in range(16)
            ]
            await asyncio.sleep(0)
            await asyncio.wait_for(architecture.stop(0.5), 10)
            _done, pending = await asyncio.wait(tasks, timeout=10)
            assert not pending, f"{len(pending)} prediction(s) never answered after stop()"
            return [task.exception() or task.result() for task in tasks]

        outcomes = self._run(up, scenario, grace=0.5)
        for i, outcome in enumerate(outcomes):
            if isinstance(outcome, BaseException):
                assert isinstance(outcome, RequestError), f"request {i}: {outcome!r}"
            else:
                assert np.asarray(outcome).tolist() == [float(i) + 1.0]


# ---------------------------------------------------------------------- result stores


def _read_in_child(cls: type, kwargs: dict[str, Any], predict_id: str, answers: Any) -> None:
    """In another process: what a store built from the same settings holds for ``predict_id``."""
    import asyncio

    async def read() -> tuple[str, bytes | None]:
        store = cls(**kwargs)
        await store.start()
        try:
            state, payload = await store.get(predict_id)
        finally:
            await store.close()
        return state.value, payload

    answers.put(asyncio.run(read()))


class ResultStoreContract:
    """The checks every result store passes. Subclass it as
    ``class TestMyResultStore(ResultStoreContract)``.

    Provide:

    * :attr:`name`: the name the plugin registers (``register("redis", RedisResultStore)``);
    * a ``result_store`` fixture returning a store built as users build it (a server it talks
      to already running: start one in a fixture), empty for each test;
    * for a store that is neither an attrs class nor a dataclass, a ``component_kwargs``
      fixture returning the keyword arguments that build it.

    The store is also built a second time from the same settings in another process
    (``multiprocessing``'s ``spawn``), which must see what the first one wrote: so its class
    must be importable there, and its settings picklable.
    """

    #: The name the result store is registered under; ``None`` skips the registration check.
    name: ClassVar[str | None] = None
    #: The shortest ttl the checks use, in seconds: a store whose expiry is coarser
    #: (whole seconds) says so here.
    short_ttl: ClassVar[float] = 1.0

    @pytest.fixture
    def result_store(self) -> ResultStore:
        raise NotImplementedError("the test class must define a `result_store` fixture")

    @pytest.fixture
    def component_kwargs(self, result_store: ResultStore) -> dict[str, Any] | None:
        return constructor_kwargs(result_store)

    @staticmethod
    def run(store: ResultStore, coroutine: Callable[[ResultStore], Awaitable[Any]]) -> Any:
        """Run ``coroutine(store)`` on a new event loop, between the store's start and close."""
        import asyncio

        async def main() -> Any:
            await store.start()
            try:
                return await coroutine(store)
            finally:
                await store.close()

        return asyncio.run(main())

    def test_is_a_result_store(self, result_store: ResultStore) -> None:
        assert isinstance(result_store, ResultStore)

    def test_an_unknown_id_is_missing(self, result_store: ResultStore) -> None:
        async def check(store: ResultStore) -> None:
            for predict_id in ("0123456789abcdef0123456789abcdef", "../../etc/passwd", "a b", "x" * 500, "é"):
                assert await store.get(predict_id) == (ResultState.MISSING, None), predict_id

        self.run(result_store, check)

    def test_pending_then_ready(self, result_store: ResultStore) -> None:
        payload = b'{"result": [1, 2]}\n\x00\xff binary-safe'

        async def check(store: ResultStore) -> None:
            await store.put_pending("pending-id", 60)
            assert await store.get("pending-id") == (ResultState.PENDING, None)
            assert await store.put("pending-id", payload, 60) is True
            assert await store.get("pending-id") == (ResultState.READY, payload)
            assert await store.get("pending-id") == (ResultState.READY, payload), "read once only"

        self.run(result_store, check)

    def test_put_without_pending(self, result_store: ResultStore) -> None:
        async def check(store: ResultStore) -> None:
            assert await store.put("direct-id", b"answer", 60) is True
            assert await store.get("direct-id") == (ResultState.READY, b"answer")

        self.run(result_store, check)

    def test_results_are_written_once(self, result_store: ResultStore) -> None:
        async def check(store: ResultStore) -> None:
            assert await store.put("once-id", b"first", 60) is True
            assert await store.put("once-id", b"second", 60) is False
            await store.put_pending("once-id", 60)  # a late marker does not hide the answer
            assert await store.get("once-id") == (ResultState.READY, b"first")

        self.run(result_store, check)

    def test_concurrent_puts_of_one_id_store_one(self, result_store: ResultStore) -> None:
        import asyncio

        async def check(store: ResultStore) -> None:
            answers = [f"answer {i}".encode() for i in range(20)]
            stored = await asyncio.gather(*(store.put("race-id", answer, 60) for answer in answers))
            assert stored.count(True) == 1, stored
            state, payload = await store.get("race-id")
            assert state is ResultState.READY and payload == answers[stored.index(True)]

        self.run(result_store, check)

    def test_ids_do_not_mix(self, result_store: ResultStore) -> None:
        async def check(store: ResultStore) -> None:
            for i in range(30):
                await store.put_pending(f"id-{i}", 60)
            for i in range(0, 30, 2):
                await store.put(f"id-{i}", f"answer {i}".encode(), 60)
            for i in range(30):
                expected = (ResultState.READY, f"answer {i}".encode()) if i % 2 == 0 else (ResultState.PENDING, None)
                assert await store.get(f"id-{i}") == expected

        self.run(result_store, check)

    def test_results_and_markers_expire(self, result_store: ResultStore) -> None:
        import asyncio

        ttl = self.short_ttl

        async def check(store: ResultStore) -> None:
            await store.put("expiring-id", b"answer", ttl)
            await store.put_pending("stale-id", ttl)
            await store.put("kept-id", b"kept", 60)
            assert (await store.get("expiring-id"))[0] is ResultState.READY
            await asyncio.sleep(ttl + 0.6)
            assert await store.get("expiring-id") == (ResultState.MISSING, None)
            assert await store.get("stale-id") == (ResultState.MISSING, None)
            assert await store.get("kept-id") == (ResultState.READY, b"kept")

        self.run(result_store, check)

    def test_another_process_sees_the_results(
        self, result_store: ResultStore, component_kwargs: dict[str, Any] | None
    ) -> None:
        import multiprocessing

        if component_kwargs is None:
            pytest.skip(f"{type(result_store).__name__} is neither an attrs class nor a dataclass; give "
                        f"the test class a `component_kwargs` fixture")

        async def write(store: ResultStore) -> None:
            await store.put_pending("shared-pending", 60)
            await store.put("shared-ready", b"from the first process", 60)

        self.run(result_store, write)
        context = multiprocessing.get_context("spawn")
        answers = context.Queue()
        for predict_id, expected in (("shared-ready", ("ready", b"from the first process")),
                                     ("shared-pending", ("pending", None)),
                                     ("never-stored", ("missing", None))):
            child = context.Process(target=_read_in_child,
                                    args=(type(result_store), component_kwargs, predict_id, answers))
            child.start()
            child.join(60)
            assert child.exitcode == 0, f"the other process failed (exit code {child.exitcode})"
            assert answers.get(timeout=5) == expected, predict_id

    def test_registered_under_its_name(self, result_store: ResultStore) -> None:
        _registered(load_plugins().result_stores, self.name, type(result_store), "result store")

    def test_unknown_setting_is_refused(
        self, result_store: ResultStore, component_kwargs: dict[str, Any] | None
    ) -> None:
        _refuses_unknown("result store", "result_store_kwargs", type(result_store), component_kwargs)
