"""Where the time goes in one ``POST /predict``, without a server or a network in the way.

Calls the ASGI apps of ``core`` and of the baseline directly, in this process, with the
same bodies as ``bench/http_bench.py``, ``--concurrency`` requests at a time, and reports the
CPU time per request of each (process time: it counts the thread pool's threads too, and
nothing else on the machine). With ``--profile`` it runs core's app under cProfile and prints
the functions where core spends its time.

    python -m bench.asgi_profile                       # CPU us per request, core vs baseline
    python -m bench.asgi_profile --profile --rows 1    # + cProfile of core's request path
    python -m bench.asgi_profile --core-set 'use_thread_loop = false'

The HTTP benchmark adds hypercorn's (identical) cost to both sides; this isolates the app.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.http_bench import request_body, write_core_config  # noqa: E402
from bench.models import http_bench_model  # noqa: E402


def http_scope(body: bytes) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "POST", "scheme": "http", "path": "/predict", "raw_path": b"/predict",
        "root_path": "", "query_string": b"", "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }


async def call(app: Any, body: bytes) -> int:
    """One request through the app; returns the status."""
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(http_scope(body), receive, send)
    return status


_lifespans: set[asyncio.Future[Any]] = set()


async def lifespan_startup(app: Any) -> None:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    await queue.put({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        if not done.done():
            done.set_result(message)

    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}}, queue.get, send))
    message = await done
    _lifespans.add(task)  # the app's lifespan runs as long as this process
    if message["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"lifespan start-up failed: {message}")


async def drive(app: Any, body: bytes, requests: int, concurrency: int) -> tuple[float, float]:
    """Wall and CPU seconds per request for ``requests`` calls, ``concurrency`` at a time."""
    per_worker = requests // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            status = await call(app, body)
            if status != 200:
                raise RuntimeError(f"POST /predict answered {status}")

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    count = per_worker * concurrency
    return (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count


def load_apps(workdir: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    model = http_bench_model(workdir)
    config = write_core_config(workdir / "core.toml", model, overrides)
    os.environ["CORE_CONFIG"] = str(config)
    os.environ["BASELINE_MODEL"] = str(model)
    from bench import baseline_app
    from core.app import ServeApp

    return {"core": ServeApp(), "baseline": baseline_app.app}


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="core-asgi-profile-") as tmp:
        apps = load_apps(Path(tmp), tomllib.loads(args.core_set.replace(";", "\n")))
        for app in apps.values():
            await lifespan_startup(app)
        print("| rows | concurrency | app | wall us/request | CPU us/request |")
        print("|---:|---:|---|---:|---:|")
        for rows in args.rows:
            body = request_body(rows)
            for app in apps.values():  # warm up
                await drive(app, body, 500, args.concurrency)
            best: dict[str, tuple[float, float]] = {}
            for _ in range(args.rounds):  # alternate the apps; keep each one's best round
                for name, app in apps.items():
                    wall, cpu = await drive(app, body, args.requests // args.rounds,
                                            args.concurrency)
                    old = best.get(name, (wall, cpu))
                    best[name] = (min(old[0], wall), min(old[1], cpu))
            for name, (wall, cpu) in best.items():
                print(f"| {rows} | {args.concurrency} | {name} | {wall * 1e6:.0f} "
                      f"| {cpu * 1e6:.0f} |")
            if args.profile:
                await profile(apps["core"], body, args)


async def profile(app: Any, body: bytes, args: argparse.Namespace) -> None:
    """cProfile core's app in the event-loop thread (the pool's threads are not profiled:
    there the model runs, the same for both apps)."""
    profiler = cProfile.Profile()
    profiler.enable()
    await drive(app, body, args.requests, args.concurrency)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating rounds per app; the best one is reported")
    parser.add_argument("--core-set", default="", metavar="'KEY = VALUE; ...'",
                        help="extra core config keys (TOML), e.g. 'use_thread_loop = false'")
    parser.add_argument("--profile", action="store_true", help="cProfile core's request path")
    parser.add_argument("--sort", default="tottime", help="pstats sort key")
    parser.add_argument("--top", type=int, default=30)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main_async(parse_args(None)))
