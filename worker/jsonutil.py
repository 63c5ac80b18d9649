"""JSON encoding of graph values for the wire.

Graph state holds more than JSON: LangChain messages (pydantic models), ``Interrupt``
dataclasses, ``Send`` and ``Command`` objects, sets. ``dumps`` turns them into what the
LangGraph Server sends, and never fails: an unknown object becomes its ``repr``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from langgraph.types import Interrupt, Send

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATACLASS


def _default(obj: Any) -> Any:
    if isinstance(obj, Interrupt):
        return interrupt_to_dict(obj)
    if isinstance(obj, Send):
        return {"node": obj.node, "input": obj.arg}
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump) and not isinstance(obj, type):
        return model_dump()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    as_dict = getattr(obj, "_asdict", None)  # NamedTuples such as Send in older releases
    if callable(as_dict):
        return as_dict()
    if isinstance(obj, set | frozenset):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode(errors="replace")
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    return repr(obj)


def interrupt_to_dict(interrupt: Interrupt) -> dict[str, Any]:
    """An ``Interrupt`` as the SDK's ``Interrupt`` TypedDict."""
    out: dict[str, Any] = {"value": interrupt.value, "id": interrupt.id}
    if getattr(interrupt, "response_schema", None) is not None:
        out["response_schema"] = interrupt.response_schema
    return out


def dumps(value: Any) -> bytes:
    """Encode ``value`` as JSON bytes; objects JSON does not know are converted, not refused."""
    return orjson.dumps(value, default=_default, option=_OPTIONS)


def to_jsonable(value: Any) -> Any:
    """``value`` reduced to plain JSON types (dicts, lists, strings, numbers)."""
    return orjson.loads(dumps(value))


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)
