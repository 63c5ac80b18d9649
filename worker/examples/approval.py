"""A graph that pauses for a human decision with ``interrupt()``.

``draft`` writes a proposal, ``review`` interrupts with it and waits; resuming with
``Command(resume={"approved": bool, "comment"?: str})`` (or a bare bool) records the decision
and ``publish`` finishes the run.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class ApprovalState(TypedDict, total=False):
    topic: str
    proposal: str
    approved: bool
    comment: str
    published: bool


def draft(state: ApprovalState) -> ApprovalState:
    return {"proposal": f"Proposal about {state.get('topic', 'something')}"}


def review(state: ApprovalState) -> ApprovalState:
    answer: Any = interrupt({"question": "Approve this proposal?", "proposal": state["proposal"]})
    if isinstance(answer, dict):
        return {"approved": bool(answer.get("approved")), "comment": str(answer.get("comment", ""))}
    return {"approved": bool(answer)}


def publish(state: ApprovalState) -> ApprovalState:
    return {"published": bool(state.get("approved"))}


def build() -> StateGraph[ApprovalState]:
    builder = StateGraph(ApprovalState)
    builder.add_node("draft", draft)
    builder.add_node("review", review)
    builder.add_node("publish", publish)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "review")
    builder.add_edge("review", "publish")
    builder.add_edge("publish", END)
    return builder


graph = build()
