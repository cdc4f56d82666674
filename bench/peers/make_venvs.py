"""Create one virtual environment per peer server under ``bench/.venvs/<peer>`` with uv.

Each peer gets its own venv (their dependency trees clash with core's and with each other's:
BentoML pins its own Starlette and uvicorn, MLServer its own FastAPI), holding the peer, the
same onnxruntime and numpy as the benchmark, and nothing of core. Packages come from PyPI.

    python -m bench.peers.make_venvs               # all three
    python -m bench.peers.make_venvs litserve      # one
    python -m bench.peers.make_venvs --fresh       # delete and re-create

Needs ``uv`` (on PATH or beside this Python). The folder is git-ignored.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = HERE.parent / ".venvs"

#: What each peer's venv holds besides onnxruntime and numpy (pinned to the benchmark venv's
#: versions, so every server runs the same model code).
PEER_PACKAGES = {
    "litserve": ["litserve"],
    "bentoml": ["bentoml"],
    "mlserver": ["mlserver"],
}


def venv_python(peer: str) -> Path:
    """The Python of ``peer``'s venv."""
    return VENVS / peer / "bin" / "python"


def uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(found).exists():
        raise SystemExit("uv is not installed (pip install uv)")
    return found


def shared_pins() -> list[str]:
    """onnxruntime and numpy at this interpreter's versions (the benchmark's and core's)."""
    return [f"{name}=={metadata.version(name)}" for name in ("onnxruntime", "numpy")]


def make(peer: str, fresh: bool) -> None:
    """Create (or update) ``peer``'s venv and install its packages into it."""
    folder = VENVS / peer
    if fresh and folder.exists():
        shutil.rmtree(folder)
    if not venv_python(peer).exists():
        subprocess.run([uv(), "venv", "--python", sys.executable, str(folder)], check=True)
    subprocess.run(
        [uv(), "pip", "install", "--python", str(venv_python(peer)),
         "--index-url", "https://pypi.org/simple", *PEER_PACKAGES[peer], *shared_pins()],
        check=True,
    )
    versions = subprocess.run(
        [str(venv_python(peer)), "-c",
         f"from importlib.metadata import version; "
         f"print(' '.join(n + '=' + version(n) for n in {[*PEER_PACKAGES[peer], 'onnxruntime']!r}))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    print(f"{peer}: {folder} ({versions})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("peers", nargs="*", help=f"peers to set up: {', '.join(PEER_PACKAGES)} "
                                                 "(default: all)")
    parser.add_argument("--fresh", action="store_true", help="delete each venv first")
    args = parser.parse_args(argv)
    unknown = [peer for peer in args.peers if peer not in PEER_PACKAGES]
    if unknown:
        parser.error(f"unknown peer {unknown[0]!r}; known: {', '.join(PEER_PACKAGES)}")
    for peer in args.peers or PEER_PACKAGES:
        make(peer, args.fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
