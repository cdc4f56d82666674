"""FileExchange on a real folder: the boundary rules of core_mlcomponent.files, one by one."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from core_mlcomponent.files import FileExchange, Refused


@pytest.fixture
def exchange(tmp_path: Path) -> FileExchange:
    return FileExchange(tmp_path / "files", ttl=60)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("secret")
    return folder


def generated(exchange: FileExchange, content: bytes = b"x", hint: str = "a.txt") -> Path:
    return exchange.save(content, hint)


def test_references_are_decided_lexically_first(exchange: FileExchange) -> None:
    name = uuid.uuid4().hex + "-a.txt"
    root = exchange.root
    assert exchange.parts(name) == (name,)
    assert exchange.parts(f"http://host:8009/files/{name}") == (name,)
    assert exchange.parts(f"https://proxy/api/files/{name}?x=1") == (name,)
    assert exchange.parts(f"/files/{name}") == (name,)
    assert exchange.parts(f"{root}/sub/./b.csv") == ("sub", "b.csv")
    assert exchange.parts("sub//b.csv") == ("sub", "b.csv")
    for reference in ("../x", "sub/../../x", f"{root}/../x", f"{root}/a/../b", "/etc/passwd", f"{root}x/a",
                      str(root), ".", "", "http://host/files/not-generated", "http://host/other/" + name,
                      "/files/../etc/passwd", "a\0b"):
        with pytest.raises(Refused):
            exchange.parts(reference)


def test_a_reference_is_a_regular_file_reached_without_symlinks(exchange: FileExchange, outside: Path) -> None:
    root = exchange.root
    (root / "sub").mkdir()
    (root / "sub" / "b.csv").write_text("b")
    assert exchange.reference("sub/b.csv") == root / "sub" / "b.csv"
    (root / "file-link").symlink_to(outside / "secret.txt")
    (root / "inner-file-link").symlink_to(root / "sub" / "b.csv")
    (root / "dir-link").symlink_to(outside, target_is_directory=True)
    (root / "self").symlink_to(root, target_is_directory=True)
    os.mkfifo(root / "fifo")
    os.link(root / "sub" / "b.csv", root / "hard-link")
    for reference in ("file-link", "inner-file-link", "dir-link/secret.txt", "self/sub/b.csv", "fifo",
                      "sub", "hard-link", "sub/b.csv/x", "missing"):
        with pytest.raises(Refused):
            exchange.reference(reference)


def test_one_message_whatever_the_reason(exchange: FileExchange, outside: Path) -> None:
    (exchange.root / "dir-link").symlink_to(outside, target_is_directory=True)
    messages = set()
    for reference in (outside / "secret.txt", outside / "missing.txt", "dir-link/secret.txt", "dir-link/missing.txt"):
        with pytest.raises(Refused) as caught:
            exchange.reference(str(reference))
        messages.add(str(caught.value).replace(str(reference), "<ref>"))
    assert len(messages) == 1, messages


def test_expired_generated_files_are_refused(tmp_path: Path) -> None:
    exchange = FileExchange(tmp_path / "files", ttl=1)
    path = generated(exchange)
    assert exchange.reference(path.name) == path
    old = time.time() - 5
    os.utime(path, (old, old))
    with pytest.raises(Refused):
        exchange.reference(path.name)
    assert exchange.read(path.name) is None


def test_adopt_moves_to_a_generated_name_and_never_follows(exchange: FileExchange, outside: Path) -> None:
    path = generated(exchange, b"kept")
    assert exchange.adopt(str(path)) == path.name
    (exchange.root / "out.csv").write_text("1,2")
    name = exchange.adopt(str(exchange.root / "out.csv"))
    assert name.endswith("-out.csv") and (exchange.root / name).read_text() == "1,2"
    assert not (exchange.root / "out.csv").exists()
    link = exchange.new_path("link.txt")
    link.symlink_to(path)
    with pytest.raises(Refused):
        exchange.adopt(str(link))
    assert link.is_symlink() and path.read_bytes() == b"kept"
    for bad in (str(outside / "secret.txt"), None, 3, ["a"]):
        with pytest.raises(Refused):
            exchange.adopt(bad)


def test_only_generated_regular_files_of_the_server_are_served(exchange: FileExchange, outside: Path) -> None:
    path = generated(exchange, b"content")
    assert exchange.read(path.name) == b"content"
    planted = exchange.new_path("planted.txt")
    planted.symlink_to(outside / "secret.txt")
    (exchange.root / "plain.txt").write_text("not generated")
    directory = exchange.new_path()
    directory.mkdir()
    for name in (planted.name, "plain.txt", directory.name, "../outside/secret.txt", path.name + "/x"):
        assert exchange.open_generated(name) is None, name


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file another owner needs root")
def test_a_file_of_another_user_is_not_served(exchange: FileExchange) -> None:
    path = generated(exchange)
    os.chown(path, 12345, 12345)
    assert exchange.open_generated(path.name) is None


def test_outputs_are_written_only_at_fresh_generated_paths(exchange: FileExchange) -> None:
    fresh = exchange.new_path("out.csv")
    assert exchange.is_fresh(fresh) and exchange.is_fresh(str(fresh))
    assert fresh != exchange.new_path("out.csv")
    taken = generated(exchange)
    assert not exchange.is_fresh(taken)
    assert not exchange.is_fresh(exchange.root / "sub" / fresh.name)
    assert not exchange.is_fresh(exchange.root / "chosen.csv")
    link = exchange.new_path()
    link.symlink_to(exchange.root / "nowhere")  # a dangling symlink occupies the name
    assert not exchange.is_fresh(link)


def test_the_sweeper_deletes_expired_regular_files_only(tmp_path: Path, outside: Path) -> None:
    exchange = FileExchange(tmp_path / "files", ttl=1)
    old = time.time() - 5
    expired = generated(exchange)
    os.utime(expired, (old, old))
    fresh = generated(exchange)
    link = exchange.new_path()
    link.symlink_to(outside / "secret.txt")
    os.utime(outside / "secret.txt", (old, old))
    assert exchange.sweep() == 1
    assert not expired.exists() and fresh.exists()
    assert link.is_symlink() and (outside / "secret.txt").exists()
