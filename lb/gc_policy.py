"""Garbage collection for a process holding thousands of long-lived connections.

CPython's full (generation 2) collection walks every object the collector tracks, and by
default it runs whenever the long-lived objects have grown by a quarter. An LB holding 5,000
open streams tracks some 55 objects for each: every full collection while streams open was a
pause of 100 to 500 ms in which no event moved, and those pauses were the p99 of both time to
first event and event delay (docs/benchmarks.md, SSE). So the LB process, once started:

- moves what start-up made (modules, settings, the admin app) out of the collector's sight
  (:func:`gc.freeze`): it lives as long as the process and would be walked by every full pass;
- lets a full collection run only after :data:`FULL_EVERY_GEN1` collections of generation 1
  (CPython's default is 10), so that it runs rarely instead of all along the growth of the
  number of open connections;
- keeps its per-connection objects free of reference cycles (the parsers' callbacks and
  finished tasks are dropped when a connection or exchange ends), so that reference counting
  frees them the moment a connection closes and nothing waits for the rare full pass. A test
  holds the proxy to that (tests/integration/lb/test_no_cycles.py).

Young collections (generations 0 and 1) run as usual: they are short, and they reclaim the
cycles of short-lived objects (an exception and its traceback) before these age.
"""

from __future__ import annotations

import gc
from typing import Final

# Full collections after this many generation-1 collections (and, as always, only when the
# long-lived objects grew by a quarter since the last one): at most one per some 7 million
# tracked allocations, minutes apart under load.
FULL_EVERY_GEN1: Final = 1000


def tune_for_long_lived_connections() -> None:
    """Freeze what exists now and make full collections rare. Call once, after start-up."""
    gc.collect()
    gc.freeze()
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, FULL_EVERY_GEN1)
