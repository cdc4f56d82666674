"""End to end: the tiny Keras model served by a real ``hypercorn core.app:app`` (with
core-storage-disk and core-protocol-v2) in each architecture, asked over HTTP with httpx,
its answers compared with the model's own predictions."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from core.testing import Server

TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
#: pymlup's class path for the binarizer, as a pymlup config names it.
QUEUED_BINARIZER = "mlup.ml.binarization.tensorflow.TensorFlowBinarizer"


def config(path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "tiny", "version": "1",
        "storage_type": "disk",
        "storage_kwargs": {"path_to_files": path},
        "binarization_type": "auto",
        **extra,
    }


@pytest.fixture(scope="module")
def direct(serve: Any, saved: dict[str, Path]) -> Server:
    """The .keras file, ``auto``, ``directly_to_predict``."""
    return serve(config(saved["keras"]))


@pytest.fixture(scope="module")
def queued(serve: Any, saved: dict[str, Path]) -> Server:
    """The .h5 file as a pymlup config has it: pymlup's binarizer and transformer class
    paths, ``__call__``, tensors both ways, threads set; ``worker_and_queue``."""
    return serve(config(
        saved["h5"], mode="worker_and_queue", predict_method_name="__call__",
        binarization_type=QUEUED_BINARIZER,
        binarization_kwargs={"intra_op_parallelism_threads": 1,
                             "inter_op_parallelism_threads": 1},
        data_transformer_for_predict=(
            "mlup.ml.data_transformers.tf_tensor_data_transformer.TFTensorDataTransformer"),
        data_transformer_for_predicted="tf_tensor", dtype_for_predict="float32",
    ))


@pytest.fixture(scope="module")
def batching(serve: Any, saved: dict[str, Path]) -> Server:
    """The SavedModel folder (the disk storage picks its saved_model.pb), ``batching``."""
    storage = {"path_to_files": saved["folder"], "file_mask": r"^saved_model\.pb$"}
    return serve(config(saved["folder"], storage_kwargs=storage, mode="batching",
                        max_batch_size=16, max_batch_wait=100))


def predict(server: Server, rows: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", json={"X": rows}, timeout=60)


@pytest.mark.parametrize("which", ["direct", "queued", "batching"])
def test_served_predictions_are_the_models_own(
    request: pytest.FixtureRequest, which: str, rows: np.ndarray[Any, Any],
    expected: np.ndarray[Any, Any],
) -> None:
    server: Server = request.getfixturevalue(which)
    response = predict(server, rows.tolist())
    assert response.status_code == 200, server.log()
    np.testing.assert_allclose(response.json()["predict_result"], expected, **TOLERANCE)
    model = httpx.get(f"{server.url}/info", timeout=10).json()["model"]
    assert model["type"] == "TensorFlowModel"
    assert model["binarization_type"] in ("tensorflow", QUEUED_BINARIZER)
    assert [(a["name"], a["dtype"], a["shape"]) for a in model["arguments"]] == [
        ("X", "float32", [None, 4])
    ]


def test_concurrent_requests_in_batches_get_their_own_rows(
    batching: Server, rows: np.ndarray[Any, Any], expected: np.ndarray[Any, Any]
) -> None:
    bodies = [rows[i % 3: i % 3 + 1 + i % 2].tolist() for i in range(12)]
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda body: predict(batching, body), bodies))
    for i, response in enumerate(responses):
        assert response.status_code == 200, response.text
        want = expected[i % 3: i % 3 + 1 + i % 2]
        np.testing.assert_allclose(response.json()["predict_result"], want, **TOLERANCE)


@pytest.mark.parametrize("which", ["direct", "queued"])
def test_a_row_of_the_wrong_width_is_a_422(request: pytest.FixtureRequest, which: str) -> None:
    server: Server = request.getfixturevalue(which)
    response = predict(server, [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]])
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    assert detail["loc"][:2] == ["body", "X"]


def test_v2_metadata_and_infer(
    direct: Server, rows: np.ndarray[Any, Any], expected: np.ndarray[Any, Any]
) -> None:
    metadata = httpx.get(f"{direct.url}/v2/models/tiny", timeout=10).json()
    assert metadata["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
    body = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [3, 4],
                        "data": rows.ravel().tolist()}]}
    response = httpx.post(f"{direct.url}/v2/models/tiny/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    [output] = response.json()["outputs"]
    assert (output["name"], output["datatype"]) == ("probabilities", "FP32")
    assert output["shape"] == [3, 3]
    np.testing.assert_allclose(np.reshape(output["data"], (3, 3)), expected, **TOLERANCE)
    wrong = {"inputs": [{**body["inputs"][0], "shape": [4, 3]}]}
    refused = httpx.post(f"{direct.url}/v2/models/tiny/infer", json=wrong, timeout=60)
    assert refused.status_code == 400 and "error" in refused.json()


def test_auto_picks_tensorflow_for_every_format(
    saved: dict[str, Path], rows: np.ndarray[Any, Any], expected: np.ndarray[Any, Any]
) -> None:
    from core.config import Config
    from core.up import UP

    storages = [{"path_to_files": str(saved[kind])} for kind in ("keras", "h5", "zip")]
    storages.append({"path_to_files": str(saved["folder"]), "file_mask": r"^saved_model\.pb$"})
    for storage in storages:
        up = UP(conf=Config(storage_type="disk", storage_kwargs=storage))
        up.ml.load()
        assert up.ml.binarizer_name == "tensorflow"
        np.testing.assert_allclose(up.predict(X=rows.tolist()), expected, **TOLERANCE)


def test_validate_gives_one_line_for_a_corrupt_file(saved: dict[str, Path], tmp_path: Path) -> None:
    corrupt = tmp_path / "model.keras"
    source = saved["keras"].read_bytes()
    corrupt.write_bytes(source[: len(source) // 2])
    conf = tmp_path / "c.toml"
    conf.write_text(f'storage_type = "disk"\nstorage_kwargs = {{ path_to_files = "{corrupt}" }}\n'
                    'binarization_type = "tensorflow"\n')
    done = subprocess.run([sys.executable, "-m", "core", "validate", str(conf)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 1, done.stdout
    last = done.stderr.splitlines()[-1]
    assert last.startswith("core: error: ") and "cannot load model.keras" in last, done.stderr
    assert "Traceback" not in done.stderr
