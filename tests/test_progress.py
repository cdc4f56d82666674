"""``core.progress``: progress lines while big model files are read, hashed and unpickled."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import re
from collections.abc import Callable

import pytest

from core import progress

#: ``logged()``: the messages logged to ``core`` so far.
Logged = Callable[[], list[str]]


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Logged:
    """The ``core`` logger at INFO, captured."""
    caplog.set_level(logging.INFO, logger="core")
    return lambda: [record.getMessage() for record in caplog.records if record.name == "core"]


def percents(lines: list[str], prefix: str) -> list[int]:
    return [int(m[1]) for line in lines if (m := re.match(rf"{re.escape(prefix)}: (\d+)%", line))]


def test_a_line_at_every_tenth_and_a_done_line(logged: Logged) -> None:
    counter = progress.Progress("reading", "model.bin", 1000)
    for _ in range(100):
        counter.advance(10)
    counter.finish()
    assert percents(logged(), "reading model.bin") == list(range(10, 100, 10))
    assert logged()[0] == "reading model.bin: 10% (0.0 of 0.0 MiB)"
    assert re.fullmatch(r"reading model\.bin: done, 0\.0 MiB in \d+\.\ds", logged()[-1])
    assert counter.done == 1000


def test_big_steps_log_once_per_step(logged: Logged) -> None:
    counter = progress.Progress("hashing", "m", 100)
    counter.advance(35)
    counter.advance(5)
    counter.advance(60)  # the end: the done line says it
    assert percents(logged(), "hashing m") == [35, 40]


def test_an_unknown_total_logs_no_percentage(logged: Logged) -> None:
    counter = progress.Progress("reading", "stream", 0)
    counter.advance(10**9)
    assert logged() == []
    counter.finish()
    assert len(logged()) == 1 and logged()[0].startswith("reading stream: done, 953.7 MiB in ")


def test_read_file_reads_a_small_file_at_once(tmp_path, logged: Logged) -> None:
    path = tmp_path / "small.bin"
    path.write_bytes(b"abc")
    data = progress.read_file(str(path))
    assert type(data) is bytes and data == b"abc"
    assert logged() == []


def test_read_file_reads_a_big_file_in_place(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                             logged: Logged) -> None:
    monkeypatch.setattr(progress, "PROGRESS_THRESHOLD", 1000)
    monkeypatch.setattr(progress, "CHUNK_SIZE", 100)
    payload = os.urandom(1000)
    path = tmp_path / "big.bin"
    path.write_bytes(payload)
    data = progress.read_file(str(path))
    assert isinstance(data, bytearray) and data == payload
    assert percents(logged(), "reading big.bin") == list(range(10, 100, 10))
    assert logged()[-1].startswith("reading big.bin: done")


def test_read_file_threshold_argument(tmp_path, logged: Logged) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(b"x" * 50)
    assert progress.read_file(str(path), threshold=10) == b"x" * 50
    assert logged()[-1].startswith("reading m.bin: done, 0.0 MiB")


def test_read_file_refuses_a_file_that_shrinks(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(b"x" * 100)
    monkeypatch.setattr(progress, "_read_into", lambda file, buffer, counter: 60)
    with pytest.raises(OSError, match="shrank from 100 to 60 bytes"):
        progress.read_file(str(path), threshold=1)


def test_read_file_missing_file_is_an_os_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        progress.read_file(str(tmp_path / "nope.bin"))


def test_progress_reader_counts_every_way_of_reading(logged: Logged) -> None:
    counter = progress.Progress("unpickling", "m.pkl", 20)
    reader = progress.ProgressReader(io.BufferedReader(io.BytesIO(b"line one\n0123456789A")), counter)
    assert reader.peek(1)[:1] == b"l"
    assert counter.done == 0
    assert reader.readline() == b"line one\n"
    buffer = bytearray(4)
    assert reader.readinto(buffer) == 4 and buffer == b"0123"
    assert reader.read() == b"456789A"
    assert counter.done == 20
    assert percents(logged(), "unpickling m.pkl") == [45, 65]


def test_unpickling_through_the_reader_gives_the_object() -> None:
    data = pickle.dumps({"weights": list(range(1000))}, protocol=5)
    counter = progress.Progress("unpickling", "m.pkl", len(data))
    with io.BufferedReader(io.BytesIO(data)) as file:
        assert pickle.load(progress.ProgressReader(file, counter)) == {"weights": list(range(1000))}
    assert counter.done == len(data)


@pytest.mark.parametrize("size", [0, 1, 99, 100, 101, 1000])
def test_sha256_of_matches_hashlib(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "CHUNK_SIZE", 100)
    data = os.urandom(size)
    assert progress.sha256_of(io.BytesIO(data), size, "m") == hashlib.sha256(data).hexdigest()


def test_sha256_of_starts_at_the_current_position() -> None:
    file = io.BytesIO(b"headerpayload")
    file.seek(6)
    assert progress.sha256_of(file, 7, "m") == hashlib.sha256(b"payload").hexdigest()


def test_sha256_of_logs_big_files_only(monkeypatch: pytest.MonkeyPatch, logged: Logged) -> None:
    monkeypatch.setattr(progress, "CHUNK_SIZE", 100)
    data = os.urandom(1000)
    progress.sha256_of(io.BytesIO(data), len(data), "small.bin")
    assert logged() == []
    progress.sha256_of(io.BytesIO(data), len(data), "big.bin", threshold=1000)
    assert percents(logged(), "hashing big.bin") == list(range(10, 100, 10))
    assert logged()[-1].startswith("hashing big.bin: done")
