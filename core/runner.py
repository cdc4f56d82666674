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
* no cascade: while pool calls hold every slot (``max_thread_loop_workers``), a call of a
  quick kind waits for a slot in turn and runs inline once it has one, rather than joining the
  pool, where it would keep the next quick call out of the loop, and that one the next.
* demotion: more than half of the last :data:`WINDOW` inline calls of a kind taking longer
  than the limit (a model that became slower, or began to wait), or one taking longer than
  :data:`STALL_FACTOR` times the limit, send that kind back to the pool, which must then see
  exponentially more calls before the next promotion. Single calls over the limit are not
  enough: interrupts, a preemption or a garbage collection stretch quick calls now and then.

**An inline call can never freeze the server.** A call of a quick kind may still hang (an
input that makes the model loop or sleep). Each inline call runs under a timer (``SIGALRM``,
:class:`_Alarm`) set to the stall budget (:data:`STALL_FACTOR` times the limit, at least
:data:`MIN_STALL`): past it the call is interrupted (:class:`InlineStall` is raised inside it, at
the next Python instruction), its kind is demoted, and the call runs again from the start in
the pool, where ``predict_timeout`` applies and the event loop stays free. The timer is set
once for a run of quick calls, not twice a call (see :class:`_Alarm`). Inline calls are
therefore made only where the timer works: on the main thread of a process whose ``SIGALRM``
is free (hypercorn's and uvicorn's workers); elsewhere every call uses the pool. A model whose
predict must not be interrupted and run again (side effects) should set
``max_inline_predict_ms = 0``. C code that never returns to Python cannot be interrupted.

**Slots and stuck calls.** At most ``workers`` calls run in the pool at once; more wait for a
slot. A pool call whose caller stopped waiting while it runs (``predict_timeout``) is *stuck*:
the thread cannot be stopped, so the call gives its slot back and is counted in
:attr:`PredictRunner.stuck` until it returns; the pool keeps ``spare_threads`` threads more
than ``workers`` so that stuck calls do not take the capacity of the others. Liveness fails
while more calls are stuck than ``max_stuck_predicts`` (:mod:`core.web`), so an orchestrator
restarts a process whose threads are hung.

``use_thread_loop = false`` runs every call inline; a call then past ``predict_timeout`` is
interrupted the same way and answered 504.

