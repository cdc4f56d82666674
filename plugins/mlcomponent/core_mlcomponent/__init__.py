"""core-mlcomponent: serve seed 003's ``inference(parameters, inputs, output_fields, model_key,
model)`` function, with file exchange, from a config or an MLComponent manifest.

Provides the storage ``mlcomponent`` (it imports the function and hands ``core`` an
:class:`~core_mlcomponent.model.InferenceFunctionModel`), the routes ``POST /inference``,
``GET /inference`` and ``GET /files/{name}``, and :func:`core_mlcomponent.manifest.config_from_manifest`
for ``core serve --manifest``. See the README.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core import hookimpl

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from core.hookspecs import Register
    from core.up import UP

__version__ = "0.1.0"


def _served(up: UP) -> Any:
    from core_mlcomponent.model import InferenceFunctionModel

    model = up.ml.model_obj if up.ml.loaded else None
    return model if isinstance(model, InferenceFunctionModel) else None


@hookimpl
def register_storages(register: Register) -> None:
    from core_mlcomponent.storage import MLComponentStorage

    register("mlcomponent", MLComponentStorage)


@hookimpl
def register_routes(up: UP) -> list[BaseRoute]:
    model = _served(up)
    if model is None:  # installed, but this server serves another kind of model
        return []
    from core_mlcomponent.routes import InferenceEndpoints

    return InferenceEndpoints(up, model).routes()


@hookimpl(optionalhook=True)
def extend_info(up: UP) -> dict[str, Any] | None:
    """Used when core has the ``extend_info`` hook: the function and its spec in /info."""
    model = _served(up)
    return {"mlcomponent": model.describe()} if model is not None else None


@hookimpl(optionalhook=True)
def extend_openapi(up: UP) -> dict[str, Any] | None:
    """Used when core has the ``extend_openapi`` hook: /inference and /files in the document."""
    model = _served(up)
    if model is None:
        return None
    from core_mlcomponent.routes import openapi_fragment

    return openapi_fragment(model)
