"""A kiosk's attendant alerts over MQTT (README, "Attendant alerts"; topics.py has the
topics and bounds).

Out: the checkout's alerts (subscribe ``on_event`` to the Checkout; kind from its
text), an age-restricted item waiting for a check, the printer going out of paper or
offline, the cash drawer left open (the drawer's sensor callback), the disk nearly
full (checked every minute). Each alert gets an id of its own and goes to
<root>/kiosk/<device>/alert (QoS 1); raised while the broker is away they wait (at
most PENDING) and go on reconnect.

In (staffed tills and mobile carts, ``listen=True``): every open alert of the shop,
retained on <root>/alerts/<device>/<id>; an empty message there clears one.
``acknowledge`` sends this kiosk's acknowledgement; the controller clears the alert
everywhere. ``on_change(alerts)`` is called (from the MQTT thread) with the open
alerts, newest first.

Own client (<device>-alerts): the outbox publisher stays as it is, and a kiosk with
no controller loses nothing but alerts.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from kiosk.config import Config
from kiosk.mqtt import topics
from kiosk.mqtt.publisher import make_client

log = logging.getLogger(__name__)
PENDING = 50  # alerts kept while the broker is away; older ones are dropped
DISK_CHECK_S = 60.0
PRINTER_CHECK_S = 2.0
DISK_FREE_FRACTION = 0.05  # less free than this (or DISK_FREE_BYTES) is "nearly full"
DISK_FREE_BYTES = 200 * 1024 * 1024
SHOWN_BY_ROLES = ("staffed", "mobile-cart")
LABELS = {
    "call_staff": "customer asks for help",
    "age_check": "age check",
    "approval": "approval needed",
    "paper_out": "printer out of paper",
    "printer": "printer fault",
    "drawer_open": "drawer left open",
    "disk_full": "disk nearly full",
    "payment": "card terminal",
    "other": "alert",
}


def classify(text: str) -> str:
    """The alert kind of one of the checkout's alert texts."""
    lower = text.lower()
    if "asks for help" in lower or "left during payment" in lower or "call staff" in lower:
        return "call_staff"
    if "age" in lower.split() or "age check" in lower or "approve_age" in lower:
        return "age_check"
    if "storage full" in lower or "disk" in lower:
        return "disk_full"
    if lower.startswith("printer"):
        return "paper_out" if "paper" in lower else "printer"
    if "drawer" in lower:
        return "drawer_open" if "open" in lower and "did not open" not in lower else "other"
    if lower.startswith("card") or "terminal" in lower:
        return "payment"
    if "approval" in lower:
        return "approval"
    return "other"


def new_id() -> str:
    """Unique per kiosk, in time order: milliseconds then 4 random hex digits."""
    return f"{int(time.time() * 1000):x}-{secrets.token_hex(2)}"


