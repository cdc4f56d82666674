"""The models the tests serve, built here: a seeded MLP saved as TorchScript (scripted and
traced), as an exported program (where this torch has ``torch.export``), as a whole pickled
module and as a state_dict; and ``serve(config)``, real ``hypercorn core.app:app`` servers
(:mod:`core.testing`) with the support folder on their ``PYTHONPATH``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from core.testing import server_fixture

SUPPORT = Path(__file__).parent / "support"
if str(SUPPORT) not in sys.path:  # the model classes, for the tests as for the servers
    sys.path.insert(0, str(SUPPORT))

import torch_test_models  # noqa: E402

#: Hypercorn's settings for the test servers: importing torch (and, for an exported program,
#: torch.export's loader) may take longer than hypercorn's default 60 s start-up limit on a
#: busy 2-core machine.
HYPERCORN_CONFIG = SUPPORT / "hypercorn.toml"
#: ``serve(config)`` starts a :class:`core.testing.Server`; all are stopped at module end.
serve = server_fixture(scope="module", pythonpath=[SUPPORT], timeout=300,
                       hypercorn_args=["--config", str(HYPERCORN_CONFIG)])

HAS_EXPORT = hasattr(torch, "export") and hasattr(torch.export, "save")


@pytest.fixture(scope="session")
def model() -> torch_test_models.MLP:
    return torch_test_models.mlp()


@pytest.fixture(scope="session")
def rows() -> np.ndarray:
    """Seven rows of four features (float32), varied enough to give different classes."""
    return np.random.default_rng(7).normal(size=(7, 4)).astype(np.float32)


@pytest.fixture(scope="session")
def expected(model: torch_test_models.MLP, rows: np.ndarray) -> np.ndarray:
    """The model's own scores for ``rows``."""
    with torch.no_grad():
        return model(torch.from_numpy(rows)).numpy()


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory, model: torch_test_models.MLP,
          rows: np.ndarray) -> dict[str, Path]:
    """The MLP saved every way: ``scripted`` (.pt), ``traced`` (.ts), ``exported`` (.pt2, when
    torch.export exists), ``pickled`` (torch.save of the module, .pt) and ``state_dict``
    (.pth)."""
    folder = tmp_path_factory.mktemp("torch-models")
    paths = {
        "scripted": folder / "scripted.pt",
        "traced": folder / "traced.ts",
        "pickled": folder / "pickled.pt",
        "state_dict": folder / "state_dict.pth",
    }
    torch.jit.save(torch.jit.script(model), str(paths["scripted"]))
    torch.jit.save(torch.jit.trace(model, torch.from_numpy(rows)), str(paths["traced"]))
    torch.save(model, paths["pickled"])
    torch.save(model.state_dict(), paths["state_dict"])
    if HAS_EXPORT:
        paths["exported"] = folder / "exported.pt2"
        batch = torch.export.Dim("batch")
        program = torch.export.export(model, (torch.from_numpy(rows),),
                                      dynamic_shapes={"x": {0: batch}})
        torch.export.save(program, str(paths["exported"]))
    return paths
