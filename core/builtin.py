"""The built-in plugin: core's own transformers, architectures and result store, and the default answers to
the life-cycle hooks (each calls the chosen component). Registered first by
:func:`core.plugins.load_plugins`; marked ``trylast`` so that any other plugin answering a
life-cycle hook is asked before it."""

from __future__ import annotations

from typing import Any

from core.analysis import Argument
from core.architectures.batching import Batching
from core.architectures.direct import DirectlyToPredict
from core.architectures.worker_and_queue import WorkerAndQueue
from core.components import Architecture, Binarizer, LoadedFile, Storage, Transformer
from core.hookspecs import Register, hookimpl
from core.results import LocalResultStore
from core.transformers import NumpyTransformer, PassthroughTransformer


@hookimpl
def register_transformers(register: Register) -> None:
    register("numpy", NumpyTransformer)
    register("passthrough", PassthroughTransformer)


@hookimpl
def register_result_stores(register: Register) -> None:
    register("local", LocalResultStore)


@hookimpl
def register_architectures(register: Register) -> None:
    register("directly_to_predict", DirectlyToPredict)
    register("worker_and_queue", WorkerAndQueue)
    register("batching", Batching)


@hookimpl(trylast=True)
def storage_load(storage: Storage) -> list[LoadedFile]:
    return storage.load()


@hookimpl(trylast=True)
def binarizer_deserialize(binarizer: Binarizer, files: list[LoadedFile]) -> Any:
    return binarizer.deserialize(files)


@hookimpl(trylast=True)
def transformer_to_model(transformer: Transformer, data: Any, argument: Argument) -> Any:
    return transformer.to_model(data, argument)


@hookimpl(trylast=True)
def transformer_from_model(transformer: Transformer, data: Any) -> Any:
    return transformer.from_model(data)


@hookimpl(trylast=True)
def architecture_predict(architecture: Architecture, data: dict[str, Any], predict_id: str) -> Any:
    return architecture.predict(data, predict_id=predict_id)
