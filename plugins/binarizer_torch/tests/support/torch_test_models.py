"""The model classes the tests save and serve. This folder is on the servers' ``PYTHONPATH``
(and on the tests' ``sys.path``): a pickled module is unpickled by its class's import path, and
a state_dict is loaded into the class ``binarization_kwargs.module`` names."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """``width`` features -> ``hidden`` -> ``classes`` scores."""

    def __init__(self, width: int = 4, hidden: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(0.5), nn.Linear(hidden, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Scaled(nn.Module):
    """An argument besides the rows, with a default: ``forward(x, scale=1.0)``; and a
    ``predict`` of its own (the class with the highest score)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return self.linear(x) * scale

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).argmax(dim=1)


class TwoHeads(nn.Module):
    """Two outputs: the scores and their sum per row."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.linear(x)
        return scores, scores.sum(dim=1)


def mlp(seed: int = 0, **kwargs: int) -> MLP:
    """A fixed MLP (seeded weights), in eval mode."""
    torch.manual_seed(seed)
    return MLP(**kwargs).eval()
