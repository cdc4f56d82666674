"""core-mlcomponent: serve seed 003's ``inference(parameters, inputs, output_fields, model_key,
model)`` function, with file exchange, from a config or an MLComponent manifest.

Provides the storage ``mlcomponent`` (it imports the function and hands ``core`` an
:class:`~core_mlcomponent.model.InferenceFunctionModel`), the routes ``POST /inference``,
``GET /inference`` and ``GET /files/{name}``, and ``core serve --manifest FILE`` (and
``core validate --manifest FILE``) through core's command-line hooks, built on
:func:`core_mlcomponent.manifest.config_from_manifest`. See the README.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core import hookimpl

if TYPE_CHECKING:
    import argparse

    from starlette.routing import BaseRoute

    from core.config import Config
    from core.hookspecs import Register
    from core.http import Service

__version__ = "0.1.0"


def _served(service: Service) -> Any:
    from core_mlcomponent.model import InferenceFunctionModel

    model = service.model
    return model if isinstance(model, InferenceFunctionModel) else None


@hookimpl
def register_storages(register: Register) -> None:
    from core_mlcomponent.storage import MLComponentStorage

    register("mlcomponent", MLComponentStorage)


@hookimpl
def register_routes(service: Service) -> list[BaseRoute]:
    model = _served(service)
    if model is None:  # installed, but this server serves another kind of model
        return []
    from core_mlcomponent.routes import InferenceEndpoints

    return InferenceEndpoints(service, model).routes()


@hookimpl
def extend_info(service: Service) -> dict[str, Any] | None:
    """The function and its spec in /info."""
    model = _served(service)
    return {"mlcomponent": model.describe()} if model is not None else None


@hookimpl
def extend_openapi(service: Service) -> dict[str, Any] | None:
    """/inference and /files in the document."""
    model = _served(service)
    if model is None:
        return None
    from core_mlcomponent.routes import openapi_fragment

    return openapi_fragment(model)


@hookimpl(optionalhook=True)
def register_serve_options(parser: argparse.ArgumentParser) -> None:
    """``core serve --manifest FILE`` (and ``core validate --manifest FILE``)."""
    parser.add_argument("--manifest", metavar="FILE",
                        help="an MLComponent manifest (YAML) to serve, instead of a config file "
                        "(core-mlcomponent)")


@hookimpl(optionalhook=True)
def config_from_options(options: argparse.Namespace) -> Config | None:
    """The config that serves the manifest given with ``--manifest``, if one was."""
    path = getattr(options, "manifest", None)
    if path is None:
        return None
    from core_mlcomponent.manifest import config_from_manifest

    return config_from_manifest(path)
