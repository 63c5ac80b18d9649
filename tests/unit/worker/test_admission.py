"""Admission: the one owner of a worker's capacity (slots, draining, 503 ``at_capacity``)."""

from __future__ import annotations

import pytest

from worker.errors import AtCapacity
from worker.metrics import WorkerMetrics
from worker.runs.admission import Admission


def _admission(max_concurrency: int = 2) -> Admission:
    return Admission(max_concurrency=max_concurrency, metrics=WorkerMetrics())


def test_slots_run_out_at_max_concurrency_and_come_back_on_release() -> None:
    admission = _admission(2)
    first, second = admission.reserve(), admission.reserve()
    assert (admission.load, admission.free) == (2, 0)
    with pytest.raises(AtCapacity, match=r"at capacity \(2/2 runs\)"):
        admission.reserve()
    first.release()
    first.release()  # idempotent: a slot goes back once
    assert (admission.load, admission.free) == (1, 1)
    second.release()
    assert admission.load == 0


def test_a_draining_worker_refuses_even_with_free_slots() -> None:
    admission = _admission(2)
    admission.begin_drain()
    with pytest.raises(AtCapacity, match="draining"):
        admission.reserve()
    assert admission.load == 0


@pytest.mark.parametrize(("claimed", "load_after"), [(False, 0), (True, 1)])
def test_a_reservation_block_gives_back_only_an_unclaimed_slot(
    claimed: bool, load_after: int
) -> None:
    admission = _admission(1)
    with admission.reservation() as slot:
        if claimed:
            slot.claim()
    assert admission.load == load_after


def test_a_reservation_block_gives_the_slot_back_when_it_raises() -> None:
    admission = _admission(1)
    with pytest.raises(ValueError, match="bad body"), admission.reservation():
        raise ValueError("bad body")
    assert admission.load == 0
