from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import onnx
import pytest
from core.analysis import SEQUENCE_OF_MAPS, Outputs, Tensor, analyse
from core.components import LoadedFile, Storage
from core.errors import ConfigError, ModelLoadError
from core.hookspecs import hookimpl
from core.ml import build
from core.testing import BinarizerContract
from onnx import TensorProto, helper

from core_binarizer_onnx import ONNX_DTYPES, OnnxBinarizer, OnnxModel
from core_binarizer_onnx.model import session_run

OPSET = 17
IR_VERSION = 8


def save(graph: Any, path: Path) -> Path:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def two_in_three_out(path: Path) -> Path:
    """a, b: float[batch, 3]; k: int64[1] -> sum = a + b, prod = a * b, k_twice = k + k."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["a", "b"], ["sum"]),
            helper.make_node("Mul", ["a", "b"], ["prod"]),
            helper.make_node("Add", ["k", "k"], ["k_twice"]),
        ],
        "two_in_three_out",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("k", TensorProto.INT64, [1]),
        ],
        [
            helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("prod", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("k_twice", TensorProto.INT64, [1]),
        ],
    )
    return save(graph, path)


ELEMENT_TYPES = {
    "float32": TensorProto.FLOAT,
    "float64": TensorProto.DOUBLE,
    "float16": TensorProto.FLOAT16,
    "int8": TensorProto.INT8,
    "int16": TensorProto.INT16,
    "int32": TensorProto.INT32,
    "int64": TensorProto.INT64,
    "uint8": TensorProto.UINT8,
    "uint16": TensorProto.UINT16,
    "uint32": TensorProto.UINT32,
    "uint64": TensorProto.UINT64,
    "bool": TensorProto.BOOL,
    "string": TensorProto.STRING,
}


def identity_per_type(path: Path) -> Path:
    """One input ``x_<dtype>`` of shape [None, 2] per element type, echoed to ``y_<dtype>``."""
    nodes, inputs, outputs = [], [], []
    for dtype, element in ELEMENT_TYPES.items():
        nodes.append(helper.make_node("Identity", [f"x_{dtype}"], [f"y_{dtype}"]))
        inputs.append(helper.make_tensor_value_info(f"x_{dtype}", element, [None, 2]))
        outputs.append(helper.make_tensor_value_info(f"y_{dtype}", element, [None, 2]))
    return save(helper.make_graph(nodes, "identity_per_type", inputs, outputs), path)


def odd_names(path: Path) -> Path:
    """Inputs named ``input:0``, ``input.0`` (both become ``input_0``) and ``class``."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["input:0", "input.0"], ["partial"]),
            helper.make_node("Add", ["partial", "class"], ["output:0"]),
        ],
        "odd_names",
        [
            helper.make_tensor_value_info("input:0", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("input.0", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("class", TensorProto.FLOAT, [2]),
        ],
        [helper.make_tensor_value_info("output:0", TensorProto.FLOAT, [2])],
    )
    return save(graph, path)


INPUT = {"a": [[1.0, 2.0, 3.0]], "b": [[10.0, 20.0, 30.0]], "k": [21]}


class TestOnnxBinarizerContract(BinarizerContract):
    name = "onnx"

    @pytest.fixture
    def binarizer(self) -> OnnxBinarizer:
        return OnnxBinarizer()

    @pytest.fixture
    def model_file(self, tmp_path: Path) -> LoadedFile:
        return LoadedFile(path=str(two_in_three_out(tmp_path / "model.onnx")))

    @pytest.fixture
    def predict_input(self) -> dict[str, Any]:
        return INPUT


class TestTunedOnnxBinarizerContract(TestOnnxBinarizerContract):
    @pytest.fixture
    def binarizer(self) -> OnnxBinarizer:
        return OnnxBinarizer(
            intra_op_num_threads=1,
            inter_op_num_threads=1,
            providers=["CPUExecutionProvider"],
            graph_optimization_level="basic",
        )

    @pytest.fixture
    def model_file(self, tmp_path: Path) -> LoadedFile:
        # No .onnx name: detection has to read the ModelProto's first bytes.
        return LoadedFile(path=str(two_in_three_out(tmp_path / "model.bin")))


@pytest.fixture
def model(tmp_path: Path) -> OnnxModel:
    return OnnxBinarizer().deserialize(
        [LoadedFile(path=str(two_in_three_out(tmp_path / "m.onnx")))]
    )


# ---------------------------------------------------------------------- predict


def test_predict_feeds_every_input_and_returns_every_output(model: OnnxModel) -> None:
    result = model.predict(**INPUT)
    assert list(result) == ["sum", "prod", "k_twice"]
    assert result["sum"].tolist() == [[11.0, 22.0, 33.0]]
    assert result["prod"].tolist() == [[10.0, 40.0, 90.0]]
    assert result["k_twice"].tolist() == [42]
    assert result["sum"].dtype == np.float32 and result["k_twice"].dtype == np.int64


def test_predict_takes_positional_arguments_and_arrays(model: OnnxModel) -> None:
    a = np.ones((2, 3), dtype=np.float32)
    result = model.predict(a, a, np.array([1]))
    assert result["sum"].tolist() == [[2.0] * 3] * 2


def test_predict_names_a_missing_input(model: OnnxModel) -> None:
    with pytest.raises(TypeError, match="'k'"):
        model.predict(a=[[1, 2, 3]], b=[[1, 2, 3]])


def test_signature_has_one_tensor_per_input(model: OnnxModel) -> None:
    signature = inspect.signature(model.predict)
    assert list(signature.parameters) == ["a", "b", "k"]
    annotations = [p.annotation for p in signature.parameters.values()]
    assert annotations == [
        Tensor(dtype="float32", shape=(None, 3)),
        Tensor(dtype="float32", shape=(None, 3)),
        Tensor(dtype="int64", shape=(1,)),
    ]
    assert {p.kind for p in signature.parameters.values()} == {
        inspect.Parameter.POSITIONAL_OR_KEYWORD
    }


def test_core_analysis_reads_the_signature(model: OnnxModel) -> None:
    interface = analyse(model)
    assert [(a.name, a.kind, a.required, a.tensor) for a in interface.arguments] == [
        ("a", "array", True, Tensor("float32", (None, 3))),
        ("b", "array", True, Tensor("float32", (None, 3))),
        ("k", "array", True, Tensor("int64", (1,))),
    ]
    assert interface.rows is not None and interface.rows.name == "a"
    assert not any(a.positional for a in interface.arguments)


def test_core_analysis_reads_the_declared_outputs(model: OnnxModel) -> None:
    """Every output is declared by the documented interface: the return annotation is a
    ``core.Outputs`` that analysis puts in ``ModelInterface.outputs``."""
    expected = Outputs({
        "sum": Tensor("float32", (None, 3)),
        "prod": Tensor("float32", (None, 3)),
        "k_twice": Tensor("int64", (1,)),
    })
    assert inspect.signature(model.predict).return_annotation == expected
    assert analyse(model).outputs == expected
    assert list(analyse(model).outputs or ()) == ["sum", "prod", "k_twice"]


def zipmap_and_sequence(path: Path) -> Path:
    """``X`` float[batch, 2] -> ``label`` (identity), ``probabilities`` = ZipMap(X) with the
    classes "no" and "yes" (one map per row, as skl2onnx exports classifiers), and ``parts``
    = a sequence of tensors (no core.Tensor describes it)."""
    nodes = [
        helper.make_node("Identity", ["X"], ["label"]),
        helper.make_node("ZipMap", ["X"], ["probabilities"], domain="ai.onnx.ml",
                         classlabels_strings=["no", "yes"]),
        helper.make_node("SequenceConstruct", ["X", "X"], ["parts"]),
    ]
    maps = helper.make_sequence_type_proto(helper.make_map_type_proto(
        TensorProto.STRING, helper.make_tensor_type_proto(TensorProto.FLOAT, [])))
    tensors = helper.make_sequence_type_proto(
        helper.make_tensor_type_proto(TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes, "zipmap",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("label", TensorProto.FLOAT, ["batch", 2]),
         helper.make_value_info("probabilities", maps),
         helper.make_value_info("parts", tensors)],
    )
    model = helper.make_model(graph, ir_version=IR_VERSION, opset_imports=[
        helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 1)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_a_sequence_of_maps_is_declared_and_other_types_are_named_in_the_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = zipmap_and_sequence(tmp_path / "z.onnx")
    model = OnnxBinarizer().deserialize([LoadedFile(path=str(path))])
    assert analyse(model).outputs == Outputs({
        "label": Tensor("float32", (None, 2)),
        "probabilities": Tensor("float32", (None,), kind=SEQUENCE_OF_MAPS, key_dtype="string"),
    })
    assert "output 'parts' is a seq(tensor(float))" in caplog.text
    result = model.predict(X=[[0.25, 0.75]])
    assert result["probabilities"] == [{"no": 0.25, "yes": 0.75}]  # predict still returns it all
    assert len(result["parts"]) == 2


def test_inputs_and_outputs_metadata(model: OnnxModel) -> None:
    assert [i.to_dict() for i in model.inputs] == [
        {
            "name": "a",
            "argument": "a",
            "dtype": "float32",
            "shape": (None, 3),
            "onnx_type": "tensor(float)",
        },
        {
            "name": "b",
            "argument": "b",
            "dtype": "float32",
            "shape": (None, 3),
            "onnx_type": "tensor(float)",
        },
        {
            "name": "k",
            "argument": "k",
            "dtype": "int64",
            "shape": (1,),
            "onnx_type": "tensor(int64)",
        },
    ]
    assert [(o.name, o.dtype, o.shape) for o in model.outputs] == [
        ("sum", "float32", (None, 3)),
        ("prod", "float32", (None, 3)),
        ("k_twice", "int64", (1,)),
    ]
    assert [i.name for i in model.session.get_inputs()] == ["a", "b", "k"]
    assert "a: float32[None, 3]" in repr(model)


def test_every_element_type(tmp_path: Path) -> None:
    model = OnnxBinarizer().deserialize(
        [LoadedFile(path=str(identity_per_type(tmp_path / "t.onnx")))]
    )
    signature = inspect.signature(model.predict)
    assert {name: p.annotation.dtype for name, p in signature.parameters.items()} == {
        f"x_{dtype}": dtype for dtype in ELEMENT_TYPES
    }
    assert set(ONNX_DTYPES.values()) == set(ELEMENT_TYPES)
    values = {
        f"x_{dtype}": [["a", "b"]] if dtype == "string" else [[1, 0]] for dtype in ELEMENT_TYPES
    }
    result = model.predict(**values)  # plain lists, converted to each input's dtype
    for dtype in ELEMENT_TYPES:
        out = result[f"y_{dtype}"]
        if dtype == "string":
            assert out.tolist() == [["a", "b"]]
        else:
            assert out.dtype == np.dtype(dtype) and out.tolist() == [[1, 0]]


def test_names_that_are_not_identifiers(tmp_path: Path) -> None:
    model = OnnxBinarizer().deserialize([LoadedFile(path=str(odd_names(tmp_path / "o.onnx")))])
    assert [(i.name, i.argument) for i in model.inputs] == [
        ("input:0", "input_0"),
        ("input.0", "input_0_2"),
        ("class", "class_"),
    ]
    assert list(inspect.signature(model.predict).parameters) == ["input_0", "input_0_2", "class_"]
    # the graph's names, for protocols that speak them (V2)
    names = [a.tensor.name for a in analyse(model).arguments if a.tensor]
    assert names == ["input:0", "input.0", "class"]
    result = model.predict(input_0=[1, 2], input_0_2=[10, 20], class_=[100, 200])
    assert result["output:0"].tolist() == [111.0, 222.0]


# ---------------------------------------------------------------------- reading


def test_from_path_and_from_bytes(tmp_path: Path) -> None:
    path = two_in_three_out(tmp_path / "m.onnx")
    raw = path.read_bytes()
    for file in (
        LoadedFile(path=str(path)),
        LoadedFile(raw_data=raw, name="m.onnx"),
        LoadedFile(raw_data=bytearray(raw), name="m.onnx"),  # type: ignore[arg-type]
        LoadedFile(path=str(tmp_path / "gone.onnx"), raw_data=raw),  # path gone: the bytes
    ):
        model = OnnxBinarizer().deserialize([file])
        assert model.predict(**INPUT)["k_twice"].tolist() == [42]


def test_the_onnx_file_among_several(tmp_path: Path) -> None:
    path = two_in_three_out(tmp_path / "m.onnx")
    (tmp_path / "labels.txt").write_text("x")
    files = [LoadedFile(path=str(tmp_path / "labels.txt")), LoadedFile(path=str(path))]
    assert OnnxBinarizer().deserialize(files).name == "m.onnx"


def test_settings_reach_the_session(tmp_path: Path) -> None:
    binarizer = OnnxBinarizer(
        intra_op_num_threads=2, inter_op_num_threads=1, graph_optimization_level="disable"
    )
    options = binarizer.session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    model = binarizer.deserialize([LoadedFile(path=str(two_in_three_out(tmp_path / "m.onnx")))])
    assert model.session.get_session_options().intra_op_num_threads == 2
    assert str(model.session.get_session_options().graph_optimization_level).endswith(
        "ORT_DISABLE_ALL"
    )


def test_providers(tmp_path: Path) -> None:
    path = two_in_three_out(tmp_path / "m.onnx")
    model = OnnxBinarizer(providers="CPUExecutionProvider").deserialize(
        [LoadedFile(path=str(path))]
    )
    assert model.session.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"providers": ["NoSuchExecutionProvider"]}, "NoSuchExecutionProvider not available"),
        ({"providers": []}, "must be a list of provider names"),
        ({"providers": [1]}, "must be a list of provider names"),
        ({"graph_optimization_level": "max"}, "must be one of 'disable', 'basic'"),
        ({"intra_op_num_threads": -1}, "whole number"),
        ({"inter_op_num_threads": "4"}, "whole number"),
        ({"intra_op_num_threads": True}, "whole number"),
    ],
)
def test_bad_settings(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        OnnxBinarizer(**kwargs)


def test_unknown_setting_lists_the_accepted_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        build("binarizer", OnnxBinarizer, {"threads": 4}, "binarization_kwargs")
    message = str(caught.value)
    assert "threads" in message
    assert (
        "intra_op_num_threads, inter_op_num_threads, providers, graph_optimization_level" in message
    )


def test_not_an_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"\x08\x07 this is not protobuf")
    with pytest.raises(ModelLoadError) as caught:
        OnnxBinarizer().deserialize([LoadedFile(path=str(path))])
    assert "cannot load m.onnx" in str(caught.value) and "\n" not in str(caught.value)


