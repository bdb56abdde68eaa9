"""The shop controller: every kiosk's stock events in, shop-wide stock out.

Subscribes to <root>/kiosk/+/stock and /status with a persistent MQTT 5 session
and manual acknowledgement: a message is acknowledged only after the transaction
that applied it has committed, so a controller killed mid-burst loses nothing (the
broker redelivers) and applies nothing twice ((device, seq) is unique). Gaps in a
kiosk's seq, seen in the events or against the seq its status reports, are asked
for again on <root>/kiosk/<device>/resync. Levels are published retained on
<root>/stock/<sku>. No message can stop the controller or hold up the ones after
it: anything off-contract (topics.py holds every bound), a conflicting repeat of a
(device, seq), or a message that fails to apply for any reason is dead-lettered
with the reason, acknowledged, and changes nothing.

The item master (kiosk.mqtt.master): each turn of the loop makes the scheduled
changes that are due into a version, announces the current version retained on
<root>/catalog/current (also one made by `kiosk controller catalog` in another
process), and answers each kiosk's <root>/kiosk/<device>/catalog/get with a delta
or the whole master on <root>/kiosk/<device>/catalog/data, in chunks within the
broker's packet limit. Requests go through the same parse/dead-letter path as
everything else; a request that cannot be answered is dead-lettered too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from tenacity import Retrying, retry_if_exception_type, stop_when_event_set, wait_random_exponential

from kiosk.config import Config
from kiosk.ledger.models import utc_now
from kiosk.mqtt import journal_contract, journal_store, master, store, topics
from kiosk.mqtt.publisher import make_client

log = logging.getLogger(__name__)


def _topic(message: mqtt.MQTTMessage) -> str:
    try:
        return message.topic
    except UnicodeDecodeError:  # paho decodes the topic on access
        return bytes(message._topic).decode("utf-8", "replace")


def _merge(first, second):
    """Two outcomes (NamedTuples of sets and lists) as one."""
    fields = zip(first, second, strict=True)
    return type(first)(*(a | b if isinstance(a, set) else a + b for a, b in fields))


SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our queue for a week offline
BATCH = 500
GAP_CHECK_S = 0.5  # while messages pour in, look for gaps at most this often (each look
#                    reads and may write every kiosk's watermark)


class Controller:
    def __init__(self, config: Config, database: str | None = None):
        self.config = config
        self.topics = topics.Topics(config.topic_root)
        self.db = store.open_store(database or config.controller.database)
        # paho's thread appends, the apply loop takes batches: a deque and an event cost
        # less per message than queue.Queue's lock and condition (one per message).
        self.inbox: deque[mqtt.MQTTMessage] = deque()
        self._arrived = threading.Event()
        self.connected = threading.Event()
        self.stopping = threading.Event()
        self.applied = 0
        self.duplicates = 0
        self.journals = 0  # journal parts applied
        self.dead = 0
        self._gap_since: dict[str, float] = {}
        self._asked_at: dict[str, float] = {}
        self._requests: list[tuple[topics.CatalogGet, mqtt.MQTTMessage]] = []
        self._announced: tuple[int, str] | None = None
        self._full: master.Transfer | None = None  # the whole master, kept for its version
        self.rules = master.rules(config)
        self.catalog_bytes = 0  # catalog transfer bytes published
        self.served = 0
        self.web = None  # kiosk.mqtt.web.server.WebService while run() runs with a web_port
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = make_client(self.config, f"kiosk-controller-{self.config.device.store}")
        client.manual_ack_set(True)
        client.will_set(
            self.topics.controller_status, topics.encode(topics.controller_status(False)), 1, True
        )
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *args: self.connected.clear()
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the controller: %s", reason_code)
            return
        client.subscribe(
            [
                (self.topics.all_kiosk_stock, 1),
                (self.topics.all_kiosk_journal, 1),
                (self.topics.all_kiosk_status, 1),
                (self.topics.all_catalog_get, 1),
            ]
        )
        client.publish(
            self.topics.controller_status, topics.encode(topics.controller_status(True)), 1, True
        )
        self._announced = None  # announce again on every connection
        self.connected.set()

    # ------------------------------------------------------------ running

    def connect(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        mqtt_cfg = self.config.mqtt
        Retrying(
            wait=wait_random_exponential(multiplier=0.5, max=30),
            retry=retry_if_exception_type(OSError),
            stop=stop_when_event_set(self.stopping),
            sleep=self.stopping.wait,
            reraise=True,
        )(
            self.client.connect,
            mqtt_cfg.host,
            mqtt_cfg.port,
            mqtt_cfg.keepalive,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()

    def run(self, stop: threading.Event | None = None, on_batch: Callable | None = None) -> None:
        from kiosk.service import ServiceNotifier  # noqa: PLC0415

        stop = stop or self.stopping
        notifier = ServiceNotifier()
        self.connect()
        self.web = self._start_web()
        notifier.ready(f"controller for {self.topics.root}")
        last_ping = last_gaps = 0.0
        try:
            while not stop.is_set():
                try:
                    batch = self._next_batch()
                    if batch:
                        self.apply_batch(batch)
                        if on_batch:
                            on_batch(self)
                    if time.monotonic() - last_gaps >= GAP_CHECK_S or not batch:
                        self.check_gaps()
                        last_gaps = time.monotonic()
                    self.catalog_tick()
                except Exception:  # noqa: BLE001 - the loop outlives any one failure
                    log.exception("controller loop")
                    stop.wait(1.0)
                now = time.monotonic()
                if notifier.watchdog_interval and now - last_ping >= notifier.watchdog_interval:
                    notifier.ping()  # from the loop that applies: a stuck loop stops pinging
                    notifier.status(f"applied {self.applied}, dead letters {self.dead}")
                    last_ping = now
        finally:
            notifier.stopping()
            if self.web is not None:
                self.web.stop()
            self.close()

    def _start_web(self):
        """The web view (kiosk.mqtt.web) beside the controller when [controller] web_port
        is set; one that cannot start is logged and the controller runs on without it."""
        if self.config.controller.web_port is None:
            return None
        from kiosk.mqtt.web.server import WebService  # noqa: PLC0415 - starlette, uvicorn

        try:
            return WebService(self.config).start()
        except Exception:  # noqa: BLE001 - the shop's stock never waits for a web page
            log.exception("web view")
            return None

    def close(self) -> None:
        self.stopping.set()
        if self.connected.is_set():
            info = self.client.publish(
                self.topics.controller_status,
                topics.encode(topics.controller_status(False)),
                1,
                True,
            )
            info.wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()
        self.db.close()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        self.inbox.append(message)
        if not self._arrived.is_set():  # set() takes a lock: once a wait is enough
            self._arrived.set()

    def _next_batch(self) -> list[mqtt.MQTTMessage]:
        """Up to BATCH messages in arrival order, waiting up to 0.2 s for the first."""
        if not self.inbox:
            self._arrived.wait(0.2)
            self._arrived.clear()  # a message appended after this is in the inbox anyway
        batch = []
        while self.inbox and len(batch) < BATCH:
            batch.append(self.inbox.popleft())
        return batch

    # ------------------------------------------------------------ applying

    def apply_batch(self, batch: list[mqtt.MQTTMessage]) -> set[str]:
        """Apply in one transaction, then acknowledge, then publish the new levels.

        No message can stop this: one that is off-contract, conflicts, or fails to
        apply for any reason (a bug of ours included) is dead-lettered with the reason
        and acknowledged like the rest, and the others in the batch still apply."""
        now = utc_now()
        try:
            with self.db.atomic():
                changed = self._apply(batch, now)
        except Exception:  # noqa: BLE001 - e.g. the commit itself failed
            if len(batch) == 1:
                log.exception("could not apply a message on %s", _topic(batch[0]))
                self._last_resort(batch[0], now)
                changed = set()
            else:
                log.exception("a batch of %d failed; applying it message by message", len(batch))
                self.stopping.wait(0.2)  # a database that is down: do not spin
                changed = set()
                for message in batch:
                    changed |= self.apply_batch([message])
                return changed
        for message in batch:
            if message.qos:
                self.client.ack(message.mid, message.qos)
        try:
            self._publish_levels(changed)
        except Exception:  # noqa: BLE001 - the levels go out with the next change
            log.exception("could not publish stock levels")
        self._serve_requests(now)
        return changed

    def _apply(self, batch: list[mqtt.MQTTMessage], now) -> set[str]:
        """Everything a batch does to the store, inside the caller's transaction."""
        dead: list[tuple[mqtt.MQTTMessage, str]] = []
        events: list[topics.StockEvent] = []
        journals: list[journal_contract.Journal] = []
        source: dict[int, mqtt.MQTTMessage] = {}
        for message in batch:
            try:
                parsed = self._parse(message, now)
            except topics.PayloadError as exc:
                dead.append((message, str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - a bug of ours must not stop the shop
                log.exception("could not parse a message on %s", _topic(message))
                dead.append((message, f"internal error: {exc!r}"))
                continue
            if isinstance(parsed, topics.StockEvent):
                events.append(parsed)
                source[id(parsed)] = message
            elif isinstance(parsed, journal_contract.Journal):
                journals.append(parsed)
                source[id(parsed)] = message
            elif isinstance(parsed, topics.CatalogGet):
                self._requests.append((parsed, message))  # answered after the commit
            elif parsed is not None:
                try:
                    with self.db.atomic():  # a savepoint: a failure undoes only this
                        store.record_status(parsed)
                    self._touch(parsed.device)
                except Exception as exc:  # noqa: BLE001
                    dead.append((message, f"could not record the status: {exc!r}"))
        outcome = self._in_savepoints(store.apply_events, events, now, source, dead)
        for event in outcome.conflicts:
            dead.append(
                (source[id(event)], f"conflict: {event.id} was applied before with other content")
            )
        dead += self._apply_journals(journals, source, now)
        self.applied += len(outcome.fresh)
        self.duplicates += len(events) - len(outcome.fresh) - len(outcome.conflicts)
        for event in outcome.fresh:
            self._touch(event.device)
        for message, reason in dead:
            self._dead_letter(message, reason, now)
        return outcome.changed

    def _in_savepoints(self, apply, items: list, now, source: dict, dead: list):
        """`apply(items, now)` in a savepoint; if that fails, item by item, so the one
        that cannot be applied is dead-lettered and the others still apply. Returns the
        outcome (a NamedTuple of lists and sets, merged field by field)."""
        try:
            with self.db.atomic():
                return apply(items, now)
        except Exception:  # noqa: BLE001 - find the item that failed, apply the others
            log.warning("applying %d %s together failed; one by one", len(items), apply.__name__)
        merged = None
        for item in items:
            try:
                with self.db.atomic():
                    one = apply([item], now)
            except Exception as exc:  # noqa: BLE001
                dead.append((source[id(item)], f"could not apply: {exc!r}"))
                continue
            merged = one if merged is None else _merge(merged, one)
        return merged if merged is not None else apply([], now)

    def _apply_journals(self, journals, source, now) -> list[tuple[mqtt.MQTTMessage, str]]:
        """The batch's journal parts (kiosk.mqtt.journal_store), in a savepoint of their
        own, one by one if together they fail; returns what to dead-letter."""
        dead: list[tuple[mqtt.MQTTMessage, str]] = []
        outcome = self._in_savepoints(journal_store.apply_journals, journals, now, source, dead)
        for journal in outcome.conflicts:
            key = f"{journal.device}:{journal.seq} part {journal.part}"
            reason = f"conflict: journal {key} was applied before with other content"
            dead.append((source[id(journal)], reason))
        self.journals += len(outcome.fresh)
        return dead

    def _dead_letter(self, message: mqtt.MQTTMessage, reason: str, now) -> None:
        self.dead += 1
        log.warning("dead-lettered a message on %s: %s", _topic(message), reason)
        try:
            topic = _topic(message)
            device = self.topics.device_of(topic)
            refused = None
            stock = device is not None and topic == self.topics.kiosk_stock(device)
            if stock and not reason.startswith("conflict:"):
                refused = topics.event_identity(message.payload, device)
            with self.db.atomic():
                store.dead_letter(topic, message.payload, reason, now, refused)
        except Exception:  # noqa: BLE001 - logged above; the message is still acknowledged
            log.exception("could not keep the dead letter")

    def _last_resort(self, message: mqtt.MQTTMessage, now) -> None:
        """A message whose own transaction failed: dead-letter it in a fresh one, or at
        least log it. It is acknowledged either way; a stock event lost so is asked
        for again by the gap check (the kiosk keeps it in its outbox)."""
        try:
            with self.db.atomic():
                self._dead_letter(message, "could not apply (see the controller's log)", now)
        except Exception:  # noqa: BLE001
            log.exception("lost a message on %s", _topic(message))

    def _publish_levels(self, changed: set[str]) -> None:
        levels = store.StockLevel.select().where(store.StockLevel.sku.in_(sorted(changed)))
        for level in levels:
            self.client.publish(
                self.topics.stock(level.sku),
                topics.encode(topics.stock_level(level.sku, level.on_hand)),
                1,
                True,
            )

    def _parse(
        self, message: mqtt.MQTTMessage, now
    ) -> topics.StockEvent | journal_contract.Journal | topics.KioskStatus | topics.CatalogGet:
        """A stock event, a journal part, a kiosk status or a catalog request, or
        PayloadError saying what is wrong."""
        device, kind = self.topics.split_kiosk_topic(message.topic)
        if device is None:
            raise topics.PayloadError("not a kiosk topic")
        tolerance = self.config.controller.future_tolerance_s
        if kind == "stock":
            return topics.parse_stock_event(message.payload, device, now, tolerance)
        if kind == "journal":
            return journal_contract.parse_journal(message.payload, device, now, tolerance)
        if kind == "status":
            return topics.parse_kiosk_status(message.payload, device, now, tolerance)
        if kind == "catalog/get":
            return topics.parse_catalog_get(message.payload, device)
        raise topics.PayloadError("unexpected topic")

    # ------------------------------------------------------------ item master

    def catalog_tick(self, now=None) -> int | None:
        """Make due scheduled changes a version; announce the current version when it
        is new (or after a reconnect). Returns the version announced, if any."""
        now = now or utc_now()
        due = master.next_due()
        if due is not None and due <= now:
            with self.db.atomic():
                made = master.apply_due(self.rules, now)
            if made:
                log.info("scheduled changes made catalog version %d", made)
        version, checksum, items = master.current()
        if version == 0 or not self.connected.is_set():
            return None
        if self._announced == (version, checksum):
            return None
        self.client.publish(
            self.topics.catalog_current,
            topics.encode(topics.catalog_current(version, checksum, items)),
            1,
            True,
        )
        self._announced = (version, checksum)
        return version

    def _transfer(self, request: topics.CatalogGet) -> master.Transfer | None:
        with self.db.atomic():  # one snapshot of the master
            version, checksum, _ = master.current()
            if request.full or request.have in (0,) or request.have > version:
                full = self._full
                if full is None or (full.version, full.checksum) != (version, checksum):
                    full = self._full = master.transfer(0, full=True)
                return full
            return master.transfer(request.have)

    def _serve_requests(self, now) -> None:
        requests, self._requests = self._requests, []
        for request, message in requests:
            try:
                answer = self._transfer(request)
                if answer is None:
                    continue  # it has the current version
                topic = self.topics.catalog_data(request.device)
                for chunk in answer.chunks():
                    self.client.publish(topic, chunk, 1)
                    self.catalog_bytes += len(chunk)
                self.served += 1
                log.info("catalog %s %d->%d to %s: %d bytes", answer.kind, answer.base,
                         answer.version, request.device, len(answer.body))  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - a bug of ours must not stop the shop
                log.exception("could not answer %s's catalog request", request.device)
                self._dead_letter(message, f"could not answer: {exc!r}", now)

    def _touch(self, device: str) -> None:
        self._gap_since.setdefault(device, 0.0)

    def check_gaps(self) -> None:
        """Ask a kiosk to resend from its first missing seq once a gap has lasted
        resync_after_s (events may just be arriving out of order), then at most
        every 5 x resync_after_s while it lasts."""
        wait = self.config.controller.resync_after_s
        now = time.monotonic()
        for device in list(self._gap_since):
            mark, beyond = store.advance_watermark(device)
            state = store.KioskState.get_by_id(device)
            # A kiosk that says its outbox is empty but whose last seq we lack lost events;
            # one still draining is only ahead of us.
            behind = state.outbox == 0 and (state.reported_seq or 0) > mark
            if beyond is None and not behind:
                self._gap_since.pop(device, None)
                self._asked_at.pop(device, None)
                continue
            since = self._gap_since.get(device) or now
            self._gap_since[device] = since
            if now - since < wait or now - self._asked_at.get(device, -1e9) < wait * 5:
                continue
            self._asked_at[device] = now
            log.info("asking %s to resend from seq %d", device, mark + 1)
            self.client.publish(
                self.topics.kiosk_resync(device), topics.encode(topics.resync(mark + 1)), 1
            )
