"""kiosk/shoplinks.py: the shop's links start after READY; the checkout's events from
before that are kept for the alerts, in order, none twice."""

from __future__ import annotations

import threading

from kiosk.shoplinks import HeldEvents


def test_events_before_attach_are_kept_and_handed_over_in_order():
    held = HeldEvents()
    held("a")
    held("b")
    got: list[str] = []
    held.attach(got.append)
    held("c")
    assert got == ["a", "b", "c"]


def test_events_racing_the_attach_are_neither_lost_nor_doubled():
    held = HeldEvents()
    got: list[int] = []
    sent = threading.Event()

    def checkout_thread():
        for number in range(20_000):
            held(number)
        sent.set()

    thread = threading.Thread(target=checkout_thread)
    thread.start()
    held.attach(got.append)  # somewhere in the middle of the stream
    thread.join(30)
    assert sent.is_set() and got == list(range(20_000))
