"""The kiosk's links to the shop (kiosk.mqtt: the outbox publisher, the item master, the
attendant alerts), started once the selling screen shows.

Their imports (paho and the MQTT modules), threads and handshakes used to run before
Kivy's window, on the boot's critical path; the selling screen does not need them: the
outbox keeps every sale until the publisher sends it, and the checkout's events from
before the start (a card payment a power cut left open, settled at the first frame) are
kept and handed to the alerts when they start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kiosk.checkout.session import Checkout
    from kiosk.config import Config
    from kiosk.ledger.core import Ledger


class HeldEvents:
    """A checkout subscriber that keeps events until `attach` gives it somewhere to send
    them, then sends those and every later one there (the checkout's thread delivers,
    the UI thread attaches)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held: list = []
        self._target: Callable[[Any], None] | None = None

    def __call__(self, event) -> None:
        with self._lock:
            if self._target is None:
                self._held.append(event)
                return
        self._target(event)

    def attach(self, target: Callable[[Any], None]) -> None:
        with self._lock:
            for event in self._held:
                target(event)
            self._held.clear()
            self._target = target


class ShopLinks:
    def __init__(self, config: Config, ledger: Ledger, checkout: Checkout, hardware):
        self.config = config
        self.ledger = ledger
        self.checkout = checkout
        self.hardware = hardware
        self.catalog = None
        self.alerts = None
        self._events = HeldEvents()
        checkout.subscribe(self._events)

    def start(self, app) -> None:
        """On the UI thread, after READY."""
        from kiosk.mqtt.catalog_sync import CatalogSync  # noqa: PLC0415
        from kiosk.mqtt.publisher import Publisher  # noqa: PLC0415

        config, hardware = self.config, self.hardware
        hardware.publisher = Publisher(
            config, self.ledger.path, printer_state=hardware.printer_state
        ).start()
        # Item master versions are fetched and checked in the background and applied only
        # on the checkout's own thread while no sale is open (offer_catalog).
        self.catalog = CatalogSync(config, self.ledger.path, gate=lambda: False).start()
        self.alerts = self._start_alerts(app)

    def _start_alerts(self, app):
        """The checkout's, the printer's, the drawer's and the disk's alerts go to the
        shop; staffed tills and carts show the shop's."""
        from kivy.clock import Clock  # noqa: PLC0415

        from kiosk.mqtt.alerts import KioskAlerts  # noqa: PLC0415

        hardware, checkout = self.hardware, self.checkout
        alerts = KioskAlerts(
            self.config, printer_state=hardware.printer_state, disk_path=self.ledger.path
        )
        alerts.on_change = lambda shown: Clock.schedule_once(
            lambda dt: setattr(app, "shop_alert_text", alerts.banner_text(shown))
        )
        app.kiosk_alerts = alerts
        if hasattr(hardware.drawer, "on_left_open"):
            hardware.drawer.on_left_open = alerts.drawer_left_open
        alerts.start()
        self._events.attach(lambda event: alerts.on_event(event, checkout))
        return alerts

    def offer_catalog(self, app) -> None:
        """A checked item master version, applied on the checkout's thread between its
        calls and only between sales: an open cart keeps the prices it was scanned at."""
        worker = getattr(app, "worker", None)
        if self.catalog is not None and self.catalog.staged is not None and worker is not None:
            worker.call("between_sales", self.catalog.apply_staged)

    def stop(self) -> None:
        if self.hardware.publisher is not None:
            self.hardware.publisher.stop()
        if self.catalog is not None:
            self.catalog.stop()
        if self.alerts is not None:
            self.alerts.stop()