class KioskAlerts:
    def __init__(
        self,
        config: Config,
        printer_state: Callable[[], str] | None = None,
        disk_path: Path | None = None,
        listen: bool | None = None,
        on_change: Callable[[list[topics.Alert]], None] | None = None,
    ):
        self.config = config
        self.device = config.device.id
        self.root = config.topic_root
        self.printer_state = printer_state
        self.disk_path = disk_path
        self.listen = config.device.role in SHOWN_BY_ROLES if listen is None else listen
        self.on_change = on_change
        self.open: dict[str, topics.Alert] = {}  # "<device>/<id>" -> alert (listening kiosks)
        self.mine: dict[str, str] = {}  # this kiosk's open alerts: id -> kind
        self.connected = threading.Event()
        self.sent = 0
        self._pending: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._printer_was = "ok"
        self._disk_low = False
        self.client = make_client(config, f"{self.device}-alerts")
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 30)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> KioskAlerts:
        mqtt_cfg = self.config.mqtt
        self.client.connect_async(mqtt_cfg.host, mqtt_cfg.port, mqtt_cfg.keepalive)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._watch, name="kiosk-alerts", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the alerts link: %s", reason_code)
            return
        if self.listen:
            client.subscribe(f"{self.root}/alerts/#", 1)
        self.connected.set()
        with self._lock:
            pending, self._pending = self._pending, []
        for topic, payload in pending:
            self._send(topic, payload)

    # ------------------------------------------------------------ out

    def _send(self, topic: str, payload: bytes) -> None:
        if not self.connected.is_set():
            with self._lock:
                self._pending = (self._pending + [(topic, payload)])[-PENDING:]
            return
        info = self.client.publish(topic, payload, 1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            with self._lock:
                self._pending = (self._pending + [(topic, payload)])[-PENDING:]
            return
        self.sent += 1

    def raise_alert(self, kind: str, text: str = "") -> str:
        """Publish an alert of this kiosk; returns its id."""
        if kind not in topics.ALERT_KINDS:
            kind = "other"
        alert_id = new_id()
        payload = topics.encode(topics.alert(self.device, alert_id, kind, text))
        self.mine[alert_id] = kind
        log.info("alert %s: %s %s", alert_id, kind, text)
        self._send(topics.kiosk_alert_topic(self.root, self.device), payload)
        return alert_id

    def acknowledge(self, device: str, alert_id: str, by: str) -> None:
        """This kiosk's staff acknowledge an alert (theirs or another kiosk's)."""
        payload = topics.encode(topics.alert_ack(self.device, device, alert_id, by or "staff"))
        self._send(topics.kiosk_ack_topic(self.root, self.device), payload)
        if device == self.device:
            self.mine.pop(alert_id, None)

    def on_event(self, event, checkout=None) -> None:
        """A Checkout subscriber (runs on the checkout's thread: only queues work)."""
        try:
            if event.kind == "alert":
                text = str(event.detail.get("text", ""))
                self.raise_alert(classify(text), text)
            elif event.kind == "cart" and checkout is not None and "line" in event.detail:
                line = checkout.cart.line(event.detail["line"])
                if not line.approved:
                    self.raise_alert("age_check", f"{line.name}: age {line.min_age}+ to check")
            elif event.kind == "cart" and event.detail.get("approved"):
                for alert_id, kind in list(self.mine.items()):  # checked at the kiosk
                    if kind == "age_check":
                        self.acknowledge(self.device, alert_id, "staff at the kiosk")
        except Exception:  # noqa: BLE001 - an alert must never stop a sale
            log.exception("could not publish an alert")

    def drawer_left_open(self, seconds: float) -> None:
        """The drawer's sensor callback (kiosk.drivers.drawer's on_left_open)."""
        self.raise_alert("drawer_open", f"cash drawer open for {seconds:.0f} s")

    def _watch(self) -> None:
        next_disk = 0.0
        while not self._stop.wait(PRINTER_CHECK_S):
            try:
                self._check_printer()
                if time.monotonic() >= next_disk:
                    next_disk = time.monotonic() + DISK_CHECK_S
                    self._check_disk()
            except Exception:  # noqa: BLE001
                log.exception("alert checks")

    def _check_printer(self) -> None:
        if self.printer_state is None:
            return
        state = self.printer_state()
        if state != self._printer_was and state in ("paper_out", "offline"):
            kind = "paper_out" if state == "paper_out" else "printer"
            self.raise_alert(kind, f"receipt printer {state.replace('_', ' ')}")
        self._printer_was = state

    def _check_disk(self) -> None:
        if self.disk_path is None:
            return
        folder = self.disk_path if self.disk_path.is_dir() else self.disk_path.parent
        usage = shutil.disk_usage(folder)
        low = usage.free < max(DISK_FREE_BYTES, usage.total * DISK_FREE_FRACTION)
        if low and not self._disk_low:
            free_mb = usage.free // (1024 * 1024)
            self.raise_alert("disk_full", f"{free_mb} MB free on {os.fspath(self.disk_path)}")
        self._disk_low = low

    # ------------------------------------------------------------ in (listening kiosks)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
            alert = topics.parse_open_alert(message.payload, self.root, topic)
            key = topic[len(self.root) + len("/alerts/") :]
            with self._lock:
                if alert is None:
                    self.open.pop(key, None)
                else:
                    self.open[key] = alert
                shown = sorted(self.open.values(), key=lambda a: a.ts, reverse=True)
            if self.on_change is not None:
                self.on_change(shown)
        except Exception as exc:  # noqa: BLE001 - a bad message is only not shown
            log.warning("ignored an alert message: %s", exc)

    def banner_text(self, shown: list[topics.Alert]) -> str:
        """The shop alert bar of a staffed till or cart: newest first; tap to acknowledge."""
        if not shown:
            return ""
        first = shown[0]
        text = f"{first.device}: {LABELS.get(first.kind, first.kind)}"
        if first.text:
            text += f" - {first.text}"
        more = f"  (+{len(shown) - 1} more)" if len(shown) > 1 else ""
        return f"{text[:120]}{more}  [tap: acknowledge]"

    def acknowledge_newest(self, by: str) -> None:
        shown = self.open_alerts()
        if shown:
            self.acknowledge(shown[0].device, shown[0].id, by)

    def open_alerts(self) -> list[topics.Alert]:
        with self._lock:
            return sorted(self.open.values(), key=lambda a: a.ts, reverse=True)