A pool call runs in a copy of its caller's :mod:`contextvars` context (``loop.run_in_executor``
and ``executor.submit`` would not carry it), so the model's own log lines carry the request's
predict id (:mod:`core.logs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from core.errors import PredictTimeout

T = TypeVar("T")

logger = logging.getLogger("core")

#: Calls timed per kind; decisions follow the recent ones.
WINDOW = 16
#: Pool calls of a kind timed before it may run inline (doubled after each demotion).
MIN_SAMPLES = 4
#: One inline call this many times over the limit sends its kind back to the pool at once.
STALL_FACTOR = 50.0
#: The shortest stall budget (seconds) after which an inline call is interrupted.
MIN_STALL = 0.005
#: Kinds remembered at most (requests with ever-new argument values would grow it).
MAX_KINDS = 1024


class InlineStall(BaseException):
    """Raised inside a call that ran on the event loop past its stall budget.

    A ``BaseException``, like ``KeyboardInterrupt``, so that model code catching
    ``Exception`` does not swallow it. The runner catches it and runs the call in the pool.
    """


class _Alarm:
    """A ``SIGALRM`` timer that raises :class:`InlineStall` in the call it guards.

    Usable only on the main thread (Python runs signal handlers there) and only when nothing
    else in the process handles ``SIGALRM``; :meth:`available` says so, checked once.

    The timer is set lazily: a call notes its deadline, and sets the system's timer only when
    that timer is not already due before the deadline. When it fires, :func:`_on_alarm`
    interrupts the call running past its deadline, sets the timer again for a call that still
    has time (it was set for an earlier one), and otherwise leaves it off. Under steady traffic
    that is one ``setitimer`` and one signal per stall budget, instead of two ``setitimer``
    system calls for every call. A signal that finds no call running does nothing: Python
    retries the system call it cut short (PEP 475), and pool threads block ``SIGALRM``
    (:func:`_block_alarm`), so it reaches only the event loop's thread.
    """

    def __init__(self) -> None:
        self._checked = False
        self._available = False
        self._main_thread: int | None = None
        #: When the guarded call must have returned (``time.perf_counter()``).
        self.deadline = 0.0

    def available(self) -> bool:
        if not self._checked:
            self._checked = True
            self._main_thread = threading.main_thread().ident  # where Python runs signal handlers
            if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
                previous = signal.getsignal(signal.SIGALRM)
                if previous in (signal.SIG_DFL, signal.SIG_IGN, None) or previous is _on_alarm:
                    signal.signal(signal.SIGALRM, _on_alarm)
                    self._available = True
        return self._available and threading.get_ident() == self._main_thread

    def call(self, call: Callable[[], T], seconds: float) -> T:
        """``call()``, interrupted with :class:`InlineStall` after ``seconds``."""
        global _ARMED
        self.deadline = deadline = time.perf_counter() + seconds
        _ARMED = self
        if deadline < _TIMER_AT:  # the timer is off, or due after this call's deadline
            _set_timer(deadline, seconds)
        try:
            return call()
        finally:
            _ARMED = None


#: The alarm guarding the call running now on the main thread, if any.
_ARMED: _Alarm | None = None
#: When the system's timer fires (``time.perf_counter()``); infinity while it is off.
_TIMER_AT = math.inf


def _set_timer(at: float, seconds: float) -> None:
    global _TIMER_AT
    _TIMER_AT = at
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-6))  # 0 would switch it off


def _on_alarm(signum: int, frame: Any) -> None:
    global _ARMED, _TIMER_AT
    _TIMER_AT = math.inf
    armed = _ARMED
    if armed is None:
        return  # no call is running: the timer stays off until the next one sets it
    remaining = armed.deadline - time.perf_counter()
    if remaining > 0:  # set for a call before this one
        _set_timer(armed.deadline, remaining)
        return
    _ARMED = None
    raise InlineStall()


def _block_alarm() -> None:
    """A pool thread's initializer: ``SIGALRM`` is for the event loop's thread only."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})


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


class _Slots:
    """At most ``size`` holders at once, waiting in arrival order; event-loop side only (no
    loop is bound, so the same runner serves ``asyncio.run`` calls one after the other)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.used < self.size and not self._waiters:
            self.used += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the releaser hands its slot over
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.used -= 1

    @property
    def free(self) -> bool:
        """Whether a holder would get a slot now, without waiting."""
        return self.used < self.size and not self._waiters

    @property
    def waiting(self) -> int:
        return len(self._waiters)


class PredictRunner:
    """Runs prediction callables for the event loop (see the module docstring).

    :param workers: how many calls may run at once (``max_thread_loop_workers``).
    :param max_inline_seconds: the limit under which a kind of call runs inline (0: never).
    :param use_threads: False runs every call inline (``use_thread_loop = false``).
    :param spare_threads: threads beyond ``workers`` for calls that get stuck.
    :param inline_timeout: with ``use_threads`` False, interrupt an inline call after this
        many seconds (``predict_timeout``); None: never.
    """

    def __init__(self, workers: int, max_inline_seconds: float, *, use_threads: bool = True,
                 spare_threads: int = 1, inline_timeout: float | None = None) -> None:
        self.workers = workers
        self.max_inline_seconds = max_inline_seconds
        self.stall_seconds = max(STALL_FACTOR * max_inline_seconds, MIN_STALL)
        self.inline_timeout = inline_timeout
        self.executor = (
            ThreadPoolExecutor(max_workers=workers + spare_threads, thread_name_prefix="core-predict",
                               initializer=_block_alarm if hasattr(signal, "pthread_sigmask") else None)
            if use_threads else None
        )
        self.in_pool = 0
        self.inline_calls = 0
        self.pool_calls = 0
        self.interrupted = 0
        #: Times a kind of call was sent back from the event loop to the pool.
        self.demotions = 0
        #: Calls still running after their caller stopped waiting (``predict_timeout``).
        self.stuck = 0
        self.stuck_total = 0
        self._slots = _Slots(workers)
        self._alarm = _Alarm()
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

    # ------------------------------------------------------------------ deciding

    def quick(self, kind: Hashable | None) -> bool:
        """Whether calls of ``kind`` may run inline now: known to be quick, and the timer
        that interrupts a stalled one works here."""
        if self.executor is None:
            return True
        timings = self._kinds.get(kind) if kind is not None else None
        return timings is not None and timings.inline and self._alarm.available()

    def runs_inline(self, kind: Hashable | None) -> bool:
        """Whether :meth:`run` would run a call of ``kind`` on the event loop now."""
        return self.executor is None or (self.quick(kind) and self.in_pool < self.workers)

    # ------------------------------------------------------------------ running

    async def run(self, call: Callable[[], T], kind: Hashable | None = None) -> T:
        """``call()`` inline or in the pool (see the module docstring); its result or error."""
        if self.executor is None:
            return self.call_inline(call, kind)
        timings = self._kinds.get(kind)  # None is never a kind timed
        if timings is not None and timings.inline and self._alarm.available():
            if not self._slots.free:
                return await self._inline_after_wait(call, kind)
            try:
                return self._call_timed(call, timings)
            except InlineStall:
                pass  # demoted by _call_timed: run it again, from the start, in the pool
        return await self.call_in_pool(call, kind)

    async def _inline_after_wait(self, call: Callable[[], T], kind: Hashable | None) -> T:
        """A quick call while pool calls hold every slot: wait for a slot in turn, as a pool
        call would, then run inline holding it. Sent to the pool instead, it would keep the
        pool busy for the next quick call, and that one for the next: under steady load the
        quick kind would stay in the pool, paying its hand-offs, for as long as the load lasts."""
        await self._slots.acquire()
        try:
            if self.quick(kind):  # not demoted while it waited
                return self.call_inline(call, kind)
        except InlineStall:
            pass  # demoted by call_inline: run it again, from the start, in the pool
        finally:
            self._slots.release()
        return await self.call_in_pool(call, kind)

    async def call_in_pool(self, call: Callable[[], T], kind: Hashable | None = None) -> T:
        """``call()`` in a pool thread once a slot is free; a call whose caller stops waiting
        while it runs is counted as stuck until it returns."""
        executor = self.executor
        assert executor is not None, "use_thread_loop is off: there is no pool"
        await self._slots.acquire()
        self.in_pool += 1
        # in a copy of the caller's context: the model's log lines carry the request's id
        future = executor.submit(contextvars.copy_context().run, timed, call)
        try:
            result, wall, cpu = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if not future.cancel():  # running already: the thread cannot be stopped
                self._stuck_until_done(future)
            raise
        finally:
            self.in_pool -= 1
            self._slots.release()
        self.record(kind, wall, cpu)
        return result

    def call_inline(self, call: Callable[[], T], kind: Hashable | None) -> T:
        """``call()`` here, on the event loop, under the stall timer.

        :raises InlineStall: the call ran past its budget and was interrupted; its kind is
            demoted. Run it again in the pool (:meth:`call_in_pool`).
        :raises PredictTimeout: without a pool (``use_thread_loop = false``), the call ran
            past ``predict_timeout`` and was interrupted.
        """
        if self.executor is None:  # use_thread_loop = false: interrupted only at the timeout
            self.inline_calls += 1
            if self.inline_timeout is None or not self._alarm.available():
                return call()
            try:
                return self._alarm.call(call, self.inline_timeout)
            except InlineStall:
                self.interrupted += 1
                raise PredictTimeout(f"the prediction did not finish in predict_timeout = "
                                     f"{self.inline_timeout:g} s and was interrupted") from None
        return self._call_timed(call, self._kinds.get(kind))

    def _call_timed(self, call: Callable[[], T], timings: _Kind | None) -> T:
        """:meth:`call_inline` with a pool, given the timings of the call's kind (None: not
        timed): under the stall timer, and timed while its kind runs inline."""
        self.inline_calls += 1
        started = time.perf_counter()
        try:
            return self._alarm.call(call, self.stall_seconds)
        except InlineStall:
            self.interrupted += 1
            if timings is not None:
                self._demote(timings)
            logger.warning("a prediction on the event loop ran past %.3g ms: interrupted, and run "
                           "again in the thread pool", self.stall_seconds * 1000)
            raise
        finally:
            if timings is not None and timings.inline:
                wall = time.perf_counter() - started
                if wall <= self.max_inline_seconds and not timings.slow:
                    timings.inline_wall.append(wall)  # quick, among quick ones: nothing to decide
                else:
                    self._inline_sample(timings, wall)

    # ------------------------------------------------------------------ stuck calls

    def mark_stuck(self) -> Callable[[], None]:
        """Count a call whose caller stopped waiting while it runs as stuck; call the function
        returned, on the event loop's thread, when it returns."""
        self.stuck += 1
        self.stuck_total += 1
        started = time.monotonic()

        def returned() -> None:
            self.stuck -= 1
            logger.warning("a stuck prediction returned %.1f s after its caller stopped waiting; "
                           "%d still stuck", time.monotonic() - started, self.stuck)

        return returned

    def _stuck_until_done(self, future: Future[Any]) -> None:
        returned = self.mark_stuck()
        loop = asyncio.get_running_loop()

        def done(_: Future[Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
                loop.call_soon_threadsafe(returned)

        future.add_done_callback(done)

    # ------------------------------------------------------------------ timings

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
            self._demote(timings)

    def _demote(self, timings: _Kind) -> None:
        self.demotions += 1
        timings.inline = False
        timings.strikes += 1
        timings.holdoff = MIN_SAMPLES << min(timings.strikes, 10)
        timings.cpu.clear()
        timings.wall.clear()

    # ------------------------------------------------------------------ reporting

    def info(self) -> dict[str, Any]:
        """Counters for ``/info``: calls run inline and in the pool, the pool's load, and the
        calls stuck past their timeout."""
        return {"inline_calls": self.inline_calls, "pool_calls": self.pool_calls,
                "in_pool": self.in_pool, "waiting_for_slot": self._slots.waiting,
                "interrupted_inline_calls": self.interrupted, "demotions": self.demotions,
                "stuck": self.stuck,
                "stuck_total": self.stuck_total}

    def shutdown(self, wait: bool = False, cancel_futures: bool = False) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=wait, cancel_futures=cancel_futures)


def timed(call: Callable[[], T]) -> tuple[T, float, float]:
    """In a pool thread: ``call()``, its wall time and this thread's CPU time for it (errors
    propagate, untimed). Hand the times to :meth:`PredictRunner.record` on the loop."""
    wall, cpu = time.perf_counter(), time.thread_time()
    result = call()
    return result, time.perf_counter() - wall, time.thread_time() - cpu
