"""Ray Serve against hypercorn: 1 and 2 hypercorn workers, 1 and 2 Ray Serve replicas, one run.

Every server serves the 20-feature ONNX model of :mod:`bench.http_bench` (its config,
``intra_op_num_threads = 1``) on the same CPUs (``--server-cpu``), ``wrk`` on
``--client-cpu``; both default to every CPU of a 2-CPU machine (``0-1``): Ray's half-dozen
processes (GCS, raylet, controller, proxy, replicas) on one pinned core leave its proxy so
starved that wrk's requests time out. The servers run one at a time (two local
Rays do not start side by side on one machine), each measured on every cell (16 and 64
connections x 1 and 100 rows a request):

- ``hypercorn-1``, ``hypercorn-2``: ``hypercorn --workers N core.app:app``;
- ``ray-1``, ``ray-2``: ``core ray CONFIG`` (``core-serve-ray``) with ``[ray] num_replicas = N``:
  a local Ray started by the command, its HTTP proxy in front of N replicas.

    python -m bench.ray_bench              # 5 s a measurement
    python -m bench.ray_bench --quick      # 2 s a measurement

Prints requests/s, p50/p99 latency and CPU time per request of each server (all the
processes of its session, from /proc: for Ray, the replicas, its proxy, controller, raylet and
GCS), then Ray's overhead against hypercorn as ratios: requests/s of ray-N over hypercorn-N,
and CPU per request of ray-N over hypercorn-N. The CPU ratio is the steadier figure on a busy
machine. Requests that wrk gave up on (no answer within its 2 s) are counted in the table,
not treated as a failure; exits 2 if a server misbehaves (non-2xx answers, connection
errors, failed start).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.http_bench import (  # noqa: E402
    CORE_PLUGINS,
    BenchError,
    Cell,
    Server,
    WrkResult,
    fail,
    hypercorn_command,
    machine,
    median_run,
    post,
    preflight,
    python_path,
    request_body,
    run_wrk,
    same_result,
    server_cpu_seconds,
    start,
    stop,
    write_core_config,
    write_wrk_script,
)
from bench.models import http_bench_model  # noqa: E402

CONNECTIONS = (16, 64)
ROWS = (1, 100)
SERVERS = ("hypercorn-1", "hypercorn-2", "ray-1", "ray-2")


@dataclass
class BenchServer(Server):
    """A server of this benchmark: where its log goes."""

    log_dir: Path = Path()


@dataclass
class WorkersServer(BenchServer):
    """``hypercorn --workers N core.app:app``."""

    workers: int = 1

    def command(self, cpu: str) -> list[str]:
        return ["taskset", "-c", cpu, *hypercorn_command(), self.app, "--workers", str(self.workers),
                "--bind", f"127.0.0.1:{self.port}"]


@dataclass
class RayServer(BenchServer):
    """``core ray CONFIG --port PORT``: stopped with SIGTERM to the command alone (it stops
    Serve and its local Ray), then whatever is left of its session is killed."""

    config: Path | None = None

    def command(self, cpu: str) -> list[str]:
        core = Path(sys.executable).with_name("core")
        return ["taskset", "-c", cpu, str(core), "ray", str(self.config), "--host", "127.0.0.1",
                "--port", str(self.port)]


def stop_ray(server: Server) -> None:
    if server.process is None or server.process.poll() is not None:
        return
    server.process.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.process.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)  # Ray's processes are in its session
    server.process.wait()


def wait_serving(server: Server, timeout: float = 180.0) -> None:
    """Until ``core ray`` printed that every replica is up (``/health`` answers once one is)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.log_path is not None and server.process is not None
        if "core: serving" in server.log_path.read_text(errors="replace"):
            return
        if server.process.poll() is not None:
            fail(server, f"exited with code {server.process.returncode}")
        time.sleep(0.2)
    fail(server, f"did not print 'core: serving' within {timeout:.0f}s")


@contextlib.contextmanager
def running(servers: list[Server], cpu: str, workdir: Path) -> Iterator[list[Server]]:
    """:func:`bench.http_bench.running`, with Ray's servers stopped by :func:`stop_ray` and
    waited for until every replica is up."""
    try:
        for server in servers:
            start(server, cpu, workdir, timeout=180.0)
            if isinstance(server, RayServer):
                wait_serving(server)
            print(f"# {server.name}: {' '.join(server.command(cpu))}", file=sys.stderr)
        yield servers
    finally:
        for server in servers:
            stop_ray(server) if isinstance(server, RayServer) else stop(server)


def make_servers(names: list[str], model: Path, workdir: Path) -> list[BenchServer]:
    servers: list[BenchServer] = []
    for name in names:
        kind, _, count = name.partition("-")
        env = {**os.environ, "PYTHONPATH": python_path(), "CORE_LOAD_PLUGINS": ",".join(CORE_PLUGINS)}
        config = write_core_config(workdir / f"{name}.toml", model, {})
        if kind == "hypercorn":
            env["CORE_CONFIG"] = str(config)
            servers.append(WorkersServer(name, "core.app:app", env, log_dir=workdir, workers=int(count)))
        else:
            # One CPU a replica would not fit on a pinned core: half a CPU each. Ray's access
            # log is off, as hypercorn's is (and core's at log_level WARNING). A replica takes
            # every connection's request at once, as a hypercorn worker does (Ray's default,
            # 5 at once, leaves the others waiting in the proxy, which then retries them).
            config.write_text(config.read_text() + f"\n[ray]\nnum_replicas = {int(count)}\n"
                              "ray_actor_options = { num_cpus = 0.5 }\nmax_ongoing_requests = 128\n"
                              'logging_config = { enable_access_log = false, log_level = "WARNING" }\n')
            env["CORE_LOAD_PLUGINS"] += ",serve_ray"
            servers.append(RayServer(name, "", env, log_dir=workdir, config=config))
    return servers


