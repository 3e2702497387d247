"""The Open Inference Protocol v2 codec: shapes, binary data, result encoding."""

from __future__ import annotations

import json
import struct

import numpy as np
import pandas as pd
import pytest

from modelhost.scoring.oip_v2 import (
    V2Error,
    decode_infer_request,
    encode_infer_response,
    flatten,
    reshape,
    result_to_tensors,
)


def test_flatten_and_reshape_round_trip() -> None:
    nested = [[1, 2, 3], [4, 5, 6]]
    flat, shape = flatten(nested)
    assert (flat, shape) == ([1, 2, 3, 4, 5, 6], [2, 3])
    assert reshape(flat, shape) == nested
    assert reshape([7], []) == 7
    with pytest.raises(V2Error):
        flatten([[1, 2], [3]])
    with pytest.raises(V2Error):
        reshape([1, 2, 3], [2, 2])


def test_decode_json_and_binary_inputs() -> None:
    head = {
        "inputs": [
            {"name": "a", "shape": [2, 2], "datatype": "FP32", "parameters": {"binary_data_size": 16}},
            {"name": "b", "shape": [2], "datatype": "BYTES", "data": ["x", "y"]},
            {"name": "c", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 10}},
            {"name": "d", "shape": [3], "datatype": "BOOL", "parameters": {"binary_data_size": 3}},
        ]
    }
    text = json.dumps(head).encode()
    blob = (
        np.array([[1, 2], [3, 4]], dtype=np.float32).tobytes()
        + struct.pack("<I", 2)
        + b"hi"
        + struct.pack("<I", 0)
        + b""
        + b""
        + bytes([1, 0, 1])
    )
    # the BYTES blob above is 4+2+4 = 10 bytes: "hi" and ""
    _, tensors = decode_infer_request(text + blob, len(text))
    assert tensors[0].nested() == [[1.0, 2.0], [3.0, 4.0]]
    assert tensors[1].data == ["x", "y"]
    assert tensors[2].data == ["hi", ""]
    assert tensors[3].data == [True, False, True]


def test_decode_rejects_shape_mismatch_and_non_json() -> None:
    with pytest.raises(V2Error):
        decode_infer_request(
            json.dumps(
                {"inputs": [{"name": "a", "shape": [3], "datatype": "FP64", "data": [1, 2]}]}
            ).encode(),
            None,
        )
    with pytest.raises(V2Error):
        decode_infer_request(b"nope", None)


@pytest.mark.parametrize(
    ("result", "want"),
    [
        (np.array([[1, 2]], dtype=np.float32), [("output-0", "FP32", [1, 2], [1.0, 2.0])]),
        (np.array([1, 2], dtype=np.int32), [("output-0", "INT32", [2], [1, 2])]),
        ([[1, 2], [3, 4]], [("output-0", "INT64", [2, 2], [1, 2, 3, 4])]),
        ([1, 2.5], [("output-0", "FP64", [2], [1, 2.5])]),
        (
            {"a": [True, False], "b": "text"},
            [("a", "BOOL", [2], [True, False]), ("b", "BYTES", [1], ["text"])],
        ),
        ('{"p": [0.5]}', [("p", "FP64", [1], [0.5])]),
        ("plain text", [("output-0", "BYTES", [1], ["plain text"])]),
        ([[1], [2, 3]], [("output-0", "BYTES", [1], ["[[1], [2, 3]]"])]),
        (np.array(["a", "b"]), [("output-0", "BYTES", [2], ["a", "b"])]),
    ],
    ids=["np-fp32", "np-int32", "int-list", "float-list", "dict", "json-str", "str", "ragged", "np-str"],
)
def test_result_to_tensors(result: object, want: list[tuple[str, str, list[int], list[object]]]) -> None:
    got = [(t.name, t.datatype, t.shape, t.data) for t in result_to_tensors(result)]
    assert got == want


def test_dataframe_gives_one_output_per_column() -> None:
    tensors = result_to_tensors(pd.DataFrame({"x": [1.0, 2.0], "y": [3, 4]}))
    assert [(t.name, t.datatype, t.data) for t in tensors] == [
        ("x", "FP64", [1.0, 2.0]),
        ("y", "INT64", [3, 4]),
    ]


def test_encode_binary_and_filtered_outputs() -> None:
    tensors = result_to_tensors({"a": np.array([1.5, 2.5]), "b": [1]})
    body, length = encode_infer_response(
        "m", "2", {"id": "r", "parameters": {"binary_data_output": True}}, tensors
    )
    assert length is not None
    head = json.loads(body[:length])
    assert head["id"] == "r" and head["model_version"] == "2"
    assert head["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert np.frombuffer(body[length : length + 16], dtype=np.float64).tolist() == [1.5, 2.5]
    body, length = encode_infer_response("m", None, {"outputs": [{"name": "b"}]}, tensors)
    assert length is None
    assert json.loads(body)["outputs"] == [{"name": "b", "datatype": "INT64", "shape": [1], "data": [1]}]
    with pytest.raises(V2Error):
        encode_infer_response("m", None, {"outputs": [{"name": "zzz"}]}, tensors)
