"""Where a run starts on its thread's checkpoints, and what stopping it leaves behind.

Runs record their ``run_id`` in the metadata of every checkpoint they write. That is how a
run claimed from a stopped worker finds the checkpoints it already wrote (and resumes after
the latest), and how a rollback finds the checkpoint the thread had before the run.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from langgraph.checkpoint.base import BaseCheckpointSaver

from worker.runs import executor
from worker.runs.active import ActiveRun
from worker.runs.model import RunSpec
from worker.store.base import Store


async def starting_point(run: ActiveRun) -> tuple[RunSpec, str | None]:
    """The spec to execute and the checkpoint the thread had before this run.

    A recovered run that wrote checkpoints continues from its latest one (no input,
    no command, no fixed checkpoint); one that wrote none starts over from its input.
    """
    saver = run.graph.checkpointer
    assert isinstance(saver, BaseCheckpointSaver)
    config = executor.thread_config(run.thread_id)
    if run.new_thread:
        return run.spec, None
    if not run.recovered:
        latest = await saver.aget_tuple(config)
        return run.spec, latest.config["configurable"]["checkpoint_id"] if latest else None
    own, base = False, None
    # Closed explicitly: the saver holds its lock and a cursor while the listing is open.
    listing = saver.alist(config)
    try:
        async for tup in listing:
            if tup.metadata.get("run_id") != run.run_id:
                base = tup.config["configurable"]["checkpoint_id"]
                break
            own = True
    finally:
        if isinstance(listing, AsyncGenerator):
            await listing.aclose()
    if not own:
        return run.spec, base
    update = {"input": None, "command": None, "checkpoint_id": None, "after_seconds": None}
    return run.spec.model_copy(update=update), base


async def stopped_outcome(store: Store, run: ActiveRun) -> executor.Outcome:
    """How a run stopped by request (interrupt or rollback) ended; rollback undoes it."""
    wrote = run.started
    if run.recovered and not run.started:
        # Claimed from a worker that stopped: what that one wrote is found by the run's id.
        spec, run.base_checkpoint_id = await starting_point(run)
        wrote = spec is not run.spec
    if run.stop_action == "rollback":
        if wrote:
            await _rollback(store, run)
        else:
            await store.delete_run(run.run_id)
        return executor.Outcome("cancelled", None)
    if not wrote:
        return executor.Outcome("cancelled", None)
    values, _ = await executor.final_values(run.graph, run.thread_id)
    return executor.Outcome("cancelled", values)


async def _rollback(store: Store, run: ActiveRun) -> None:
    """Put the thread back to where it was before the run and forget the run."""
    graph = run.graph
    if run.base_checkpoint_id is None:
        await graph.checkpointer.adelete_thread(run.thread_id)  # type: ignore[union-attr]
    else:
        # A copy of the pre-run checkpoint becomes the thread's latest state.
        await graph.aupdate_state(
            executor.thread_config(run.thread_id, run.base_checkpoint_id),
            None,
            as_node="__copy__",
        )
    await store.delete_run(run.run_id)
