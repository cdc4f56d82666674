"""core.runner: quick predictions run on the event loop, everything else in the thread pool."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from core.runner import MIN_SAMPLES, STALL_FACTOR, WINDOW, InlineStall, PredictRunner

POOL = "core-predict"


def where() -> str:
    """The name of the thread a call ran in."""
    return threading.current_thread().name


def sleeper(seconds: float) -> Callable[[], str]:
    def call() -> str:
        time.sleep(seconds)
        return where()

    return call


@pytest.fixture
def make():
    """``make(workers=2, max_inline_seconds=...)`` -> a runner, shut down after the test."""
    made: list[PredictRunner] = []

    def build(workers: int = 2, max_inline_seconds: float = 0.001, **options: Any) -> PredictRunner:
        runner = PredictRunner(workers, max_inline_seconds, **options)
        made.append(runner)
        return runner

    yield build
    for runner in made:
        runner.shutdown(wait=True)


def run_all(runner: PredictRunner, calls: list[tuple[Callable[[], Any], Any]]) -> list[Any]:
    async def scenario() -> list[Any]:
        return [await runner.run(call, kind) for call, kind in calls]

    return asyncio.run(scenario())


def test_a_quick_call_moves_to_the_loop_after_it_was_timed_in_the_pool(make):
    runner = make(max_inline_seconds=0.001)
    threads = run_all(runner, [(where, 1)] * (MIN_SAMPLES + 3))
    assert all(name.startswith(POOL) for name in threads[:MIN_SAMPLES])
    assert threads[MIN_SAMPLES:] == [threading.main_thread().name] * 3
    info = runner.info()
    assert (info["inline_calls"], info["pool_calls"], info["in_pool"], info["stuck"]) == (3, MIN_SAMPLES, 0, 0)


def test_a_call_that_sleeps_stays_in_the_pool(make):
    # 5 ms of sleep costs no CPU; the wall-time check keeps it off the loop.
    runner = make(max_inline_seconds=0.001)
    threads = run_all(runner, [(sleeper(0.02), 1)] * (MIN_SAMPLES + 4))
    assert all(name.startswith(POOL) for name in threads)
    assert runner.inline_calls == 0


def test_one_stalling_inline_call_sends_its_kind_back_to_the_pool_for_longer(make):
    runner = make(max_inline_seconds=0.002)
    stall = {"on": False}

    def call() -> str:
        if stall["on"]:
            time.sleep(0.002 * STALL_FACTOR * 1.2)
        return where()

    run_all(runner, [(call, "k")] * MIN_SAMPLES)
    assert runner.runs_inline("k")
    stall["on"] = True
    # the one stall: interrupted on the loop at its budget, run again in the pool
    assert run_all(runner, [(call, "k")])[0].startswith(POOL)
    assert runner.interrupted == 1 and runner.info()["demotions"] == 1
    assert not runner.runs_inline("k")
    stall["on"] = False
    # Back in the pool it now takes twice as many pool calls (the stalled one, run again
    # there, is the first) before the next promotion.
    threads = run_all(runner, [(call, "k")] * (2 * MIN_SAMPLES))
    assert all(name.startswith(POOL) for name in threads[: 2 * MIN_SAMPLES - 1])
    assert threads[-1] == threading.main_thread().name


def test_a_kind_whose_inline_calls_turn_slow_goes_back_to_the_pool(make):
    runner = make(max_inline_seconds=0.002)
    slow = {"on": False}

    def call() -> str:
        if slow["on"]:
            time.sleep(0.005)  # over the limit, far from a stall
        return where()

    run_all(runner, [(call, "k")] * MIN_SAMPLES)
    assert runner.runs_inline("k")
    slow["on"] = True
    threads = run_all(runner, [(call, "k")] * (MIN_SAMPLES + 2))
    assert threads[:MIN_SAMPLES] == [threading.main_thread().name] * MIN_SAMPLES
    assert all(name.startswith(POOL) for name in threads[MIN_SAMPLES:])
    assert runner.info()["demotions"] == 1


def test_one_slow_inline_call_now_and_then_is_not_enough(make):
    # A preemption or a garbage collection in the middle of a quick call must not count.
    runner = make(max_inline_seconds=0.002)
    count = {"n": 0}

    def call() -> str:
        count["n"] += 1
        if count["n"] % 3 == 0:  # a third of the calls: fewer than half
            time.sleep(0.005)
        return where()

    run_all(runner, [(call, "k")] * MIN_SAMPLES)
    threads = run_all(runner, [(call, "k")] * (3 * WINDOW))
    assert threads == [threading.main_thread().name] * (3 * WINDOW)


def test_limit_zero_always_uses_the_pool_and_no_pool_never_does(make):
    always_pool = make(max_inline_seconds=0)
    assert all(n.startswith(POOL) for n in run_all(always_pool, [(where, 1)] * 10))
    no_pool = make(1, 0.001, use_threads=False)
    assert run_all(no_pool, [(where, 1)] * 3) == [threading.main_thread().name] * 3


def test_inline_calls_respect_the_concurrency_limit(make):
    runner = make(1, 0.001)
    run_all(runner, [(where, "quick")] * MIN_SAMPLES)
    assert runner.runs_inline("quick")
    ended: list[float] = []

    def slow() -> str:
        time.sleep(0.2)
        ended.append(time.monotonic())
        return where()

    def quick() -> tuple[str, float]:
        return where(), time.monotonic()

    async def scenario() -> tuple[tuple[str, float], str]:
        busy = asyncio.ensure_future(runner.run(slow, "slow"))
        await asyncio.sleep(0.05)  # the slow call holds the only worker
        after = await runner.run(quick, "quick")  # must wait for it, not run beside it
        return after, await busy

    (thread, at), busy = asyncio.run(scenario())
    assert busy.startswith(POOL)
    assert thread == threading.main_thread().name  # waited for the slot, then ran inline
    assert at >= ended[0]


def test_quick_calls_waiting_for_a_busy_pool_do_not_cascade_into_it(make):
    """While a pool call holds the only slot, the quick calls that arrive wait for it and run
    on the loop, one at a time; none joins the pool (where each would keep the next out)."""
    runner = make(1, 0.001)
    run_all(runner, [(where, "quick")] * MIN_SAMPLES)
    running = 0
    overlapped = False

    def guarded(call: Callable[[], Any]) -> Callable[[], Any]:
        def wrapped() -> Any:
            nonlocal running, overlapped
            running += 1
            overlapped = overlapped or running > 1
            try:
                return call()
            finally:
                running -= 1
        return wrapped

    async def scenario() -> list[str]:
        busy = asyncio.ensure_future(runner.run(guarded(sleeper(0.2)), "slow"))
        await asyncio.sleep(0.05)
        quick = [asyncio.ensure_future(runner.run(guarded(where), "quick")) for _ in range(8)]
        await asyncio.sleep(0.02)
        assert runner.info()["waiting_for_slot"] == 8
        return [await busy, *await asyncio.gather(*quick)]

    threads = asyncio.run(scenario())
    assert threads[0].startswith(POOL)
    assert threads[1:] == [threading.main_thread().name] * 8
    info = runner.info()
    assert (info["pool_calls"], info["inline_calls"], info["waiting_for_slot"]) == (MIN_SAMPLES + 1, 8, 0)
    assert not overlapped  # max_thread_loop_workers = 1 held throughout


def test_errors_propagate_from_both_paths(make):
    runner = make(max_inline_seconds=0.01)
    run_all(runner, [(where, 1)] * MIN_SAMPLES)

    def fail() -> None:
        raise ValueError("bad rows")

    for kind in (1, "never timed"):  # inline, then pool
        with pytest.raises(ValueError, match="bad rows"):
            run_all(runner, [(fail, kind)])


def test_kinds_follow_row_counts_and_other_arguments():
    kind = PredictRunner.kind
    assert kind({"X": [1] * 5}, "X") == kind({"X": [1] * 7}, "X")  # 4..7 rows
    assert kind({"X": [1] * 5}, "X") != kind({"X": [1] * 8}, "X")
    assert kind({"X": [1], "seconds": 1.0}, "X") != kind({"X": [1], "seconds": 0.001}, "X")
    assert kind({"X": [1], "labels": ["a"]}, "X") is None  # unhashable: never inline
    assert kind({"X": 3}, "X") is None  # no length
    assert kind({"features": {"a": 1}}, None) is None


def test_an_inline_call_that_hangs_is_interrupted_and_runs_again_in_the_pool(make):
    """A quick kind whose call suddenly hangs must not freeze the event loop: it is cut at
    the stall budget (a few ms) and finished in a pool thread."""
    runner = make(max_inline_seconds=0.0002)
    calls: list[str] = []

    def call(hang: bool) -> str:
        calls.append(where())
        if hang and where() == threading.main_thread().name:
            time.sleep(30)  # would block the loop for 30 s
        return where()

    run_all(runner, [(lambda: call(False), "k")] * MIN_SAMPLES)
    assert runner.runs_inline("k")

    async def scenario() -> tuple[str, float]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        ticker = asyncio.ensure_future(tick())
        started = time.monotonic()
        result = await runner.run(lambda: call(True), "k")
        ticker.cancel()
        return result, time.monotonic() - started

    result, seconds = asyncio.run(scenario())
    assert result.startswith(POOL)
    assert calls[-2:] == [threading.main_thread().name, result]  # cut on the loop, then the pool
    assert seconds < 5
    assert runner.interrupted == 1 and not runner.runs_inline("k")


def test_a_call_that_hangs_after_quick_ones_gets_its_whole_stall_budget(make):
    """The stall timer is set lazily, for the first of a run of quick calls: one that hangs
    later in the run is still cut at its own budget, not at the earlier call's."""
    runner = make(max_inline_seconds=0.0002)
    budget = runner.stall_seconds
    cut_after: list[float] = []

    def call(hang: bool) -> str:
        if hang and where() == threading.main_thread().name:
            started = time.perf_counter()
            try:
                time.sleep(30)
            except InlineStall:
                cut_after.append(time.perf_counter() - started)
                raise
        return where()

    run_all(runner, [(lambda: call(False), "k")] * MIN_SAMPLES)

    async def scenario() -> str:
        await runner.run(lambda: call(False), "k")  # inline: sets the timer for its budget
        await asyncio.sleep(budget * 0.6)  # the timer is due 0.4 budgets into the next call
        return await runner.run(lambda: call(True), "k")

    assert asyncio.run(scenario()).startswith(POOL)
    assert len(cut_after) == 1 and budget * 0.95 <= cut_after[0] < budget + 2
    assert runner.interrupted == 1


