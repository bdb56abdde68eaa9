"""Independent oracles for stock sync: what a real Mosquitto lets through when its ACL
refuses a kiosk, seen from a subscriber, and `kiosk outbox --retry` through the CLI.
(Apart from tests/test_oracles.py, whose ledger tests mutation testing runs often.)"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading

from kiosk.config import parse
from kiosk.ledger import catalog_csv, sales
from kiosk.ledger.core import Ledger
from kiosk.ledger.money import Tender as Pay
from kiosk.ledger.sales import SaleLine
from tests.conftest import D

# ---------------------------------------------------------------- the publisher, refused


def outbox_states(path) -> list[tuple[int, str, str | None]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT seq, state, last_error FROM outbox ORDER BY seq").fetchall()


def kiosk_cli(*args: str):
    env = {k: v for k, v in os.environ.items() if k != "KIOSK_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "kiosk.cli", *args], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


class Listener:
    """A subscriber as the controller user: what the broker really let through."""

    def __init__(self, mosquitto, topic: str):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[dict] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.username_pw_set("controller", mosquitto.passwords["controller"])
        self.client.on_message = lambda _c, _u, m: self.messages.append(json.loads(m.payload))
        self.client.on_connect = lambda c, *a: c.subscribe(topic, 1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", mosquitto.port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the listener never subscribed"

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_a_not_authorized_refusal_is_dead_lettered_and_retried_through_the_cli(tmp_path):
    """A kiosk set up with another kiosk's MQTT login: the broker's ACL refuses its stock
    events (MQTT 5 PUBACK reason 135, "not authorized"). The publisher dead-letters them
    instead of retrying forever, nothing reaches the shop; once the login is fixed,
    `kiosk outbox --retry` queues them again and they are delivered, in seq order."""
    from kiosk.mqtt.publisher import Publisher
    from tests.mqtt_env import ROOT, Mosquitto, wait_until

    mosquitto = Mosquitto(tmp_path / "broker", ["till-01", "till-02", "controller"]).start()
    path = tmp_path / "till-01.db"

    def config(user: str):
        return parse(
            f'[device]\nid = "till-01"\nstore = "store-042"\n[ledger]\npath = "{path}"\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nusername = "{user}"\n'
            f'password = "{mosquitto.passwords[user]}"\nkeepalive = 5\n'
        )

    listener = None
    try:
        with Ledger.open(config("till-02")) as ledger:
            catalog_csv.import_text(ledger, "sku,name,price,tax\nPEN,Pen,1.49,A\n")
            for _ in range(2):
                sales.post_sale(ledger, [SaleLine("PEN")], [Pay("card", D("1.49"), "A")])
        listener = Listener(mosquitto, f"{ROOT}/kiosk/+/stock")
        wrong = Publisher(config("till-02"), path).start()
        try:
            refused = "broker refused: not authorized (135)"
            wait_until(
                lambda: outbox_states(path) == [(1, "dead", refused), (2, "dead", refused)],
                20, what="both events dead-lettered as not authorized",
            )  # fmt: skip
        finally:
            wrong.stop()
        assert listener.messages == []  # the broker let nothing through
        shown = kiosk_cli("outbox", "--db", str(path), "--state", "dead")
        assert shown.returncode == 0, shown.stderr
        assert "outbox: 0 pending, 0 sent, 2 dead; last seq 2" in shown.stdout
        assert shown.stdout.count("not authorized (135)") == 2
        retried = kiosk_cli("outbox", "--db", str(path), "--retry")
        assert retried.returncode == 0, retried.stderr
        assert retried.stdout.startswith("2 dead event(s) queued again\n")
        assert "outbox: 2 pending, 0 sent, 0 dead; last seq 2" in retried.stdout
        assert [s[1:] for s in outbox_states(path)] == [("pending", None)] * 2
        right = Publisher(config("till-01"), path).start()
        try:
            assert right.drain(20)
            wait_until(lambda: len(listener.messages) == 2, 10, what="both events delivered")
        finally:
            right.stop()
        assert [(m["device"], m["seq"], m["kind"]) for m in listener.messages] == [
            ("till-01", 1, "sale"),
            ("till-01", 2, "sale"),
        ]
        assert [m["moves"] for m in listener.messages] == [[{"sku": "PEN", "delta": -1}]] * 2
        after = kiosk_cli("outbox", "--db", str(path))
        assert "outbox: 0 pending, 2 sent, 0 dead; last seq 2" in after.stdout
        again = kiosk_cli("outbox", "--db", str(path), "--retry")  # nothing dead: nothing to do
        assert again.stdout.startswith("0 dead event(s) queued again\n")
        assert "outbox: 0 pending, 2 sent, 0 dead" in again.stdout
    finally:
        if listener:
            listener.stop()
        mosquitto.stop()
