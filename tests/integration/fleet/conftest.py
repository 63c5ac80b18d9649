"""The fleet tests start real workers with the worker suite's own fixture."""

from tests.integration.worker.conftest import make_worker

__all__ = ["make_worker"]
