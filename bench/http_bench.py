"""HTTP benchmark: ``hypercorn core.app:app`` against a minimal Starlette app on the same model
(or both under uvicorn: ``--http-server uvicorn``).

Both servers serve the same 20-feature ONNX model (:func:`bench.models.http_bench_model`) with
``intra_op_num_threads = 1``, are pinned to one core (``--server-cpu``, default 0) and stay
up for the whole run; ``wrk`` is pinned to another (``--client-cpu``, default 1). For every
cell (1, 16 and 64 connections x 1 and 100 rows a request) the servers are measured in turn,
the first one alternating from run to run, so that drift of the machine hits them alike.

    python -m bench.http_bench                 # 10 s a measurement
    python -m bench.http_bench --quick         # 3 s a measurement, shorter warm-up

Prints a markdown table: requests/s, p50/p99 latency, core's throughput as a fraction of the
baseline's against the target (>= 0.85), and each server's CPU time per request (all its
processes, from /proc). The last is the steadier figure on a busy machine: wrk's requests/s
drop whenever another process takes the server's core, its CPU time per request barely moves;
"CPU ratio" (baseline CPU per request / core's) is the throughput ratio the two would have on
a core of their own when CPU-bound. ``--repeat N`` runs each cell N times, the servers taking
turns, and keeps each server's median run; the table then also gives the median of the
per-round ratios ("paired ratio", each core run over the baseline run next to it, with the
lowest and highest), which a drift of the machine moves less, and ``--json`` keeps every
run. Exits 1 if a cell misses the target
(``--no-fail`` to exit 0 anyway), 2 if a server misbehaves (non-2xx answers, socket errors,
failed start).

``--http-server uvicorn`` runs every server (the baseline too) under ``uvicorn APP`` (uvloop and
httptools, ``--no-access-log``) instead of hypercorn: core under uvicorn against the baseline
under uvicorn, measured in turn as above.

Other servers: ``--variant NAME='TOML'`` adds a core server whose config is the benchmark's
config plus the TOML keys, e.g. ``--variant batching='mode = "batching"'``;
``--revision NAME=REV`` adds a core server running the code of a git revision (its ``core``
and the two plugins the benchmark needs, exported with ``git archive`` and put first on the
server's ``PYTHONPATH``), so a change is measured against the code before it in one run, e.g.
``--revision before=HEAD~1``; ``--servers`` picks which servers run (default: baseline, core,
every variant and revision). Every core-like server is compared with the baseline. Core-like
servers load only the plugins the benchmark needs (``CORE_LOAD_PLUGINS=disk,onnx``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # for `python bench/http_bench.py` too
    sys.path.insert(0, str(REPO))

from bench.models import http_bench_model, sample_rows  # noqa: E402

TARGET_RATIO = 0.85
BASELINE = "baseline"
CONNECTIONS = (1, 16, 64)
ROWS = (1, 100)
WRK = "wrk"

#: The plugins a core-like server loads: what the benchmark's config needs, the same for all.
CORE_PLUGINS = {"disk": "storage_disk", "onnx": "binarizer_onnx"}

#: The benchmark's core config; ``path_to_files`` is filled in at run time.
CORE_CONFIG: dict[str, Any] = {
    "name": "bench-mlp20",
    "version": "1.0.0",
    "storage_type": "disk",
    "storage_kwargs": {"need_load_file": False},
    "binarization_type": "onnx",
    "binarization_kwargs": {"intra_op_num_threads": 1},
    "mode": "directly_to_predict",
    "max_thread_loop_workers": 1,
    "log_level": "WARNING",
}


# ---------------------------------------------------------------------- servers


@dataclass
class Server:
    """One server under test: how to start it, and where it listens once started."""

    name: str
    app: str
    env: dict[str, str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    http_server: str = "hypercorn"
    #: Where it answers 200 once ready, and where wrk POSTs (other servers than core's and the
    #: baseline's, e.g. the peers of ``bench.model_bound_bench``, have other paths).
    health_path: str = "/health"
    predict_path: str = "/predict"

    @property
    def is_baseline(self) -> bool:
        return self.name == BASELINE

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, cpu: str) -> list[str]:
        if self.http_server == "uvicorn":
            return ["taskset", "-c", cpu, *script_command("uvicorn"), self.app, "--host", "127.0.0.1",
                    "--port", str(self.port), "--no-access-log", "--log-level", "warning"]
        return ["taskset", "-c", cpu, *hypercorn_command(), self.app,
                "--bind", f"127.0.0.1:{self.port}"]


#: The HTTP servers the benchmark runs the apps under (``--http-server``).
HTTP_SERVERS = ("hypercorn", "uvicorn")


def script_command(name: str) -> list[str]:
    """The venv's ``name`` script, or ``python -m name`` when there is none."""
    script = Path(sys.executable).with_name(name)
    return [str(script)] if script.exists() else [sys.executable, "-m", name]


