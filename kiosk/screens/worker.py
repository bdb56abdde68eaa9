"""Every Checkout call on one background thread, so the UI thread never blocks on
the printer, the database or the drawer. Results come back through `deliver`
(Kivy's Clock in the app), with the snapshot taken on the same thread."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from kiosk.checkout.session import Checkout, Event, Outcome

log = logging.getLogger(__name__)
Done = Callable[[Outcome, dict[str, Any], list[Event]], None]


class CheckoutWorker:
    def __init__(self, checkout: Checkout, deliver: Callable[[Callable[[], None]], None]):
        self.checkout = checkout
        self.deliver = deliver
        self._queue: queue.Queue = queue.Queue()
        self._events: list[Event] = []
        self._busy_since: float | None = None
        self.busy_with = ""  # the method of the current (or last) call
        checkout.subscribe(self._events.append)
        self._thread = threading.Thread(target=self._run, name="checkout", daemon=True)
        self._thread.start()

    def call(self, method: str, *args: Any, then: Done | None = None) -> None:
        self._queue.put((method, args, then))

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(5)

    def idle(self) -> bool:
        return self._queue.empty()

    def responsive(self, stuck_after: float) -> bool:
        """False when one call has been running longer than `stuck_after` seconds."""
        return self.busy_for() < stuck_after

    def busy_for(self) -> float:
        """Seconds the current call has been running (0 when idle)."""
        started = self._busy_since
        return 0.0 if started is None else time.monotonic() - started

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            method, args, then = job
            self.busy_with = method
            self._busy_since = time.monotonic()
            try:
                outcome = getattr(self.checkout, method)(*args) or Outcome(True, "")
            except Exception as exc:  # noqa: BLE001 - the kiosk must never freeze on a bug
                log.exception("checkout.%s failed", method)
                outcome = Outcome(False, f"Something went wrong ({exc}). Please call staff.")
            if method == "scan":  # the journal shows what each scan did (field support)
                log.info("scan %s: %s", args[0] if args else "", outcome.message)
            snapshot = self.checkout.snapshot()
            self._busy_since = None
            events, self._events[:] = list(self._events), []
            if then is not None:
                self.deliver(lambda o=outcome, s=snapshot, e=events, t=then: t(o, s, e))
