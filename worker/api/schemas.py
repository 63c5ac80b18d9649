"""Request bodies of the API, validated strictly.

Every model forbids unknown fields, and fields the LangGraph SDK may send but this worker
does not implement are refused when set: a client always learns (422, naming the field)
that something it asked for will not happen, instead of it being silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, TypeVar

import orjson
from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
)

from worker.errors import BadRequest, Unprocessable
from worker.runs.model import STREAM_MODES, MultitaskStrategy
from worker.store.thread_ttl import ThreadTTL, TTLStrategy

Model = TypeVar("Model", bound=BaseModel)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _known_modes(value: list[str]) -> list[str]:
    unknown = [m for m in value if m not in STREAM_MODES]
    if unknown:
        raise ValueError(
            f"unsupported stream_mode {', '.join(unknown)}; supported: {', '.join(STREAM_MODES)}"
        )
    return value


# "values" or ["values", "updates"]; every mode one this worker can produce.
StreamModes = Annotated[list[str], BeforeValidator(_one_or_many), AfterValidator(_known_modes)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Fields accepted for compatibility that must stay unset (or empty) to be honoured.
    REFUSED: ClassVar[tuple[str, ...]] = ()

    def refuse_unsupported(self) -> None:
        used = [name for name in self.REFUSED if getattr(self, name)]
        if used:
            raise Unprocessable(
                f"unsupported field(s) for this worker: {', '.join(used)}",
                code="unsupported_field",
            )


class CommandBody(Body):
    resume: Any = None
    update: Any = None
    goto: Any = None


class CheckpointBody(Body):
    thread_id: str | None = None
    checkpoint_ns: str = ""
    checkpoint_id: str | None = None
    checkpoint_map: dict[str, Any] | None = None


class RunCreateBody(Body):
    """The body of ``runs.create``, ``runs.wait`` and ``runs.stream`` (thread or stateless)."""

    # feedback_keys and langsmith_tracer concern LangSmith, which this worker does not
    # report to: accepted and ignored, as a server without LangSmith does.
    REFUSED = ("strict_resume",)

    assistant_id: str
    input: Any = None
    command: CommandBody | None = None
    config: dict[str, Any] | None = None
    context: Any = None
    metadata: dict[str, Any] | None = None
    stream_mode: StreamModes = Field(default_factory=lambda: ["values"])
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    multitask_strategy: MultitaskStrategy = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] | None = None
    on_completion: Literal["delete", "keep"] | None = None
    after_seconds: float | None = Field(None, ge=0)
    durability: Literal["sync", "async", "exit"] | None = None
    checkpoint: CheckpointBody | None = None
    checkpoint_id: str | None = None
    checkpoint_during: bool | None = None
    webhook: str | None = None
    feedback_keys: list[str] | None = None
    langsmith_tracer: dict[str, Any] | None = None
    strict_resume: bool | None = None

    def durability_mode(self) -> Literal["sync", "async", "exit"] | None:
        if self.durability is not None:
            return self.durability
        if self.checkpoint_during is not None:  # the deprecated spelling
            return "async" if self.checkpoint_during else "exit"
        return None


def present(value: Any) -> Any:
    """A field that may be left out but not sent as null (as the official schema has it)."""
    if value is None:
        raise ValueError("may be left out, but not null")
    return value


# A JSON number: not a string, not a boolean (pydantic would convert both).
Number = Annotated[float, Strict()]


class ThreadTTLBody(Body):
    """``ttl`` of a thread create or patch: the minutes the thread may stay inactive
    (``ttl``; ``default_ttl``, as the official server also reads it) and what happens then
    (``strategy``). Without minutes it sets nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    strategy: TTLStrategy = "delete"
    ttl: Number | None = None
    default_ttl: Number | None = None

    _not_null = field_validator("strategy", "ttl", "default_ttl", mode="before")(present)

    def thread_ttl(self) -> ThreadTTL | None:
        minutes = self.ttl if self.ttl is not None else self.default_ttl
        return ThreadTTL.of(self.strategy, minutes) if minutes is not None else None


class ThreadCreateBody(Body):
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    graph_id: str | None = None
    # Each superstep: {"updates": [{"values", "as_node", "command"?}]} (see thread_schemas).
    supersteps: list[dict[str, Any]] | None = None
    ttl: ThreadTTLBody | None = None

    _not_null = field_validator("ttl", mode="before")(present)


ThreadField = Literal[
    "thread_id", "created_at", "updated_at", "metadata", "config", "status", "values", "interrupts"
]


class ThreadSearchBody(Body):
    REFUSED = ("extract",)

    metadata: dict[str, Any] | None = None
    ids: list[str] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    sort_by: Literal["thread_id", "created_at", "updated_at", "status"] = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    values: dict[str, Any] | None = None
    select: list[ThreadField] | None = None
    extract: dict[str, str] | None = None


class StateUpdateBody(Body):
    values: Any = None
    as_node: str | None = None
    checkpoint: CheckpointBody | None = None
    checkpoint_id: str | None = None


class ExecutionOptions(Body):
    """``execution_options`` of ``POST /graphs/execute``."""

    thread_id: str | None = None
    config: dict[str, Any] | None = None
    context: Any = None
    metadata: dict[str, Any] | None = None
    stream_mode: StreamModes = Field(default_factory=lambda: ["values", "updates", "custom"])
    timeout_s: float | None = Field(None, gt=0)
    webhook: str | None = None


class ExecuteBody(Body):
    graph_id: str
    input_data: Any = None
    execution_options: ExecutionOptions = Field(default_factory=ExecutionOptions)


def _describe(error: ValidationError) -> str:
    extra = [".".join(map(str, e["loc"])) for e in error.errors() if e["type"] == "extra_forbidden"]
    if extra:
        return f"unsupported field(s): {', '.join(extra)}"
    first = error.errors()[0]
    where = ".".join(map(str, first["loc"])) or "body"
    return f"{where}: {first['msg']}"


def parse(model: type[Model], data: Any) -> Model:
    """``data`` as ``model``; 422 naming the offending field otherwise."""
    try:
        parsed = model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        extra = any(e["type"] == "extra_forbidden" for e in exc.errors())
        raise Unprocessable(
            _describe(exc), code="unsupported_field" if extra else "invalid_request"
        ) from None
    if isinstance(parsed, Body):
        parsed.refuse_unsupported()
    return parsed


async def read_json(request: web.Request) -> Any:
    """The request's JSON body (``None`` when empty); 400 when it is not JSON."""
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None


async def parse_body(request: web.Request, model: type[Model]) -> Model:
    return parse(model, await read_json(request))
