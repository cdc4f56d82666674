"""Instructions per ``POST /predict`` through core's ASGI app, counted by callgrind: core of the
working tree against core of other git revisions.

Wall-clock figures on a shared machine move by tens of percent from run to run; callgrind
counts the instructions a program executes, which other processes do not change. Each
measurement runs ``bench/callgrind_driver.py`` twice under ``valgrind --tool=callgrind``,
with ``--small`` and ``--large`` requests, and divides the difference of the two totals by the
difference of the request counts: start-up (imports, model loading) cancels out, what is left
is the request path (core's app, the model call, orjson; no server, no network).

    python -m bench.instructions --revision before=fbe1a55
    python -m bench.instructions --revision before=HEAD~3 --rows 1 100 --concurrency 1 16
    python -m bench.instructions --rows 1 --variant off='metrics = false; access_log = false'

``--variant NAME='TOML keys'`` measures the working tree's core again with the benchmark's
config plus those keys (as ``bench.http_bench`` does): what a setting costs per request.
``--set 'TOML keys'`` adds keys to every config measured. Pin the model call's path with it
(``--set 'max_inline_predict_ms = 0'``: always the thread pool): whether a call is promoted
to the event loop depends on how long it took, and under callgrind everything takes some 50
times longer, so an unpinned run may take one path in one config and the other in the next.

Needs ``valgrind`` (``apt-get install valgrind``). Each run takes a minute or two: callgrind
runs Python some 50 times slower.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.http_bench import CORE_PLUGINS, export_revision, parse_variant, python_path  # noqa: E402

DRIVER = REPO / "bench" / "callgrind_driver.py"
COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(pythonpath: str, requests: int, rows: int, concurrency: int, workdir: Path,
                 settings: dict[str, Any] | None = None) -> int:
    """The instructions callgrind counted for one run of the driver (``settings``: config
    keys added to the benchmark's)."""
    env = {**os.environ, "PYTHONPATH": pythonpath, "CORE_LOAD_PLUGINS": ",".join(CORE_PLUGINS)}
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={workdir / 'callgrind.out'}",
         sys.executable, str(DRIVER), "--requests", str(requests), "--rows", str(rows),
         "--concurrency", str(concurrency), "--settings", json.dumps(settings or {})],
        env=env, capture_output=True, text=True, cwd=workdir,
    )
    found = COLLECTED.search(run.stderr)
    if run.returncode != 0 or found is None:
        raise SystemExit(f"the driver failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
    return int(found.group(1))


def per_request(pythonpath: str, args: argparse.Namespace, rows: int, concurrency: int,
                workdir: Path, settings: dict[str, Any] | None = None) -> float:
    small = instructions(pythonpath, args.small, rows, concurrency, workdir, settings)
    large = instructions(pythonpath, args.large, rows, concurrency, workdir, settings)
    return (large - small) / (args.large - args.small)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revision", action="append", default=[], metavar="NAME=REV",
                        help="also measure core at git revision REV (e.g. before=HEAD~1)")
    parser.add_argument("--variant", action="append", type=parse_variant, default=[],
                        metavar="NAME='TOML'", help="also measure the working tree's core with "
                        "these config keys added (e.g. off='metrics = false; access_log = false')")
    parser.add_argument("--set", type=lambda text: parse_variant(f"all={text}")[1], default={},
                        metavar="'TOML'", help="config keys added to every config measured")
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1])
    parser.add_argument("--small", type=int, default=200, help="requests of the short run")
    parser.add_argument("--large", type=int, default=1200, help="requests of the long run")
    args = parser.parse_args(argv)
    if args.large <= args.small:
        parser.error("--large must be more than --small")

    with tempfile.TemporaryDirectory(prefix="core-instructions-") as tmp:
        workdir = Path(tmp)
        paths = {"core": python_path([REPO, *(REPO / "plugins" / p for p in CORE_PLUGINS.values())])}
        settings: dict[str, dict[str, Any]] = {}
        for name, keys in args.variant:
            if name in paths:
                parser.error(f"--variant {name}: the name is taken")
            paths[name], settings[name] = paths["core"], {**args.set, **keys}
        for text in args.revision:
            name, sep, revision = text.partition("=")
            if not sep or not name or not revision or name in paths:
                parser.error(f"--revision wants NAME=REV, got {text!r}")
            paths[name] = python_path(export_revision(revision, workdir / f"rev-{name}"))
        names = list(paths)
        print(f"| rows | concurrency | {' | '.join(f'{n} instructions/request' for n in names)} "
              f"| {' | '.join(f'core / {n}' for n in names[1:])} |")
        print(f"|---:|---:|{'---:|' * (2 * len(names) - 1)}")
        for rows in args.rows:
            for concurrency in args.concurrency:
                counts = {n: per_request(p, args, rows, concurrency, workdir, settings.get(n, args.set))
                          for n, p in paths.items()}
                ratios = [f"{counts['core'] / counts[n]:.3f}" for n in names[1:]]
                print(f"| {rows} | {concurrency} | "
                      f"{' | '.join(f'{counts[n]:,.0f}' for n in names)} | {' | '.join(ratios)} |",
                      flush=True)


if __name__ == "__main__":
    main()
