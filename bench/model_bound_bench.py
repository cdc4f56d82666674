"""Model-bound batching benchmark: core's ``batching`` against ``directly_to_predict`` and
against LitServe, BentoML and MLServer with their own batching, in one run (issue 16).

The model is :func:`bench.models.model_bound_mlp_model`, 64 -> 4096 -> 4096 -> 10: its
64 MB of weights do not fit in the CPU's caches, so a 1-row call costs several ms (every
weight read from memory) while a 64-row call reads them once for all rows. Servers:

* ``no_model``: ``bench.baseline_app`` with ``BASELINE_SKIP_MODEL=1``, answering without
  calling the model: what serving costs on this core (the ceiling of every architecture);
* ``direct`` and ``batching``: ``hypercorn core.app:app``, the benchmark config of
  :mod:`bench.http_bench` but ``mode`` (``batching``: ``max_batch_size`` 64,
  ``max_batch_wait`` 2 ms, one batch worker);
* ``litserve``, ``bentoml``, ``mlserver``: the apps of ``bench/peers/`` in their own venvs
  (``python -m bench.peers.make_venvs`` first), batching on, ``max_batch_size`` 64, a 2 ms
  batch wait for LitServe and MLServer, BentoML's adaptive window.

Every server runs the same ONNX file with one onnxruntime intra-op thread and the same CPU set
(``--server-cpu``, default CPU 0: the whole server, its processes, threads and batcher, on
one core); ``wrk`` runs on ``--client-cpu`` (1). While one server is measured the others are
stopped (SIGSTOP), so their idle timers and pollers do not take its core. Each server gets its
natural request body with the same row (core and the baseline ``{"X": [[...]]}``, LitServe and
BentoML the same JSON, MLServer a V2 inference request) and their answers are checked equal
before anything is measured. Rounds: in each, every cell (1, 16, 64 connections, 1-row
requests) measures every server in turn (1 s warm-up, then ``--seconds``), the order rotating
from round to round; each figure is the server's median round. Then the HTTP-bound check: the
same with the small 64-1024-1024 MLP at 64 connections (``no_model``, ``direct``,
``batching``).

    python -m bench.peers.make_venvs                 # once: the peers' venvs (bench/.venvs/)
    python -m bench.model_bound_bench                # recorded run, ~9 minutes
    python -m bench.model_bound_bench --quick        # 2 s a measurement, 1 round, ~2 minutes

Prints markdown tables (requests/s, p50, p99, server CPU time per request) and the targets of
issue 16 with their ratios; exits 1 if a target is missed (``--no-fail`` to exit 0 anyway),
2 if a server misbehaves. ``--peers`` picks peers (``--peers`` alone: none).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.batching_bench import batch_compute_ms  # noqa: E402
from bench.http_bench import (  # noqa: E402
    BenchError,
    Cell,
    Server,
    WrkResult,
    fail,
    free_port,
    machine,
    make_servers,
    median_run,
    post,
    preflight,
    python_path,
    report_architectures,
    run_wrk,
    running,
    same_result,
    server_pids,
)
from bench.http_bench import measure as wrk_measure  # noqa: E402
from bench.models import large_mlp_model, model_bound_mlp_model, sample_rows  # noqa: E402
from bench.peers.make_venvs import PEER_PACKAGES, venv_python  # noqa: E402

N_FEATURES = 64
CONNECTIONS = (1, 16, 64)
MAX_BATCH_SIZE = 64
#: core's ``max_batch_wait`` (ms). Its default, 0 (a batch starts as soon as the worker is free
#: with whatever arrived meanwhile), is best where a call is cheap (bench/README.md,
#: "Architectures"); here a 64-row call takes ~25 ms and a 1-row one ~4 ms, so waiting 2 ms
#: for more rows costs little and fills batches (33 rows a batch at 64 connections against 24
#: with 0, 11 against 7 at 16). The peers wait the same 2 ms. ``--max-batch-wait`` changes it.
CORE_BATCH_WAIT_MS = 2.0
#: LitServe's ``batch_timeout`` and MLServer's ``max_batch_time`` (ms). Neither can do
#: without a wait: MLServer turns batching off at 0, LitServe at 0 polls its queue in a loop
#: that takes the shared core. BentoML's window is adaptive (``max_latency_ms`` is a bound).
PEER_BATCH_WAIT_MS = 2.0

#: The targets of issue 16.
TARGET_VS_DIRECT = 4.0
TARGET_VS_PEERS = 1.2
TARGET_VS_CEILING = 0.9
TARGET_ADDED_P50_MS = 0.5


# ---------------------------------------------------------------------- servers


@dataclass
class PeerServer(Server):
    """A server started by ``argv`` (``{port}`` filled in at start), with its own request
    body and a function that reads the probabilities out of its answer."""

    argv: list[str] = field(default_factory=list)
    body: bytes = b""
    probabilities: Callable[[Any], Any] = lambda answer: answer

    def command(self, cpu: str) -> list[str]:
        if not self.argv:  # core's and the baseline's app: hypercorn
            return super().command(cpu)
        return ["taskset", "-c", cpu, *(arg.format(port=self.port) for arg in self.argv)]


def core_body(rows: list[list[float]]) -> bytes:
    return json.dumps({"X": rows}, separators=(",", ":")).encode()


def v2_body(rows: list[list[float]]) -> bytes:
    """A V2 inference request (MLServer's) with the rows as one FP32 input ``X``."""
    tensor = {"name": "X", "shape": [len(rows), len(rows[0])], "datatype": "FP32",
              "data": [value for row in rows for value in row]}
    return json.dumps({"inputs": [tensor]}, separators=(",", ":")).encode()


def v2_probabilities(answer: dict[str, Any]) -> list[list[float]]:
    (output,) = [o for o in answer["outputs"] if o["name"] == "probabilities"]
    width = output["shape"][1]
    data = output["data"]
    return [data[i:i + width] for i in range(0, len(data), width)]


def core_servers(model: Path, workdir: Path, rows: list[list[float]], max_batch_wait: float,
                 suffix: str = "") -> list[PeerServer]:
    """``no_model``, ``direct`` and ``batching`` (core's and the baseline's apps)."""
    batching = {"mode": "batching", "max_batch_size": MAX_BATCH_SIZE,
                "max_batch_wait": max_batch_wait}
    found = make_servers(["baseline", "core", "batching"], {"batching": batching}, {}, model,
                         workdir)
    servers = []
    for name, server in zip(("no_model", "direct", "batching"), found, strict=True):
        if name == "no_model":
            server.env["BASELINE_SKIP_MODEL"] = "1"
        servers.append(PeerServer(
            name + suffix, server.app, server.env, body=core_body(rows),
            probabilities=lambda answer: answer["predict_result"]["probabilities"]))
    return servers


def peer_servers(names: list[str], model: Path, workdir: Path,
                 rows: list[list[float]]) -> list[PeerServer]:
    """The peers of ``bench/peers/``, each run by its own venv's Python."""
    env = {**os.environ, "PYTHONPATH": python_path(), "PEER_MODEL": str(model),
           "PEER_MAX_BATCH_SIZE": str(MAX_BATCH_SIZE), "PEER_BATCH_WAIT_MS": str(PEER_BATCH_WAIT_MS),
           "OMP_NUM_THREADS": "1"}
    servers = []
    for name in names:
        python = venv_python(name)
        if not python.exists():
            raise SystemExit(f"no venv for {name}: run python -m bench.peers.make_venvs {name}")
        bin_dir = python.parent
        if name == "litserve":
            servers.append(PeerServer(
                name, "bench.peers.litserve_app", dict(env),
                argv=[str(python), "-m", "bench.peers.litserve_app", "{port}"],
                body=core_body(rows), probabilities=lambda a: [a["probabilities"]]))
        elif name == "bentoml":
            servers.append(PeerServer(
                name, "bench.peers.bentoml_app:MLP",
                {**env, "BENTOML_HOME": str(workdir / "bentoml-home"),
                 "BENTOML_DO_NOT_TRACK": "true"},
                argv=[str(bin_dir / "bentoml"), "serve", "bench.peers.bentoml_app:MLP",
                      "--host", "127.0.0.1", "--port", "{port}"],
                health_path="/readyz", body=core_body(rows)))
        elif name == "mlserver":
            folder = write_mlserver_settings(workdir / "mlserver", model)
            servers.append(PeerServer(
                name, "bench.peers.mlserver_runtime:MLPRuntime", dict(env),
                argv=["env", "MLSERVER_HTTP_PORT={port}", f"MLSERVER_GRPC_PORT={free_port()}",
                      f"MLSERVER_METRICS_PORT={free_port()}", str(bin_dir / "mlserver"), "start",
                      str(folder)],
                health_path="/v2/health/ready", predict_path="/v2/models/mlp/infer",
                body=v2_body(rows), probabilities=v2_probabilities))
    return servers


def write_mlserver_settings(folder: Path, model: Path) -> Path:
    """``settings.json`` (server: one process, the model in the main one) and
    ``model-settings.json`` (the runtime, adaptive batching, the ONNX file)."""
    folder.mkdir(parents=True, exist_ok=True)
    server = {"host": "127.0.0.1", "parallel_workers": 0, "debug": False,
              "load_models_at_startup": True}
    settings = {"name": "mlp", "implementation": "bench.peers.mlserver_runtime.MLPRuntime",
                "max_batch_size": MAX_BATCH_SIZE, "max_batch_time": PEER_BATCH_WAIT_MS / 1000,
                "parameters": {"uri": str(model)}}
    (folder / "settings.json").write_text(json.dumps(server, indent=2))
    (folder / "model-settings.json").write_text(json.dumps(settings, indent=2))
    return folder


# ---------------------------------------------------------------------- measuring


@contextlib.contextmanager
def paused(servers: list[PeerServer]) -> Iterator[None]:
    """``servers`` stopped (SIGSTOP to each of their processes) for the block's duration."""
    stopped = [pid for server in servers for pid in server_pids(server)]
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def check_answers(servers: list[PeerServer]) -> None:
    """Every server answers its body 200 with the probabilities of the first one."""
    answers = {}
    for server in servers:
        status, payload = post(server.url + server.predict_path, server.body)
        if status != 200:
            fail(server, f"POST {server.predict_path} answered {status}: {payload[:500]!r}")
        answers[server.name] = server.probabilities(json.loads(payload))
    (first, reference), *others = answers.items()
    for name, answer in others:
        if not same_result(answer, reference):
            raise BenchError(f"{name} and {first} disagree:\n{name}: {str(answer)[:300]}\n"
                             f"{first}: {str(reference)[:300]}")


def batch_counts(server: PeerServer) -> tuple[int, int]:
    """``(batches, batched_rows)`` so far of a core ``batching`` server (``/info``), else 0s."""
    if server.app != "core.app:app":
        return 0, 0
    status, payload = get(server.url + "/info")
    architecture = json.loads(payload)["architecture"] if status == 200 else {}
    return int(architecture.get("batches", 0)), int(architecture.get("batched_rows", 0))


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def write_script(workdir: Path, server: PeerServer) -> Path:
    body = workdir / f"body-{server.name}.json"
    body.write_bytes(server.body)
    script = workdir / f"post-{server.name}.lua"
    script.write_text(
        f'local file = assert(io.open("{body}", "rb"))\nwrk.body = file:read("*a")\n'
        'file:close()\nwrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
    )
    return script


#: Rows a batch of core's ``batching`` in each measurement: (server, connections, round).
ROWS_PER_BATCH: dict[tuple[str, int, int], float] = {}


def measure_rounds(servers: list[PeerServer], connections: tuple[int, ...], workdir: Path,
                   args: argparse.Namespace) -> dict[int, dict[str, WrkResult]]:
    """``--rounds`` rounds of every cell and server (order rotating), the others paused."""
    scripts = {server.name: write_script(workdir, server) for server in servers}
    runs: dict[int, dict[str, list[WrkResult]]] = {
        c: {server.name: [] for server in servers} for c in connections}
    for round_index in range(args.rounds):
        shift = round_index % len(servers)
        order = servers[shift:] + servers[:shift]
        for c in connections:
            for server in order:
                others = [s for s in servers if s is not server]
                with paused(others):
                    run_wrk(server.url + server.predict_path, scripts[server.name], c, 1,
                            args.client_cpu, args.wrk_timeout)
                    batches, rows = batch_counts(server)
                    result = wrk_measure(server, Cell(c, 1), scripts[server.name], args)
                    batches_after, rows_after = batch_counts(server)
                if batches_after > batches:
                    ROWS_PER_BATCH[(server.name, c, round_index)] = (
                        (rows_after - rows) / (batches_after - batches))
                runs[c][server.name].append(result)
                print(f"# round {round_index + 1} c={c} {server.name}: {result.rps:.0f} req/s "
                      f"p50 {result.p50_ms:.2f} ms p99 {result.p99_ms:.2f} ms, "
                      f"{result.cpu_us:.0f} CPU us/req"
                      + (f", {ROWS_PER_BATCH[(server.name, c, round_index)]:.1f} rows a batch"
                         if batches_after > batches else ""), file=sys.stderr, flush=True)
    return {c: {name: median_run(found) for name, found in by_server.items()}
            for c, by_server in runs.items()}


# ---------------------------------------------------------------------- report


LABELS = {
    "no_model": "minimal app, model not called (ceiling)",
    "direct": "core directly_to_predict",
    "batching": f"core batching (max_batch_size {MAX_BATCH_SIZE}, max_batch_wait {{wait:g}})",
    "litserve": f"LitServe (max_batch_size {MAX_BATCH_SIZE}, batch_timeout "
                f"{PEER_BATCH_WAIT_MS / 1000:g})",
    "bentoml": f"BentoML (max_batch_size {MAX_BATCH_SIZE}, max_latency_ms 10000)",
    "mlserver": f"MLServer (max_batch_size {MAX_BATCH_SIZE}, max_batch_time "
                f"{PEER_BATCH_WAIT_MS / 1000:g})",
}


def rows_per_batch(name: str, connections: int) -> str:
    """Mean rows a batch over the rounds of a core ``batching`` server, "" for the others."""
    found = [v for (n, c, _), v in ROWS_PER_BATCH.items() if n == name and c == connections]
    return f"{sum(found) / len(found):.1f}" if found else ""


def table(title: str, results: dict[int, dict[str, WrkResult]], max_batch_wait: float) -> str:
    lines = [f"| {title} | server | requests/s | p50 ms | p99 ms | CPU us/req | rows/batch |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for c, by_server in results.items():
        for name, r in by_server.items():
            label = LABELS.get(name.removesuffix("_small"), name).format(wait=max_batch_wait)
            lines.append(f"| c={c} | {label} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
                         f"| {r.cpu_us:.0f} | {rows_per_batch(name, c)} |")
    return "\n".join(lines)


def targets(bound: dict[int, dict[str, WrkResult]], small: dict[int, dict[str, WrkResult]],
            peers: list[str], max_batch_wait: float,
            small_64: float) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each target of issue 16 whose part ran."""
    checks = []
    if bound:
        many = bound[64]
        batching, direct = many["batching"], many["direct"]
        ratio = batching.rps / direct.rps
        checks.append((f"model-bound, c=64: batching >= {TARGET_VS_DIRECT:g}x "
                       "directly_to_predict", f"{ratio:.2f}x (CPU/req {cpu_ratio(direct, batching)})",
                       ratio >= TARGET_VS_DIRECT))
        if peers:
            best = max(peers, key=lambda name: many[name].rps)
            ratio = batching.rps / many[best].rps
            checks.append((f"model-bound, c=64: batching >= {TARGET_VS_PEERS:g}x the best peer",
                           f"{ratio:.2f}x ({best}; CPU/req {cpu_ratio(many[best], batching)})",
                           ratio >= TARGET_VS_PEERS))
            for name in peers:
                checks.append((f"model-bound, c=64: batching p99 < {name}'s",
                               f"{batching.p99_ms:.2f} / {many[name].p99_ms:.2f} ms",
                               batching.p99_ms < many[name].p99_ms))
        added = bound[1]["batching"].p50_ms - bound[1]["direct"].p50_ms
        bound_ms = max_batch_wait + TARGET_ADDED_P50_MS
        checks.append((f"model-bound, c=1: batching adds <= max_batch_wait + "
                       f"{TARGET_ADDED_P50_MS:g} ms ({bound_ms:g} ms) to direct's p50",
                       f"{added:+.2f} ms", added <= bound_ms))
    if small:
        ratio = small[64]["batching_small"].rps / small[64]["no_model_small"].rps
        ceiling, batching = small[64]["no_model_small"], small[64]["batching_small"]
        checks.append((f"HTTP-bound (64-1024-1024), c=64: batching >= {TARGET_VS_CEILING:g}x "
                       "the no-model ceiling",
                       f"{ratio:.2f}x (CPU/req {cpu_ratio(ceiling, batching)})",
                       ratio >= TARGET_VS_CEILING))
        # Proposed instead (bench/README.md): the ceiling with the model's batched cost in.
        with_model = ceiling.cpu_us / (ceiling.cpu_us + small_64 * 1e3 / MAX_BATCH_SIZE)
        ratio = ceiling.cpu_us / batching.cpu_us / with_model
        checks.append((f"(proposed) HTTP-bound, c=64: batching's CPU/req >= {TARGET_VS_CEILING:g}x "
                       "of the ceiling with a 64-row call's cost a row added",
                       f"{ratio:.2f}x", ratio >= TARGET_VS_CEILING))
    return checks


def small_ceiling_note(small: dict[int, dict[str, WrkResult]], small_64: float) -> str:
    """Why the HTTP-bound target is out of reach: the model's batched cost alone."""
    serving = small[64]["no_model_small"].cpu_us
    per_row = small_64 * 1e3 / MAX_BATCH_SIZE
    return (
        f"64-1024-1024 in process: {MAX_BATCH_SIZE} rows {small_64:.2f} ms "
        f"({per_row:.0f} us a row). Serving without the model costs {serving:.0f} us of CPU "
        f"a request, so even a batching server with no overhead of its own, running only "
        f"full {MAX_BATCH_SIZE}-row batches, reaches at most {serving / (serving + per_row):.2f}x "
        f"of the no-model ceiling."
    )


def cpu_ratio(other: WrkResult, ours: WrkResult) -> str:
    """``other``'s CPU time per request over ours: the throughput ratio the two would have on
    a core of their own, which the machine's load moves less than requests/s."""
    return f"{other.cpu_us / ours.cpu_us:.2f}x" if ours.cpu_us else "n/a"


def ceiling_note(bound: dict[int, dict[str, WrkResult]], compute_1: float,
                 compute_64: float) -> str:
    """What batching could reach at best here: serving cost (the no-model server's CPU per
    request) plus a 64-row call's cost per row, against directly_to_predict's."""
    many = bound[64]
    serving_ms = many["no_model"].cpu_us / 1e3
    best = 1e3 / (serving_ms + compute_64 / MAX_BATCH_SIZE)
    direct = many["direct"]
    return (
        f"In-process onnxruntime call (1 thread): 1 row {compute_1:.2f} ms, {MAX_BATCH_SIZE} "
        f"rows {compute_64:.2f} ms ({compute_64 / MAX_BATCH_SIZE:.3f} ms a row). Serving "
        f"without the model costs {serving_ms:.3f} ms of CPU a request (no_model, c=64), so a "
        f"batching server on one core reaches at most ~{best:,.0f} requests/s "
        f"({best / direct.rps:.2f}x directly_to_predict's {direct.rps:,.0f})."
    )


# ---------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0,
                        help="length of each measurement (whole seconds)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of every measurement (the median is kept)")
    parser.add_argument("--quick", action="store_true", help="2 s measurements, 1 round")
    parser.add_argument("--peers", nargs="*", choices=list(PEER_PACKAGES),
                        default=list(PEER_PACKAGES), help="peers to run (default: all)")
    parser.add_argument("--wrk-timeout", type=float, default=10.0,
                        help="seconds before wrk gives a request up (counted as an error); "
                             "directly_to_predict queues 64 calls of several ms each")
    parser.add_argument("--max-batch-wait", type=float, default=CORE_BATCH_WAIT_MS,
                        help="core batching's max_batch_wait (ms)")
    parser.add_argument("--part", choices=("all", "model-bound", "http-bound"), default="all",
                        help="run one part only (its targets alone are checked)")
    parser.add_argument("--server-cpu", default="0", help="taskset CPU list for every server")
    parser.add_argument("--client-cpu", default="1", help="taskset CPU list for wrk")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--no-fail", action="store_true", help="exit 0 even if a target is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds = 2.0, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preflight()
    rows = sample_rows(1, N_FEATURES)
    workdir = Path(tempfile.mkdtemp(prefix="core-model-bound-bench-"))
    try:
        bound_model = model_bound_mlp_model(workdir / "models")
        small_model = large_mlp_model(workdir / "models")
        compute_1 = batch_compute_ms(bound_model, 1, N_FEATURES, repeat=50)
        compute_64 = batch_compute_ms(bound_model, MAX_BATCH_SIZE, N_FEATURES, repeat=20)
        small_64 = batch_compute_ms(small_model, MAX_BATCH_SIZE, N_FEATURES, repeat=50)

        bound: dict[int, dict[str, WrkResult]] = {}
        small: dict[int, dict[str, WrkResult]] = {}
        if args.part in ("all", "model-bound"):
            servers = [*core_servers(bound_model, workdir, rows, args.max_batch_wait),
                       *peer_servers(args.peers, bound_model, workdir, rows)]
            with running(servers, args.server_cpu, workdir):
                check_answers(servers[1:])  # no_model answers fixed outputs
                bound = measure_rounds(servers, CONNECTIONS, workdir, args)
                report_architectures(servers)
        if args.part in ("all", "http-bound"):
            small_servers = core_servers(small_model, workdir, rows, args.max_batch_wait,
                                         suffix="_small")
            with running(small_servers, args.server_cpu, workdir):
                check_answers(small_servers[1:])
                small = measure_rounds(small_servers, (64,), workdir, args)
                report_architectures(small_servers)
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n{machine()}; every server on CPU {args.server_cpu}, wrk on CPU "
          f"{args.client_cpu}; {args.seconds:g} s a measurement, median of {args.rounds} "
          f"round(s)\n")
    if bound:
        print(table("MLP 64-4096-4096, 1 row", bound, args.max_batch_wait) + "\n")
        print(ceiling_note(bound, compute_1, compute_64) + "\n")
    if small:
        print(table("MLP 64-1024-1024, 1 row", small, args.max_batch_wait) + "\n")
        print(small_ceiling_note(small, small_64) + "\n")
    checks = targets(bound, small, args.peers, args.max_batch_wait, small_64)
    print("| target (issue 16) | measured | met |\n|---|---:|:-:|")
    for name, value, met in checks:
        print(f"| {name} | {value} | {'yes' if met else 'no'} |")
    if args.json:
        figures = {"seconds": args.seconds, "rounds": args.rounds,
                   "compute_ms": {"1": compute_1, str(MAX_BATCH_SIZE): compute_64},
                   "model_bound": {c: {n: vars(r) for n, r in by.items()} for c, by in bound.items()},
                   "http_bound": {c: {n: vars(r) for n, r in by.items()} for c, by in small.items()}}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if all(met for _, _, met in checks) or args.no_fail else 1


if __name__ == "__main__":
    sys.exit(main())
