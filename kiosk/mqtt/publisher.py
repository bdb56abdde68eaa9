"""Outbox -> broker: the kiosk's stock events, at least once, in seq order.

A thread of its own: connects with exponential backoff and jitter (tenacity),
publishes pending outbox rows in seq order with QoS 1 and a bounded in-flight
window, marks rows sent only on PUBACK, answers resync requests, publishes a
retained birth status and leaves an offline one as its last will. MQTT 5 is used
so a refused publish comes back with a reason code: permanent refusals (not
authorized, too large, bad payload or topic) are dead-lettered, others retried.
The till never waits for any of this: it sells on with no broker for as long as needed.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_when_event_set,
    wait_random_exponential,
)

from kiosk import __version__, clock, textfile
from kiosk.config import Config, ConfigError
from kiosk.mqtt import topics
from kiosk.mqtt.outbox import OutboxStore

MAX_PARTS = 2**31 - 1  # above any journal part: "every part of this seq"

log = logging.getLogger(__name__)

# PUBACK reason codes that no retry can fix (MQTT 5, section 3.4.2.1).
PERMANENT = {
    0x87: "not authorized",
    0x90: "topic name invalid",
    0x95: "packet too large",
    0x99: "payload format invalid",
}


def read_password(config: Config) -> str | None:
    if config.mqtt.password is not None:
        return config.mqtt.password
    if config.mqtt.password_file is not None:
        try:
            return textfile.read_text(config.mqtt.password_file).strip()
        except (OSError, textfile.TextFileError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            reason = str(reason).removeprefix(f"{config.mqtt.password_file}: ")
            raise ConfigError(
                f"{config.mqtt.password_file}: cannot read the MQTT password: {reason}"
            ) from None
    return None


def make_client(config: Config, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if config.mqtt.username:
        client.username_pw_set(config.mqtt.username, read_password(config))
    if config.mqtt.tls:
        client.tls_set(ca_certs=str(config.mqtt.ca_file) if config.mqtt.ca_file else None)
    return client


class Publisher:
    def __init__(
        self,
        config: Config,
        ledger_path: Path | None = None,
        printer_state: Callable[[], str] = lambda: "ok",
        window: int = 200,
        status_every: float = 30.0,
        max_backoff: float = 30.0,
    ):
        self.config = config
        self.device = config.device.id
        self.topics = topics.Topics(config.topic_root)
        self.store = OutboxStore(ledger_path or config.ledger.path)
        self.printer_state = printer_state
        self.window = window
        self.status_every = status_every
        self.max_backoff = max_backoff
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake = threading.Condition()
        self._acked: list[int] = []
        self._refused: list[tuple[int, int]] = []
        self._jacked: list[tuple[int, int]] = []  # journal (seq, part)s acknowledged
        self._jrefused: list[tuple[tuple[int, int], int]] = []
        self._resync: list[int] = []
        self._inflight: dict[int, int | tuple[int, int]] = {}  # mid -> seq, or journal key
        self._early: dict[int, int] = {}  # mid -> reason code, acked before filed
        self._status_mids: set[int] = set()  # status messages in flight (not outbox rows)
        self._max_packet = topics.MAX_PAYLOAD
        self.sent = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Publisher:
        self._thread = threading.Thread(target=self.run, name="outbox-publisher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        self.store.close()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                client = self._connect()
            except OSError:
                return  # stopped while waiting
            try:
                self._session(client)
            except Exception as exc:  # noqa: BLE001 - never let the thread die
                log.exception("publisher session failed")
                self.last_error = str(exc)
            finally:
                if self._stop.is_set() and self.connected.is_set():
                    self._say_offline(client)  # a clean disconnect sends no last will
                self.connected.clear()
                with contextlib.suppress(Exception):
                    client.disconnect()
                client.loop_stop()

    def _say_offline(self, client: mqtt.Client) -> None:
        payload = topics.kiosk_status(
            self.device,
            False,
            self.store.depth(),
            self.printer_state(),
            self.store.last_seq(),
            *self.catalog_state(),
        )
        info = client.publish(
            self.topics.kiosk_status(self.device), topics.encode(payload), 1, True
        )
        with contextlib.suppress(Exception):
            info.wait_for_publish(2)

    def _connect(self) -> mqtt.Client:
        retrying = Retrying(
            wait=wait_random_exponential(multiplier=0.5, max=self.max_backoff),
            retry=retry_if_exception_type(OSError),
            stop=stop_when_event_set(self._stop),
            sleep=self._stop.wait,
            reraise=True,
        )
        return retrying(self._try_connect)

    def _try_connect(self) -> mqtt.Client:
        if self._stop.is_set():
            raise OSError("stopped")
        try:
            client = make_client(self.config, f"kiosk-{self.device}")
        except ConfigError as exc:  # e.g. the password file is not there yet: keep trying
            self.last_error = str(exc)
            raise OSError(str(exc)) from None
        offline = topics.kiosk_status(
            self.device,
            False,
            self.store.depth(),
            self.printer_state(),
            self.store.last_seq(),
            *self.catalog_state(),
        )
        client.will_set(self.topics.kiosk_status(self.device), topics.encode(offline), 1, True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.max_inflight_messages_set(self.window)
        self.refused_connect = None
        try:
            client.connect(self.config.mqtt.host, self.config.mqtt.port, self.config.mqtt.keepalive)
        except OSError as exc:
            self.last_error = f"broker {self.config.mqtt.host}:{self.config.mqtt.port}: {exc}"
            raise
        client.loop_start()  # paho's network thread; this thread does the outbox work
        deadline = time.monotonic() + 10
        while not self.connected.wait(0.05):
            if self.refused_connect or time.monotonic() > deadline:
                client.loop_stop()
                with contextlib.suppress(Exception):
                    client.disconnect()
                raise OSError(self.refused_connect or "no CONNACK from the broker")
        return client

    # ------------------------------------------------------------ callbacks (paho's thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refused_connect = self.last_error = f"refused by the broker: {reason_code}"
            return
        size = getattr(properties, "MaximumPacketSize", None) if properties else None
        self._max_packet = min(size or topics.MAX_PAYLOAD, topics.MAX_PAYLOAD)
        client.subscribe(self.topics.kiosk_resync(self.device), qos=1)
        self.last_error = None
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        with self._wake:
            self._wake.notify()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # Called under paho's message lock: only touch our own state here.
        with self._wake:
            if mid in self._status_mids:
                self._status_mids.discard(mid)
                return
            seq = self._inflight.pop(mid, None)
            if seq is None:
                self._early[mid] = reason_code.value  # acked before we filed the mid
                return
            self._settle(seq, reason_code.value)
            self._wake.notify()

    def _settle(self, key: int | tuple[int, int], code: int) -> None:
        if isinstance(key, tuple):  # a journal message (kiosk.ledger.journal)
            if code >= 0x80:
                self._jrefused.append((key, code))
            else:
                self._jacked.append(key)
        elif code >= 0x80:
            self._refused.append((key, code))
        else:
            self._acked.append(key)

    def _on_message(self, client, userdata, message) -> None:
        try:
            from_seq = topics.parse_resync(message.payload)
        except topics.PayloadError as exc:
            log.warning("ignoring a bad resync request: %s", exc)
            return
        with self._wake:
            self._resync.append(from_seq)
            self._wake.notify()

    # ------------------------------------------------------------ the session

    def catalog_state(self) -> tuple[int | None, str | None]:
        """(item master version, why the latest one was refused) from the ledger;
        (None, None) on a kiosk that never had one (no controller: says nothing)."""
        try:
            row = self.store.conn.execute(
                "SELECT version, error FROM catalog_state WHERE id = 1"
            ).fetchone()
        except sqlite3.Error:  # a ledger older than schema 5
            return None, None
        return (row[0], row[1]) if row else (None, None)

    def update_state(self) -> dict[str, str]:
        """The A/B update's state for the status (kiosk.update.manager.status_fields)."""
        from kiosk.update.manager import status_fields  # noqa: PLC0415

        try:
            return status_fields(self.config.update.state_file)
        except Exception:  # noqa: BLE001 - a damaged record must not stop the status
            log.exception("reading the update record")
            return {}

    def _publish_status(self, client: mqtt.Client) -> None:
        payload = topics.kiosk_status(
            self.device,
            True,
            self.store.depth(),
            self.printer_state(),
            self.store.last_seq(),
            *self.catalog_state(),
        )
        # Extensions for the web view's kiosk page: firmware version, clock synchronised.
        payload.update(topics.status_extras(__version__, clock.synchronized(), self.update_state()))
        info = client.publish(
            self.topics.kiosk_status(self.device), topics.encode(payload), 1, True
        )
        # Its PUBACK is not an outbox row's: file it, or take back an early one, so a
        # reused mid can never settle an event with a status message's acknowledgement.
        with self._wake:
            if self._early.pop(info.mid, None) is None:
                self._status_mids.add(info.mid)

    def _session(self, client: mqtt.Client) -> None:
        topic = self.topics.kiosk_stock(self.device)
        journal_topic = self.topics.kiosk_journal(self.device)
        cursor = 0  # highest seq handed to the client in this session
        jcursor = (0, 0)  # highest journal (seq, part) handed to it
        self._publish_status(client)
        last_status = time.monotonic()
        printer = self.printer_state()
        catalog = self.catalog_state()
        reported_empty = False
        while not self._stop.is_set() and self.connected.is_set():
            with self._wake:
                room = self.window - len(self._inflight)
            fetched = self.store.pending_after(cursor, room) if room > 0 else []
            for seq, payload in fetched:
                cursor = seq
                if len(payload) + len(topic) + 16 > self._max_packet:
                    self.store.mark_dead(seq, f"payload of {len(payload)} bytes is too large")
                    continue
                # Never hold our lock across publish(): paho calls on_publish under its own.
                info = client.publish(topic, payload, qos=1, properties=JSON_PROPERTIES)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    cursor = seq - 1
                    break
                self._file(info.mid, seq)
            jroom = room - len(fetched)
            jfetched = self.store.journal_pending_after(jcursor, jroom) if jroom > 0 else []
            for row in jfetched:
                jcursor = (row.seq, row.part)
                if len(row.payload) + len(journal_topic) + 16 > self._max_packet:
                    self.store.mark_journal_dead(jcursor, "journal message too large")
                    continue
                info = client.publish(journal_topic, row.payload, qos=1, properties=JSON_PROPERTIES)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    jcursor = (row.seq, row.part - 1)
                    break
                self._file(info.mid, jcursor)
            full = room > 0 and len(fetched) + len(jfetched) >= room  # more may be waiting
            fetched = [*fetched, *jfetched]
            with self._wake:
                if (
                    not (
                        self._acked
                        or self._refused
                        or self._jacked
                        or self._jrefused
                        or self._resync
                    )
                    and not full
                ):
                    self._wake.wait(0.2)
                acked, self._acked = self._acked, []
                refused, self._refused = self._refused, []
                jacked, self._jacked = self._jacked, []
                jrefused, self._jrefused = self._jrefused, []
                resync, self._resync = self._resync, []
                idle = not self._inflight
            if acked:
                self.store.mark_sent(acked)
                self.sent += len(acked)
            if jacked:
                self.store.mark_journal_sent(jacked)
            for seq, code in refused:
                if code in PERMANENT:
                    self.store.mark_dead(seq, f"broker refused: {PERMANENT[code]} ({code})")
                else:
                    self.store.note_error(seq, f"broker refused ({code}); will retry")
                    cursor = min(cursor, seq - 1)
            for key, code in jrefused:
                if code in PERMANENT:
                    self.store.mark_journal_dead(key, f"broker refused: {PERMANENT[code]} ({code})")
                else:
                    self.store.note_journal_error(key, f"broker refused ({code}); will retry")
                    jcursor = min(jcursor, (key[0], key[1] - 1))
            if resync:
                self.store.resend_from(min(resync))
                cursor = min(cursor, min(resync) - 1)
                jcursor = min(jcursor, (min(resync) - 1, MAX_PARTS))
            now = time.monotonic()
            state = self.printer_state()
            catalog_now = self.catalog_state()
            caught_up = idle and not fetched and not reported_empty
            changed = state != printer or catalog_now != catalog
            if caught_up or changed or now - last_status > self.status_every:
                self._publish_status(client)
                last_status, printer, catalog = now, state, catalog_now
                reported_empty = caught_up or (reported_empty and idle and not fetched)
            elif fetched:
                reported_empty = False
        with self._wake:
            self._inflight.clear()
            self._early.clear()
            self._status_mids.clear()

    def _file(self, mid: int, key: int | tuple[int, int]) -> None:
        """Track a publish until its PUBACK (or settle one that came first)."""
        with self._wake:
            if mid in self._early:
                self._settle(key, self._early.pop(mid))
            else:
                self._inflight[mid] = key

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until the outbox and the journal's are empty (`kiosk sync --once`, tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                self.connected.is_set()
                and self.store.depth() == 0
                and self.store.journal_depth() == 0
            ):
                with self._wake:
                    if not self._inflight:
                        return True
            time.sleep(0.05)
        return False


JSON_PROPERTIES = Properties(PacketTypes.PUBLISH)
JSON_PROPERTIES.PayloadFormatIndicator = 1  # UTF-8 text
JSON_PROPERTIES.ContentType = "application/json"
