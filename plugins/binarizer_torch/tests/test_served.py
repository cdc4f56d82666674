"""End to end: the MLP saved every way, served by real ``hypercorn core.app:app`` servers
(core-storage-disk, this plugin, core-protocol-v2) in the three architectures, asked over HTTP
with httpx: predictions equal the model's own scores; V2 inference; 422s for rows of the wrong
width; start-up mistakes as one line."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tomli_w
from core.testing import Server

SUPPORT = Path(__file__).parent / "support"
NAME = "mlp"
DECLARED = {"x": {"dtype": "float32", "shape": [-1, 4]}}


def config(path: Path, binarizer: str = "torchscript", **extra: Any) -> dict[str, Any]:
    return {
        "name": NAME,
        "storage_type": "disk",
        "storage_kwargs": {"path_to_files": str(path)},
        "binarization_type": binarizer,
        **extra,
    }


def predict(server: Server, rows: Any, **other: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", json={"x": rows, **other}, timeout=30)


def assert_scores(response: httpx.Response, expected: np.ndarray) -> None:
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(np.asarray(response.json()["predict_result"], dtype=np.float32),
                               expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- the servers


@pytest.fixture(scope="module")
def auto_direct(serve: Any, files: dict[str, Path]) -> Server:
    """TorchScript, found by ``auto``, called as pymlup calls torch models (``__call__``)."""
    return serve(config(files["scripted"], "auto", predict_method_name="__call__",
                        binarization_kwargs={"num_threads": 1}))


@pytest.fixture(scope="module")
def batching(serve: Any, files: dict[str, Path]) -> Server:
    """Scripted, batching: concurrent requests merged into one call (numpy rows)."""
    return serve(config(files["scripted"], mode="batching", max_batch_wait=50, max_batch_size=64))


@pytest.fixture(scope="module")
def exported(serve: Any, files: dict[str, Path]) -> Server:
    if "exported" not in files:
        pytest.skip("this torch has no torch.export")
    return serve(config(files["exported"], "torch", mode="batching", max_batch_wait=20))


@pytest.fixture(scope="module")
def pickled_tensors(serve: Any, files: dict[str, Path]) -> Server:
    """A pickled module (binarization_type names it: trusted), the torch_tensor transformer
    both ways, in a queue."""
    return serve(config(files["pickled"], "torch", mode="worker_and_queue",
                        data_transformer_for_predict="torch_tensor",
                        data_transformer_for_predicted="torch_tensor", dtype_for_predict="float32"))


@pytest.fixture(scope="module")
def state_dict(serve: Any, files: dict[str, Path]) -> Server:
    """A state_dict with its class by path, the rows' tensor declared."""
    return serve(config(files["state_dict"], "torch", binarization_kwargs={
        "module": "torch_test_models:MLP", "module_kwargs": {"width": 4}, "inputs": DECLARED}))


SERVERS = ["auto_direct", "batching", "exported", "pickled_tensors", "state_dict"]


# ---------------------------------------------------------------------- predictions


@pytest.mark.parametrize("server_name", SERVERS)
def test_every_server_predicts_the_models_own_scores(
    request: pytest.FixtureRequest, server_name: str, rows: np.ndarray, expected: np.ndarray
) -> None:
    server = request.getfixturevalue(server_name)
    assert_scores(predict(server, rows.tolist()), expected)
    assert_scores(predict(server, rows[:1].tolist()), expected[:1])  # a single row
    empty = predict(server, [])
    assert empty.status_code == 200 and empty.json() == {"predict_result": []}


@pytest.mark.parametrize("server_name", ["batching", "exported", "pickled_tensors"])
def test_concurrent_requests_get_their_own_rows(
    request: pytest.FixtureRequest, server_name: str, rows: np.ndarray, expected: np.ndarray
) -> None:
    server = request.getfixturevalue(server_name)
    parts = [(start, start + 1 + start % 3) for start in range(6)]

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*[
                client.post(f"{server.url}/predict", json={"x": rows[a:b].tolist()})
                for a, b in parts
            ])

    for (a, b), response in zip(parts, asyncio.run(send_all())):
        assert_scores(response, expected[a:b])


def test_auto_chose_torchscript_and_info_says_so(auto_direct: Server) -> None:
    info = httpx.get(f"{auto_direct.url}/info", timeout=10).json()
    assert info["model"]["binarization_type"] == "torchscript"
    assert info["model"]["type"] == "TorchModel"
    assert [a["name"] for a in info["model"]["arguments"]] == ["x"]
    plugins = {p["distribution"] for p in info["plugins"]}
    assert "core-binarizer-torch" in plugins


