"""Where the channel values sit inside a serialized SQLite checkpoint, without decoding them.

``AsyncSqliteSaver`` stores a checkpoint as the MessagePack of the whole checkpoint dict,
channel values included. To report each channel's bytes as stored, this module walks the
encoded bytes and measures each value's span: nothing is deserialized, so values of types
this worker cannot load still measure, and the spans add up to the row exactly.

The walk follows the MessagePack format specification (github.com/msgpack/msgpack,
``spec.md``): each object starts with one format byte that gives either its whole size, or
the size of a length field after it, or a count of nested objects (arrays, maps). Extension
payloads are opaque (LangGraph nests encoded objects inside them): their bytes are skipped.
"""

from __future__ import annotations

_U8, _U16, _U32 = 1, 2, 4

# Format byte -> bytes of the object after it, for formats of fixed size (ints, floats,
# fixext: type byte plus data).
_FIXED = {
    0xC0: 0, 0xC2: 0, 0xC3: 0,  # nil, false, true
    0xCA: 4, 0xCB: 8,  # float 32/64
    0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,  # uint 8..64
    0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8,  # int 8..64
    0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17,  # fixext 1..16
}  # fmt: skip
# Format byte -> width of the length field, for byte payloads (str, bin; ext has one more
# byte, its type, after the length).
_SIZED = {0xD9: _U8, 0xDA: _U16, 0xDB: _U32, 0xC4: _U8, 0xC5: _U16, 0xC6: _U32}
_EXT = {0xC7: _U8, 0xC8: _U16, 0xC9: _U32}
# Format byte -> (width of the count field, objects per counted entry).
_CONTAINERS = {0xDC: (_U16, 1), 0xDD: (_U32, 1), 0xDE: (_U16, 2), 0xDF: (_U32, 2)}


class MsgpackError(ValueError):
    """The bytes are not one well-formed MessagePack object where one was expected."""


def _uint(data: bytes, pos: int, width: int) -> int:
    if pos + width > len(data):
        raise MsgpackError(f"truncated at byte {pos}")
    return int.from_bytes(data[pos : pos + width], "big")


def _head(data: bytes, pos: int) -> tuple[int, int]:
    """For the object starting at ``pos``: where its own bytes end (the nested objects of an
    array or map follow there), and how many nested objects follow."""
    if pos >= len(data):
        raise MsgpackError(f"truncated at byte {pos}")
    fmt = data[pos]
    pos += 1
    if fmt <= 0x7F or fmt >= 0xE0:  # positive and negative fixint
        return pos, 0
    if fmt <= 0x8F:  # fixmap
        return pos, 2 * (fmt & 0x0F)
    if fmt <= 0x9F:  # fixarray
        return pos, fmt & 0x0F
    if fmt <= 0xBF:  # fixstr
        return pos + (fmt & 0x1F), 0
    if fmt in _FIXED:
        return pos + _FIXED[fmt], 0
    if fmt in _SIZED:
        width = _SIZED[fmt]
        return pos + width + _uint(data, pos, width), 0
    if fmt in _EXT:
        width = _EXT[fmt]
        return pos + width + 1 + _uint(data, pos, width), 0
    if fmt in _CONTAINERS:
        width, per_entry = _CONTAINERS[fmt]
        return pos + width, per_entry * _uint(data, pos, width)
    raise MsgpackError(f"format byte 0x{fmt:02x} is never used (byte {pos - 1})")


def skip(data: bytes, pos: int = 0) -> int:
    """The offset just past the (possibly nested) object starting at ``pos``.

    Iterative, so deeply nested values cannot exhaust the stack.
    """
    pending = 1
    while pending:
        pos, nested = _head(data, pos)
        pending += nested - 1
    if pos > len(data):
        raise MsgpackError(f"truncated: an object runs past byte {len(data)}")
    return pos


def _map_size(data: bytes, pos: int) -> tuple[int, int] | None:
    """``(entries, offset of the first key)`` when a map starts at ``pos``, else None."""
    if pos >= len(data):
        raise MsgpackError(f"truncated at byte {pos}")
    fmt = data[pos]
    if 0x80 <= fmt <= 0x8F:
        return fmt & 0x0F, pos + 1
    if fmt in (0xDE, 0xDF):
        width = _U16 if fmt == 0xDE else _U32
        return _uint(data, pos + 1, width), pos + 1 + width
    return None


def _text(data: bytes, pos: int) -> tuple[str | None, int]:
    """The string starting at ``pos`` (None if it is another type) and where it ends."""
    end = skip(data, pos)
    fmt = data[pos]
    if 0xA0 <= fmt <= 0xBF:
        start = pos + 1
    elif fmt in (0xD9, 0xDA, 0xDB):
        start = pos + 1 + _SIZED[fmt]
    else:
        return None, end
    return data[start:end].decode("utf-8", "replace"), end


def map_value_spans(data: bytes, key: str) -> dict[str, int] | None:
    """For a top-level map whose ``key`` holds a map of string keys (a checkpoint's
    ``channel_values``): the encoded size of each entry's value. None when ``data`` is not
    such a map; raises ``MsgpackError`` on malformed bytes."""
    top = _map_size(data, 0)
    if top is None:
        return None
    entries, pos = top
    for _ in range(entries):
        name, pos = _text(data, pos)
        if name != key:
            pos = skip(data, pos)
            continue
        inner = _map_size(data, pos)
        if inner is None:
            return None
        count, pos = inner
        spans: dict[str, int] = {}
        for _ in range(count):
            channel, pos = _text(data, pos)
            end = skip(data, pos)
            if channel is not None:
                spans[channel] = end - pos
            pos = end
        return spans
    return None
