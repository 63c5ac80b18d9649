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


def test_reservations_take_every_slot_asked_or_none() -> None:
    metrics = WorkerMetrics()
    admission = Admission(max_concurrency=3, metrics=metrics)
    held = admission.reserve()
    with pytest.raises(AtCapacity, match="2 free slots for 3 runs"), admission.reservations(3):
        pass
    assert admission.load == 1
    assert metrics.registry.get_sample_value("graphfleet_worker_runs_rejected_total") == 1

    def fail_after_one_run() -> None:
        with admission.reservations(2) as slots:
            assert admission.load == 3
            slots[0].claim()  # one run started before the batch failed: its slot stays taken
            raise ValueError("bad item")

    with pytest.raises(ValueError, match="bad item"):
        fail_after_one_run()
    assert admission.load == 2
    held.release()
    admission.begin_drain()
    with pytest.raises(AtCapacity, match="draining"), admission.reservations(2):
        pass
    assert admission.load == 1
