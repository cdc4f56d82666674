"""Every check, one session each. ``nox`` runs them all; ``nox -s serve`` serves the example.

- ``core``: the core's tests in a venv holding the core alone (plugin tests deselected);
- ``plugin-<name>``: one plugin's tests in a venv holding the core and that plugin (plus the
  plugins its tests serve models with, listed in ``TEST_NEEDS``);
- ``all_plugins``: every plugin installed (but the :data:`HEAVY` ones), the core's tests re-run
  in full;
- ``lint`` (ruff) and ``types`` (mypy), both on the core and every plugin.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "types", "core", "plugin", "all_plugins"]
nox.options.reuse_existing_virtualenvs = False

ROOT = Path(__file__).parent
PLUGINS = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())
#: Plugins whose framework is a large download (torch, TensorFlow): tested, linted and
#: type-checked in their own ``plugin`` session only; ``all_plugins``, ``types`` and ``serve``
#: leave them out, so that the other sessions stay quick.
HEAVY: set[str] = {
    "binarizer_tensorflow",
    "binarizer_torch",
    "serve_ray",
}
LIGHT = [name for name in PLUGINS if name not in HEAVY]
#: Plugins whose tests need other plugins to have a model to serve.
TEST_NEEDS: dict[str, list[str]] = {
    "binarizer_lightgbm": ["storage_disk", "protocol_v2"],
    "binarizer_xgboost": ["storage_disk", "protocol_v2"],
    "binarizer_torch": ["storage_disk", "protocol_v2", "binarizer_onnx"],
    "binarizer_tensorflow": ["storage_disk", "protocol_v2"],
    "protocol_v2": ["storage_disk", "storage_memory", "binarizer_onnx", "binarizer_pickle", "mlcomponent",
                    "transformer_pandas"],
    "mlcomponent": ["protocol_v2", "storage_disk", "storage_memory", "binarizer_onnx", "binarizer_pickle"],
    "transformer_pandas": ["storage_disk", "storage_memory", "binarizer_pickle"],
    "tracing_opentelemetry": ["storage_memory"],
    "storage_remote": ["binarizer_pickle", "binarizer_onnx", "mlcomponent"],
    "deploy_kubernetes": ["storage_disk", "binarizer_pickle", "protocol_v2", "mlcomponent"],
    "serve_ray": ["storage_disk", "binarizer_onnx", "protocol_v2"],
}


#: Where a CPU build of torch may lie as a wheel (this project's machines have one), and the
#: index of PyTorch's CPU builds otherwise: the torch plugin's session installs one of them
#: first, so that the plugin's ``torch>=2.1`` is met without the default CUDA build (GBs).
TORCH_WHEELS = Path(os.environ.get("CORE_TORCH_WHEELS", "/opt/wheels"))
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _install_torch_cpu(session: nox.Session) -> None:
    """torch's CPU build: the wheel in :data:`TORCH_WHEELS` for this Python, else the newest
    from :data:`TORCH_CPU_INDEX`."""
    tag = f"-cp{sys.version_info.major}{sys.version_info.minor}-"
    wheels = sorted(w for w in TORCH_WHEELS.glob("torch-*+cpu-*.whl") if tag in w.name)
    if wheels:
        version = wheels[-1].name.split("-")[1]  # e.g. 2.13.0+cpu
        session.install("--find-links", str(TORCH_WHEELS), f"torch=={version}")
    else:
        session.install("torch", "--index-url", TORCH_CPU_INDEX)


def _install_redis(session: nox.Session) -> None:
    """Debian's ``redis-server`` for the redis result store's tests (they start their own on a
    free port), installed with apt-get where it is missing and this runs as root (CI,
    containers); elsewhere those tests say how to install it and are skipped."""
    if shutil.which("redis-server") or not shutil.which("apt-get") or os.geteuid() != 0:
        return
    session.run("apt-get", "update", "-qq", external=True)
    session.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server",
                external=True, env={"DEBIAN_FRONTEND": "noninteractive"})


#: What a plugin's session installs before the plugin (its framework's CPU build, a server its
#: tests run).
INSTALL_FIRST = {"binarizer_torch": _install_torch_cpu, "result_store_redis": _install_redis}


def _packages(name: str) -> list[str]:
    """A plugin's package folders (those with an ``__init__.py``, next to its ``pyproject.toml``)."""
    folder = ROOT / "plugins" / name
    return sorted(str(init.parent.relative_to(ROOT)) for init in folder.glob("*/__init__.py")
                  if init.parent.name != "tests")


def _install_core(session: nox.Session) -> None:
    session.install("-e", ".[test]")


def _install_plugins(session: nox.Session, names: list[str], tested: str | None = None) -> None:
    """Install plugins (editable, in one resolution); ``tested`` with its test extra, the others
    as users install them (their test extras pull heavy clients only their own tests use)."""
    args = []
    for name in names:
        args += ["-e", f"plugins/{name}[test]" if name == tested else f"plugins/{name}"]
    if args:
        session.install(*args)


def _install_prometheus(session: nox.Session) -> None:
    """Debian's ``prometheus`` for ``tests/test_prometheus.py`` (a real server scraping core),
    installed with apt-get where it is missing and this runs as root (CI, containers);
    elsewhere the test says how to install it and is skipped."""
    if shutil.which("prometheus") or not shutil.which("apt-get") or os.geteuid() != 0:
        return
    session.run("apt-get", "update", "-qq", external=True)
    session.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus",
                external=True, env={"DEBIAN_FRONTEND": "noninteractive"})


@nox.session
def core(session: nox.Session) -> None:
    """The core's tests with no plugin installed."""
    _install_prometheus(session)
    _install_core(session)
    session.run("pytest", "tests", "-m", "not plugins", *session.posargs)


@nox.session
@nox.parametrize("name", PLUGINS)
def plugin(session: nox.Session, name: str) -> None:
    """One plugin's own tests next to the core."""
    _install_core(session)
    if name in INSTALL_FIRST:
        INSTALL_FIRST[name](session)
    _install_plugins(session, [name, *[n for n in TEST_NEEDS.get(name, []) if n in PLUGINS]], tested=name)
    session.run("pytest", f"plugins/{name}/tests", *session.posargs)
    if name in HEAVY:  # the types session leaves it out
        session.install("mypy")
        session.run("mypy", *_packages(name))


@nox.session
def all_plugins(session: nox.Session) -> None:
    """Every plugin installed (but the heavy ones): the core's tests again, including those
    that need plugins."""
    _install_prometheus(session)
    _install_core(session)
    _install_plugins(session, LIGHT)
    session.run("pytest", "tests", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the core, the plugins (their packages and tests), the benches and examples."""
    session.install("ruff")
    session.run("ruff", "check", "core", "tests", "plugins", "bench", "examples", "noxfile.py")


@nox.session
def types(session: nox.Session) -> None:
    """mypy on the core and every plugin's package, with the settings of ``[tool.mypy]`` for
    all; every plugin is installed so that what they import resolves."""
    _install_core(session)
    _install_plugins(session, LIGHT)
    session.install("mypy")
    session.run("mypy", "core", *[package for name in LIGHT for package in _packages(name)])


@nox.session(default=False)
def serve(session: nox.Session) -> None:
    """Serve the shipped ONNX example on http://127.0.0.1:8009 (Ctrl+C to stop)."""
    _install_core(session)
    _install_plugins(session, LIGHT)
    config = session.posargs[0] if session.posargs else "examples/onnx/config.toml"
    session.run("hypercorn", "core.app:app", "--bind", "127.0.0.1:8009",
                env={"CORE_CONFIG": config})
