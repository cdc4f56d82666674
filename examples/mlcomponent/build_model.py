"""Regenerate model/model.npz: a linear regression of house prices (deterministic).

    python examples/mlcomponent/build_model.py
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    rng = np.random.default_rng(20240101)
    X = np.column_stack([rng.uniform(30, 200, 500), rng.integers(1, 7, 500), rng.uniform(0, 80, 500)])
    y = 2.5 * X[:, 0] + 15 * X[:, 1] - 0.8 * X[:, 2] + 40 + rng.normal(0, 5, 500)
    A = np.column_stack([X, np.ones(len(X))])
    solution, *_ = np.linalg.lstsq(A, y, rcond=None)
    np.savez(HERE / "model" / "model.npz", weights=solution[:3].astype(np.float32),
             bias=np.float32(solution[3]), columns=np.array(["area", "rooms", "age"]))
    print("wrote", HERE / "model" / "model.npz", solution.round(3))


if __name__ == "__main__":
    main()
