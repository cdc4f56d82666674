"""Sends ``--requests`` ``POST /predict`` calls through core's ASGI app in this process: the
program that ``bench/instructions.py`` runs under callgrind.

Run as a script (not ``-m``) so that ``core`` and its plugins are imported from
``PYTHONPATH`` first: the revision being measured. The model and the config come from the
working tree's ``bench`` package, the same for every revision.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


async def run(requests: int, rows: int, concurrency: int, settings: dict[str, Any]) -> None:
    sys.path.append(str(REPO))  # after PYTHONPATH: core comes from the revision measured
    from bench.asgi_profile import call, lifespan_startup
    from bench.http_bench import request_body, write_core_config
    from bench.models import http_bench_model

    with tempfile.TemporaryDirectory(prefix="core-callgrind-") as tmp:
        model = http_bench_model(Path(tmp))
        os.environ["CORE_CONFIG"] = str(write_core_config(Path(tmp) / "core.toml", model, settings))
        from core.app import ServeApp

        app = ServeApp()
        await lifespan_startup(app)
        body = request_body(rows)

        async def worker(count: int) -> None:
            for _ in range(count):
                status = await call(app, body)
                if status != 200:
                    raise SystemExit(f"POST /predict answered {status}")

        await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
        print(f"core from {sys.modules['core'].__file__}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--settings", default="{}", help="config keys added, as JSON")
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.rows, args.concurrency, json.loads(args.settings)))
    os._exit(0)  # the app's lifespan and pool threads would keep the process alive


if __name__ == "__main__":
    main()
