"""The web view's own link to the shop broker (a second client of the controller's user).

In: shop levels (<root>/stock/#, live only: retained ones are not resent on
subscribe), kiosk statuses (<root>/kiosk/+/status, retained: the latest of every
kiosk, with the extensions the store does not keep: app version, clock), and the
kiosks' alerts and acknowledgements (<root>/kiosk/+/alert, <root>/kiosk/+/ack).
Out: each open alert retained on <root>/alerts/<device>/<id>, an empty retained
message there once acknowledged, a manager's stock adjustments' levels, and dead
letters sent back for a retry.

Every message is handled inside a try: an alert that is off-contract (topics.py's
bounds), from a kiosk with too many open alerts, or that fails for any reason is
dead-lettered with the reason (the store's DeadLetter, like the controller's) and
never stops the link.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from kiosk.config import Config
from kiosk.mqtt import store, topics
from kiosk.mqtt.publisher import make_client
from kiosk.mqtt.web.live import Live

log = logging.getLogger(__name__)
ANY_TIME = 10 * 365 * 86400.0  # a status is shown whatever its clock says
SESSION_EXPIRY_S = 24 * 3600  # alerts raised while the web view restarts are kept


def alert_json(row: Any) -> dict[str, Any]:
    return {
        "device": row.device,
        "id": row.alert_id,
        "kind": row.kind,
        "label": ALERT_LABELS.get(row.kind, row.kind),
        "text": row.text,
        "raised_at": row.raised_at,
        "acked_at": row.acked_at,
        "acked_by": row.acked_by,
    }


ALERT_LABELS = {
    "call_staff": "Call staff",
    "age_check": "Age check",
    "approval": "Approval needed",
    "paper_out": "Printer out of paper",
    "printer": "Printer fault",
    "drawer_open": "Drawer left open",
    "disk_full": "Disk nearly full",
    "payment": "Card terminal",
    "other": "Alert",
}


class Relay:
    def __init__(self, config: Config, live: Live, client_suffix: str = "web"):
        self.config = config
        self.root = config.topic_root
        self.topics = topics.Topics(self.root)
        self.live = live
        self.connected = threading.Event()
        self.statuses: dict[str, dict[str, Any]] = {}  # device -> latest status + extras
        self.handled = 0
        self.dead = 0
        self._lock = threading.Lock()
        self.client = make_client(config, f"kiosk-controller-{config.device.store}-{client_suffix}")
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 30)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Relay:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        mqtt_cfg = self.config.mqtt
        self.client.connect_async(
            mqtt_cfg.host, mqtt_cfg.port, mqtt_cfg.keepalive, clean_start=False, properties=props
        )
        self.client.loop_start()
        return self

    def stop(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the web view's link: %s", reason_code)
            return
        live_only = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
        client.subscribe(
            [
                (self.topics.all_stock, live_only),
                (self.topics.all_kiosk_status, SubscribeOptions(qos=1)),
                (topics.kiosk_alert_topic(self.root, "+"), SubscribeOptions(qos=1)),
                (topics.kiosk_ack_topic(self.root, "+"), SubscribeOptions(qos=1)),
            ]
        )
        self.connected.set()
        try:  # the broker may have lost them (no persistence): every open alert again
            for row in store.Alert.select().where(store.Alert.acked_at.is_null()):
                self._publish_open(row)
        except Exception:  # noqa: BLE001
            log.exception("could not republish the open alerts")

    # ------------------------------------------------------------ in

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = bytes(message._topic).decode("utf-8", "replace")
        try:
            self.handled += 1
            self._route(topic, message.payload)
        except topics.PayloadError as exc:
            self._dead_letter(topic, message.payload, str(exc))
        except Exception as exc:  # noqa: BLE001 - nothing may stop the link
            log.exception("web view: could not handle a message on %s", topic)
            self._dead_letter(topic, message.payload, f"internal error: {exc!r}")

    def _route(self, topic: str, payload: bytes) -> None:
        stock_prefix = f"{self.root}/stock/"
        if topic.startswith(stock_prefix):
            self._on_level(topic[len(stock_prefix) :], payload)
            return
        device = self.topics.device_of(topic)
        if device is None:
            return
        if topic == self.topics.kiosk_status(device):
            self._on_status(device, payload)
        elif topic == topics.kiosk_alert_topic(self.root, device):
            self._on_alert(device, payload)
        elif topic == topics.kiosk_ack_topic(self.root, device):
            ack = topics.parse_alert_ack(payload, device)
            if not self.acknowledge(ack.alert_device, ack.alert_id, f"{ack.by}@{device}"):
                log.info("ack of %s/%s from %s: not open", ack.alert_device, ack.alert_id, device)

    def _on_level(self, sku: str, payload: bytes) -> None:
        if not payload:
            return
        data = topics._load(payload)
        on_hand = data.get("on_hand")
        if data.get("sku") != sku or not isinstance(on_hand, int):
            return  # not ours to judge: the controller published it
        self.live.publish("stock", {"sku": sku, "on_hand": on_hand})

    def _on_status(self, device: str, payload: bytes) -> None:
        if not payload:
            return
        try:
            status = topics.parse_kiosk_status(payload, device, future_tolerance_s=ANY_TIME)
        except topics.PayloadError:
            return  # the controller dead-letters statuses; here it only is not shown
        extras = topics.parse_status_extras(payload)
        now = datetime.now(UTC)
        with self._lock:
            before = self.statuses.get(device)
            changed_at = (
                before["changed_at"]
                if before and before["online"] == status.online
                else (store.ts(now) if before else None)
            )
            self.statuses[device] = {
                "online": status.online,
                "ts": store.ts(status.ts),
                "heard_at": time.time(),
                "changed_at": changed_at,
                "outbox": status.outbox,
                "printer": status.printer,
                **extras,
            }
        self.live.publish("status", {"device": device, "online": status.online})

    def _on_alert(self, device: str, payload: bytes) -> None:
        tolerance = self.config.controller.future_tolerance_s
        parsed = topics.parse_alert(payload, device, datetime.now(UTC), tolerance)
        model = store.Alert
        with store.store_db.atomic():
            if model.get_or_none((model.device == device) & (model.alert_id == parsed.id)):
                return  # a repeat (QoS 1 redelivery)
            open_now = (
                model.select().where((model.device == device) & model.acked_at.is_null()).count()
            )
            if open_now >= topics.MAX_OPEN_ALERTS:
                raise topics.PayloadError(
                    f"{device} has {open_now} open alerts (at most {topics.MAX_OPEN_ALERTS})"
                )
            row = model.create(
                device=device,
                alert_id=parsed.id,
                kind=parsed.kind,
                text=parsed.text,
                raised_at=store.ts(parsed.ts),
                acked_at=None,
                acked_by=None,
            )
        log.info("alert %s/%s from %s: %s %s", device, parsed.id, device, parsed.kind, parsed.text)
        self._publish_open(row)
        self.live.publish("alert", alert_json(row))

    def _dead_letter(self, topic: str, payload: bytes, reason: str) -> None:
        self.dead += 1
        log.warning("web view dead-lettered a message on %s: %s", topic, reason)
        try:
            with store.store_db.atomic():
                store.dead_letter(topic, payload, reason, datetime.now(UTC))
        except Exception:  # noqa: BLE001
            log.exception("could not keep the dead letter")

    # ------------------------------------------------------------ out

    def _publish_open(self, row: Any) -> None:
        payload = topics.alert(row.device, row.alert_id, row.kind, row.text, row.raised_at)
        self.client.publish(
            topics.open_alert_topic(self.root, row.device, row.alert_id),
            topics.encode(payload),
            1,
            True,
        )

    def acknowledge(self, device: str, alert_id: str, by: str) -> bool:
        """Mark an open alert acknowledged and clear it everywhere; False if it was not
        open (acknowledged before, or never raised)."""
        model = store.Alert
        now = store.ts(datetime.now(UTC))
        with store.store_db.atomic():
            done = (
                model.update(acked_at=now, acked_by=by[:64])
                .where(
                    (model.device == device)
                    & (model.alert_id == alert_id)
                    & model.acked_at.is_null()
                )
                .execute()
            )
        # Cleared on the broker either way: an empty retained message deletes it.
        self.client.publish(topics.open_alert_topic(self.root, device, alert_id), b"", 1, True)
        if done:
            log.info("alert %s/%s acknowledged by %s", device, alert_id, by)
            self.live.publish(
                "alert-cleared", {"device": device, "id": alert_id, "acked_by": by, "acked_at": now}
            )
        return bool(done)

    def publish_level(self, sku: str, on_hand: int) -> None:
        self.client.publish(
            self.topics.stock(sku), topics.encode(topics.stock_level(sku, on_hand)), 1, True
        )

    def resend(self, topic: str, payload: bytes) -> None:
        """A dead letter sent back on its own topic: the controller (or this link)
        handles it again as if it had just arrived."""
        info = self.client.publish(topic, payload, 1)
        info.wait_for_publish(5)

    def kiosk_extras(self, device: str) -> dict[str, Any]:
        with self._lock:
            return dict(self.statuses.get(device) or {})
