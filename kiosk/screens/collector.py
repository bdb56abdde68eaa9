"""When Python's cycle collector may run its full passes: between customers.

A full collection walks every object of the app (Kivy's widgets, the catalog's rows)
and took up to 0.23 s on the bench: a scan arriving then waits for it
(bench/scan_bench.py, p99). So the automatic full passes are put off
(`gc.set_threshold`'s third number: full passes need this many younger ones first) and
made here instead, when a session ends and the screen is back on attract, and while the
kiosk stands idle. The young generations still collect as usual, so short-lived cycles
go as fast as before; memory that only a full pass frees waits at most one customer.
"""

from __future__ import annotations

import gc
import time

DEFERRED = 1_000_000  # younger passes before an automatic full one: in effect, never
IDLE_EVERY_S = 60.0  # while nobody is at the kiosk, a full pass at most this often


class Collector:
    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.last = clock()
        self.full_passes = 0
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, DEFERRED)

    def between_customers(self) -> None:
        """The session just ended: collect fully now, before the next customer."""
        self._collect()

    def idle(self, at_rest: bool) -> None:
        """A tick: at rest (attract screen, worker idle) and a while since the last
        full pass, make one."""
        if at_rest and self.clock() - self.last >= IDLE_EVERY_S:
            self._collect()

    def _collect(self) -> None:
        gc.collect()
        self.full_passes += 1
        self.last = self.clock()
