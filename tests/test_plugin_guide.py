"""docs/plugins.md, followed as a reader would: its files are written into an empty folder,
the distribution is pip-installed (into a throw-away folder only the child processes see),
``core plugins`` lists it, its own tests (the contract suite and a real server) pass, and the
console output the guide shows is what ``core`` prints. The guide's second project, the
``core-route-csv`` route plugin (its files are captioned ``core-route-csv/...``), is installed
and tested the same way."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.plugins  # the guide's end-to-end test serves a pickle
GUIDE = Path(__file__).parent.parent / "docs" / "plugins.md"
CAPTION = re.compile(r"^`([\w./-]+)`:$")
#: The guide's route plugin: files captioned under this folder are its project's.
ROUTE_PROJECT = "core-route-csv"
FIRST_LINE = re.compile(r"^# ([\w./-]+\.py)$")


def guide_files() -> dict[str, str]:
    """Every code block the guide names a file for: by a caption line ``\\`path\\`:`` before
    it, or a first line ``# path.py``."""
    files: dict[str, str] = {}
    lines = GUIDE.read_text().splitlines()
    index = 0
    while index < len(lines):
        if lines[index].startswith("```") and lines[index] != "```":
            end = lines.index("```", index + 1)
            body = lines[index + 1:end]
            before = next((line for line in reversed(lines[:index]) if line.strip()), "")
            name = CAPTION.match(before) or (FIRST_LINE.match(body[0]) if body else None)
            if name:
                files[name.group(1)] = "\n".join(body) + "\n"
            index = end
        index += 1
    return files


def console_lines(command: str) -> list[str]:
    """What the guide shows right after ``$ command`` in its console blocks."""
    text = GUIDE.read_text()
    found = re.search(rf"^\$ {re.escape(command)}\n((?:[^$`\n].*\n)+)", text, flags=re.M)
    assert found, f"the guide shows no output for `{command}`"
    return found.group(1).splitlines()


def project_files(route: bool) -> dict[str, str]:
    """The files of the storage project (``route`` False) or of the route plugin."""
    prefix = ROUTE_PROJECT + "/"
    return {name.removeprefix(prefix): text for name, text in guide_files().items()
            if name.startswith(prefix) == route}


def install(root: Path, name: str, files: dict[str, str]) -> tuple[Path, Path, dict[str, str]]:
    """Write a project from the guide and pip-install it into a folder of its own."""
    project = root / name
    for path, text in files.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(text)
    (project / "README.md").write_text(f"# {name}\n")
    site = root / f"site-{name}"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(project)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORE_")}
    return project, site, {**env, "PYTHONPATH": str(site)}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    return install(tmp_path_factory.mktemp("guide"), "core-storage-zip", project_files(route=False))


def test_the_guide_names_every_file_of_its_project_trees():
    assert set(project_files(route=False)) == {"pyproject.toml", "core_storage_zip/__init__.py",
                                               "tests/conftest.py", "tests/test_zip_storage.py",
                                               "tests/test_served.py"}
    assert set(project_files(route=True)) == {"pyproject.toml", "core_route_csv/__init__.py",
                                              "tests/test_route.py"}


def test_the_route_plugins_own_tests_pass(tmp_path):
    """The guide's route plugin, installed, serves /predict/csv behind the admission gate."""
    project, _site, env = install(tmp_path, ROUTE_PROJECT, project_files(route=True))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                            cwd=project, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b2 passed", result.stdout), result.stdout


def test_core_plugins_lists_the_installed_storage(installed):
    _project, _site, env = installed
    result = subprocess.run([sys.executable, "-m", "core", "plugins"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    shown = [line for line in console_lines("core plugins") if line.startswith("zip ")]
    assert shown and shown[0] in result.stdout.splitlines()


def test_the_plugins_own_tests_pass(installed):
    project, _site, env = installed
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                            cwd=project, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 8, result.stdout
    assert "skipped" not in result.stdout and "failed" not in result.stdout


def test_a_misspelt_setting_is_the_line_the_guide_shows(installed, tmp_path):
    _project, _site, env = installed
    config = tmp_path / "config.toml"
    config.write_text('storage_type = "zip"\n[storage_kwargs]\narchive = "bundle.zip"\nmembr = "x"\n')
    result = subprocess.run([sys.executable, "-m", "core", "validate", str(config)], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    [line] = [line for line in console_lines("core validate config.toml") if line.startswith("core: error")]
    assert result.stderr.strip() == line
