"""MLServer's own codecs (``mlserver.codecs``) against core, the way MLServer's users call a V2
server: a codec encodes the payload into an ``InferenceRequest`` (with its ``content_type``
parameters), the request's JSON is posted, and a codec decodes the ``InferenceResponse``. No
MLServer server runs; the HTTP client is httpx.

Each request-level content type used to be a 400 ("unknown request parameter
'content_type'"), and input-level ones were ignored.

This suite runs in a pytest of its own (``test_v2_mlserver.py`` starts it): mlserver and
kserve cannot be imported in one process. Run it alone with
``pytest plugins/protocol_v2/tests/mlserver_codecs.py``.
"""

from __future__ import annotations

import datetime
import textwrap
from pathlib import Path
from typing import Any

import core_binarizer_onnx  # noqa: F401
import core_storage_disk  # noqa: F401
import core_storage_memory  # noqa: F401
import core_transformer_pandas  # noqa: F401
import httpx
import numpy as np
import pandas as pd
import pytest
from mlserver.codecs import (
    Base64Codec,
    DatetimeCodec,
    NumpyCodec,
    NumpyRequestCodec,
    PandasCodec,
    StringCodec,
    StringRequestCodec,
)
from mlserver.types import InferenceRequest, InferenceResponse, Parameters, RequestOutput
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

MODELS = textwrap.dedent('''
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

class Scaler:
    def predict(self, X):
        return np.asarray(X, dtype=np.float64) * 2

class Upper:
    def predict(self, X):
        return [str(s).upper() for s in np.ravel(X)]

class Sizes:
    def predict(self, X):
        return [len(x) for x in np.ravel(X)]

class Years:
    def predict(self, X):
        return [d.year for d in np.ravel(X)]

TRAIN = pd.DataFrame({"age": [20, 30, 40, 50, 60, 70], "city": ["a", "b", "a", "b", "c", "c"]})
pipeline = make_pipeline(
    ColumnTransformer([("city", OneHotEncoder(), ["city"])], remainder="passthrough"),
    LogisticRegression(),
).fit(TRAIN, [0, 1, 0, 1, 1, 1])

scaler, upper, sizes, years = Scaler(), Upper(), Sizes(), Years()
''')


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("codec_models")
    (folder / "codec_models.py").write_text(MODELS)
    return folder


@pytest.fixture(scope="module")
def python_model(serve: Any, models_dir: Path) -> Any:
    """``serve_object("upper")``: a server (one per object, started once) for a model object."""
    servers: dict[str, Any] = {}

    def start(name: str, **settings: Any) -> Any:
        if name not in servers:
            servers[name] = serve({"name": name, "storage_type": "memory",
                                   "storage_kwargs": {"object": f"codec_models:{name}"}, **settings},
                                  pythonpath=[models_dir])
        return servers[name]

    return start


