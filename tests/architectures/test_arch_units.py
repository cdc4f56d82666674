"""The architecture settings and batching's result splitting, without a server."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from core.architectures.batching import split_result
from core.config import Config
from core.errors import ConfigError, PredictError


def test_defaults() -> None:
    conf = Config()
    assert (conf.max_queue_size, conf.max_batch_size, conf.max_batch_wait) == (100, 64, 0.0)
    assert (conf.ttl_predicted_data, conf.ttl_client_wait) == (60.0, 30.0)
    assert conf.is_long_predict is False and conf.predict_timeout is None
    assert conf.worker_count is None


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("max_batch_wait", -1, "0 or more"),
        ("max_batch_size", 0, "greater than 0"),
        ("max_queue_size", "10", "must be int"),
        ("predict_timeout", 0, "greater than 0"),
        ("ttl_predicted_data", True, "must be float"),
        ("worker_count", 0, "greater than 0"),
    ],
)
def test_bad_values_name_the_key(key: str, value: object, words: str) -> None:
    with pytest.raises(ConfigError, match=key) as caught:
        Config.from_dict({key: value})
    assert words in str(caught.value)


@pytest.mark.parametrize("key", ["min_batch_len", "batch_worker_timeout"])
def test_pymlup_batching_keys_are_refused_loudly(key: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="core"):
        Config.from_dict({key: 10, "mode": "batching"})
    assert key in caplog.text and "max_batch" in caplog.text


def test_split_arrays_lists_dicts_and_tuples() -> None:
    counts = [1, 3, 2]
    array = np.arange(12).reshape(6, 2)
    parts = split_result(array, counts, 3)
    assert [p.tolist() for p in parts] == [[[0, 1]], [[2, 3], [4, 5], [6, 7]], [[8, 9], [10, 11]]]
    assert split_result(list("abcdef"), counts, 3) == [["a"], ["b", "c", "d"], ["e", "f"]]
    split = split_result({"label": np.arange(6), "p": array}, counts, 3)
    assert split[1]["label"].tolist() == [1, 2, 3] and split[2]["p"].tolist() == [[8, 9], [10, 11]]
    pairs = split_result((np.arange(6), np.arange(6) * 10), counts, 3)
    assert pairs[2][0].tolist() == [4, 5] and pairs[2][1].tolist() == [40, 50]


@pytest.mark.parametrize("result", [np.arange(5), [1] * 7, {"a": np.arange(6), "b": np.arange(2)},
                                    np.float32(1.0), "text"])
def test_wrong_row_counts_are_errors(result: object) -> None:
    with pytest.raises(PredictError, match="batch of 6 rows"):
        split_result(result, [2, 4], 2)


def test_a_single_request_gets_the_result_as_it_is() -> None:
    assert split_result("anything", [3], 1) == ["anything"]
