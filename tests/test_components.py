"""``core.components``: the helpers a binarizer's ``detect`` uses on a ``LoadedFile``."""

from __future__ import annotations

from core import LoadedFile


def test_head_reads_bytes_from_memory_or_disk(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x80\x05rest of the file")
    assert LoadedFile(path=str(path)).head(2) == b"\x80\x05"
    assert LoadedFile(raw_data=bytearray(b"abcdef")).head(3) == b"abc"
    assert LoadedFile(raw_data=memoryview(b"ab")).head(10) == b"ab"


def test_head_is_none_with_nothing_to_read(tmp_path):
    assert LoadedFile(obj=object()).head(2) is None
    assert LoadedFile(path=str(tmp_path / "missing.pkl")).head(2) is None


def test_has_suffix_ignores_case_and_falls_back_to_the_name():
    assert LoadedFile(path="/models/Model.PKL").has_suffix(".pkl", ".pickle")
    assert LoadedFile(name="model.onnx", raw_data=b"").has_suffix(".ONNX")
    assert not LoadedFile(path="/models/model.onnx.txt").has_suffix(".onnx")
    assert not LoadedFile(obj=object()).has_suffix(".pkl")


def test_a_binarizer_is_pinned_only_by_its_pin_setting():
    import attrs

    from core import Binarizer

    class Plain(Binarizer):
        def deserialize(self, files):
            return object()

    @attrs.define
    class Hashed(Plain):
        runs_code = True
        pin_setting = "digest"
        digest: str | None = None

    assert not Plain().runs_code and not Plain().pinned()
    assert Hashed().runs_code and not Hashed().pinned()
    assert Hashed(digest="abc").pinned()


class _Detecting:
    """A plugin with a storage handing over one file and binarizers sure to a set degree."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores

    def make(self, name: str, score: float) -> type:
        from core import Binarizer

        class Sure(Binarizer):
            @classmethod
            def detect(cls, file: LoadedFile) -> tuple[float, str]:
                return score, f"{name} is {score:g} sure"

            def deserialize(self, files):
                class Model:
                    def predict(self, X):
                        return [name for _ in X]
                return Model()

        return Sure

    @property
    def plugin(self) -> object:
        import core

        outer = self

        class Plugin:
            @core.hookimpl
            def register_storages(self, register):
                class OneFile(core.Storage):
                    def load(self):
                        return [LoadedFile(raw_data=b"model bytes", name="model.bin")]
                register("one_file", OneFile)

            @core.hookimpl
            def register_binarizers(self, register):
                for name, score in outer.scores.items():
                    register(name, outer.make(name, score))

        return Plugin()


def _auto_up(scores: dict[str, float]):
    from core import UP
    from core.config import Config
    from core.plugins import load_plugins

    plugins = load_plugins(extra=[_Detecting(scores).plugin], entry_points=False)
    return UP(conf=Config(storage_type="one_file", binarization_type="auto"), plugins=plugins)


def test_auto_takes_the_binarizer_that_is_surest():
    up = _auto_up({"alpha": 0.5, "beta": 0.9})
    up.ml.load()
    assert up.ml.binarizer_name == "beta"
    assert up.predict(X=[[1.0]]) == ["beta"]


def test_auto_refuses_a_tie_in_one_line_naming_the_choices():
    import pytest

    from core.errors import ModelLoadError

    up = _auto_up({"alpha": 0.8, "beta": 0.8, "gamma": 0.1})
    with pytest.raises(ModelLoadError) as caught:
        up.ml.load()
    message = str(caught.value)
    assert "\n" not in message
    assert "alpha (alpha is 0.8 sure), beta (beta is 0.8 sure) are equally sure" in message
    assert message.endswith("Set binarization_type to one of: alpha, beta")