def test_the_stall_timer_going_off_between_calls_changes_nothing(make):
    """After a run of quick calls the timer goes off while none runs: nothing is raised, the
    loop's own waits are whole, and the next calls run inline as before. Pool threads never
    take the signal."""
    runner = make(max_inline_seconds=0.0002)
    budget = runner.stall_seconds
    run_all(runner, [(where, "k")] * MIN_SAMPLES)

    async def scenario() -> tuple[list[str], float, set[int]]:
        first = [await runner.run(where, "k") for _ in range(50)]
        started = time.monotonic()
        await asyncio.sleep(budget * 3)  # the timer goes off in here
        slept = time.monotonic() - started
        later = [await runner.run(where, "k") for _ in range(5)]
        blocked = await runner.call_in_pool(lambda: signal.pthread_sigmask(signal.SIG_BLOCK, []))
        return first + later, slept, blocked

    threads, slept, blocked = asyncio.run(scenario())
    assert threads == [threading.main_thread().name] * 55
    assert slept >= budget * 3 * 0.95
    assert runner.interrupted == 0 and runner.demotions == 0
    assert signal.SIGALRM in blocked


def test_a_call_whose_caller_stops_waiting_is_stuck_until_it_returns(make):
    runner = make(1, 0.0, spare_threads=1)
    release = threading.Event()

    async def scenario() -> tuple[int, int, str, int]:
        hung = asyncio.ensure_future(runner.run(lambda: release.wait(10) and where(), "hung"))
        await asyncio.sleep(0.1)
        hung.cancel()  # predict_timeout: the caller gives up
        await asyncio.sleep(0)
        stuck = runner.stuck
        # the slot came back and a spare thread takes the next call at once
        other = await asyncio.wait_for(runner.run(where, "other"), 5)
        release.set()
        for _ in range(100):
            if runner.stuck == 0:
                break
            await asyncio.sleep(0.02)
        return stuck, runner.stuck_total, other, runner.stuck

    stuck, total, other, after = asyncio.run(scenario())
    assert (stuck, total) == (1, 1)
    assert other.startswith(POOL)
    assert after == 0


def test_without_a_pool_a_call_past_its_timeout_is_interrupted(make):
    from core.errors import PredictTimeout

    runner = make(1, 0.0, use_threads=False, inline_timeout=0.1)
    started = time.monotonic()
    with pytest.raises(PredictTimeout, match="interrupted"):
        run_all(runner, [(sleeper(30), 1)])
    assert time.monotonic() - started < 5
