"""What a model format costs: the same small MLP served by core as TorchScript and as ONNX.

The MLP (20 features -> 32, ReLU -> 3, softmax; seeded) is built in torch, saved with
``torch.jit.script`` + ``torch.jit.save`` and exported with ``torch.onnx.export``. Two core
servers serve it side by side for the whole run, one with ``binarization_type =
"torchscript"`` (core-binarizer-torch, ``num_threads = 1``), one with ``"onnx"``
(core-binarizer-onnx, ``intra_op_num_threads = 1``), otherwise with :mod:`bench.http_bench`'s
config; both are pinned to one core and wrk to another, and they take turns cell by cell (the
first alternating), with :mod:`bench.http_bench`'s machinery (wrk, taskset, CPU time per
request from /proc). Before measuring, both must give the same probabilities for the same
rows.

    python -m bench.format_bench                 # 10 s a measurement
    python -m bench.format_bench --quick         # 3 s a measurement
    python -m bench.format_bench --repeat 3      # median of 3 runs per cell

Needs torch, core-binarizer-torch, core-binarizer-onnx, core-storage-disk, wrk and taskset.
The ONNX file comes from ``torch.onnx.export(..., dynamo=False)``, the TorchScript-based
exporter (deprecated in torch 2.9+, still there in 2.13), which needs no onnxscript.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # for `python bench/format_bench.py` too
    sys.path.insert(0, str(REPO))

from bench import http_bench as hb  # noqa: E402
from bench.models import SEED, sample_rows  # noqa: E402

CONNECTIONS = (1, 64)
ROWS = (1, 100)
FORMATS: dict[str, dict[str, Any]] = {
    "torchscript": {"binarization_type": "torchscript", "binarization_kwargs": {"num_threads": 1}},
    "onnx": {"binarization_type": "onnx", "binarization_kwargs": {"intra_op_num_threads": 1}},
}
PLUGINS = {"torchscript": "disk,torch", "onnx": "disk,onnx"}


def build_models(folder: Path) -> dict[str, Path]:
    """The MLP as ``mlp20.pt`` (TorchScript) and ``mlp20.onnx``."""
    import torch
    from torch import nn

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = nn.Linear(20, 32)
            self.out = nn.Linear(32, 3)

        def forward(self, X: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.out(torch.relu(self.hidden(X))), dim=1)

    torch.manual_seed(SEED)
    model = MLP().eval()
    example = torch.tensor(sample_rows(4), dtype=torch.float32)
    paths = {"torchscript": folder / "mlp20.pt", "onnx": folder / "mlp20.onnx"}
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript and this exporter
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), str(paths["torchscript"]))
        # dynamo=False: the TorchScript-based exporter, which needs no onnxscript
        torch.onnx.export(model, (example,), str(paths["onnx"]), input_names=["X"],
                          output_names=["probabilities"], dynamic_axes={"X": {0: "batch"}},
                          dynamo=False)
    return paths


def make_servers(models: dict[str, Path], workdir: Path) -> list[hb.Server]:
    servers = []
    for name, overrides in FORMATS.items():
        config = hb.write_core_config(workdir / f"{name}.toml", models[name],
                                      {**overrides, "name": f"mlp20-{name}"})
        env = {**os.environ, "PYTHONPATH": hb.python_path(), "CORE_CONFIG": str(config),
               "CORE_LOAD_PLUGINS": PLUGINS[name]}
        servers.append(hb.Server(name, "core.app:app", env))
    return servers


def probabilities(answer: Any) -> Any:
    """The ONNX server answers ``{"probabilities": [...]}``, the TorchScript one the list."""
    return answer["probabilities"] if isinstance(answer, dict) else answer


def check_answers(servers: list[hb.Server], rows: int) -> None:
    answers = {}
    for server in servers:
        status, payload = hb.post(server.url + "/predict", hb.request_body(rows))
        if status != 200:
            hb.fail(server, f"POST /predict answered {status}: {payload[:500]!r}")
        answers[server.name] = probabilities(json.loads(payload)["predict_result"])
    if not hb.same_result(answers["torchscript"], answers["onnx"]):
        raise hb.BenchError(f"torchscript and onnx disagree on {rows} rows: {str(answers)[:600]}")


def run_cells(servers: list[hb.Server], scripts: dict[int, Path],
              args: argparse.Namespace) -> dict[hb.Cell, dict[str, hb.WrkResult]]:
    """Each cell, ``--repeat`` times, the servers taking turns (the first alternating)."""
    results = {}
    turn = 0
    for cell in [hb.Cell(c, r) for r in ROWS for c in CONNECTIONS]:
        runs: dict[str, list[hb.WrkResult]] = {server.name: [] for server in servers}
        for _ in range(args.repeat):
            order = servers if turn % 2 == 0 else servers[::-1]
            turn += 1
            for server in order:
                result = hb.measure(server, cell, scripts[cell.rows], args)
                runs[server.name].append(result)
                print(f"# {cell} {server.name}: {result.rps:.0f} req/s p50 {result.p50_ms:.2f} ms "
                      f"p99 {result.p99_ms:.2f} ms, {result.cpu_us:.0f} CPU us/req",
                      file=sys.stderr, flush=True)
        results[cell] = {name: hb.median_run(found) for name, found in runs.items()}
    return results


def table(results: dict[hb.Cell, dict[str, hb.WrkResult]]) -> str:
    lines = [
        "| cell | torchscript req/s | onnx req/s | torchscript / onnx | torchscript p50 / p99 ms "
        "| onnx p50 / p99 ms | torchscript / onnx CPU us/req |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for cell, found in results.items():
        ts, ox = found["torchscript"], found["onnx"]
        lines.append(
            f"| {cell} | {ts.rps:,.0f} | {ox.rps:,.0f} | {ts.rps / ox.rps:.2f} "
            f"| {ts.p50_ms:.2f} / {ts.p99_ms:.2f} | {ox.p50_ms:.2f} / {ox.p99_ms:.2f} "
            f"| {ts.cpu_us:.0f} / {ox.cpu_us:.0f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measurement")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per server and body")
    parser.add_argument("--quick", action="store_true", help="3 s measurements, 1 s warm-up")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (median kept)")
    parser.add_argument("--server-cpu", default="0", help="taskset CPU list for the servers")
    parser.add_argument("--client-cpu", default="1", help="taskset CPU list for wrk")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup = 3.0, 1.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    hb.preflight()
    workdir = Path(tempfile.mkdtemp(prefix="core-format-bench-"))
    try:
        models = build_models(workdir)
        servers = make_servers(models, workdir)
        scripts = {rows: hb.write_wrk_script(workdir, rows) for rows in ROWS}
        with hb.running(servers, args.server_cpu, workdir):
            for rows in ROWS:
                check_answers(servers, rows)
            hb.warm_up(servers, scripts, args)
            results = run_cells(servers, scripts, args)
    except hb.BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{hb.machine()}; servers on CPU {args.server_cpu}, wrk on CPU {args.client_cpu}; "
          f"{args.seconds:g} s per measurement, median of {args.repeat}\n")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(hb.to_json(results, args), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
