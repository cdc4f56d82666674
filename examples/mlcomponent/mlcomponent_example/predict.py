"""``inference``: predict house prices from rows of numbers or from a CSV file.

The model is a linear regression stored as ``model.npz`` (``weights`` [3], ``bias`` [],
``columns``); ``model_key`` is its path. The first call loads it (``model`` is ``None``); the
function returns it, and the server passes it to the next call.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS = ("area", "rooms", "age")


class HousePriceModel:
    def __init__(self, path: str) -> None:
        with np.load(path) as data:
            self.weights = data["weights"].astype(np.float64)
            self.bias = float(data["bias"])
        # spec.env of the manifest: a price multiplier, e.g. for another currency
        self.multiplier = float(os.environ.get("PRICE_MULTIPLIER", "1"))

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return (rows @ self.weights + self.bias) * self.multiplier


def _read_csv(path: str) -> np.ndarray:
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"the CSV has no column(s) {', '.join(missing)}")
        return np.array([[float(row[c]) for c in COLUMNS] for row in reader], dtype=np.float64)


def inference(parameters: list[Any], inputs: list[dict[str, Any]], output_fields: list[dict[str, Any]],
              model_key: str, model: Any = None) -> tuple[list[dict[str, Any]], Any]:
    """Predict house prices (in thousands) from area (m2), rooms and age (years).

    Send ``features`` (rows of area, rooms, age), or ``table`` (a CSV with those columns), or
    both. The parameter ``round`` (an integer) rounds the prices.

    :param inputs.features: rows of three numbers: area, rooms, age; shape [N, 3]
    :type inputs.features: FP32, optional
    :param inputs.table: a CSV file with the columns area, rooms, age
    :type inputs.table: FILE text/csv, optional
    :param outputs.prices: one price per row of ``features``
    :type outputs.prices: FP32
    :param outputs.table_prices: the CSV with a ``price`` column added
    :type outputs.table_prices: FILE text/csv
    """
    if model is None:
        model = HousePriceModel(model_key)
    params = dict(parameters)  # a list of [name, value] pairs
    digits = int(params.get("round", 2))
    by_name = {item["name"]: item for item in inputs}
    if not by_name:
        raise ValueError("send 'features' or 'table'")
    wanted = {field["name"]: field for field in output_fields}
    outputs: list[dict[str, Any]] = []

    features = by_name.get("features")
    if features is not None and (not wanted or "prices" in wanted):
        rows = np.asarray(features["data"], dtype=np.float64).reshape(-1, len(COLUMNS))
        prices = np.round(model.predict(rows), digits)
        outputs.append({"name": "prices", "datatype": "FP32", "data": prices.tolist(),
                        "shape": [len(prices)]})

    table = by_name.get("table")
    if table is not None and (not wanted or "table_prices" in wanted):
        rows = _read_csv(table["data"])
        prices = np.round(model.predict(rows), digits)
        field = wanted.get("table_prices")
        # the server suggests where to write (inside the exchange folder)
        target = Path(field["data"]) if field and field.get("data") else Path(table["data"]).with_suffix(".out.csv")
        with open(target, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow([*COLUMNS, "price"])
            for row, price in zip(rows.tolist(), prices.tolist()):
                writer.writerow([*row, price])
        outputs.append({"name": "table_prices", "datatype": "FILE", "content_type": "text/csv",
                        "data": str(target), "shape": [1]})
    return outputs, model
