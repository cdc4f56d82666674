"""``core ray CONFIG``: serve a config file as a Ray Serve application, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from core.errors import ConfigError


def add_command(commands: Any) -> None:
    """Add ``core ray`` to the command line."""
    command = commands.add_parser(
        "ray", help="serve a config as a Ray Serve application (replicas from its [ray] table)",
        description="Serve CONFIG on Ray Serve: each replica loads the model and serves core's "
                    "routes; replicas, autoscaling and resources come from the config's [ray] table.")
    command.add_argument("config", metavar="CONFIG", help="a config file (TOML, JSON, YAML)")
    command.add_argument("--address", default=None,
                         help="the Ray cluster to join (default: [ray] address, else a local Ray)")
    command.add_argument("--host", default=None, help="the proxy's host (default: the config's host)")
    command.add_argument("--port", type=int, default=None,
                         help="the proxy's port (default: the config's port)")
    command.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Deploy, print ``core: serving ...``, and wait for SIGINT or SIGTERM; then shut Serve
    down (and Ray, when this command started it)."""
    from core_serve_ray.settings import read_config

    if not Path(args.config).is_file():
        raise ConfigError(f"{args.config}: no such config file")
    conf, settings = read_config(args.config)
    changes = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if changes:
        conf = conf.replace(**changes)

    import ray
    from ray import serve

    from core_serve_ray.deployment import application
    from core_serve_ray.settings import shared_results

    served = shared_results(conf)
    made = served.result_store_kwargs.get("directory") if served is not conf else None
    app = application(served, settings)
    address = args.address or settings.address
    ray.init(address=address, include_dashboard=False, log_to_driver=True)
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": conf.host, "port": conf.port})
        name = settings.app_name or conf.name
        try:
            serve.run(app, name=name, route_prefix=settings.route_prefix)
        except Exception as error:
            line = startup_line(error, name)
            if line is None:
                raise
            print(line, file=sys.stderr, flush=True)
            return 1
        print(f"core: serving {conf.name!r} on http://{conf.host}:{conf.port}{settings.route_prefix} "
              f"with Ray Serve ({settings.replicas}, application {name!r})", flush=True)
        stop.wait()
    finally:
        _shut_down(own_ray=address is None, name=settings.app_name or conf.name)
        if made:
            shutil.rmtree(made, ignore_errors=True)
    return 0


def startup_line(error: BaseException, name: str) -> str | None:
    """core's line (``core: cannot start: ...``) for application ``name`` whose replicas could
    not start (:class:`~core_serve_ray.deployment.StartupFailed`): in Ray's error, or in the
    status Serve keeps of the application and its deployment; None when it is not there."""
    from ray import serve

    texts = [str(error)]
    application = serve.status().applications.get(name)
    if application is not None:
        texts += [application.message, *(d.message for d in application.deployments.values())]
    for text in texts:
        found = re.search(r"core: cannot start: [^\n]*", text or "")
        if found:
            return found.group(0).rstrip(" '\"")
    return None


#: Seconds given to Serve to stop the replicas gracefully (core's lifespan shutdown in each).
SHUTDOWN_TIMEOUT = 30.0


def _shut_down(own_ray: bool, name: str) -> None:
    """Stop what ``core ray`` started: the whole of Serve and the local Ray it started, or
    only its application on a cluster it joined. Serve's calls wait on Ray's processes, which
    a Ctrl+C in a terminal signals too (they share its process group): after
    :data:`SHUTDOWN_TIMEOUT` seconds the local Ray is stopped anyway."""
    import ray
    from ray import serve

    stopping = threading.Thread(target=serve.shutdown if own_ray else lambda: serve.delete(name),
                                daemon=True)
    stopping.start()
    stopping.join(SHUTDOWN_TIMEOUT)
    if own_ray:
        ray.shutdown()