def hypercorn_command() -> list[str]:
    """The venv's ``hypercorn`` script, or ``python -m hypercorn`` when there is none."""
    return script_command("hypercorn")


def toml_value(value: Any) -> str:
    """A TOML literal for the flat configs written here (str, bool, number, dict, list)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def write_core_config(path: Path, model: Path, overrides: dict[str, Any]) -> Path:
    config = {**CORE_CONFIG, **overrides}
    config["storage_kwargs"] = {
        **CORE_CONFIG["storage_kwargs"],
        "path_to_files": str(model),
        "file_mask": re.escape(model.name),
        **overrides.get("storage_kwargs", {}),
    }
    path.write_text("".join(f"{key} = {toml_value(value)}\n" for key, value in config.items()))
    return path


def make_servers(names: list[str], variants: dict[str, dict[str, Any]], revisions: dict[str, str],
                 model: Path, workdir: Path) -> list[Server]:
    servers = []
    for name in names:
        env = {**os.environ, "PYTHONPATH": python_path()}
        if name == BASELINE:
            env.update(BASELINE_MODEL=str(model), BASELINE_INTRA_OP_THREADS="1")
            servers.append(Server(name, "bench.baseline_app:app", env))
            continue
        if name != "core" and name not in variants and name not in revisions:
            raise SystemExit(f"unknown server {name!r}: use baseline, core, a --variant or a --revision name")
        config = write_core_config(workdir / f"{name}.toml", model, variants.get(name, {}))
        env["CORE_CONFIG"] = str(config)
        env["CORE_LOAD_PLUGINS"] = ",".join(CORE_PLUGINS)
        if name in revisions:
            env["PYTHONPATH"] = python_path(export_revision(revisions[name], workdir / f"rev-{name}"))
        servers.append(Server(name, "core.app:app", env))
    return servers


def export_revision(revision: str, folder: Path) -> list[Path]:
    """The code of ``revision`` in ``folder`` (``git archive``): the folders to put first on
    ``PYTHONPATH`` so that ``core`` and the benchmark's plugins import from it."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", revision],
                             capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"--revision {revision}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return [folder, *(folder / "plugins" / plugin for plugin in CORE_PLUGINS.values())]


