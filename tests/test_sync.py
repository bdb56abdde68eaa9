"""Stock sync against a real Mosquitto: kiosks' outboxes -> broker -> shop controller.

After every scenario the controller's counts equal the sum of all kiosks' ledgers."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kiosk.mqtt import broker as broker_setup
from kiosk.mqtt.controller import Controller
from kiosk.mqtt.publisher import Publisher
from kiosk.testing.ledgers import (
    applied,
    controller_levels,
    ledger_totals,
    make_ledger,
    outbox_pending,
)
from tests.mqtt_env import ROOT, Mosquitto, free_port, wait_until

KIOSKS = ["till-01", "till-02", "cart-01"]


def events_in(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path / "broker", ["controller", *KIOSKS])
    yield broker
    broker.stop(kill=True)


class ControllerThread:
    def __init__(self, config, database: Path):
        self.controller = Controller(config, str(database))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.controller.run, args=(self.stop,), daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_until(self.controller.connected.is_set, 30, what="the controller to connect")
        return self.controller

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(15)


def start_publishers(mosquitto, ledgers):
    return [
        Publisher(mosquitto.config(device, path), path, status_every=1.0, max_backoff=2.0).start()
        for device, path in ledgers.items()
    ]


def settle(ledgers, controller_db, timeout=90):
    total = sum(events_in(p) for p in ledgers.values())
    wait_until(
        lambda: (
            applied(controller_db) == total
            and all(outbox_pending(p) == 0 for p in ledgers.values())
        ),
        timeout,
        0.1,
        f"{total} events applied",
    )
    assert controller_levels(controller_db) == ledger_totals(ledgers.values())


def test_selling_offline_then_reconnecting(tmp_path, mosquitto):
    ledger = make_ledger(tmp_path / "till-01.db", "till-01", 50)
    publisher = start_publishers(mosquitto, {"till-01": ledger})[0]
    # No broker yet: the publisher backs off, the till sold anyway.
    wait_until(lambda: publisher.last_error, 10, what="a refused connection")
    assert not publisher.connected.is_set() and outbox_pending(ledger) == 51
    mosquitto.start()
    db = tmp_path / "controller.db"
    try:
        with ControllerThread(mosquitto.config("controller"), db) as controller:
            settle({"till-01": ledger}, db)
            # Levels go out after each batch's commit: the last one may be on its way.
            level = controller_levels(db)["PEN"]
            wait_until(
                lambda: (_retained(mosquitto, f"{ROOT}/stock/PEN") or {}).get("on_hand") == level,
                10,
                what="the retained level to be the controller's",
            )
            status = wait_until(
                lambda: _retained(mosquitto, f"{ROOT}/kiosk/till-01/status"),
                10,
                what="the kiosk's retained status",
            )
            assert status["online"] is True and status["device"] == "till-01"
            assert controller.dead == 0
    finally:
        publisher.stop()


def _retained(mosquitto, topic):
    """Read one retained message as the controller user."""
    got = {}
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set("controller", mosquitto.passwords["controller"])

    def on_message(_c, _u, message):
        got.update(json.loads(message.payload))
        done.set()

    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe(topic, 1)
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    done.wait(3)
    client.loop_stop()
    client.disconnect()
    return got or None


def test_broker_killed_and_restarted_mid_burst(tmp_path, mosquitto):
    ledgers = {d: make_ledger(tmp_path / f"{d}.db", d, 600, seed=i) for i, d in enumerate(KIOSKS)}
    mosquitto.start()
    db = tmp_path / "controller.db"
    publishers = start_publishers(mosquitto, ledgers)
    try:
        with ControllerThread(mosquitto.config("controller"), db):
            wait_until(lambda: applied(db) > 100, 30, what="the burst to start")
            mosquitto.stop(kill=True)
            time.sleep(0.5)
            mosquitto.start()
            settle(ledgers, db)
    finally:
        for publisher in publishers:
            publisher.stop()


def test_controller_killed_and_restarted_mid_burst(tmp_path, mosquitto):
    ledgers = {
        d: make_ledger(tmp_path / f"{d}.db", d, 600, seed=10 + i) for i, d in enumerate(KIOSKS)
    }
    mosquitto.start()
    db = tmp_path / "controller.db"

    def controller_process():
        extra = f'[controller]\ndatabase = "{db}"\nresync_after_s = 0.5\n'
        return mosquitto.spawn("controller", "controller", tmp_path, extra)

    process = controller_process()
    publishers = start_publishers(mosquitto, ledgers)
    try:
        wait_until(lambda: applied(db) > 200, 60, what="the controller to apply events")
        process.kill()
        process.wait(10)
        killed_at = applied(db)
        total = sum(events_in(p) for p in ledgers.values())
        assert killed_at < total, "the burst ended before the kill: make it bigger"
        process = controller_process()
        settle(ledgers, db)
    finally:
        process.terminate()
        process.wait(10)
        for publisher in publishers:
            publisher.stop()


class RawClient:
    """A bare MQTT 5 client, to play a kiosk (or an intruder) by hand."""

    def __init__(self, mosquitto, user: str, password: str | None = None):
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"raw-{user}", protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(user, password or mosquitto.passwords.get(user, "x"))
        self.acks: dict[int, int] = {}
        self.connack = None
        self.messages: list[tuple[str, bytes]] = []
        self.disconnects: list[int] = []
        self.client.on_disconnect = lambda _c, _u, _f, rc, _p: self.disconnects.append(rc.value)
        self.client.on_publish = lambda _c, _u, mid, rc, _p: self.acks.__setitem__(mid, rc.value)
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))

        def on_connect(_c, _u, _f, rc, _p):
            self.connack = rc

        self.client.on_connect = on_connect
        self.client.connect("127.0.0.1", mosquitto.port)
        self.client.loop_start()
        wait_until(lambda: self.connack is not None, 10, what="CONNACK")

    def publish(self, topic: str, payload: bytes | dict, retain: bool = False) -> int:
        if isinstance(payload, dict):
            payload = json.dumps(payload).encode()
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        wait_until(lambda: info.mid in self.acks, 10, what="PUBACK")
        return self.acks[info.mid]

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def outbox_payloads(path: Path) -> list[dict]:
    with sqlite3.connect(path) as db:
        return [json.loads(p) for (p,) in db.execute("SELECT payload FROM outbox ORDER BY seq")]


def test_duplicates_out_of_order_and_a_gap_resynced(tmp_path, mosquitto):
    ledger = make_ledger(tmp_path / "till-01.db", "till-01", 6)
    events = outbox_payloads(ledger)  # seq 1..7
    with sqlite3.connect(ledger) as db:  # as if all were sent, but the broker lost seq 5
        db.execute("UPDATE outbox SET state = 'sent'")
    mosquitto.start()
    db = tmp_path / "controller.db"
    raw = RawClient(mosquitto, "till-01")
    topic = f"{ROOT}/kiosk/till-01/stock"
    with ControllerThread(mosquitto.config("controller"), db) as controller:
        for index in (2, 0, 1, 1, 3, 0, 6, 5, 6):  # out of order, duplicated, 5 missing
            assert raw.publish(topic, events[index]) == 0
        wait_until(lambda: controller.applied == 6, 10, what="6 distinct events")
        assert controller.duplicates == 3
        raw.close()
        publisher = start_publishers(mosquitto, {"till-01": ledger})[0]
        try:
            # The controller sees the gap at seq 5 and asks till-01 to resend from it.
            settle({"till-01": ledger}, db, timeout=30)
        finally:
            publisher.stop()
        assert controller.applied == 7


def test_malformed_and_oversized_payloads_are_dead_lettered(tmp_path, mosquitto):
    ledger = make_ledger(tmp_path / "till-01.db", "till-01", 3)
    good = outbox_payloads(ledger)[0]
    mosquitto.start()
    db = tmp_path / "controller.db"
    raw = RawClient(mosquitto, "till-01")
    topic = f"{ROOT}/kiosk/till-01/stock"
    with ControllerThread(mosquitto.config("controller"), db) as controller:
        bad = [
            b"not json",
            b"\xff\xfe",
            b"[1, 2, 3]",
            {**good, "v": 2},
            {**good, "device": "till-02", "id": "till-02:1"},
            {**good, "moves": [{"sku": "PEN", "delta": "lots"}]},
            {**good, "moves": [{"sku": "PEN", "delta": 1.5}]},
            {**good, "kind": "theft"},
            {**good, "ts": "yesterday"},
            {**good, "seq": 0, "id": "till-01:0"},
            {**good, "kind": "count", "counted": {"PEN": -1}, "counted_at": {}},
        ]
        for payload in bad:
            assert raw.publish(topic, payload) == 0
        wait_until(lambda: controller.dead == len(bad), 10, what="dead letters")
        assert controller_levels(db) == {} and applied(db) == 0
        # Over the broker's max_packet_size: refused by the broker itself.
        big = {**good, "txn": "x" * 70_000}
        raw.client.publish(topic, json.dumps(big).encode(), qos=1)
        wait_until(lambda: raw.disconnects, 10, what="the broker to drop the oversized packet")
        assert raw.disconnects[0] == 0x95  # packet too large
        raw.close()
        status = subprocess.run(
            [sys.executable, "-m", "kiosk.cli", "controller", "--db", str(db), "status"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert f"dead letters: {len(bad)}" in status.stdout, status.stderr
    # The kiosk side: an event too large to ever deliver is dead-lettered, not retried forever.
    with sqlite3.connect(ledger) as kdb:
        kdb.execute("UPDATE outbox SET state = 'sent' WHERE seq <> 1")
        kdb.execute(
            "UPDATE outbox SET payload = ? WHERE seq = 1",
            (json.dumps({**good, "txn": "y" * 70_000}),),
        )
    publisher = start_publishers(mosquitto, {"till-01": ledger})[0]
    try:

        def dead_letter():
            with sqlite3.connect(ledger) as kdb:
                return kdb.execute(
                    "SELECT last_error FROM outbox WHERE seq = 1 AND state = 'dead'"
                ).fetchone()

        (error,) = wait_until(dead_letter, 10, what="the kiosk to dead-letter it")
        assert "too large" in error
        shown = subprocess.run(
            [sys.executable, "-m", "kiosk.cli", "outbox", "--db", str(ledger), "--state", "dead"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "1 dead" in shown.stdout and "too large" in shown.stdout
    finally:
        publisher.stop()


def test_acl_refuses_impersonation_and_anonymous_access(tmp_path, mosquitto):
    ledger = make_ledger(tmp_path / "till-02.db", "till-02", 2)
    event = outbox_payloads(ledger)[0]
    mosquitto.start()
    db = tmp_path / "controller.db"
    with ControllerThread(mosquitto.config("controller"), db) as controller:
        intruder = RawClient(mosquitto, "till-01")  # till-01 pretending to be till-02
        assert intruder.publish(f"{ROOT}/kiosk/till-02/stock", event) == 135  # not authorized
        assert intruder.publish(f"{ROOT}/stock/PEN", {"v": 1, "sku": "PEN", "on_hand": 9}) == 135
        assert intruder.publish(f"{ROOT}/kiosk/till-01/stock", event) == 0  # its own topic
        intruder.close()
        wait_until(lambda: controller.dead == 1, 10, what="the mismatched device dead-lettered")
        assert applied(db) == 0
    nobody = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    results = []
    nobody.on_connect = lambda _c, _u, _f, rc, _p: results.append(rc)
    nobody.connect("127.0.0.1", mosquitto.port)
    nobody.loop_start()
    wait_until(lambda: results, 10, what="CONNACK")
    nobody.loop_stop()
    assert results[0].is_failure  # anonymous refused
    wrong = RawClient(mosquitto, "till-01", password="guess")
    assert wrong.connack.is_failure
    wrong.close()


def test_kiosk_status_online_offline_and_the_shop_summary(tmp_path, mosquitto):
    ledger = make_ledger(tmp_path / "till-01.db", "till-01", 3)
    mosquitto.start()
    db = tmp_path / "controller.db"
    with ControllerThread(mosquitto.config("controller"), db):
        publisher = start_publishers(mosquitto, {"till-01": ledger})[0]
        settle({"till-01": ledger}, db)

        def online():
            with sqlite3.connect(db) as con:
                row = con.execute("SELECT online FROM kiosk_state WHERE device = 'till-01'")
                return (row.fetchone() or [None])[0]

        wait_until(lambda: online() == 1, 10, what="till-01 online")
        publisher.stop()  # a clean stop says offline itself
        wait_until(lambda: online() == 0, 10, what="till-01 offline after a clean stop")
        # A kiosk that dies (power cut) is reported offline by its last will.
        sync = mosquitto.spawn("sync", "till-01", tmp_path, f'[ledger]\npath = "{ledger}"\n')
        wait_until(lambda: online() == 1, 30, what="till-01 online again")
        sync.kill()
        sync.wait(10)
        wait_until(lambda: online() == 0, 20, what="the last will")
    summary = subprocess.run(
        [sys.executable, "-m", "kiosk.cli", "controller", "--db", str(db), "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert summary.returncode == 0, summary.stderr
    assert "till-01      OFFLINE" in summary.stdout
    assert "stock: 6 SKU(s)" in summary.stdout and "dead letters: 0" in summary.stdout


def test_tls_option(tmp_path, mosquitto):
    certs = tmp_path / "certs"
    certs.mkdir()

    def ssl(*args):
        subprocess.run(["openssl", *args], cwd=certs, check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
        "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (certs / "san.ext").write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem")  # fmt: skip
    tls_port = free_port()
    broker_setup.write_config(
        mosquitto.dir,
        ROOT,
        port=mosquitto.port,
        listen="127.0.0.1",
        tls=broker_setup.TlsFiles(certs / "server.pem", certs / "server.key"),
        tls_port=tls_port,
        run_as="root" if os.geteuid() == 0 else None,
    )
    mosquitto.start()
    ledger = make_ledger(tmp_path / "till-01.db", "till-01", 3)
    base = mosquitto.config("till-01", ledger)
    config = base.replace(mqtt=base.mqtt.replace(port=tls_port, tls=True, ca_file=certs / "ca.pem"))
    publisher = Publisher(config, ledger).start()
    try:
        wait_until(lambda: outbox_pending(ledger) == 0, 30, what="a drain over TLS")
    finally:
        publisher.stop()
    untrusted = Publisher(
        base.replace(mqtt=config.mqtt.replace(ca_file=None)), ledger, max_backoff=0.5
    ).start()
    try:
        wait_until(lambda: untrusted.last_error, 10, what="the TLS refusal")
        assert not untrusted.connected.is_set()  # the system CAs do not vouch for the test CA
        assert "CERTIFICATE_VERIFY_FAILED" in (untrusted.last_error or "")
    finally:
        untrusted.stop()
