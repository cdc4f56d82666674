"""Architecture benchmark: ``batching`` and ``worker_and_queue`` against ``directly_to_predict``.

Reuses :mod:`bench.http_bench` (servers pinned to one core, ``wrk`` to another, same config
but ``mode``) and :mod:`bench.models`. Three checks, from issue #3:

1. the 64 -> 1024 -> 1024 -> 10 ONNX MLP, 64 connections of 1-row requests: ``batching``
   reaches >= 3x the throughput of ``directly_to_predict``, with p99 under
   ``max_batch_wait`` + 3 batch compute times (a 64-row call, timed in-process);
2. the same model at 1 connection: ``batching`` adds <= ``max_batch_wait`` + 1 ms to p50;
3. the 20-feature model at 16 connections: ``worker_and_queue`` reaches >= 90% of
   ``directly_to_predict``'s throughput.

    python -m bench.batching_bench            # 8 s a measurement
    python -m bench.batching_bench --quick    # 3 s a measurement

Two references run beside them on the same MLP: the minimal Starlette app of
:mod:`bench.baseline_app` (what one core does with no serving overhead), and the same app with
``BASELINE_SKIP_MODEL=1``, which answers without calling the model at all. No architecture can
beat the second (it still has to parse each request and answer it), so its throughput over
``directly_to_predict``'s is the ceiling of check 1 on this machine, and its p99 at 64
connections the floor of check 2.

Prints a markdown table; exits 1 if a check fails (``--no-fail`` to exit 0 anyway).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.http_bench import (  # noqa: E402
    Cell,
    Server,
    WrkResult,
    check_answers,
    make_servers,
    median_run,
    report_architectures,
    run_wrk,
    running,
)
from bench.http_bench import measure as http_measure  # noqa: E402
from bench.models import http_bench_model, large_mlp_model, sample_rows  # noqa: E402

MAX_BATCH_WAIT_MS = 10.0
BATCHING = {"mode": "batching", "max_batch_size": 64, "max_batch_wait": MAX_BATCH_WAIT_MS}
#: The same with ``max_batch_wait = 0`` (the default): a batch starts as soon as a worker is
#: free, holding whatever arrived while the previous one ran (no timer). The checks of issue #3
#: are stated for the 10 ms wait above.
BATCHING_NOW = {**BATCHING, "max_batch_wait": 0}
WORKER_AND_QUEUE = {"mode": "worker_and_queue"}


def write_script(workdir: Path, rows: int, n_features: int) -> Path:
    """A wrk Lua script POSTing ``rows`` rows of ``n_features`` features."""
    body = workdir / f"body_{rows}x{n_features}.json"
    body.write_text(json.dumps({"X": sample_rows(rows, n_features)}, separators=(",", ":")))
    script = workdir / f"post_{rows}x{n_features}.lua"
    script.write_text(
        f'local file = assert(io.open("{body}", "rb"))\nwrk.body = file:read("*a")\n'
        'file:close()\nwrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
    )
    return script


def batch_compute_ms(model: Path, rows: int, n_features: int, repeat: int = 200) -> float:
    """Median time of one ``rows``-row call of the session, in-process, one thread."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    x = np.asarray(sample_rows(rows, n_features), dtype=np.float32)
    for _ in range(20):
        session.run(None, {"X": x})
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        session.run(None, {"X": x})
        times.append(time.perf_counter() - started)
    times.sort()
    return times[len(times) // 2] * 1e3


def measure(servers: list[Server], script: Path, connections: int,
            args: argparse.Namespace) -> dict[str, WrkResult]:
    """Each server in turn (a short warm-up first), order reversed on every repeat."""
    results: dict[str, list[WrkResult]] = {s.name: [] for s in servers}
    for index in range(args.repeat):
        order = servers if index % 2 == 0 else servers[::-1]
        for server in order:
            run_wrk(server.url + "/predict", script, connections, 1, args.client_cpu)
            results[server.name].append(
                http_measure(server, Cell(connections, 1), script, args)
            )
    return {name: median_run(runs) for name, runs in results.items()}


def row(name: str, cell: str, result: WrkResult) -> str:
    return (f"| {cell} | {name} | {result.rps:,.0f} | {result.p50_ms:.2f} | "
            f"{result.p99_ms:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="3 s a measurement")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--no-fail", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 3.0

    lines = ["| cell | server | requests/s | p50 ms | p99 ms |", "|---|---|---:|---:|---:|"]
    checks: list[tuple[str, bool, str]] = []
    with tempfile.TemporaryDirectory(prefix="core-batching-bench-") as tmp:
        workdir = Path(tmp)
        large = large_mlp_model(workdir / "models")
        small = http_bench_model(workdir / "models")
        compute_64 = batch_compute_ms(large, 64, 64)
        compute_1 = batch_compute_ms(large, 1, 64)

        servers = make_servers(["baseline", "core", "batching", "batching_now"],
                               {"batching": BATCHING, "batching_now": BATCHING_NOW}, {}, large,
                               workdir)
        no_model = make_servers(["baseline"], {}, {}, large, workdir)[0]
        no_model.name = "no_model"
        no_model.env["BASELINE_SKIP_MODEL"] = "1"
        servers.insert(1, no_model)
        script = write_script(workdir, 1, 64)
        with running(servers, args.server_cpu, workdir):
            check_answers_64([server for server in servers if server is not no_model])
            many = measure(servers, script, 64, args)
            one = measure(servers, script, 1, args)
            report_architectures(servers)
        direct, batching = many["core"], many["batching"]
        labels = (("baseline", "minimal Starlette app (reference)"),
                  ("no_model", "minimal app, model not called (ceiling)"),
                  ("core", "directly_to_predict"), ("batching", "batching, max_batch_wait = 10"),
                  ("batching_now", "batching, max_batch_wait = 0 (default)"))
        for name, label in labels:
            lines.append(row(label, "MLP 64-1024-1024, c=64, 1 row", many[name]))
        for name, label in labels:
            lines.append(row(label, "MLP 64-1024-1024, c=1, 1 row", one[name]))
        ceiling = many["no_model"].rps / direct.rps
        floor_p99 = many["no_model"].p99_ms
        ratio = batching.rps / direct.rps
        checks.append(("batching >= 3x direct throughput at c=64", ratio >= 3.0, f"{ratio:.2f}x"))
        p99_bound = MAX_BATCH_WAIT_MS + 3 * compute_64
        checks.append((f"batching p99 < max_batch_wait + 3 x 64-row compute ({p99_bound:.1f} ms)",
                       batching.p99_ms < p99_bound, f"{batching.p99_ms:.2f} ms"))
        added = one["batching"].p50_ms - one["core"].p50_ms
        checks.append((f"batching p50 at c=1 adds <= max_batch_wait + 1 ms "
                       f"({MAX_BATCH_WAIT_MS + 1:.0f} ms)", added <= MAX_BATCH_WAIT_MS + 1,
                       f"+{added:.2f} ms"))

        servers = make_servers(["core", "worker_and_queue"], {"worker_and_queue": WORKER_AND_QUEUE},
                               {}, small, workdir)
        script = write_script(workdir, 1, 20)
        with running(servers, args.server_cpu, workdir):
            check_answers(servers, 1)
            sixteen = measure(servers, script, 16, args)
        for name, label in (("core", "directly_to_predict"), ("worker_and_queue", "worker_and_queue")):
            lines.append(row(label, "MLP 20-32-3, c=16, 1 row", sixteen[name]))
        ratio = sixteen["worker_and_queue"].rps / sixteen["core"].rps
        checks.append(("worker_and_queue >= 0.9x direct throughput at c=16", ratio >= 0.9,
                       f"{ratio:.2f}x"))

    print("\n".join(lines))
    print(f"\nIn-process compute of the 64-1024-1024 MLP (1 thread): 1 row {compute_1:.2f} ms, "
          f"64 rows {compute_64:.2f} ms. max_batch_wait = {MAX_BATCH_WAIT_MS:g} ms; "
          f"{args.seconds:g} s a measurement, median of {args.repeat}.\n")
    print(f"Ceiling on this machine: the minimal app answering without calling the model serves "
          f"{ceiling:.2f}x directly_to_predict's requests/s at c=64, with p99 {floor_p99:.2f} ms; "
          f"no architecture can do better than that.\n")
    print("| check | result | pass |\n|---|---:|:-:|")
    for name, passed, value in checks:
        print(f"| {name} | {value} | {'yes' if passed else 'NO'} |")
    failed = [name for name, passed, _ in checks if not passed]
    return 1 if failed and not args.no_fail else 0


def check_answers_64(servers: list[Server]) -> None:
    """Both servers answer a 64-feature request alike (check_answers writes 20 features)."""
    from bench.http_bench import BenchError, fail, post, same_result

    body = json.dumps({"X": sample_rows(3, 64)}).encode()
    answers: dict[str, Any] = {}
    for server in servers:
        status, payload = post(server.url + "/predict", body)
        if status != 200:
            fail(server, f"POST /predict answered {status}: {payload[:300]!r}")
        answers[server.name] = json.loads(payload)["predict_result"]
    first, *others = answers.values()
    if not all(same_result(first, other) for other in others):
        raise BenchError(f"the servers disagree: {answers}")


if __name__ == "__main__":
    sys.exit(main())