def measure(server: Server, cell: Cell, script: Path, args: argparse.Namespace) -> WrkResult:
    """:func:`bench.http_bench.measure`, but requests wrk gave up on are kept in the result
    (``socket_errors["timeout"]``) rather than failing the run: an overloaded proxy is a
    figure here."""
    cpu_before = server_cpu_seconds(server)
    result = run_wrk(server.url + "/predict", script, cell.connections, args.seconds, args.client_cpu)
    result.cpu_us = (server_cpu_seconds(server) - cpu_before) / max(result.requests, 1) * 1e6
    errors = {kind: n for kind, n in result.socket_errors.items() if kind != "timeout" and n}
    if result.non_2xx or errors or not result.requests:
        fail(server, f"{cell}: {result.non_2xx} non-2xx of {result.requests}, socket errors {errors}")
    return result


def run_server(server: BenchServer, scripts: dict[int, Path], args: argparse.Namespace,
               reference: dict[int, object]) -> dict[Cell, WrkResult]:
    """Start ``server`` alone, check its answers against the first server's, warm it up,
    measure every cell, stop it. One server at a time: two local Rays on one machine do not
    start side by side, and each server then has the CPUs to itself."""
    results: dict[Cell, WrkResult] = {}
    with running([server], args.server_cpu, server.log_dir):
        for rows in ROWS:
            status, payload = post(server.url + "/predict", request_body(rows))
            if status != 200:
                fail(server, f"POST /predict answered {status}: {payload[:300]!r}")
            answer = json.loads(payload)["predict_result"]
            if not same_result(answer, reference.setdefault(rows, answer)):
                raise BenchError(f"{server.name} answers {rows} rows otherwise than the first server")
        for script in scripts.values():
            run_wrk(server.url + "/predict", script, max(CONNECTIONS), args.warmup, args.client_cpu)
        for rows in ROWS:
            for connections in CONNECTIONS:
                cell = Cell(connections, rows)
                runs = [measure(server, cell, scripts[rows], args) for _ in range(args.repeat)]
                results[cell] = median_run(runs)
                print(f"# {server.name} {cell}: {results[cell].rps:,.0f} req/s, "
                      f"{results[cell].cpu_us:,.0f} us CPU a request", file=sys.stderr)
    return results


def table(results: dict[Cell, dict[str, WrkResult]], names: list[str]) -> str:
    lines = ["| cell | " + " | ".join(f"{n} req/s (p50/p99 ms) | {n} CPU us/req" for n in names) + " |",
             "|---|" + "---|---|" * len(names)]
    for cell, by_server in results.items():
        row = [f"{by_server[n].rps:,.0f} ({by_server[n].p50_ms:.1f}/{by_server[n].p99_ms:.1f})"
               f"{_timeouts(by_server[n])} | {by_server[n].cpu_us:,.0f}" for n in names]
        lines.append(f"| {cell} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def _timeouts(result: WrkResult) -> str:
    count = result.socket_errors.get("timeout", 0)
    return f", {count} timed out" if count else ""


def overhead(results: dict[Cell, dict[str, WrkResult]], names: list[str]) -> str:
    """Ray against hypercorn with as many processes: ``ray-N / hypercorn-N``."""
    pairs = [(f"ray-{n}", f"hypercorn-{n}") for n in (1, 2) if f"ray-{n}" in names
             and f"hypercorn-{n}" in names]
    lines = ["| cell | " + " | ".join(f"{r}/{h} req/s | {r}/{h} CPU per req" for r, h in pairs) + " |",
             "|---|" + "---|---|" * len(pairs)]
    for cell, by in results.items():
        row = [f"{by[r].rps / by[h].rps:.2f} | {by[r].cpu_us / by[h].cpu_us:.2f}" for r, h in pairs]
        lines.append(f"| {cell} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per server and body")
    parser.add_argument("--quick", action="store_true", help="2 s measurements, 1 s warm-up")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (median kept)")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--server-cpu", default="0-1", help="taskset CPU list for the servers")
    parser.add_argument("--client-cpu", default="0-1", help="taskset CPU list for wrk")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup = 2.0, 1.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preflight()
    workdir = Path(tempfile.mkdtemp(prefix="core-ray-bench-"))
    try:
        model = http_bench_model(workdir)
        servers = make_servers(args.servers, model, workdir)
        scripts = {rows: write_wrk_script(workdir, rows) for rows in ROWS}
        reference: dict[int, object] = {}
        by_server = {server.name: run_server(server, scripts, args, reference) for server in servers}
        results = {cell: {name: by_server[name][cell] for name in by_server} for cell in by_server[servers[0].name]}
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    names = [s.name for s in servers]
    print(f"\n{machine()}; servers on CPU {args.server_cpu}, wrk on CPU {args.client_cpu}; "
          f"{args.seconds:g} s per measurement, median of {args.repeat}\n")
    print(table(results, names) + "\n")
    print("Ray Serve's overhead (ray-N / hypercorn-N; req/s below 1 and CPU above 1 are its cost):\n")
    print(overhead(results, names) + "\n")
    if args.json:
        args.json.write_text(json.dumps({str(c): {n: vars(r) for n, r in by.items()}
                                         for c, by in results.items()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
