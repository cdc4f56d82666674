"""Where a prediction runs: in the thread pool, or on the event loop when it is known to be quick.

Handing a call to a pool thread and back costs the event loop about 50-100 us (queue, GIL and
self-pipe hand-offs), more than a small model takes to run. :class:`PredictRunner` therefore
times the calls it sends to the pool, per *kind* of call (the power of two of the row count,
plus the values of the other predict arguments, so ``seconds=1.0`` is not taken for
``seconds=0.001``), and runs a kind inline, on the event loop, once it is known to be quick:

* promotion: at least :data:`MIN_SAMPLES` pool calls of that kind, whose median CPU time is
  under ``max_inline_predict_ms`` and the quickest of which also took less than that in wall
  time plus the interpreter's switch interval (the longest a pool thread waits for the GIL on a
  busy loop). CPU time is what a call costs the loop; the wall-time check keeps a model that
  sleeps or waits on I/O in the pool.
* demotion: more than half of the last :data:`WINDOW` inline calls of a kind taking longer
  than the limit (a model that became slower, or began to wait), or one taking longer than
  :data:`STALL_FACTOR` times the limit, send that kind back to the pool, which must then see
  exponentially more calls before the next promotion. Single calls over the limit are not
  enough: interrupts (the network stack's, on a busy server), a preemption or a garbage
  collection stretch quick calls now and then.

Anything not yet timed, anything with unhashable arguments, and anything beyond
``max_thread_loop_workers`` concurrent calls goes to the pool, so the loop never waits long on a
model and ``/health`` keeps answering. ``max_inline_predict_ms = 0`` always uses the pool;
``use_thread_loop = false`` never does.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

#: Calls timed per kind; decisions follow the recent ones.
WINDOW = 16
#: Pool calls of a kind timed before it may run inline (doubled after each demotion).
MIN_SAMPLES = 4
#: One inline call this many times over the limit sends its kind back to the pool at once.
STALL_FACTOR = 50.0
#: Kinds remembered at most (requests with ever-new argument values would grow it).
MAX_KINDS = 1024


class _Kind:
    """Timings of one kind of call."""

    __slots__ = ("cpu", "holdoff", "inline", "inline_wall", "slow", "strikes", "wall")

    def __init__(self) -> None:
        self.cpu: deque[float] = deque(maxlen=WINDOW)
        self.wall: deque[float] = deque(maxlen=WINDOW)
        self.inline_wall: deque[float] = deque(maxlen=WINDOW)
        self.inline = False
        self.slow = 0  # how many of inline_wall are over the limit
        self.strikes = 0
        self.holdoff = MIN_SAMPLES


def _median(samples: deque[float]) -> float:
    return sorted(samples)[len(samples) // 2]


class PredictRunner:
    """Runs prediction callables for the event loop.

    :param executor: the thread pool, or None to run everything inline.
    :param workers: how many predictions may run at once (the pool's size).
    :param max_inline_seconds: the limit under which a kind of call runs inline (0: never).
    """

    def __init__(self, executor: ThreadPoolExecutor | None, workers: int,
                 max_inline_seconds: float) -> None:
        self.executor = executor
        self.workers = workers
        self.max_inline_seconds = max_inline_seconds
        self.in_pool = 0
        self.inline_calls = 0
        self.pool_calls = 0
        self._kinds: dict[Hashable, _Kind] = {}

    @staticmethod
    def kind(data: dict[str, Any], rows_name: str | None) -> Hashable | None:
        """What calls are timed together: the power of two of the row count and the values of
        the other arguments; None (never inline) when those values are not hashable."""
        size = -1
        others = []
        for name, value in data.items():
            if name == rows_name:
                try:
                    size = len(value).bit_length()
                except TypeError:
                    return None
            else:
                others.append((name, value))
        if not others:
            return size
        key = (size, tuple(others))
        try:
            hash(key)
        except TypeError:
            return None
        return key

    def quick(self, kind: Hashable | None) -> bool:
        """Whether calls of ``kind`` are known to be quick enough to run inline."""
        if self.executor is None:
            return True
        timings = self._kinds.get(kind) if kind is not None else None
        return timings is not None and timings.inline

    def runs_inline(self, kind: Hashable | None) -> bool:
        """Whether :meth:`run` would run a call of ``kind`` on the event loop now."""
        return self.executor is None or (self.quick(kind) and self.in_pool < self.workers)

    async def run(self, call: Callable[[], T], kind: Hashable | None = None) -> T:
        """``call()`` inline or in the pool (see the module docstring); its result or error."""
        if self.runs_inline(kind):
            return self.call_inline(call, kind)
        self.in_pool += 1
        try:
            result, wall, cpu = await asyncio.get_running_loop().run_in_executor(
                self.executor, timed, call
            )
        finally:
            self.in_pool -= 1
        self.record(kind, wall, cpu)
        return result

    def call_inline(self, call: Callable[[], T], kind: Hashable | None) -> T:
        """``call()`` here, on the event loop, timed (for architectures that decided to)."""
        self.inline_calls += 1
        timings = self._kinds.get(kind) if kind is not None else None
        if timings is None:
            return call()
        started = time.perf_counter()
        try:
            return call()
        finally:
            self._inline_sample(timings, time.perf_counter() - started)

    def record(self, kind: Hashable | None, wall: float, cpu: float) -> None:
        """Count a call of ``kind`` that ran in a pool thread (see :func:`timed`); on the
        event loop's thread."""
        self.pool_calls += 1
        if kind is None or self.max_inline_seconds <= 0:
            return
        timings = self._kinds.get(kind)
        if timings is None:
            if len(self._kinds) >= MAX_KINDS:
                self._kinds.clear()
            timings = self._kinds[kind] = _Kind()
        timings.cpu.append(cpu)
        timings.wall.append(wall)
        timings.holdoff -= 1
        limit = self.max_inline_seconds
        if (
            not timings.inline
            and timings.holdoff <= 0
            and len(timings.cpu) >= MIN_SAMPLES
            and _median(timings.cpu) < limit
            and min(timings.wall) < limit + sys.getswitchinterval()
        ):
            timings.inline = True
            timings.inline_wall.clear()
            timings.slow = 0

    def _inline_sample(self, timings: _Kind, wall: float) -> None:
        limit = self.max_inline_seconds
        samples = timings.inline_wall
        if len(samples) == WINDOW and samples[0] > limit:
            timings.slow -= 1  # about to leave the window
        samples.append(wall)
        if wall > limit:
            timings.slow += 1
        if (len(samples) >= MIN_SAMPLES and timings.slow > len(samples) // 2) \
                or wall > STALL_FACTOR * limit:
            timings.inline = False
            timings.strikes += 1
            timings.holdoff = MIN_SAMPLES << min(timings.strikes, 10)
            timings.cpu.clear()
            timings.wall.clear()

    def info(self) -> dict[str, Any]:
        """Counters for ``/info``: calls run inline and in the pool, and the pool's load."""
        return {"inline_calls": self.inline_calls, "pool_calls": self.pool_calls,
                "in_pool": self.in_pool}

    def shutdown(self, wait: bool = False, cancel_futures: bool = False) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=wait, cancel_futures=cancel_futures)


def timed(call: Callable[[], T]) -> tuple[T, float, float]:
    """In a pool thread: ``call()``, its wall time and this thread's CPU time for it (errors
    propagate, untimed). Hand the times to :meth:`PredictRunner.record` on the loop."""
    wall, cpu = time.perf_counter(), time.thread_time()
    result = call()
    return result, time.perf_counter() - wall, time.thread_time() - cpu
