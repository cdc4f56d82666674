"""Instructions per ``POST /predict`` of the whole server (hypercorn, core's app, the model
call, the metrics' folding, the access line's write), counted by callgrind, for config variants
side by side.

``bench/instructions.py`` counts core's ASGI app called in-process; a request served over
HTTP costs hypercorn's work too, about as much again. This runs ``core serve`` in one process
(hypercorn in that process, no worker child) under ``valgrind --tool=callgrind``, sends it
``--small`` then ``--large`` requests over one keep-alive connection from this process (the
client's work is not counted), stops it with SIGTERM and reads the total callgrind collected;
the difference of the two totals divided by the difference of the request counts is one
request's instructions, start-up and shutdown cancelled out. Other processes do not move
these counts, so the comparison holds on a loaded machine, where wall-clock figures swing by
tens of percent.

    python -m bench.server_instructions --variant off='metrics = false; access_log = false' \\
        --variant default='log_level = "INFO"' --rows 1 100

Each variant's keys are added to ``bench.http_bench``'s core config (its model, one pool
thread, ``log_level = "WARNING"``); ``--set`` adds keys to every variant. Pin the model call's
path (``--set 'max_inline_predict_ms = 1000'``): under callgrind everything is some 50 times
slower, and whether a call is promoted to the event loop is decided by timing it. Needs
``valgrind``; a run takes a few minutes (the imports alone take a minute under callgrind).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.http_bench import CORE_PLUGINS, free_port, parse_variant, request_body, write_core_config  # noqa: E402
from bench.models import http_bench_model  # noqa: E402

COLLECTED = re.compile(r"Collected : (\d+)")
#: Seconds the server gets to start under callgrind (imports, the model, hypercorn).
START_TIMEOUT = 600.0


def serve_and_count(config: Path, rows: int, requests: int, workdir: Path) -> int:
    """Start ``core serve config`` under callgrind, send ``requests`` requests of ``rows`` rows,
    stop it: the instructions callgrind collected over the process's life."""
    port = free_port()
    # one hash seed for every run: dicts and sets laid out alike, so start-up costs the same
    env = {**os.environ, "CORE_LOAD_PLUGINS": ",".join(CORE_PLUGINS), "PYTHONHASHSEED": "0"}
    log = workdir / "valgrind.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={workdir / 'callgrind.out'}",
             sys.executable, "-m", "core", "serve", str(config), "--host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    body = request_body(rows)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(timeout=60) as client:
            while True:
                if server.poll() is not None:
                    raise SystemExit(f"the server ended (exit {server.returncode}):\n{log.read_text()[-3000:]}")
                try:
                    if client.get(f"{url}/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start in {START_TIMEOUT:g} s")
                time.sleep(0.5)
            for _ in range(requests):
                answer = client.post(f"{url}/predict", content=body,
                                     headers={"Content-Type": "application/json"})
                if answer.status_code != 200:
                    raise SystemExit(f"POST /predict answered {answer.status_code}: {answer.text}")
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=START_TIMEOUT)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    found = COLLECTED.search(log.read_text())
    if found is None:
        raise SystemExit(f"callgrind wrote no total:\n{log.read_text()[-3000:]}")
    return int(found.group(1))


def per_request(config: Path, rows: int, args: argparse.Namespace, workdir: Path) -> float:
    small = serve_and_count(config, rows, args.small, workdir)
    large = serve_and_count(config, rows, args.large, workdir)
    return (large - small) / (args.large - args.small)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", type=parse_variant, default=[], required=True,
                        metavar="NAME='TOML'", help="a config to measure: the benchmark's keys plus these")
    parser.add_argument("--set", type=lambda text: parse_variant(f"all={text}")[1], default={},
                        metavar="'TOML'", help="config keys added to every variant")
    parser.add_argument("--rows", type=int, nargs="+", default=[1])
    parser.add_argument("--small", type=int, default=100, help="requests of the short run")
    parser.add_argument("--large", type=int, default=2100, help="requests of the long run (start-up "
                        "varies by millions of instructions from run to run: the more requests "
                        "between the two runs, the less that moves the figure)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    variants: dict[str, dict[str, Any]] = dict(args.variant)
    first = next(iter(variants))
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="core-server-callgrind-") as tmp:
        workdir = Path(tmp)
        model = http_bench_model(workdir)
        configs = {name: write_core_config(workdir / f"{name}.toml", model, {**args.set, **keys})
                   for name, keys in variants.items()}
        for rows in args.rows:
            results[rows] = {name: per_request(config, rows, args, workdir) for name, config in configs.items()}
            print(f"# rows={rows}: " + ", ".join(f"{name} {count:,.0f}" for name, count in results[rows].items()),
                  flush=True)
    names = list(variants)
    print(f"\n| rows | {' | '.join(f'{name} instructions/request' for name in names)} | "
          f"{' | '.join(f'{name} / {first}' for name in names[1:])} |")
    print(f"|---:|{'---:|' * (2 * len(names) - 1)}")
    for rows, counts in results.items():
        ratios = " | ".join(f"{counts[name] / counts[first]:.3f}" for name in names[1:])
        print(f"| {rows} | {' | '.join(f'{counts[name]:,.0f}' for name in names)} | {ratios} |")
    if args.json:
        args.json.write_text(json.dumps({"variants": variants, "set": args.set, "small": args.small,
                                         "large": args.large, "instructions_per_request": results}, indent=2))


if __name__ == "__main__":
    main()
