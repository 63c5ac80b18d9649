"""Measuring MessagePack objects without decoding them (the SQLite storage report): every span
the walker reports is exactly the bytes of the object, for any value, and malformed bytes are
refused, never misread."""

from __future__ import annotations

from typing import Any

import ormsgpack
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from worker.store.msgpack_spans import MsgpackError, map_value_spans, skip

hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")

# Every MessagePack format: ints of each width (and negative ones), floats, strings and
# binaries of each length field, and containers large enough for their 16-bit forms.
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=300)
    | st.binary(max_size=300)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=20) | st.dictionaries(st.text(max_size=5), inner, max_size=20)
    ),
    max_leaves=60,
)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(value=VALUES, tail=st.binary(max_size=8))
def test_skip_ends_exactly_where_the_object_ends(value: Any, tail: bytes) -> None:
    packed = ormsgpack.packb(value)
    assert skip(packed + tail) == len(packed)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(value=VALUES, cut=st.integers(min_value=1, max_value=50))
def test_truncated_bytes_are_refused(value: Any, cut: int) -> None:
    packed = ormsgpack.packb(value)
    truncated = packed[: max(0, len(packed) - cut)]
    with pytest.raises(MsgpackError):
        skip(truncated)


@pytest.mark.parametrize("size", [0, 1, 15, 16, 2**16])
def test_containers_of_every_size_form(size: int) -> None:
    for value in ([0] * size, {str(i): i for i in range(size)}, "x" * size, b"x" * size):
        packed = ormsgpack.packb(value)
        assert skip(packed) == len(packed)


def test_an_unused_format_byte_is_refused() -> None:
    with pytest.raises(MsgpackError, match="never used"):
        skip(b"\xc1")


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(
    channels=st.dictionaries(st.text(max_size=10), VALUES, max_size=6),
    before=st.dictionaries(st.sampled_from(["v", "id", "ts"]), VALUES, max_size=3),
)
def test_map_value_spans_measure_each_channel(
    channels: dict[str, Any], before: dict[str, Any]
) -> None:
    packed = ormsgpack.packb({**before, "channel_values": channels, "after": [1, 2]})
    spans = map_value_spans(packed, "channel_values")
    assert spans == {name: len(ormsgpack.packb(value)) for name, value in channels.items()}


@pytest.mark.parametrize(
    "data",
    [ormsgpack.packb([1, 2]), ormsgpack.packb({"v": 1}), ormsgpack.packb({"channel_values": 3})],
)
def test_map_value_spans_of_other_shapes_is_none(data: bytes) -> None:
    assert map_value_spans(data, "channel_values") is None


def test_a_langgraph_checkpoint_splits_into_its_channels_exactly() -> None:
    """What AsyncSqliteSaver stores: each span decodes on its own to the channel's value."""
    serde = JsonPlusSerializer()
    values = {
        "messages": [HumanMessage("hi", id="1"), AIMessage("hello", id="2")],
        "count": 3,
        "blob": b"\x00" * 70_000,
    }
    checkpoint = {"v": 4, "id": "c1", "ts": "t", "channel_values": values, "channel_versions": {}}
    type_, packed = serde.dumps_typed(checkpoint)
    assert type_ == "msgpack"
    spans = map_value_spans(packed, "channel_values")
    assert spans is not None
    assert set(spans) == set(values)
    start = packed.index(b"channel_values") + len("channel_values") + 1  # the map's header
    position = start
    for name in values:  # the encoder keeps the dict's order
        position = packed.index(name.encode(), position) + len(name)
        value = serde.loads_typed(("msgpack", packed[position : position + spans[name]]))
        assert value == values[name]
        position += spans[name]