def test_nothing_to_read(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        OnnxBinarizer().deserialize([LoadedFile(path=str(tmp_path / "gone.onnx"))])
    with pytest.raises(ModelLoadError, match="neither a path nor bytes"):
        OnnxBinarizer().deserialize([LoadedFile(name="ghost")])
    with pytest.raises(ModelLoadError, match="no file"):
        OnnxBinarizer().deserialize([])


# ---------------------------------------------------------------------- detect


def test_detect_by_extension(tmp_path: Path) -> None:
    for name in ("m.onnx", "M.ONNX"):
        assert OnnxBinarizer.detect(LoadedFile(path=str(tmp_path / name))) == (
            0.9,
            "the file name ends with .onnx",
        )
    assert OnnxBinarizer.detect(LoadedFile(raw_data=b"", name="m.onnx"))[0] == 0.9


def test_detect_by_content(tmp_path: Path) -> None:
    path = two_in_three_out(tmp_path / "model.bin")
    score, reason = OnnxBinarizer.detect(LoadedFile(path=str(path)))
    assert score == 0.5 and f"ir_version {IR_VERSION}" in reason
    assert OnnxBinarizer.detect(LoadedFile(raw_data=path.read_bytes()))[0] == 0.5


@pytest.mark.parametrize(
    ("content", "score"),
    [
        (b"\x08\x07", 0.3),  # the ir_version tag, nothing after it
        (b"\x08\x07\x99", 0.3),
        (b"\x08", 0.3),
        (b"\x80\x05pickle", 0.0),
        (b"PK\x03\x04", 0.0),
        (b"", 0.0),
    ],
)
def test_detect_other_content(tmp_path: Path, content: bytes, score: float) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(content)
    assert OnnxBinarizer.detect(LoadedFile(path=str(path)))[0] == score


# ---------------------------------------------------------------------- through core


@attrs.define(kw_only=True)
class FileStorage(Storage):
    path: str

    def load(self) -> list[LoadedFile]:
        return [LoadedFile(path=self.path)]


class _TestStorages:
    @hookimpl
    def register_storages(self, register: Any) -> None:
        register("test-files", FileStorage)


def up_for(path: Path) -> Any:
    from core.config import Config
    from core.plugins import load_plugins
    from core.up import UP

    conf = Config(
        storage_type="test-files",
        storage_kwargs={"path": str(path)},
        binarization_type="auto",
        binarization_kwargs={"intra_op_num_threads": 1},
    )
    up = UP(conf=conf, plugins=load_plugins([_TestStorages()]))
    up.ml.load()
    return up


def test_core_auto_detects_and_serves_every_output(tmp_path: Path) -> None:
    up = up_for(two_in_three_out(tmp_path / "model.bin"))
    assert up.ml.binarizer_name == "onnx"
    result = up.predict(**INPUT)
    assert {key: np.asarray(value).tolist() for key, value in result.items()} == {
        "sum": [[11.0, 22.0, 33.0]],
        "prod": [[10.0, 40.0, 90.0]],
        "k_twice": [42],
    }


def test_core_validates_against_the_onnx_shapes(tmp_path: Path) -> None:
    from core.errors import ValidationError

    up = up_for(two_in_three_out(tmp_path / "model.onnx"))
    with pytest.raises(ValidationError) as caught:
        up.predict(a=[[1.0, 2.0]], b=[[1.0, 2.0, 3.0]], k=[1])
    assert [d["loc"][:2] for d in caught.value.details] == [["body", "a"]]


def test_core_serves_string_inputs(tmp_path: Path) -> None:
    up = up_for(identity_per_type(tmp_path / "t.onnx"))
    values = {f"x_{d}": [["a", "b"]] if d == "string" else [[1, 0]] for d in ELEMENT_TYPES}
    result = up.predict(**values)
    assert result["y_string"] == [["a", "b"]]
    assert np.asarray(result["y_int8"]).tolist() == [[1, 0]]


def test_predict_calls_the_compiled_session_with_session_runs_answers(model: OnnxModel) -> None:
    """On a CPU session whose inputs all have a dtype, ``predict`` calls the compiled session's
    ``run`` (the checks ``InferenceSession.run`` adds are what ``predict`` guarantees already):
    the answers are ``session.run``'s, and onnxruntime still refuses a wrong shape."""
    assert session_run(model.session, model.inputs) == model.session._sess.run
    feeds = {"a": np.array(INPUT["a"], np.float32), "b": np.array(INPUT["b"], np.float32),
             "k": np.array(INPUT["k"], np.int64)}
    expected = model.session.run(None, feeds)
    got = model.predict(**INPUT)
    assert len(got) == len(expected)
    for value, want in zip(got.values(), expected):
        assert value.dtype == want.dtype and value.tolist() == want.tolist()
    with pytest.raises(Exception, match=r"(?i)invalid dimensions"):
        model.predict(a=[[1.0, 2.0]], b=[[1.0, 2.0]], k=[1])


def test_a_session_with_an_input_numpy_cannot_hold_keeps_session_run(tmp_path: Path) -> None:
    """An input without a dtype (here a sequence of tensors) is fed as given, so ``predict``
    keeps ``InferenceSession.run`` and its checks."""
    graph = helper.make_graph(
        [helper.make_node("SequenceLength", ["parts"], ["count"])], "seq",
        [helper.make_tensor_sequence_value_info("parts", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("count", TensorProto.INT64, [])],
    )
    path = tmp_path / "seq.onnx"
    opsets = [helper.make_opsetid("", OPSET)]
    onnx.save(helper.make_model(graph, ir_version=IR_VERSION, opset_imports=opsets), str(path))
    model = OnnxBinarizer().deserialize([LoadedFile(path=str(path))])
    assert session_run(model.session, model.inputs) == model.session.run
    parts = [np.array([1.0, 2.0], np.float32), np.array([3.0], np.float32)]
    assert int(model.predict(parts=parts)["count"]) == 2
