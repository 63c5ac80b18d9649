"""The bounded FIFO of requests waiting for capacity."""

from __future__ import annotations

import asyncio

import pytest

from lb.routing.capacity import CapacityQueue, QueueFull

LONG_S = 30.0  # a wait that only ends by being woken


async def waiting(queue: CapacityQueue, count: int) -> list[asyncio.Task[None]]:
    """``count`` tasks queued in order."""
    tasks = []
    for _ in range(count):
        tasks.append(asyncio.create_task(queue.wait(LONG_S)))
        await asyncio.sleep(0)  # let it take its place in the queue
    assert len(queue) == count
    return tasks


async def woken(tasks: list[asyncio.Task[None]]) -> set[int]:
    """Indexes of the tasks that finish once the loop has run the wake-ups."""
    pending = [t for t in tasks if not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=0.05)
    return {index for index, task in enumerate(tasks) if task.done()}


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_waiters_are_woken_in_arrival_order() -> None:
    queue = CapacityQueue(max_size=10)
    tasks = await waiting(queue, 3)

    done_after_each_wake = []
    for _ in range(3):
        queue.wake_one()
        done_after_each_wake.append(await woken(tasks))

    assert done_after_each_wake == [{0}, {0, 1}, {0, 1, 2}]
    assert len(queue) == 0
    assert all(task.result() is None for task in tasks)


async def test_wake_all_wakes_every_waiter() -> None:
    queue = CapacityQueue(max_size=10)
    tasks = await waiting(queue, 4)

    queue.wake_all()

    assert await woken(tasks) == {0, 1, 2, 3}
    assert len(queue) == 0


async def test_waking_an_empty_queue_does_nothing() -> None:
    queue = CapacityQueue(max_size=10)

    queue.wake_one()
    queue.wake_all()
    tasks = await waiting(queue, 1)

    assert await woken(tasks) == set()
    await cancel_all(tasks)


async def test_a_wait_that_times_out_raises_and_leaves_the_queue() -> None:
    queue = CapacityQueue(max_size=10)
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(TimeoutError):
        await queue.wait(0.01)

    assert loop.time() - started >= 0.009
    assert len(queue) == 0


@pytest.mark.parametrize("max_size", [0, 1, 3])
async def test_waiting_beyond_max_size_raises_queue_full(max_size: int) -> None:
    queue = CapacityQueue(max_size=max_size)
    tasks = await waiting(queue, max_size)

    with pytest.raises(QueueFull):
        await queue.wait(LONG_S)

    assert len(queue) == max_size
    await cancel_all(tasks)


async def test_a_waiter_cancelled_before_its_turn_leaves_the_queue() -> None:
    queue = CapacityQueue(max_size=10)
    tasks = await waiting(queue, 3)

    tasks[0].cancel()
    await asyncio.gather(tasks[0], return_exceptions=True)
    assert len(queue) == 2

    queue.wake_one()

    assert await woken(tasks) == {0, 1}
    assert tasks[0].cancelled()
    await cancel_all(tasks)


async def test_a_waiter_cancelled_after_being_woken_passes_the_wake_up_on() -> None:
    queue = CapacityQueue(max_size=10)
    tasks = await waiting(queue, 3)

    queue.wake_one()  # resolves the first waiter...
    tasks[0].cancel()  # ...which is cancelled before it gets to run

    assert await woken(tasks) == {0, 1}
    assert tasks[0].cancelled()
    assert tasks[1].result() is None
    assert len(queue) == 1
    await cancel_all(tasks)
