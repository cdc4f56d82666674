"""Soak and SIGTERM-under-load: what every request gets over a long run and at shutdown.

For each mode (``directly_to_predict``, ``worker_and_queue``, ``batching``) a real server
serves the benchmark's ONNX model (``bench.models.http_bench_model``) under a steady load of
``--connections`` keep-alive connections (default 64) for ``--seconds`` (default 60), started
the way production starts it (``core serve CONFIG``; ``--command hypercorn`` for plain
``hypercorn core.app:app``). The load generator is this script: a minimal HTTP/1.1 client on
asyncio that knows what happened to each request it wrote:

* ``answered``: a complete response came back (counted by status: ``non_2xx`` are the rest);
* ``unanswered``: the request was written but its connection closed or was reset before a
  complete response (a lost request: the client cannot tell whether it ran);
* ``refused``: a connection could not be opened, refused or reset while it was being opened
  (the server is not listening, or stopped as the connection came; nothing was sent);
* ``socket_errors``: any other error of the socket.

Every 5 s the resident memory of the server's processes is recorded. Then the same server is
started again for a **SIGTERM-under-load** run: after ``--term-after`` seconds under the same
load it gets SIGTERM, the clients keep going until it has exited, and the counts say what the
requests in flight got (their result, or 503 when they could not finish within the grace
period; never no answer). The server's exit code and how many ``Traceback`` lines it logged
are recorded too.

    python -m bench.soak                       # 60 s per mode, 64 connections
    python -m bench.soak --seconds 10 --modes batching
    python -m bench.soak --markdown bench/results/soak.md --json bench/results/soak.json

Exits 1 when a run had unanswered requests, socket errors, non-2xx answers outside the
shutdown, or a non-zero exit code after SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.models import http_bench_model, sample_rows  # noqa: E402

MODES = ("directly_to_predict", "worker_and_queue", "batching")
RSS_EVERY = 5.0


@dataclass
class Counts:
    """What the requests of one run got."""

    sent: int = 0
    answered: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    unanswered: int = 0
    #: of those, the first request of a new connection (it never reached a server's reader,
    #: or the server closed the connection without reading it)
    unanswered_first: int = 0
    refused: int = 0
    socket_errors: int = 0
    #: unanswered requests by what the client saw (a reset, an end of stream)
    lost_by: dict[str, int] = field(default_factory=dict)
    errors_by: dict[str, int] = field(default_factory=dict)

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.by_status.items() if not 200 <= status < 300)


# ---------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, model: Path, mode: str, port: int) -> Path:
    path = folder / f"{mode}.toml"
    path.write_text(
        f'name = "soak"\nhost = "127.0.0.1"\nport = {port}\nmode = "{mode}"\n'
        f'storage_type = "disk"\nbinarization_type = "onnx"\nlog_level = "WARNING"\n'
        f'binarization_kwargs = {{ intra_op_num_threads = 1 }}\n'
        f'storage_kwargs = {{ path_to_files = "{model}" }}\n'
    )
    return path


def start_server(command: str, config: Path, port: int, log: Path, workers: int) -> subprocess.Popen[bytes]:
    if command == "core":
        argv = [sys.executable, "-m", "core", "serve", str(config)]
        argv += ["--workers", str(workers)] if workers > 1 else []
    else:
        argv = [sys.executable, "-m", "hypercorn", "core.app:app", "--bind", f"127.0.0.1:{port}",
                "--graceful-timeout", "5"]
    env = {**os.environ, "CORE_CONFIG": str(config), "CORE_LOAD_PLUGINS": "disk,onnx"}
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if sock.recv(64).startswith(b"HTTP/1.1 200"):
                return process
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the server did not answer /health in 120 s:\n{log.read_text()}")


def resident_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, in MB."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            pids.extend(int(child) for child in children)
    return total / 1024


# ---------------------------------------------------------------------- the load


def request_bytes(port: int) -> bytes:
    import orjson

    body = orjson.dumps({"X": sample_rows(1)})
    return (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """One response: its status and whether the server closes the connection after it."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    await reader.readexactly(length)
    return status, close


async def client(port: int, payload: bytes, counts: Counts, stop: asyncio.Event) -> None:
    """One keep-alive connection after another until ``stop``."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except (ConnectionRefusedError, ConnectionResetError):  # no request was written
            counts.refused += 1
            await asyncio.sleep(0.02)
            continue
        except OSError as error:
            counts.socket_errors += 1
            counts.errors_by[type(error).__name__] = counts.errors_by.get(type(error).__name__, 0) + 1
            await asyncio.sleep(0.02)
            continue
        try:
            first = True
            while not stop.is_set():
                writer.write(payload)
                counts.sent += 1
                try:
                    status, close = await read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError) as error:
                    counts.lost_by[type(error).__name__] = counts.lost_by.get(type(error).__name__, 0) + 1
                    counts.unanswered += 1
                    counts.unanswered_first += first
                    break
                first = False
                counts.answered += 1
                counts.by_status[status] = counts.by_status.get(status, 0) + 1
                if close:
                    break
        except OSError as error:
            counts.socket_errors += 1
            counts.errors_by[type(error).__name__] = counts.errors_by.get(type(error).__name__, 0) + 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def load(port: int, connections: int, seconds: float, process: subprocess.Popen[bytes],
               rss: list[tuple[float, float]], term_after: float | None = None) -> Counts:
    """``connections`` clients for ``seconds`` (or, with ``term_after``, until the server
    exits after SIGTERM), sampling the server's memory every :data:`RSS_EVERY` seconds."""
    counts = Counts()
    stop = asyncio.Event()
    payload = request_bytes(port)
    tasks = [asyncio.ensure_future(client(port, payload, counts, stop)) for _ in range(connections)]
    started = time.monotonic()
    next_sample = 0.0
    termed = False
    while True:
        elapsed = time.monotonic() - started
        if elapsed >= next_sample:
            rss.append((round(elapsed, 1), round(resident_mb(process.pid), 1)))
            next_sample += RSS_EVERY
        if term_after is None and elapsed >= seconds:
            break
        if term_after is not None and not termed and elapsed >= term_after:
            os.killpg(process.pid, signal.SIGTERM)
            termed = True
        if termed and process.poll() is not None:
            await asyncio.sleep(0.5)  # the clients see the closed port
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*tasks)
    return counts


