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

    from core.up import UP

__version__ = "0.1.0"


@hookimpl
def register_routes(up: UP) -> list[BaseRoute]:
    from core_protocol_v2.routes import V2Endpoints

    return V2Endpoints(up).routes()


@hookimpl(optionalhook=True)
def extend_openapi(up: UP) -> dict[str, Any]:
    """Used when core has the ``extend_openapi`` hook: the V2 paths in /openapi.json."""
    from core_protocol_v2.routes import openapi_paths

    return {"paths": openapi_paths(up)}
