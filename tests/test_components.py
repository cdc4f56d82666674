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
