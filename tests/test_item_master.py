"""The shop's item master against a real Mosquitto, three kiosk ledgers and the
controller on SQLite and on PostgreSQL: scheduled changes, offline kiosks, refused
transfers, a sale open across the switch, the audit trail."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import zlib
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kiosk.checkout.session import Checkout
from kiosk.config import parse
from kiosk.ledger import catalog_csv, sales
from kiosk.ledger.core import Ledger, LedgerError
from kiosk.ledger.models import utc_now
from kiosk.ledger.money import Tender
from kiosk.mqtt import master, store, topics
from kiosk.mqtt.catalog_sync import CatalogSync
from kiosk.mqtt.controller import Controller
from kiosk.mqtt.publisher import Publisher
from tests.conftest import CATALOG
from tests.mqtt_env import ROOT, Mosquitto, wait_until
from tests.test_controller_store import postgres  # noqa: F401 - a fixture

KIOSKS = ["till-01", "till-02", "till-03"]
PEN = "4006381333931"


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path / "broker", ["controller", *KIOSKS])
    acl = (broker.dir / "acl").read_text()  # as `kiosk broker config` writes it
    assert all(line in acl for line in topics.Topics(ROOT).catalog_acl())
    broker.start()
    yield broker
    broker.stop(kill=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def controller_db(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "controller.db")
    return request.getfixturevalue("postgres")


class Shop:
    """The controller in a thread, and per kiosk a ledger, a catalog sync and a publisher."""

    def __init__(self, mosquitto: Mosquitto, database: str, folder: Path):
        self.mosquitto = mosquitto
        self.database = database
        self.folder = folder
        self.controller = Controller(mosquitto.config("controller"), database)
        self.rules = self.controller.rules
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.controller.run, args=(self.stop,), daemon=True)
        self.paths = {device: folder / f"{device}.db" for device in KIOSKS}
        self.syncs: dict[str, CatalogSync] = {}
        self.publishers: dict[str, Publisher] = {}
        for device in self.paths:
            Ledger.open(self.kiosk_config(device)).close()  # an empty ledger: a cold start

    def kiosk_config(self, device: str):
        return self.mosquitto.config(device, self.paths[device])

    def start(self) -> Shop:
        self.thread.start()
        wait_until(self.controller.connected.is_set, 30, what="the controller to connect")
        for device in KIOSKS:
            self.start_kiosk(device)
        return self

    def start_kiosk(self, device: str, gate=lambda: True) -> None:
        config = self.kiosk_config(device)
        self.syncs[device] = CatalogSync(config, self.paths[device], gate=gate, retry_s=1.0).start()
        if device not in self.publishers:
            self.publishers[device] = Publisher(
                config, self.paths[device], status_every=0.5, max_backoff=2.0
            ).start()

    def close(self) -> None:
        for sync in self.syncs.values():
            sync.stop()
        for publisher in self.publishers.values():
            publisher.stop()
        self.stop.set()
        self.thread.join(15)

    def converged(self, version: int, devices=KIOSKS) -> None:
        wait_until(
            lambda: all(kiosk_version(self.paths[d]) == version for d in devices),
            60,
            what=f"kiosks {', '.join(devices)} at catalog version {version}",
        )

    def sell(self, device: str, sku: str = "PEN") -> tuple[Decimal, int | None, str]:
        """One sale of `sku`: (unit price, the catalog version recorded, sale time)."""
        with Ledger.open(self.kiosk_config(device)) as ledger:
            posted = sales.post_sale(
                ledger, [sales.SaleLine(sku)], [Tender("cash", Decimal("100.00"))]
            )
            return sale_facts(self.paths[device], posted.number)


def sale_facts(path: Path, number: str) -> tuple[Decimal, int | None, str]:
    with sqlite3.connect(path) as db:
        price, version, ts = db.execute(
            "SELECT l.unit_price, c.catalog_version, t.ts FROM txn t "
            "JOIN txn_line l ON l.txn_id = t.id LEFT JOIN txn_catalog c ON c.txn_id = t.id "
            "WHERE t.number = ?",
            (number,),
        ).fetchone()
    return Decimal(price), version, ts


def kiosk_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT version FROM catalog_state WHERE id = 1").fetchone()
    return row[0] if row else 0


def kiosk_error(path: Path) -> str | None:
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT error FROM catalog_state WHERE id = 1").fetchone()
    return row[0] if row else None


def kiosk_price(path: Path, sku: str) -> Decimal:
    with sqlite3.connect(path) as db:
        return Decimal(db.execute("SELECT price FROM item WHERE sku = ?", (sku,)).fetchone()[0])


@pytest.fixture
def shop(mosquitto, controller_db, tmp_path):
    opened = Shop(mosquitto, controller_db, tmp_path)
    rows = master.read_text(opened.rules, CATALOG, "catalog.csv")
    with opened.controller.db.atomic():
        assert master.import_rows(rows, "S1", utc_now()).version == 1
    yield opened
    opened.close()


def test_a_scheduled_price_change_reaches_all_three_kiosks(shop):
    shop.start()
    shop.converged(1)
    at = utc_now() + timedelta(seconds=4)
    with shop.controller.db.atomic():
        assert master.set_fields(shop.rules, "PEN", {"price": "1.59"}, "S1", utc_now(), at) == (
            "scheduled",
            None,
        )
    before = {device: shop.sell(device) for device in KIOSKS}
    shop.converged(2)
    after = {device: shop.sell(device) for device in KIOSKS}
    stamp = at.strftime(topics.TS_FORMAT)
    for device in KIOSKS:
        price, version, ts = before[device]
        assert (price, version) == (Decimal("1.49"), 1) and ts < stamp
        price, version, ts = after[device]
        assert (price, version) == (Decimal("1.59"), 2) and ts >= stamp
    # each kiosk says which version it sells from; none is behind
    wait_until(
        lambda: (
            {k.device: k.catalog_version for k in store.KioskState.select()}
            == dict.fromkeys(KIOSKS, 2)
        ),
        30,
        what="statuses with catalog version 2",
    )
    # the audit trail: who changed which field, when, from what to what
    trail = [(c.version, c.staff, c.field, c.old, c.new) for c in master.history("PEN")]
    assert trail == [(1, "S1", "item", None, "added"), (2, "S1", "price", "1.49", "1.59")]
    assert [p.state for p in master.scheduled("PEN")] == ["applied"]


def test_an_offline_kiosk_converges_on_reconnect(shop):
    shop.start()
    shop.converged(1)
    shop.syncs.pop("till-03").stop()  # offline (its publisher still says version 1)
    for price in ("1.59", "1.69"):
        with shop.controller.db.atomic():
            master.set_fields(shop.rules, "PEN", {"price": price}, "S2", utc_now())
    shop.converged(3, KIOSKS[:2])
    assert kiosk_version(shop.paths["till-03"]) == 1
    wait_until(
        lambda: (
            store.KioskState.get_by_id("till-03").catalog_version == 1
            and store.KioskState.get_by_id("till-01").catalog_version == 3
        ),
        30,
        what="till-03 reported behind",
    )
    assert shop.sell("till-03")[:2] == (Decimal("1.49"), 1)  # sells on what it has
    shop.start_kiosk("till-03")
    shop.converged(3)
    assert shop.sell("till-03")[:2] == (Decimal("1.69"), 3)
    assert {kiosk_price(p, "PEN") for p in shop.paths.values()} == {Decimal("1.69")}


def _publish_as_controller(mosquitto, topic: str, payloads: list[bytes]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-forger")
    client.username_pw_set("controller", mosquitto.passwords["controller"])
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        for payload in payloads:
            client.publish(topic, payload, 1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def _forged(base: int, version: int, records: list[list], checksum: str, cut: int = 0, flip=False):
    body = zlib.compress(b"\n".join(master.record_bytes(r) for r in records))
    sha = hashlib.sha256(body).hexdigest()
    size = len(body)
    if cut:
        body = body[:-cut]  # truncated: the header still says the whole size
    if flip:
        body = body[:10] + bytes([body[10] ^ 0xFF]) + body[11:]
    header = {"xfer": hashlib.sha256(body + bytes([cut, flip])).hexdigest()[:16],
              "kind": "delta", "base": base, "version": version, "checksum": checksum,
              "items": 12, "n": 1, "size": size, "sha256": sha, "i": 0}  # fmt: skip
    return topics.catalog_chunk(header, body)


def test_a_corrupted_or_truncated_transfer_is_refused_and_the_version_kept(shop):
    shop.start()
    shop.converged(1)
    path = shop.paths["till-01"]
    pen = master.record(store.MasterItem.get_by_id("PEN"))
    cheap = [*pen[:2], "0.01", *pen[3:]]
    _, checksum, _ = master.current()
    good_sum = master.combine(checksum, [master.digest(cheap)], [master.digest(pen)])
    topic = topics.Topics(ROOT).catalog_data("till-01")
    cases = [
        (_forged(1, 2, [cheap], good_sum, cut=5), "corrupted or truncated"),
        (_forged(1, 2, [cheap], good_sum, flip=True), "corrupted or truncated"),
        (_forged(1, 2, [cheap], "ab" * 32), "fails its checksum"),
        (_forged(1, 2, [[*cheap[:3], "NO-SUCH-TAX", *cheap[4:]]], good_sum), "unknown tax"),
    ]
    sync = shop.syncs["till-01"]
    for payload, why in cases:
        seen = len(sync.refusals)
        _publish_as_controller(shop.mosquitto, topic, [payload])
        wait_until(lambda s=seen: len(sync.refusals) > s, 30, what=f"a refusal ({why})")
        assert why in sync.refusals[-1]
        assert kiosk_version(path) == 1 and kiosk_price(path, "PEN") == Decimal("1.49")
        assert why in kiosk_error(path)
    # the kiosk says so in its status, and sells on the version it has
    wait_until(
        lambda: "unknown tax" in (store.KioskState.get_by_id("till-01").catalog_error or ""),
        30,
        what="the refusal in the kiosk's status",
    )
    assert shop.sell("till-01")[:2] == (Decimal("1.49"), 1)
    # a real version still arrives, and clears the error
    with shop.controller.db.atomic():
        master.set_fields(shop.rules, "PEN", {"price": "1.55"}, "S1", utc_now())
    shop.converged(2)
    assert kiosk_error(path) is None and kiosk_price(path, "PEN") == Decimal("1.55")


@pytest.mark.parametrize("controller_db", ["sqlite"], indirect=True)
def test_a_sale_open_across_the_switch_keeps_its_prices(shop):
    shop.start()
    shop.converged(1)
    device = "till-01"
    shop.syncs.pop(device).stop()
    ledger = Ledger.open(shop.kiosk_config(device))
    try:
        co = Checkout(ledger)
        shop.start_kiosk(device, gate=lambda: not co.cart)
        assert co.scan(PEN).ok and co.cart.lines[0].price == Decimal("1.49")
        with shop.controller.db.atomic():
            master.set_fields(shop.rules, "PEN", {"price": "1.99"}, "S1", utc_now())
        sync = shop.syncs[device]
        wait_until(lambda: sync.staged is not None, 30, what="version 2 checked and waiting")
        assert kiosk_version(shop.paths[device]) == 1  # not in the middle of a sale
        assert co.scan(PEN).ok  # a second scan in the same sale: still the old price
        assert co.pay().ok and co.tender_cash("10.00").ok
        first = co.last_posted.number
        assert co.choose_receipt(False).ok
        shop.converged(2, [device])  # the sale ended: now it applies
        assert co.scan(PEN).ok and co.pay().ok and co.tender_cash("10.00").ok
        second = co.last_posted.number
    finally:
        ledger.close()
    with sqlite3.connect(shop.paths[device]) as db:
        lines = db.execute(
            "SELECT t.number, l.unit_price, l.qty, c.catalog_version FROM txn t "
            "JOIN txn_line l ON l.txn_id = t.id JOIN txn_catalog c ON c.txn_id = t.id "
            "WHERE t.kind = 'sale' ORDER BY t.id, l.line_no"
        ).fetchall()
    assert lines == [(first, "1.49", "2", 1), (second, "1.99", "1", 2)]


def test_a_kit_carries_its_bom_version_to_the_sale(shop):
    shop.start()
    shop.converged(1)
    with shop.controller.db.atomic():
        master.set_fields(shop.rules, "TRAVEL", {"components": "CHARGER*2;CABLE*1"}, "S1",
                          utc_now())  # fmt: skip
    assert store.MasterItem.get_by_id("TRAVEL").bom_version == 2
    shop.converged(2)
    with Ledger.open(shop.kiosk_config("till-02")) as ledger:
        number = sales.post_sale(
            ledger, [sales.SaleLine("TRAVEL")], [Tender("cash", Decimal("50.00"))]
        ).number
    with sqlite3.connect(shop.paths["till-02"]) as db:
        bom, version = db.execute(
            "SELECT b.version, c.catalog_version FROM txn t JOIN txn_line l ON l.txn_id = t.id "
            "JOIN kit_bom b ON b.id = l.bom_id JOIN txn_catalog c ON c.txn_id = t.id "
            "WHERE t.number = ?",
            (number,),
        ).fetchone()
    assert (bom, version) == (2, 2)


@pytest.mark.parametrize("controller_db", ["sqlite"], indirect=True)
def test_an_attached_kiosk_refuses_local_changes_to_controller_items(shop):
    shop.start()
    shop.converged(1)
    with Ledger.open(shop.kiosk_config("till-01")) as ledger:
        with pytest.raises(LedgerError, match="PEN: owned by the shop controller's item master"):
            catalog_csv.import_text(ledger, "sku,name,price,tax\nPEN,Pen,0.10,A\n")
        result = catalog_csv.import_text(ledger, "sku,name,price,tax\nLOCAL-1,Local,1.00,A\n")
        assert result.added == 1  # its own items: as before


def test_status_json_with_a_catalog_version_is_within_bounds():
    raw = topics.encode(topics.kiosk_status("till-01", True, 0, "ok", 3, 7, "x" * 500))
    status = topics.parse_kiosk_status(raw, "till-01")
    assert (status.catalog, len(status.catalog_error)) == (7, topics.MAX_ERROR_TEXT)
    with pytest.raises(topics.PayloadError, match="catalog_error"):
        topics.parse_kiosk_status(
            json.dumps({**json.loads(raw), "catalog_error": "y" * 201}).encode(), "till-01"
        )


def test_the_old_command_form_gets_a_hint(tmp_path):
    from click.testing import CliRunner  # noqa: PLC0415

    from kiosk.cli import cli  # noqa: PLC0415

    config = tmp_path / "kiosk.toml"
    config.write_text(f'[controller]\ndatabase = "{tmp_path / "c.db"}"\n')
    args = ["controller", "catalog", "items.csv", "--config", str(config)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "kiosk controller catalog import items.csv" in result.output
    parse("")  # the defaults still parse
