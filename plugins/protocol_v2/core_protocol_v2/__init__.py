"""core-protocol-v2: the Open Inference Protocol (V2, REST) for the model ``core`` serves.

Adds ``/v2``, ``/v2/health/{live,ready}``, ``/v2/models/{name}[/versions/{version}]``,
``.../ready`` and ``.../infer`` (JSON and the binary tensor data extension). Predictions go
through ``architecture_predict``, so the configured architecture (batching included) runs
them. See the README for the datatypes and how each kind of model is fed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core import hookimpl

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from core.http import Service

__version__ = "0.1.0"


@hookimpl
def register_routes(service: Service) -> list[BaseRoute]:
    from core_protocol_v2.routes import V2Endpoints

    return V2Endpoints(service).routes()


@hookimpl
def extend_openapi(service: Service) -> dict[str, Any]:
    """The V2 paths in /openapi.json."""
    from core_protocol_v2.routes import openapi_paths

    return {"paths": openapi_paths(service)}