# ---------------------------------------------------------------------- runs


def run_mode(mode: str, args: argparse.Namespace, folder: Path, model: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"mode": mode}
    for kind in ("soak", "sigterm"):
        port = free_port()
        config = write_config(folder, model, mode, port)
        log = folder / f"{mode}-{kind}.log"
        process = start_server(args.command, config, port, log, args.workers)
        rss: list[tuple[float, float]] = []
        try:
            if kind == "soak":
                counts = asyncio.run(load(port, args.connections, args.seconds, process, rss))
            else:
                counts = asyncio.run(load(port, args.connections, 0, process, rss, args.term_after))
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            code = process.wait(60)
        text = log.read_text(errors="replace")
        result[kind] = {**asdict(counts), "non_2xx": counts.non_2xx, "rss_mb": rss,
                        "exit_code": code, "tracebacks": text.count("Traceback")}
        print(f"# {mode} {kind}: {result[kind]}", file=sys.stderr)
    return result


def markdown(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"Command: `{args.command}`{f' --workers {args.workers}' if args.workers > 1 else ''}; "
        f"{args.connections} connections; soak {args.seconds:g} s; "
        f"SIGTERM after {args.term_after:g} s under the same load.",
        "",
        "| mode | run | requests | 2xx | non-2xx | unanswered (first on a new connection) "
        "| refused (not listening) | socket errors "
        "| RSS MB (first / last / max) | exit code | tracebacks |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for result in results:
        for kind in ("soak", "sigterm"):
            run = result[kind]
            rss = [mb for _, mb in run["rss_mb"]] or [0.0]
            statuses = ", ".join(f"{s}: {n}" for s, n in sorted(run["by_status"].items()))
            lines.append(
                f"| {result['mode']} | {kind} | {run['sent']} | {run['answered'] - run['non_2xx']} | "
                f"{run['non_2xx']} ({statuses}) | {run['unanswered']} ({run['unanswered_first']}) | "
                f"{run['refused']} | "
                f"{run['socket_errors']} | {rss[0]:.0f} / {rss[-1]:.0f} / {max(rss):.0f} | "
                f"{run['exit_code']} | {run['tracebacks']} |"
            )
    lines += ["", "Resident memory every 5 s (MB):", ""]
    for result in results:
        for kind in ("soak", "sigterm"):
            series = " ".join(f"{mb:.0f}" for _, mb in result[kind]["rss_mb"])
            lines.append(f"- {result['mode']} {kind}: {series}")
    return "\n".join(lines) + "\n"


def failures(results: list[dict[str, Any]]) -> list[str]:
    problems = []
    for result in results:
        for kind in ("soak", "sigterm"):
            run = result[kind]
            name = f"{result['mode']} {kind}"
            if run["unanswered"]:
                problems.append(f"{name}: {run['unanswered']} unanswered request(s)")
            if run["socket_errors"]:
                problems.append(f"{name}: {run['socket_errors']} socket error(s)")
            bad = {s: n for s, n in run["by_status"].items() if not 200 <= s < 300}
            if kind == "soak" and bad:
                problems.append(f"{name}: non-2xx answers {bad}")
            if kind == "sigterm" and set(bad) - {503}:
                problems.append(f"{name}: answers other than 2xx and 503 {bad}")
            if kind == "sigterm" and run["exit_code"] != 0:
                problems.append(f"{name}: exit code {run['exit_code']}")
            if run["tracebacks"]:
                problems.append(f"{name}: {run['tracebacks']} traceback(s) logged")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--seconds", type=float, default=60.0, help="soak length per mode")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--term-after", type=float, default=5.0,
                        help="seconds of load before SIGTERM in the shutdown run")
    parser.add_argument("--command", choices=("core", "hypercorn"), default="core",
                        help="core serve (the production command) or plain hypercorn core.app:app")
    parser.add_argument("--workers", type=int, default=1,
                        help="core serve --workers N (more than 1: the supervisor and N workers)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--markdown", type=Path, help="write the results table here")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="core-soak-"))
    model = http_bench_model(folder)
    results = [run_mode(mode, args, folder, model) for mode in args.modes]
    table = markdown(results, args)
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    problems = failures(results)
    for problem in problems:
        print(f"soak: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
