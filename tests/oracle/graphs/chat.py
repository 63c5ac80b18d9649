"""A tool-calling chat agent on fake chat models: no network, the same answer every run.

The first model turn calls ``get_weather``; once the tool answered, the second turn streams
its reply token by token (``GenericFakeChatModel`` splits on whitespace).
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import (
    FakeMessagesListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def agent(state: MessagesState) -> dict[str, Any]:
    last = state["messages"][-1]
    if isinstance(last, ToolMessage):
        model: Any = GenericFakeChatModel(
            messages=iter([AIMessage(content=f"It is {last.content} today.", id="ai-answer")])
        )
    else:
        call = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call-1"}
        model = FakeMessagesListChatModel(
            responses=[AIMessage(content="", tool_calls=[call], id="ai-call")]
        )
    return {"messages": [model.invoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("agent", agent)
builder.add_node("tools", ToolNode([get_weather]))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", tools_condition)
builder.add_edge("tools", "agent")
graph = builder.compile()
