"""MLServer's codecs against core: the suite ``mlserver_codecs.py``, run in a pytest of its own.

``mlserver`` and ``kserve`` cannot be imported in one Python process: both register the V2
gRPC messages (protobuf package ``inference``) in protobuf's default pool, and the second
import fails ("duplicate symbol 'inference.ServerLiveRequest'"). The other test modules use
the kserve SDK, so the MLServer suite runs in a child pytest; its report is shown here when
it fails. (``mlserver_codecs.py`` is not collected here: its name does not start with test_.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SUITE = Path(__file__).with_name("mlserver_codecs.py")
PLUGIN = SUITE.parent.parent


def test_mlserver_codecs_in_their_own_process() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(SUITE), "-q", "-p", "no:cacheprovider",
         "--rootdir", str(PLUGIN), "-c", str(PLUGIN / "pyproject.toml")],
        cwd=PLUGIN, capture_output=True, text=True, timeout=1200,
    )
    assert run.returncode == 0, f"the MLServer codec suite failed:\n{run.stdout[-20000:]}\n{run.stderr[-5000:]}"
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout
