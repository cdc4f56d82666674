"""core.runner: quick predictions run on the event loop, everything else in the thread pool."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from core.runner import MIN_SAMPLES, STALL_FACTOR, WINDOW, PredictRunner


def where() -> str:
    """The name of the thread a call ran in."""
    return threading.current_thread().name


def sleeper(seconds: float) -> Callable[[], str]:
    def call() -> str:
        time.sleep(seconds)
        return where()

    return call


@pytest.fixture
def pool():
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pool")
    yield executor
    executor.shutdown(wait=True)


def run_all(runner: PredictRunner, calls: list[tuple[Callable[[], Any], Any]]) -> list[Any]:
    async def scenario() -> list[Any]:
        return [await runner.run(call, kind) for call, kind in calls]

    return asyncio.run(scenario())


def test_a_quick_call_moves_to_the_loop_after_it_was_timed_in_the_pool(pool):
    runner = PredictRunner(pool, workers=2, max_inline_seconds=0.001)
    threads = run_all(runner, [(where, 1)] * (MIN_SAMPLES + 3))
    assert all(name.startswith("pool") for name in threads[:MIN_SAMPLES])
    assert threads[MIN_SAMPLES:] == [threading.main_thread().name] * 3
    assert runner.info() == {"inline_calls": 3, "pool_calls": MIN_SAMPLES, "in_pool": 0}


def test_a_call_that_sleeps_stays_in_the_pool(pool):
    # 5 ms of sleep costs no CPU; the wall-time check keeps it off the loop.
    runner = PredictRunner(pool, workers=2, max_inline_seconds=0.001)
    threads = run_all(runner, [(sleeper(0.02), 1)] * (MIN_SAMPLES + 4))
    assert all(name.startswith("pool") for name in threads)
    assert runner.inline_calls == 0


def test_one_stalling_inline_call_sends_its_kind_back_to_the_pool_for_longer(pool):
    runner = PredictRunner(pool, workers=2, max_inline_seconds=0.002)
    stall = {"on": False}

    def call() -> str:
        if stall["on"]:
            time.sleep(0.002 * STALL_FACTOR * 1.2)
        return where()

    run_all(runner, [(call, "k")] * MIN_SAMPLES)
    assert runner.runs_inline("k")
    stall["on"] = True
    assert run_all(runner, [(call, "k")]) == [threading.main_thread().name]  # the one stall
    assert not runner.runs_inline("k")
    stall["on"] = False
    # Back in the pool it now takes twice as many quick calls before the next promotion.
    threads = run_all(runner, [(call, "k")] * (2 * MIN_SAMPLES + 1))
    assert all(name.startswith("pool") for name in threads[: 2 * MIN_SAMPLES])
    assert threads[-1] == threading.main_thread().name


def test_a_kind_whose_inline_calls_turn_slow_goes_back_to_the_pool(pool):
    runner = PredictRunner(pool, workers=2, max_inline_seconds=0.002)
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
    assert all(name.startswith("pool") for name in threads[MIN_SAMPLES:])


def test_one_slow_inline_call_now_and_then_is_not_enough(pool):
    # A preemption or a garbage collection in the middle of a quick call must not count.
    runner = PredictRunner(pool, workers=2, max_inline_seconds=0.002)
    count = {"n": 0}

    def call() -> str:
        count["n"] += 1
        if count["n"] % 3 == 0:  # a third of the calls: fewer than half
            time.sleep(0.005)
        return where()

    run_all(runner, [(call, "k")] * MIN_SAMPLES)
    threads = run_all(runner, [(call, "k")] * (3 * WINDOW))
    assert threads == [threading.main_thread().name] * (3 * WINDOW)


def test_limit_zero_always_uses_the_pool_and_no_pool_never_does(pool):
    always_pool = PredictRunner(pool, workers=2, max_inline_seconds=0)
    assert all(n.startswith("pool") for n in run_all(always_pool, [(where, 1)] * 10))
    no_pool = PredictRunner(None, workers=1, max_inline_seconds=0.001)
    assert run_all(no_pool, [(where, 1)] * 3) == [threading.main_thread().name] * 3


def test_inline_calls_respect_the_concurrency_limit():
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pool")
    runner = PredictRunner(executor, workers=1, max_inline_seconds=0.001)
    run_all(runner, [(where, "quick")] * MIN_SAMPLES)
    assert runner.runs_inline("quick")

    async def scenario() -> tuple[str, str]:
        busy = asyncio.ensure_future(runner.run(sleeper(0.2), "slow"))
        await asyncio.sleep(0.05)  # the slow call holds the only worker
        quick = await runner.run(where, "quick")  # must wait for it, not run beside it
        return quick, await busy

    quick, busy = asyncio.run(scenario())
    assert quick.startswith("pool") and busy.startswith("pool")
    executor.shutdown(wait=True)


def test_errors_propagate_from_both_paths(pool):
    runner = PredictRunner(pool, workers=2, max_inline_seconds=0.01)
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
