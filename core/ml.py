"""``up.ml``: load the model (storage -> binarizer), analyse it, and run predictions.

This is the seeds' life cycle: ``load()`` brings the files and deserialises them, then calls
``load_model_settings()``, which can also be called on its own after a config change to
re-analyse the model without loading it again.
"""

from __future__ import annotations

import gc
import inspect
import logging
import os
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from core.analysis import Argument, ModelInterface, analyse
from core.components import Binarizer, LoadedFile, ResultStore, Storage, Transformer
from core.errors import (
    ConfigError,
    CoreError,
    ModelLoadError,
    PredictedTransformDataError,
    PredictError,
    PredictTransformDataError,
    RequestError,
)
from core.pymlup import input_aliases
from core.runner import PredictRunner
from core.transformers import NumpyTransformer, check_dtype_applies
from core.validation import BodyReader, RequestValidator

if TYPE_CHECKING:
    from core.config import Config
    from core.metrics import Metrics
    from core.plugins import Plugins


class Owner(Protocol):
    """What :class:`ML` reads of the object that owns it (:class:`core.UP`): its settings
    and plugins, looked up at each use so that ``up.conf`` may be replaced."""

    conf: Config
    plugins: Plugins

logger = logging.getLogger("core")


def build(kind: str, cls: type, kwargs: dict[str, Any], key: str) -> Any:
    """``cls(**kwargs)``, with a wrong or missing setting reported as one ConfigError line."""
    try:
        return cls(**kwargs)
    except CoreError:
        raise
    except TypeError as error:
        try:
            params = [
                p for p in inspect.signature(cls).parameters if p not in ("self", "args", "kwargs")
            ]
        except (TypeError, ValueError):
            params = []
        accepted = f"; it accepts: {', '.join(params)}" if params else "; it takes no settings"
        raise ConfigError(f"{key} for {kind} {cls.__name__}: {error}{accepted}") from None
    except (ValueError, OSError) as error:
        raise ConfigError(f"{key} for {kind} {cls.__name__}: {error}") from None


def _row_count(values: dict[str, Any], name: str) -> int | None:
    """How many rows the argument ``name`` of ``values`` holds; None when it is not there or
    has no length (a scalar)."""
    value = values.get(name)
    if value is None:
        return None
    try:
        return len(value)
    except TypeError:  # a scalar or an object without a length
        return None


