"""The gate's parser process: large bodies are read here, away from the server's GIL.

A long C call (``orjson.loads`` of 20 MiB, numpy building an array from millions of Python
floats) holds the GIL from start to end, so in a thread of the server it would still stall
the event loop for its whole length. :class:`ParserProcess` runs such calls in a child
process of the server instead, started on first use with ``python -m core.http.parser_process``
(a plain subprocess: hypercorn's workers are daemonic, and a daemonic process may not start
``multiprocessing`` children).

The protocol is private to the two ends: the server writes a length-prefixed pickle of
``(call, args)`` to the child's stdin, the child answers a length-prefixed pickle of
``(True, result)`` or ``(False, exception)`` on its stdout (its own prints go to stderr). One
call at a time; the child exits when its stdin closes, so it never outlives the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import struct
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

_HEADER = struct.Struct("<Q")


class ParserProcessError(Exception):
    """The child could not be started or died during a call."""


class ParserProcess:
    """One child process that runs picklable calls for the event loop, one at a time."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._lock: asyncio.Lock | None = None

    async def call(self, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)`` in the child: its result, or the exception it raised.

        :raises ParserProcessError: the child could not be started or died (it is started
            again for the next call).
        """
        if self._lock is None:
            self._lock = asyncio.Lock()
        payload = pickle.dumps((call, args), protocol=pickle.HIGHEST_PROTOCOL)
        async with self._lock:
            process = await self._started()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(_HEADER.pack(len(payload)))
                process.stdin.write(payload)
                await process.stdin.drain()
                (size,) = _HEADER.unpack(await process.stdout.readexactly(_HEADER.size))
                answer = await process.stdout.readexactly(size)
            except (OSError, asyncio.IncompleteReadError) as error:
                self._forget()
                raise ParserProcessError(f"the parser process died: {error}") from None
        ok, value = pickle.loads(answer)
        if not ok:
            raise value
        return value

    async def _started(self) -> asyncio.subprocess.Process:
        if self._process is None or self._process.returncode is not None:
            try:
                self._process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "core.http.parser_process",
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                )
            except OSError as error:
                raise ParserProcessError(f"cannot start the parser process: {error}") from None
        return self._process

    def _forget(self) -> None:
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        self._process = None

    def close(self) -> None:
        """Stop the child (it exits when its stdin closes)."""
        process, self._process = self._process, None
        if process is not None and process.stdin is not None:
            with contextlib.suppress(Exception):
                process.stdin.close()


def _serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The child's loop: one call per message until stdin closes."""
    while True:
        header = requests.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        (size,) = _HEADER.unpack(header)
        call, args = pickle.loads(requests.read(size))
        try:
            answer = pickle.dumps((True, call(*args)), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:
            try:
                answer = pickle.dumps((False, error), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # an exception that does not pickle: its text does
                answer = pickle.dumps((False, RuntimeError(f"{type(error).__name__}: {error}")))
        answers.write(_HEADER.pack(len(answer)))
        answers.write(answer)
        answers.flush()


def main() -> None:
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what the calls print goes to the server's log, not into the protocol
    sys.stdout = sys.stderr
    _serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
