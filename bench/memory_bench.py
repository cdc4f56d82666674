"""Memory benchmark: resident memory while core loads a 500 MB pickled model from disk.

For a pickled model holding 500 MB of numpy weights on disk storage, measure peak and settled
resident memory while loading, with ``need_load_file`` false and true. Targets:

* ``need_load_file = false``: peak < idle process + 1.3 x the model's size;
* ``need_load_file = true``: may peak higher, but settles (2 s after loading) under
  idle process + 1.1 x the model's size.

How: the model (an object holding one float32 array of 125 M elements, cloudpickle protocol
5) is written to a temporary folder without ever holding it in this process (the weights go
to a raw file in chunks, which is then memory-mapped and pickled straight from the mapping).
For each setting a fresh child process imports numpy, cloudpickle and core, builds
``core.UP(conf=core.Config(storage_type="disk", ..., binarization_type="pickle"))`` and loads
its plugins: its resident set then is the *idle* figure. It resets its high-water mark, calls
``up.ml.load()``, and reads ``VmHWM`` (*peak*) and ``VmRSS`` (*loaded*) from
``/proc/self/status``, then ``VmRSS`` again 2 s later (*settled*).

    python -m bench.memory_bench                  # 500 MB
    python -m bench.memory_bench --size-mb 100    # quicker

Exits 1 if a target is missed, 2 if a child fails.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MB = 1_000_000
MIB = 1024 * 1024
CHUNK_ELEMENTS = 4 * MIB  # 16 MiB of float32 a chunk
PEAK_LIMIT = 1.3  # need_load_file = false: peak - idle < 1.3 x model size
SETTLED_LIMIT = 1.1  # need_load_file = true: settled - idle < 1.1 x model size
SETTLE_SECONDS = 2.0


class BigModel:
    """A "model" whose weights are one big float32 vector; predict uses a slice of them."""

    def __init__(self, weights: np.ndarray, n_features: int = 20) -> None:
        self.weights = weights
        self.n_features = n_features

    def predict(self, X: Any) -> list[float]:
        return (np.asarray(X, dtype=np.float32) @ self.weights[: self.n_features]).tolist()


# ---------------------------------------------------------------------- the model file


def write_weights(path: Path, n_elements: int, seed: int = 0) -> None:
    """Raw float32 weights, written a chunk at a time."""
    rng = np.random.default_rng(seed)
    with path.open("wb") as file:
        left = n_elements
        while left:
            count = min(left, CHUNK_ELEMENTS)
            file.write(rng.standard_normal(count, dtype=np.float32).tobytes())
            left -= count


def write_model(path: Path, size_bytes: int) -> Path:
    """A cloudpickle (protocol 5) of a :class:`BigModel` holding ``size_bytes`` of weights.

    The weights are memory-mapped (copy-on-write, so the array is writable and unpickles
    writable), wrapped in a plain ndarray (a memmap subclass would be copied by numpy's
    reducer) and streamed by the pickler from the mapping to the file.
    """
    import cloudpickle

    raw = path.with_suffix(".raw")
    write_weights(raw, size_bytes // 4)
    with raw.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY) as mapped:
        weights = np.frombuffer(mapped, dtype=np.float32)
        with path.open("wb") as out:
            cloudpickle.dump(BigModel(weights), out, protocol=5)
        del weights
    raw.unlink()
    return path


# ---------------------------------------------------------------------- the child


def status_kib(field: str, pid: str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where it is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(model_path: str, need_load_file: bool) -> dict[str, Any]:
    """Runs in a fresh process: idle, then load, then peak/loaded/settled (bytes)."""
    import cloudpickle  # noqa: F401 - part of the idle process, as in a server

    import core

    conf = core.Config(
        storage_type="disk",
        storage_kwargs={"path_to_files": model_path, "need_load_file": need_load_file},
        binarization_type="pickle",
        max_thread_loop_workers=1,
    )
    up = core.UP(conf=conf)
    up.ml.storage()  # builds the storage from the installed plugins
    up.plugins.binarizers.get("pickle")
    gc.collect()
    time.sleep(0.2)
    idle = status_kib("VmRSS") * 1024
    peak_reset = reset_peak()
    started = time.perf_counter()
    up.ml.load()
    load_seconds = time.perf_counter() - started
    peak = status_kib("VmHWM") * 1024
    loaded = status_kib("VmRSS") * 1024
    time.sleep(SETTLE_SECONDS)
    settled = status_kib("VmRSS") * 1024
    assert up.ml.model_obj.weights.nbytes > 0
    return {"idle": idle, "peak": peak, "loaded": loaded, "settled": settled,
            "load_seconds": load_seconds, "peak_reset": peak_reset}


def run_child(model_path: Path, need_load_file: bool) -> dict[str, Any]:
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "bench.memory_bench", "--child", str(model_path),
               "--need-load-file" if need_load_file else "--no-need-load-file"]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- report


@dataclass
class Row:
    need_load_file: bool
    size: int
    figures: dict[str, Any]

    def over_idle(self, key: str) -> float:
        """How many model sizes above the idle process ``key`` is."""
        return (self.figures[key] - self.figures["idle"]) / self.size

    @property
    def target(self) -> str:
        if self.need_load_file:
            return f"settled < idle + {SETTLED_LIMIT} x size"
        return f"peak < idle + {PEAK_LIMIT} x size"

    @property
    def ok(self) -> bool:
        if self.need_load_file:
            return self.over_idle("settled") < SETTLED_LIMIT
        return self.over_idle("peak") < PEAK_LIMIT


def report(rows: list[Row], size: int) -> str:
    lines = [
        f"model: {size / MB:.0f} MB ({size / MIB:.1f} MiB) of float32 weights, cloudpickle "
        "protocol 5; MiB below, ratios are (figure - idle) / model size",
        "",
        "| need_load_file | idle MiB | peak MiB | loaded MiB | settled MiB | peak ratio "
        "| settled ratio | load s | target | met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|:---:|",
    ]
    for row in rows:
        f = row.figures
        lines.append(
            f"| {str(row.need_load_file).lower()} | {f['idle'] / MIB:.0f} | {f['peak'] / MIB:.0f} "
            f"| {f['loaded'] / MIB:.0f} | {f['settled'] / MIB:.0f} "
            f"| {row.over_idle('peak'):.2f} | {row.over_idle('settled'):.2f} "
            f"| {f['load_seconds']:.2f} | {row.target} | {'yes' if row.ok else '**no**'} |"
        )
    if not all(row.figures["peak_reset"] for row in rows):
        lines.append("\n(VmHWM could not be reset: peak includes the import-time peak)")
    return "\n".join(lines)


# ---------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=500, help="model size in MB (10^6 bytes)")
    parser.add_argument("--model", type=Path, help="reuse this model file instead of writing one")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--child", metavar="MODEL", help=argparse.SUPPRESS)
    parser.add_argument("--need-load-file", action=argparse.BooleanOptionalAction,
                        default=False, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.need_load_file)))
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="core-memory-bench-"))
    try:
        model = args.model or write_model(workdir / "big_model.pkl", args.size_mb * MB)
        size = model.stat().st_size
        rows = []
        for need_load_file in (False, True):
            try:
                figures = run_child(model, need_load_file)
            except RuntimeError as error:
                print(f"need_load_file={need_load_file}: {error}", file=sys.stderr)
                return 2
            rows.append(Row(need_load_file, size, figures))
            print(f"# need_load_file={need_load_file}: {figures}", file=sys.stderr, flush=True)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(workdir)
    print(report(rows, size))
    if args.json:
        args.json.write_text(json.dumps(
            {"model_bytes": size, "runs": [{"need_load_file": r.need_load_file, **r.figures}
                                           for r in rows]}, indent=2) + "\n")
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
