"""Full garbage collections between customers (kiosk/screens/collector.py)."""

from __future__ import annotations

import gc

from kiosk.screens.collector import DEFERRED, IDLE_EVERY_S, Collector


def test_full_collections_wait_for_the_end_of_a_session_or_an_idle_kiosk():
    saved = gc.get_threshold()
    try:
        now = [0.0]
        collector = Collector(clock=lambda: now[0])
        assert gc.get_threshold() == (saved[0], saved[1], DEFERRED)  # young ones as before
        collector.idle(at_rest=True)
        assert collector.full_passes == 0  # just started
        now[0] += IDLE_EVERY_S
        collector.idle(at_rest=False)  # a customer is at it: never during a session
        assert collector.full_passes == 0
        collector.idle(at_rest=True)
        assert collector.full_passes == 1
        collector.idle(at_rest=True)
        assert collector.full_passes == 1  # not again until a while later
        collector.between_customers()
        assert collector.full_passes == 2

    finally:
        gc.set_threshold(*saved)