class ML:
    """The model side of :class:`core.UP`."""

    def __init__(self, up: Owner, model: Any = None) -> None:
        self.up = up
        self._model: Any = None
        self._given_model = model
        self.interface: ModelInterface | None = None
        self.validator: RequestValidator | None = None
        self.body_reader: BodyReader | None = None
        self.transformer_in: Transformer | None = None
        self.transformer_out: Transformer | None = None
        self.runner = PredictRunner(1, 0.0, use_threads=False)
        self._array_args: tuple[Argument, ...] = ()
        self._to_model: Callable[[Any, Argument], Any] = _not_loaded
        self._from_model: Callable[[Any], Any] = _not_loaded
        self.files: list[dict[str, Any]] = []
        self.binarizer_name: str | None = None
        #: Seconds the last load took (storage and binarizer), None before one.
        self.load_seconds: float | None = None
        #: The service's metrics (:class:`core.metrics.Metrics`), set when the web app is
        #: built with ``metrics = true``: :meth:`call_model` times each model call.
        self.metrics: Metrics | None = None
        #: The rows argument's name, or None when the model takes no rows argument (or is not
        #: analysed yet); set by :meth:`load_model_settings`.
        self.rows_name: str | None = None

    # ------------------------------------------------------------------ state

    @property
    def conf(self) -> Config:
        """The settings (``up.conf``)."""
        return self.up.conf

    @property
    def loaded(self) -> bool:
        """True once the model object is in memory (analysis may not have run yet)."""
        return self._model is not None

    @property
    def model_obj(self) -> Any:
        if self._model is None:
            raise ModelLoadError("the model is not loaded; call up.ml.load() first")
        return self._model

    # ------------------------------------------------------------------ loading

    def storage(self) -> Storage:
        """The configured storage, built from ``storage_kwargs``."""
        conf = self.up.conf
        cls = self.up.plugins.storages.get(conf.storage_type)
        kwargs = dict(conf.storage_kwargs)
        if self._given_model is not None and "model" not in kwargs:
            try:
                takes_model = "model" in inspect.signature(cls).parameters
            except (TypeError, ValueError):
                takes_model = False
            if not takes_model:
                raise ConfigError(
                    f"UP(ml_model=...) needs a storage that takes a model object (storage_type = "
                    f"'memory'), but storage_type is {conf.storage_type!r}"
                )
            kwargs["model"] = self._given_model
        return build("storage", cls, kwargs, "storage_kwargs")

    def choose_binarizer(self, files: list[LoadedFile]) -> tuple[str, Binarizer]:
        conf = self.up.conf
        registry = self.up.plugins.binarizers
        name = conf.binarization_type
        if name == "auto":
            if not registry.entries:
                raise ConfigError(
                    "binarization_type = 'auto' but no binarizer is installed "
                    "(pip install core-binarizer-pickle / core-binarizer-onnx)"
                )
            first = files[0]
            scores = []
            for entry_name in registry.names():
                score, reason = registry.entries[entry_name].cls.detect(first)  # type: ignore[attr-defined]
                scores.append((-score, entry_name, reason))
            scores.sort()
            best_score, name, reason = scores[0]
            if -best_score <= 0:
                raise ModelLoadError(
                    f"binarization_type = 'auto' could not recognise {first.display_name}: "
                    + "; ".join(f"{n}: {r}" for _, n, r in scores)
                    + ". Set binarization_type to one of: " + ", ".join(registry.names())
                )
            tied = [n for score, n, _ in scores if score == best_score]
            if len(tied) > 1:
                raise ModelLoadError(
                    f"binarization_type = 'auto' cannot choose for {first.display_name}: "
                    + ", ".join(f"{n} ({r})" for score, n, r in scores if score == best_score)
                    + f" are equally sure (score {-best_score:g}). Set binarization_type to one of: "
                    + ", ".join(tied)
                )
            logger.info("binarization_type auto: chose %r for %s (%s)", name, first.display_name, reason)
        cls = registry.get(name)
        binarizer = build("binarizer", cls, dict(conf.binarization_kwargs), "binarization_kwargs")
        if conf.binarization_type == "auto" and binarizer.runs_code and not binarizer.pinned():
            pin = f", or pin the file with binarization_kwargs.{cls.pin_setting}" if cls.pin_setting else ""
            raise ConfigError(
                f"binarization_type = 'auto' recognised {files[0].display_name} as a {name} file; "
                f"reading one runs the code inside it, so core loads it only where the config says "
                f"it is trusted: set binarization_type = {name!r} (core serve: --binarizer {name}){pin}"
            )
        return name, binarizer

    def load(self, force_loading: bool = False) -> None:
        """Bring the model's files, deserialise them, then analyse the model."""
        if self.loaded and not force_loading:
            self.load_model_settings()
            return
        hook = self.up.plugins.hook
        storage = self.storage()
        started = time.perf_counter()
        try:
            files = hook.storage_load(storage=storage)
        except CoreError:
            raise
        except Exception as error:
            raise ModelLoadError(f"storage {self.up.conf.storage_type!r} failed: {error}") from error
        if not files:
            raise ModelLoadError(f"storage {self.up.conf.storage_type!r} found no model files")
        self.files = [{"name": f.display_name, "path": f.path} for f in files]
        if files[0].obj is not None:
            model = files[0].obj
            self.binarizer_name = None
        else:
            self.binarizer_name, binarizer = self.choose_binarizer(files)
            try:
                model = hook.binarizer_deserialize(binarizer=binarizer, files=files)
            except CoreError:
                raise
            except Exception as error:
                raise ModelLoadError(
                    f"binarizer {self.binarizer_name!r} could not read {files[0].display_name}: "
                    f"{type(error).__name__}: {error}"
                ) from error
            if model is None:
                raise ModelLoadError(f"binarizer {self.binarizer_name!r} returned no model")
        # The seeds' promise: raw bytes are released once the model object exists.
        for file in files:
            file.raw_data = None
        del files
        gc.collect()
        self._model = model
        self.load_seconds = time.perf_counter() - started
        logger.info(
            "model %r loaded in %.2fs (%s)", self.up.conf.name, self.load_seconds, type(model).__name__,
        )
        self.load_model_settings()

    def load_model_settings(self) -> None:
        """Analyse the loaded model with the current config: predict method, arguments,
        transformers, validator and thread pool. Call again after changing the config."""
        conf = self.up.conf
        self.interface = analyse(
            self.model_obj,
            predict_method_name=conf.predict_method_name,
            auto_detect_predict_params=conf.auto_detect_predict_params,
            columns=conf.columns,
        )
        rows = self.interface.rows
        self.rows_name = rows.name if rows is not None else None
        transformers = self.up.plugins.transformers
        check_dtype_applies(conf.data_transformer_for_predict, conf.dtype_for_predict)
        self.transformer_in = build(
            "transformer", transformers.get(conf.data_transformer_for_predict),
            {"dtype": conf.dtype_for_predict}, "dtype_for_predict",
        )
        self.transformer_out = build(
            "transformer", transformers.get(conf.data_transformer_for_predicted),
            {"dtype": conf.dtype_for_predict}, "dtype_for_predict",
        )
        self.validator = RequestValidator(self.interface, conf.dtype_for_predict)
        # A large body is read in another process: with core's numpy transformer (and no
        # plugin wrapping it), its arrays are converted there too (core.validation.BodyReader).
        numpy_in = type(self.transformer_in) is NumpyTransformer and \
            not self.up.plugins.overridden("transformer_to_model")
        self.body_reader = BodyReader(
            self.validator.portable(), self.transformer_in if numpy_in else None,
            input_aliases(self.interface.arguments) if conf.pymlup_wire_format else {},
        )
        self._array_args = tuple(a for a in self.interface.arguments if a.kind == "array")
        self._bind_transformer_hooks()
        self.runner.shutdown()
        self.runner = PredictRunner(
            conf.max_thread_loop_workers or os.cpu_count() or 1,
            conf.max_inline_predict_ms / 1000.0,
            use_threads=conf.use_thread_loop,
            spare_threads=conf.max_stuck_predicts + 1,
            inline_timeout=conf.predict_timeout,
        )

    def _bind_transformer_hooks(self) -> None:
        """The transformer hooks as plain callables for the request path
        (:meth:`core.plugins.Plugins.request_path_call`)."""
        plugins = self.up.plugins
        transformer_in, transformer_out = self.transformer_in, self.transformer_out
        assert transformer_in is not None and transformer_out is not None
        self._to_model = plugins.request_path_call(
            "transformer_to_model", "transformer", transformer_in, transformer_in.to_model,
            "data", "argument",
        )
        self._from_model = plugins.request_path_call(
            "transformer_from_model", "transformer", transformer_out, transformer_out.from_model,
            "data",
        )

    # ------------------------------------------------------------------ pickling

    def __reduce__(self) -> tuple[Any, ...]:
        """``pickle.dumps(up.ml)`` (pymlup's MLupModel pickles too) pickles its :class:`core.UP`;
        unpickled, it is that UP's ``ml``."""
        return (_ml_of, (self.up,))

    def model_state(self) -> dict[str, Any]:
        """The model side of a pickled :class:`core.UP`: the object given to
        ``UP(ml_model=...)``, and the loaded model object with where it came from."""
        return {"given": self._given_model, "model": self._model, "files": self.files,
                "binarizer_name": self.binarizer_name}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`model_state` kept; a loaded model is analysed again (no
        storage, no binarizer: the object is already here)."""
        self._given_model = state["given"]
        if state["model"] is not None:
            self._model = state["model"]
            self.files = list(state["files"])
            self.binarizer_name = state["binarizer_name"]
            self.load_model_settings()

    def close(self) -> None:
        self.runner.shutdown(cancel_futures=True)
        self.runner = PredictRunner(1, 0.0, use_threads=False)

    # ------------------------------------------------------------------ predicting

    def _ready(self) -> ModelInterface:
        if self.interface is None:
            raise ModelLoadError("the model is not loaded; call up.ml.load() first")
        return self.interface

    def transform_in(self, data: dict[str, Any]) -> dict[str, Any]:
        """Validated request values -> model-format values (array arguments only)."""
        self._ready()
        return self._transform_in(data)

    def _transform_in(self, data: dict[str, Any]) -> dict[str, Any]:
        values = dict(data)
        for arg in self._array_args:
            if arg.name in values:
                try:
                    values[arg.name] = self._to_model(values[arg.name], arg)
                except RequestError:
                    raise
                except Exception as error:
                    raise PredictTransformDataError(
                        f"could not convert {arg.name!r} for the model: {error}", loc=["body", arg.name]
                    ) from error
        return values

    def call_model(self, values: dict[str, Any]) -> Any:
        """Run the model's predict method on model-format values (timed in
        ``core_predict_duration_seconds`` with metrics on)."""
        return self._call_model(self._ready(), values)

    def _call_model(self, interface: ModelInterface, values: dict[str, Any]) -> Any:
        metrics = self.metrics
        started = time.perf_counter()
        try:
            return interface.call(values)
        except RequestError:
            raise
        except Exception as error:
            logger.exception("the model raised while predicting")
            raise PredictError(f"the model raised {type(error).__name__}: {error}") from error
        finally:
            if metrics is not None:
                metrics.observe_predict(time.perf_counter() - started)

    def transform_out(self, result: Any) -> Any:
        try:
            return self._from_model(result)
        except RequestError:
            raise
        except Exception as error:
            raise PredictedTransformDataError(
                f"could not turn the model's result ({type(result).__name__}) into JSON: {error}"
            ) from error

    def row_count(self, values: dict[str, Any]) -> int | None:
        """How many rows ``values`` holds, or None when the model takes no rows argument."""
        name = self.rows_name
        return _row_count(values, name) if name is not None else None

    def is_empty(self, values: dict[str, Any]) -> bool:
        return self.row_count(values) == 0

    def predict_sync(self, data: dict[str, Any], *, transform: bool = True) -> Any:
        """Validated values in, JSON-ready result out; runs in the caller's thread."""
        interface = self._ready()
        rows = interface.rows
        if rows is not None and _row_count(data, rows.name) == 0:
            return []
        values = self._transform_in(data) if transform else data
        return self.transform_out(self._call_model(interface, values))

    def run(self, data: dict[str, Any], *, transform: bool = True) -> Coroutine[Any, Any, Any]:
        """``await ml.run(data)``: :meth:`predict_sync` in the thread pool, or inline when it
        is known to be quick (``max_inline_predict_ms``, see :mod:`core.runner`) or
        ``use_thread_loop`` is off. (The runner's coroutine, handed over as it is.)"""
        return self.runner.run(
            partial(self.predict_sync, data) if transform else partial(self.predict_sync, data, transform=False),
            PredictRunner.kind(data, self.rows_name),
        )

    def result_store(self) -> ResultStore:
        """A new result store, the one ``result_store_type`` names, built from
        ``result_store_kwargs`` (:class:`core.components.ResultStore`)."""
        conf = self.up.conf
        cls = self.up.plugins.result_stores.get(conf.result_store_type)
        store: ResultStore = build("result store", cls, dict(conf.result_store_kwargs), "result_store_kwargs")
        return store

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.validator is None:
            self._ready()
        assert self.validator is not None
        return self.validator.validate(data)

    async def predict(self, **data: Any) -> Any:
        """Validate, transform, predict and transform back, like ``POST /predict``."""
        return await self.run(self.validate(data))

    async def predict_from(self, **data: Any) -> Any:
        """Predict on data already in the model's format (no validation, no input transform)."""
        return await self.run(data, transform=False)


def _ml_of(up: Any) -> ML:
    """The ``ml`` of an unpickled :class:`core.UP` (see :meth:`ML.__reduce__`)."""
    ml: ML = up.ml
    return ml


def _not_loaded(*args: Any) -> Any:
    raise ModelLoadError("the model is not loaded; call up.ml.load() first")
