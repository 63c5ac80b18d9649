"""Which task writes the Postgres saver encodes in place rather than on a thread."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from worker.store.postgres_saver import SMALL_BUDGET, plainly_small


@pytest.mark.parametrize(
    ("values", "small"),
    [
        ([], True),
        ([None, True, 3, 2.5, "step", b"\x00"], True),
        ([{"messages": ["a", "b"], "count": 1, "nested": {"k": (1, 2)}}], True),
        (["x" * 64 * (SMALL_BUDGET - 2)], True),
        (["x" * 64 * (SMALL_BUDGET + 1)], False),
        ([list(range(SMALL_BUDGET + 1))], False),
        ([{str(i): i for i in range(SMALL_BUDGET)}], False),
        ([[[[[[]]]]]] * (SMALL_BUDGET // 4), False),
        ([HumanMessage("hi")], False),
        ([{"messages": [HumanMessage("hi")]}], False),
        ([{1, 2}], False),
    ],
)
def test_plainly_small(values: list[Any], small: bool) -> None:
    assert plainly_small(values) is small
