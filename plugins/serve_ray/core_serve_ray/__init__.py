"""core-serve-ray: serve a core config as a Ray Serve application.

``core ray config.toml`` deploys the config on Ray Serve: each replica runs core's whole life
cycle (storage, binarizer, analysis, routes, architecture) and answers core's HTTP contract
behind Ray's proxy. Replicas, autoscaling and resources come from the config's ``[ray]``
table (:mod:`core_serve_ray.settings`). ``serve run core_serve_ray.deployment:build
config=config.toml`` does the same with Ray's own command.

Importing this package imports no Ray: Ray is imported when ``core ray`` runs.
"""

from __future__ import annotations

from typing import Any

from core.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "register_commands", "register_config_sections"]


@hookimpl
def register_config_sections() -> list[str]:
    """The ``[ray]`` table (:mod:`core_serve_ray.settings`): ``core serve`` leaves it out, so one
    config file serves under hypercorn and on Ray."""
    return ["ray"]


@hookimpl
def register_commands(commands: Any) -> None:
    """Add ``core ray CONFIG``."""
    from core_serve_ray.cli import add_command

    add_command(commands)