def test_whole_numbers_reach_a_float_model_as_floats(pickled_tensors: Server, model: Any) -> None:
    import torch

    ints = [[1, 2, 3, 4], [0, -1, 2, 5]]
    with torch.no_grad():
        expected = model(torch.tensor(ints, dtype=torch.float32)).numpy()
    assert_scores(predict(pickled_tensors, ints), expected)  # dtype_for_predict = "float32"


# ---------------------------------------------------------------------- wrong rows


@pytest.mark.parametrize("server_name", ["state_dict", "exported"])
def test_a_row_of_the_wrong_width_is_a_422(request: pytest.FixtureRequest,
                                           server_name: str) -> None:
    server = request.getfixturevalue(server_name)
    response = predict(server, [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0]])
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail[0]["loc"][:2] == ["body", "x"]
    narrow = predict(server, [[1.0, 2.0, 3.0]])
    assert narrow.status_code == 422
    assert "must have 4 values" in narrow.json()["detail"][0]["msg"]


def test_rows_that_make_no_tensor_are_a_422(pickled_tensors: Server) -> None:
    response = predict(pickled_tensors, [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]])
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["body", "x"]


# ---------------------------------------------------------------------- V2


def infer(server: Server, rows: np.ndarray) -> httpx.Response:
    body = {"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP32",
                        "data": rows.flatten().tolist()}]}
    return httpx.post(f"{server.url}/v2/models/{NAME}/infer", json=body, timeout=30)


def test_v2_infer_on_an_exported_program_uses_its_declared_output(
    exported: Server, rows: np.ndarray, expected: np.ndarray
) -> None:
    metadata = httpx.get(f"{exported.url}/v2/models/{NAME}", timeout=10).json()
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert metadata["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 3]}]
    response = infer(exported, rows)
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    assert output["name"] == "output" and output["shape"] == [7, 3]
    np.testing.assert_allclose(np.asarray(output["data"]).reshape(7, 3), expected,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("server_name", ["state_dict", "auto_direct", "pickled_tensors"])
def test_v2_infer_on_torch_modules(request: pytest.FixtureRequest, server_name: str,
                                   rows: np.ndarray, expected: np.ndarray) -> None:
    server = request.getfixturevalue(server_name)
    response = infer(server, rows)
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    assert output["shape"] == [7, 3]
    np.testing.assert_allclose(np.asarray(output["data"]).reshape(7, 3), expected,
                               rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- start-up mistakes


def core_validate(tmp_path: Path, settings: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.toml"
    path.write_text(tomli_w.dumps(settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SUPPORT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "core", "validate", str(path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a failed ``core validate`` (log lines aside), with no traceback."""
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("core: error: ")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_auto_refuses_an_unpinned_pickled_module_and_takes_a_pinned_one(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    line = one_line(core_validate(tmp_path, config(files["pickled"], "auto")))
    assert "recognised pickled.pt as a torch file" in line
    assert "binarization_type = 'torch'" in line and "binarization_kwargs.sha256" in line
    digest = hashlib.sha256(files["pickled"].read_bytes()).hexdigest()
    pinned = core_validate(tmp_path, config(files["pickled"], "auto",
                                            binarization_kwargs={"sha256": digest}))
    assert pinned.returncode == 0, pinned.stderr
    assert "with binarizer 'torch'; request: x" in pinned.stdout


@pytest.mark.parametrize("key", ["scripted", "pickled"])
def test_a_corrupt_file_stops_start_up_in_one_line(tmp_path: Path, files: dict[str, Path],
                                                   key: str) -> None:
    path = tmp_path / files[key].name
    path.write_bytes(files[key].read_bytes()[:300])
    binarizer = "torchscript" if key == "scripted" else "torch"
    line = one_line(core_validate(tmp_path, config(path, binarizer)))
    assert path.name in line


def test_a_cuda_device_without_cuda_stops_start_up_in_one_line(tmp_path: Path,
                                                               files: dict[str, Path]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    settings = config(files["scripted"], binarization_kwargs={"device": "cuda:0"})
    line = one_line(core_validate(tmp_path, settings))
    assert "device = 'cuda:0'" in line and "has no cuda device" in line
    server = Server(settings, directory=tmp_path / "server", timeout=300,
                    hypercorn_args=["--config", str(SUPPORT / "hypercorn.toml")])
    _, log = server.run_to_exit()
    lines = [line for line in log.splitlines() if "core: cannot start: " in line]
    assert len(lines) == 1 and "has no cuda device" in lines[0], log
    assert "Traceback" not in log