def python_path(first: list[Path] | None = None) -> str:
    """PYTHONPATH with ``first``, then the repository (``bench.baseline_app`` imports)."""
    parts = [*(str(p) for p in first or ()), str(REPO), os.environ.get("PYTHONPATH")]
    return os.pathsep.join(filter(None, parts))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(server: Server, cpu: str, workdir: Path, timeout: float = 120.0) -> None:
    server.port = free_port()
    server.log_path = workdir / f"{server.name}.log"
    with server.log_path.open("wb") as log:  # the server keeps its own copy of the file
        server.process = subprocess.Popen(
            server.command(cpu), env=server.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_ready(server, timeout)


def wait_ready(server: Server, timeout: float) -> None:
    assert server.process is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            fail(server, f"exited with code {server.process.returncode} before it was ready")
        with (contextlib.suppress(OSError, urllib.error.URLError),
              urllib.request.urlopen(server.url + server.health_path, timeout=1) as response):
            if response.status == 200:
                return
        time.sleep(0.1)
    fail(server, f"did not answer /health within {timeout:.0f}s")


def stop(server: Server) -> None:
    if server.process is None or server.process.poll() is not None:
        return
    os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()


@contextlib.contextmanager
def running(servers: list[Server], cpu: str, workdir: Path) -> Iterator[list[Server]]:
    try:
        for server in servers:
            start(server, cpu, workdir)
            pid = server.process.pid if server.process else None
            print(f"# {server.name}: {' '.join(server.command(cpu))} (pid {pid})", file=sys.stderr)
        yield servers
    finally:
        for server in servers:
            stop(server)


def fail(server: Server, message: str) -> NoReturn:
    log = server.log_path.read_text(errors="replace")[-3000:] if server.log_path else ""
    raise BenchError(f"{server.name}: {message}\n--- last lines of its log ---\n{log}")


class BenchError(RuntimeError):
    """A server misbehaved: the figures would mean nothing."""


# ---------------------------------------------------------------------- requests


def request_body(rows: int) -> bytes:
    return json.dumps({"X": sample_rows(rows)}, separators=(",", ":")).encode()


def post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def check_answers(servers: list[Server], rows: int) -> None:
    """Every server answers 200 with the same ``predict_result`` as the first one."""
    body = request_body(rows)
    answers = {}
    for server in servers:
        status, payload = post(server.url + "/predict", body)
        if status != 200:
            fail(server, f"POST /predict answered {status}: {payload[:500]!r}")
        answers[server.name] = json.loads(payload)["predict_result"]
    reference_name, reference = next(iter(answers.items()))
    for name, answer in answers.items():
        if not same_result(answer, reference):
            raise BenchError(
                f"{name} and {reference_name} disagree on {rows} rows:\n"
                f"{name}: {str(answer)[:300]}\n{reference_name}: {str(reference)[:300]}"
            )


def same_result(a: Any, b: Any, tolerance: float = 1e-5) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_result(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_result(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))
    return bool(a == b)


# ---------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int = 0
    cpu_us: float = 0.0  # the server's CPU time per request (all its processes)
    socket_errors: dict[str, int] = field(default_factory=dict)


def write_wrk_script(workdir: Path, rows: int) -> Path:
    """A wrk Lua script that POSTs the JSON body of ``rows`` rows (read from a file)."""
    body_path = workdir / f"body_{rows}.json"
    body_path.write_bytes(request_body(rows))
    script = workdir / f"post_{rows}.lua"
    script.write_text(
        f'local file = assert(io.open("{body_path}", "rb"))\n'
        "wrk.body = file:read(\"*a\")\n"
        "file:close()\n"
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return script


def run_wrk(url: str, script: Path, connections: int, seconds: float, cpu: str,
            timeout: float = 2.0) -> WrkResult:
    """One wrk run; ``timeout`` (s, wrk's default 2) is when wrk gives a request up."""
    duration = max(1, round(seconds))  # wrk takes whole seconds
    command = ["taskset", "-c", cpu, WRK, "-t1", f"-c{connections}", f"-d{duration}s",
               f"--timeout={max(1, round(timeout))}s", "--latency", "-s", str(script), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise BenchError(f"no {pattern!r} in wrk's output:\n{output}")
        return match

    result = WrkResult(
        rps=float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=to_ms(find(r"^\s+50%\s+(\S+)").group(1)),
        p99_ms=to_ms(find(r"^\s+99%\s+(\S+)").group(1)),
        requests=int(find(r"^\s+(\d+) requests in").group(1)),
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non_2xx:
        result.non_2xx = int(non_2xx.group(1))
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if errors:
        counts = map(int, errors.groups())
        kinds = ("connect", "read", "write", "timeout")
        result.socket_errors = dict(zip(kinds, counts, strict=True))
    return result


def check_wrk(server: Server, cell: str, result: WrkResult) -> None:
    if result.non_2xx:
        fail(server, f"{cell}: {result.non_2xx} of {result.requests} responses were "
                     "Non-2xx or 3xx")
    if any(result.socket_errors.values()):
        fail(server, f"{cell}: socket errors {result.socket_errors}")
    if result.requests == 0:
        fail(server, f"{cell}: no request completed")


# ---------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Cell:
    connections: int
    rows: int

    def __str__(self) -> str:
        return f"c={self.connections} rows={self.rows}"


def measure(server: Server, cell: Cell, script: Path, args: argparse.Namespace) -> WrkResult:
    """One wrk run of one server on one cell, with the server's CPU time per request."""
    cpu_before = server_cpu_seconds(server)
    result = run_wrk(server.url + server.predict_path, script, cell.connections, args.seconds,
                     args.client_cpu, getattr(args, "wrk_timeout", 2.0))
    result.cpu_us = (server_cpu_seconds(server) - cpu_before) / max(result.requests, 1) * 1e6
    check_wrk(server, str(cell), result)
    return result


def server_cpu_seconds(server: Server) -> float:
    """User + system CPU seconds of every live process of the server (:func:`server_pids`)."""
    stats = _proc_stats()
    ticks = sum(stats[pid][2] for pid in server_pids(server, stats))
    return ticks / os.sysconf("SC_CLK_TCK")


def server_pids(server: Server, stats: dict[int, tuple[int, int, int]] | None = None) -> list[int]:
    """The live processes of the server: those of its session (started with
    ``start_new_session``, so session id == its pid; hypercorn runs its worker in a child) and
    their descendants, even in sessions of their own (BentoML's workers start one)."""
    assert server.process is not None
    stats = _proc_stats() if stats is None else stats
    found = {pid for pid, (_, session, _) in stats.items() if session == server.process.pid}
    found.add(server.process.pid)
    while True:
        children = {pid for pid, (ppid, _, _) in stats.items() if ppid in found} - found
        if not children:
            return sorted(pid for pid in found if pid in stats)
        found |= children


def _proc_stats() -> dict[int, tuple[int, int, int]]:
    """``pid: (ppid, session, utime + stime ticks)`` of every live process, from /proc."""
    stats = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        # fields[0] is field 3 (state) of proc(5): ppid 4, session 6, utime 14, stime 15
        stats[int(stat.parent.name)] = (int(fields[1]), int(fields[3]),
                                        int(fields[11]) + int(fields[12]))
    return stats


def median_run(runs: list[WrkResult]) -> WrkResult:
    """The run with the median requests/s (an actual run, so its latencies go with it)."""
    return sorted(runs, key=lambda r: r.rps)[len(runs) // 2]


def warm_up(servers: list[Server], scripts: dict[int, Path], args: argparse.Namespace) -> None:
    for server in servers:
        for script in scripts.values():
            result = run_wrk(server.url + server.predict_path, script, max(CONNECTIONS), args.warmup,
                             args.client_cpu)
            check_wrk(server, "warm-up", result)


def run_cells(servers: list[Server], scripts: dict[int, Path], args: argparse.Namespace,
              rounds: dict[Cell, dict[str, list[WrkResult]]] | None = None,
              ) -> dict[Cell, dict[str, WrkResult]]:
    """Every cell, every server, ``--repeat`` times: the servers take turns run by run (the
    first one alternating), so that a slow spell of the machine hits them alike. Each
    server's median run, by cell; every run, in turn order, goes into ``rounds`` if given."""
    results: dict[Cell, dict[str, WrkResult]] = {}
    cells = [Cell(c, r) for r in ROWS for c in CONNECTIONS]
    turn = 0
    for cell in cells:
        runs: dict[str, list[WrkResult]] = {server.name: [] for server in servers}
        for _ in range(args.repeat):
            order = servers if turn % 2 == 0 else servers[::-1]
            turn += 1
            for server in order:
                r = measure(server, cell, scripts[cell.rows], args)
                runs[server.name].append(r)
                print(f"# {cell} {server.name}: {r.rps:.0f} req/s p50 {r.p50_ms:.2f} ms "
                      f"p99 {r.p99_ms:.2f} ms, {r.cpu_us:.0f} CPU us/req",
                      file=sys.stderr, flush=True)
        results[cell] = {name: median_run(server_runs) for name, server_runs in runs.items()}
        if rounds is not None:
            rounds[cell] = runs
    return results


def paired_ratios(runs: dict[str, list[WrkResult]], name: str) -> list[float]:
    """``name``'s requests/s over the baseline's in each round: the two runs of a round are
    back to back, so a slow spell of the machine that spans both cancels out of their ratio."""
    return [ours.rps / base.rps for ours, base in zip(runs[name], runs[BASELINE], strict=True)]


def report_architectures(servers: list[Server]) -> None:
    """Print each core server's ``/info`` architecture counters (calls run inline and in the
    thread pool, batches...), so a run shows how the requests were served."""
    for server in servers:
        if server.app != "core.app:app":
            continue
        with urllib.request.urlopen(server.url + "/info", timeout=10) as response:
            architecture = json.loads(response.read())["architecture"]
        print(f"# {server.name} /info architecture: {json.dumps(architecture)}", file=sys.stderr)


# ---------------------------------------------------------------------- report


def table(results: dict[Cell, dict[str, WrkResult]], name: str,
          rounds: dict[Cell, dict[str, list[WrkResult]]] | None = None) -> tuple[str, bool]:
    """The markdown table of one core-like server against the baseline, and whether every
    cell met the target (on requests/s, the ratio of the two median runs). With ``rounds``,
    a column gives the median of the per-round ratios (:func:`paired_ratios`), lowest-highest."""
    paired = rounds is not None
    lines = [
        f"| cell | {name} req/s | baseline req/s | ratio | {name} p50 / p99 ms "
        f"| baseline p50 / p99 ms | {name} / baseline CPU us/req | CPU ratio "
        + ("| paired ratio (range) " if paired else "")
        + f"| ratio >= {TARGET_RATIO} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if paired else "") + ":---:|",
    ]
    all_ok = True
    for cell, by_server in results.items():
        ours, base = by_server[name], by_server[BASELINE]
        ratio = ours.rps / base.rps
        ok = ratio >= TARGET_RATIO
        all_ok &= ok
        lines.append(
            f"| {cell} | {ours.rps:,.0f} | {base.rps:,.0f} | {ratio:.2f} "
            f"| {ours.p50_ms:.2f} / {ours.p99_ms:.2f} | {base.p50_ms:.2f} / {base.p99_ms:.2f} "
            f"| {ours.cpu_us:.0f} / {base.cpu_us:.0f} | {base.cpu_us / ours.cpu_us:.2f} "
            + (_paired_cell(paired_ratios(rounds[cell], name)) if rounds is not None else "")
            + f"| {'yes' if ok else '**no**'} |"
        )
    return "\n".join(lines), all_ok


def _paired_cell(ratios: list[float]) -> str:
    return f"| {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) "


def to_json(results: dict[Cell, dict[str, WrkResult]], args: argparse.Namespace,
            rounds: dict[Cell, dict[str, list[WrkResult]]] | None = None) -> dict[str, Any]:
    """The run as JSON: each server's median run by cell; with ``rounds``, every run too
    (``rounds``: the server's runs in turn order, requests/s and CPU time per request each)."""
    return {
        "seconds": args.seconds,
        "repeat": args.repeat,
        "cells": [
            {"connections": cell.connections, "rows": cell.rows,
             **{name: vars(r) for name, r in by_server.items()},
             **({"rounds": {name: [{"rps": r.rps, "cpu_us": r.cpu_us} for r in runs]
                            for name, runs in rounds[cell].items()}} if rounds is not None else {})}
            for cell, by_server in results.items()
        ],
    }


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs, {model}, Python {sys.version.split()[0]}"


# ---------------------------------------------------------------------- command line


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    name, sep, toml_text = text.partition("=")
    if not sep or not name or name in (BASELINE, "core"):
        raise argparse.ArgumentTypeError(f"--variant wants NAME='TOML keys', got {text!r}")
    try:
        return name, tomllib.loads(toml_text.replace(";", "\n"))
    except tomllib.TOMLDecodeError as error:
        raise argparse.ArgumentTypeError(f"--variant {name}: bad TOML: {error}") from None


def parse_revision(text: str) -> tuple[str, str]:
    name, sep, revision = text.partition("=")
    if not sep or not name or not revision or name in (BASELINE, "core"):
        raise argparse.ArgumentTypeError(f"--revision wants NAME=REV, got {text!r}")
    return name, revision


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of each measurement (whole seconds, at least 1)")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="warm-up seconds per server and body")
    parser.add_argument("--quick", action="store_true", help="3 s measurements, 1 s warm-up")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (median kept)")
    parser.add_argument("--servers", nargs="+",
                        help="servers to run (default: baseline, core, every variant)")
    parser.add_argument("--variant", action="append", type=parse_variant, default=[],
                        metavar="NAME='KEY = VALUE; ...'",
                        help="a core server with extra config keys (TOML; ';' separates keys)")
    parser.add_argument("--revision", action="append", type=parse_revision, default=[],
                        metavar="NAME=REV",
                        help="a core server running the code of git revision REV (e.g. before=HEAD~1)")
    parser.add_argument("--http-server", choices=HTTP_SERVERS, default="hypercorn",
                        help="the HTTP server every app runs under, the baseline too (default hypercorn)")
    parser.add_argument("--server-cpu", default="0", help="taskset CPU list for the servers")
    parser.add_argument("--client-cpu", default="1", help="taskset CPU list for wrk")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--no-fail", action="store_true",
                        help="exit 0 even if a cell misses the target")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup = 3.0, 1.0
    args.variants = dict(args.variant)
    args.revisions = dict(args.revision)
    args.servers = args.servers or [BASELINE, "core", *args.variants, *args.revisions]
    if BASELINE not in args.servers:
        parser.error("--servers must include baseline: every server is compared with it")
    return args


def preflight() -> None:
    for tool in (WRK, "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install wrk util-linux)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preflight()
    workdir = Path(tempfile.mkdtemp(prefix="core-http-bench-"))
    try:
        model = http_bench_model(workdir)
        servers = make_servers(args.servers, args.variants, args.revisions, model, workdir)
        for server in servers:
            server.http_server = args.http_server
        scripts = {rows: write_wrk_script(workdir, rows) for rows in ROWS}
        with running(servers, args.server_cpu, workdir):
            for rows in ROWS:
                check_answers(servers, rows)
            warm_up(servers, scripts, args)
            rounds: dict[Cell, dict[str, list[WrkResult]]] = {}
            results = run_cells(servers, scripts, args, rounds)
            report_architectures(servers)
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"# kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n{machine()}; under {args.http_server}; servers on CPU {args.server_cpu}, "
          f"wrk on CPU {args.client_cpu}; "
          f"{args.seconds:g} s per measurement, median of {args.repeat}\n")
    all_ok = True
    for server in servers:
        if not server.is_baseline:
            text, ok = table(results, server.name, rounds)
            all_ok &= ok
            print(text + "\n")
    if args.json:
        args.json.write_text(json.dumps(to_json(results, args, rounds), indent=2) + "\n")
    return 0 if all_ok or args.no_fail else 1


if __name__ == "__main__":
    sys.exit(main())
