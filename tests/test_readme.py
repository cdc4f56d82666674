"""What the README promises is what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^(python3 -m pip install .*?)\s+#", readme, flags=re.M)
    assert len(commands) >= 2, "the README must start with the serve and the test command"
    serve, test = commands[0], commands[1]
    assert "nox -s serve" in serve
    assert test.strip() in (ROOT / ".ci" / "run").read_text()