def infer(server: Any, model: str, request: InferenceRequest) -> InferenceResponse:
    """POST the request's JSON as an MLServer user does, and read the response as MLServer's
    types."""
    response = httpx.post(f"{server.url}/v2/models/{model}/infer", content=request.model_dump_json(),
                          headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    return InferenceResponse.model_validate_json(response.content)


def refused(server: Any, model: str, request: InferenceRequest) -> str:
    response = httpx.post(f"{server.url}/v2/models/{model}/infer", content=request.model_dump_json())
    assert response.status_code == 400, response.text
    return str(response.json()["error"])


def test_numpy_request_codec_python_model(python_model: Any) -> None:
    server = python_model("scaler")
    payload = np.arange(6, dtype=np.float32).reshape(3, 2)
    response = infer(server, "scaler", NumpyRequestCodec.encode_request(payload))
    np.testing.assert_array_equal(NumpyRequestCodec.decode_response(response), payload * 2)


def test_numpy_request_codec_onnx_model(serve: Any, tmp_path: Path) -> None:
    """The codec names its one input ``input-1``: content_type "np" says it is the model's
    single input, whatever its name."""
    X = np.array([[0, 0], [1, 1], [0, 1], [1, 0], [2, 2], [3, 3]], dtype=np.float32)
    fitted = LogisticRegression().fit(X, [0, 1, 0, 1, 1, 1])
    path = tmp_path / "clf.onnx"
    path.write_bytes(to_onnx(fitted, X[:1]).SerializeToString())
    server = serve({"name": "clf", "storage_type": "disk", "binarization_type": "onnx",
                    "storage_kwargs": {"path_to_files": str(path), "need_load_file": False}})
    request = NumpyRequestCodec.encode_request(X[:3])
    request.outputs = [RequestOutput(name="output_probability")]
    probabilities = NumpyRequestCodec.decode_response(infer(server, "clf", request))
    np.testing.assert_allclose(probabilities, fitted.predict_proba(X[:3]), rtol=1e-5)
    request.outputs = [RequestOutput(name="output_label")]
    assert NumpyRequestCodec.decode_response(infer(server, "clf", request)).tolist() == [0, 1, 0]


def test_string_request_codec(python_model: Any) -> None:
    server = python_model("upper")
    response = infer(server, "upper", StringRequestCodec.encode_request(["hello", "wörld"]))
    assert StringRequestCodec.decode_response(response) == ["HELLO", "WÖRLD"]


def test_pandas_codec_with_the_models_columns(python_model: Any) -> None:
    """A pipeline fitted on a DataFrame (its ``feature_names_in_`` are the columns), served
    with the pandas transformer: PandasCodec's columns become the model's DataFrame, as
    MLServer's scikit-learn runtime does. The columns come in any order."""
    server = python_model("pipeline", data_transformer_for_predict="pandas")
    frame = pd.DataFrame({"city": ["b", "a", "c"], "age": [30, 20, 65]})
    response = infer(server, "pipeline", PandasCodec.encode_request(frame))
    models: dict[str, Any] = {}
    exec(MODELS, models)  # the same pipeline, fitted here: what the server should answer
    assert PandasCodec.decode_response(response)["predict"].tolist() == models["pipeline"].predict(frame).tolist()


def test_pandas_codec_without_named_columns(python_model: Any) -> None:
    """Without known columns the inputs are the rows' columns in request order."""
    server = python_model("scaler")
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    response = infer(server, "scaler", PandasCodec.encode_request(frame))
    np.testing.assert_array_equal(NumpyRequestCodec.decode_response(response), [[2, 6], [4, 8]])


def test_base64_and_datetime_inputs(python_model: Any) -> None:
    sizes = python_model("sizes")
    request = InferenceRequest(inputs=[Base64Codec.encode_input("X", [b"\x00\xff\xfe", b"abc", b""])])
    assert NumpyCodec.decode_output(infer(sizes, "sizes", request).outputs[0]).ravel().tolist() == [3, 3, 0]
    years = python_model("years")
    dates = [datetime.datetime(2020, 1, 2, 3, 4), datetime.datetime(1999, 12, 31)]
    request = InferenceRequest(inputs=[DatetimeCodec.encode_input("X", dates)])
    assert NumpyCodec.decode_output(infer(years, "years", request).outputs[0]).ravel().tolist() == [2020, 1999]


def test_an_output_content_type(python_model: Any) -> None:
    server = python_model("upper")
    request = StringRequestCodec.encode_request(["a", "bc"])
    request.outputs = [RequestOutput(name="predict", parameters=Parameters(content_type="base64"))]
    output = infer(server, "upper", request).outputs[0]
    assert output.parameters is not None and output.parameters.content_type == "base64"
    assert Base64Codec.decode_output(output) == [b"A", b"BC"]
    request.outputs = [RequestOutput(name="predict", parameters=Parameters(content_type="str"))]
    assert StringCodec.decode_output(infer(server, "upper", request).outputs[0]) == ["A", "BC"]


def test_content_types_nobody_knows_are_400(python_model: Any) -> None:
    server = python_model("upper")
    request = StringRequestCodec.encode_request(["a"])
    request.parameters = Parameters(content_type="yaml")
    assert "request parameters: unknown content_type 'yaml'" in refused(server, "upper", request)
    request = StringRequestCodec.encode_request(["a"])
    request.inputs[0].parameters = Parameters(content_type="image/png")
    assert "input 'input-1': unknown content_type 'image/png'" in refused(server, "upper", request)
    request = StringRequestCodec.encode_request(["a"])
    request.outputs = [RequestOutput(name="predict", parameters=Parameters(content_type="pd"))]
    assert "output 'predict': unknown content_type 'pd'" in refused(server, "upper", request)


def test_content_types_that_do_not_fit_are_400(python_model: Any) -> None:
    server = python_model("upper")
    two = NumpyRequestCodec.encode_request(np.zeros((1, 2), dtype=np.float32))
    two.inputs.append(two.inputs[0].model_copy(update={"name": "input-2"}))
    assert "content_type 'np' (NumpyRequestCodec) sends one input; this request has 2" in refused(
        server, "upper", two)
    request = InferenceRequest(inputs=[Base64Codec.encode_input("X", [b"abc"])])
    request.inputs[0].data.root[0] = "not base64!"
    assert "input 'X': BYTES element 0" in refused(server, "upper", request)
    scaler = python_model("scaler")
    request = NumpyRequestCodec.encode_request(np.zeros((1, 2), dtype=np.float32))
    request.outputs = [RequestOutput(name="predict", parameters=Parameters(content_type="str"))]
    response = httpx.post(f"{scaler.url}/v2/models/scaler/infer", content=request.model_dump_json())
    assert response.status_code == 400
    assert "output 'predict' is FP64; content_type 'str' is for BYTES outputs" in response.json()["error"]
