"""The transaction journal: made inside each money posting, sent like stock events, applied
once by the controller, hostile messages refused; and the KPIs it feeds, checked against
the kiosks' own Z reports."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kiosk.config import parse
from kiosk.ledger import catalog_csv, journal, reports, sales, staff, stock
from kiosk.ledger.core import Ledger
from kiosk.ledger.money import Tender
from kiosk.ledger.posting import LineRow, Posting
from kiosk.mqtt import kpis, store, topics
from kiosk.mqtt.controller import Controller
from kiosk.mqtt.journal_contract import parse_journal
from kiosk.mqtt.journal_store import apply_journals
from kiosk.mqtt.publisher import Publisher
from kiosk.mqtt.topics import PayloadError
from kiosk.testing.ledgers import CATALOG
from tests.mqtt_env import ROOT, Mosquitto, wait_until

D = Decimal


def config_for(path: Path, device: str):
    return parse(f'[device]\nid = "{device}"\nstore = "store-042"\n[ledger]\npath = "{path}"\n')


def open_ledger(path: Path, device: str) -> Ledger:
    return Ledger.open(config_for(path, device))


def shift(path: Path, device: str, sales_count: int = 3) -> list[str]:
    """A day at one kiosk: sales (cash, and card with a terminal reference), a return
    of a damaged item, a post-void, an exchange, receiving, an adjustment, a count."""
    numbers = []
    with open_ledger(path, device) as ledger:
        catalog_csv.import_text(ledger, CATALOG)
        staff.add(ledger, "S1", "Sam", "supervisor", "1234", by=None)
        stock.receive(ledger, [stock.ReceiveLine(s, 100) for s in ("PEN", "WATER", "CABLE")], None)
        for n in range(sales_count):
            lines = [
                sales.SaleLine("PEN", D(n + 1)),
                sales.SaleLine("CABLE", D(1), discount=D("1.00")),
            ]
            posted = sales.post_sale(ledger, lines, [Tender("cash", D("100.00"))])
            numbers.append(posted.number)
        card = sales.post_sale(
            ledger, [sales.SaleLine("WATER", D(2))], [Tender("card", D("1.58"), "TERMREF-987654")]
        )
        numbers.append(card.number)
        sales.post_return(
            ledger, [sales.ReturnLine("PEN", D(1), condition="damaged")], "damaged", "S1",
            receipt=numbers[0],
        )  # fmt: skip
        sales.post_void(ledger, numbers[1], "S1")
        sales.post_exchange(
            ledger, numbers[2], [sales.ReturnLine("CABLE", D(1))], [sales.SaleLine("WATER", D(1))],
            [Tender("cash", D("-8.20"))], "S1",
        )  # fmt: skip
        stock.adjust(ledger, "WATER", -1, "damaged", "S1")
    return numbers


def journal_rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT o.seq, o.kind, j.part, j.parts, j.payload FROM outbox o "
            "LEFT JOIN journal_outbox j ON j.seq = o.seq ORDER BY o.seq"
        ).fetchall()


# ---------------------------------------------------------------- the kiosk's side


def test_each_money_transaction_queues_its_journal_in_its_own_posting(tmp_path):
    path = tmp_path / "till.db"
    shift(path, "till-01")
    rows = journal_rows(path)
    kinds = {kind: (part is not None) for _, kind, part, _, _ in rows}
    assert kinds == {"receive": False, "sale": True, "return": True, "void": True,
                     "exchange": True, "adjust": False}  # fmt: skip
    with open_ledger(path, "till-01"):
        for seq, kind, part, _parts, payload in rows:
            if part is None:
                continue
            parsed = parse_journal(payload.encode(), "till-01")
            assert (parsed.seq, parsed.part, parsed.parts, parsed.kind) == (seq, 1, 1, kind)
            txn = sales.Txn.get(sales.Txn.number == parsed.txn)
            assert parsed.totals["total"] == txn.total
            assert parsed.totals["rounding"] == txn.rounding
            assert sum(line.total for line in parsed.lines) == txn.total
            assert "TERMREF" not in payload  # a terminal's reference never leaves the kiosk


def test_a_transaction_too_big_for_one_message_goes_in_parts_each_under_the_limit():
    """1,000 SKUs of 32 characters with the largest amounts: 5 parts, each parseable and
    under the broker's packet limit, their lines adding up to the whole."""
    lines = [
        LineRow(n, f"SKU-{n:028d}", D(9999), D("9999999.99"), "A", D("19"), D("99999989.70"),
                D("123456.78"), D("84033604.79"), D("15966384.91"), D("99876532.92"))
        for n in range(1, 1001)
    ]  # fmt: skip
    posting = Posting("sale", lines=lines, tenders=[("cash", D("1E+11"), None)])
    posting.total = sum((li.total for li in lines), D(0))
    now = datetime.now(UTC).strftime(topics.TS_FORMAT)
    parts = journal.messages(posting, "till-01", 7, "till-01-000007", now, "synced", "EUR")
    assert len(parts) == 5
    total = D(0)
    for message in parts:
        raw = json.dumps(message, separators=(",", ":")).encode()
        assert len(raw) < topics.MAX_PAYLOAD
        parsed = parse_journal(raw, "till-01")
        assert (parsed.totals is not None) == (parsed.part == 1)
        total += sum(line.total for line in parsed.lines)
    assert total == posting.total


# ---------------------------------------------------------------- the contract's bounds


def good() -> dict:
    return {
        "v": 1, "device": "till-01", "seq": 5, "part": 1, "parts": 1, "txn": "till-01-000005",
        "kind": "sale", "ts": datetime.now(UTC).strftime(topics.TS_FORMAT), "clock": "synced",
        "currency": "EUR", "net": "8.40", "tax": "1.59", "total": "9.99", "discount": "0.00",
        "rounding": "0.00", "change": "0.01", "taxes": [{"code": "A", "rate": "0.19",
        "net": "8.40", "tax": "1.59"}], "tenders": [{"kind": "cash", "amount": "10.00"}],
        "lines": [{"sku": "CABLE", "qty": "1", "net": "8.40", "total": "9.99", "discount": "0"}],
    }  # fmt: skip


def hostile(change) -> bytes:
    data = good()
    change(data)
    return json.dumps(data).encode()


HOSTILE = {
    "a float amount": lambda d: d.update(total=9.99),
    "an exponent": lambda d: d.update(total="1E+30"),
    "NaN": lambda d: d.update(net="NaN"),
    "past the ledger's bound": lambda d: d.update(total="99999999999999"),
    "too many decimals": lambda d: d.update(tax="0.0000001"),
    "another kiosk's device": lambda d: d.update(device="till-02"),
    "part past parts": lambda d: d.update(part=2),
    "parts past the bound": lambda d: d.update(parts=10**6, part=1),
    "a seq of zero": lambda d: d.update(seq=0),
    "a stock kind": lambda d: d.update(kind="receive"),
    "an unknown field": lambda d: d.update(card="4111111111111111"),
    "a line with more": lambda d: d["lines"][0].update(pan="4111111111111111"),
    "a line twice": lambda d: d["lines"].append(dict(d["lines"][0])),
    "a bad sku": lambda d: d["lines"][0].update(sku="../../etc"),
    "an unknown condition": lambda d: d["lines"][0].update(condition="stolen"),
    "too many tenders": lambda d: d.update(tenders=[{"kind": "cash", "amount": "1"}] * 17),
    "a tender kind with spaces": lambda d: d.update(tenders=[{"kind": "a b", "amount": "1"}]),
    "a currency in words": lambda d: d.update(currency="euro"),
    "no totals on part 1": lambda d: d.pop("total"),
    "a time in the future": lambda d: d.update(ts="2099-01-01T00:00:00.000000Z"),
    "lines not a list": lambda d: d.update(lines={"sku": "X"}),
    "too many lines": lambda d: d.update(lines=[{"sku": f"S{n}", "qty": "1", "net": "1",
                                                 "total": "1", "discount": "0"}
                                                for n in range(201)]),
}  # fmt: skip


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_journal_messages_off_the_contract_are_refused_in_one_line(what):
    parse_journal(hostile(lambda d: None), "till-01")  # the unchanged message is fine
    with pytest.raises(PayloadError) as refused:
        parse_journal(hostile(HOSTILE[what]), "till-01")
    assert "\n" not in str(refused.value) and str(refused.value)


def test_garbage_bytes_are_refused():
    for raw in (b"\xff\xfe", b"[" * 100, b"{}", b"null", b'{"v":1}' + b" " * 70_000):
        with pytest.raises(PayloadError):
            parse_journal(raw, "till-01")


def test_an_unsynchronised_clock_places_the_journal_when_it_arrived(tmp_path):
    now = datetime.now(UTC)
    raw = hostile(lambda d: d.update(clock="unsynced", ts="2031-05-05T00:00:00.000000Z"))
    assert parse_journal(raw, "till-01", now=now).ts == now


# ---------------------------------------------------------------- the controller's side


@pytest.fixture
def db(tmp_path):
    opened = store.open_store(str(tmp_path / "controller.db"))
    yield opened
    opened.close()


def test_a_part_is_applied_once_and_a_changed_repeat_is_a_conflict(db):
    now = datetime.now(UTC)
    raw = hostile(lambda d: None)
    first, again = (parse_journal(raw, "till-01", now=now) for _ in range(2))
    changed = json.loads(raw) | {"total": "0.99"}
    other = parse_journal(json.dumps(changed).encode(), "till-01", now=now)
    assert apply_journals([first], now).fresh == [first]
    outcome = apply_journals([again, other], now)
    assert outcome.fresh == [] and outcome.conflicts == [other]
    assert store.JournalTxn.select().count() == 1 and store.JournalLine.select().count() == 1


# ---------------------------------------------------------------- end to end, and KPIs


@pytest.fixture
def shop(tmp_path):
    broker = Mosquitto(tmp_path / "broker", ["controller", "till-01", "cart-01", "intruder"])
    broker.start()
    yield broker
    broker.stop(kill=True)


def run_controller(shop, database: Path):
    controller = Controller(shop.config("controller"), str(database))
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    thread.start()
    wait_until(controller.connected.is_set, 30, what="the controller to connect")
    return controller, stop, thread


def events_in(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]


def money_count(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM journal_outbox").fetchone()[0]


def test_journals_reach_the_controller_once_and_kpis_equal_the_kiosks_z_reports(shop, tmp_path):
    ledgers = {"till-01": tmp_path / "till-01.db", "cart-01": tmp_path / "cart-01.db"}
    for n, (device, path) in enumerate(ledgers.items()):
        shift(path, device, sales_count=3 + n)
    database = tmp_path / "controller.db"
    controller, stop, thread = run_controller(shop, database)
    publishers = [
        Publisher(shop.config(device, path), path, status_every=1.0, max_backoff=1.0).start()
        for device, path in ledgers.items()
    ]
    try:
        expected = sum(money_count(p) for p in ledgers.values())
        wait_until(lambda: controller.journals == expected, 30, what=f"{expected} journals")
        # a resync (a controller restored from a backup) sends everything again: no doubles
        before = controller.duplicates
        for device in ledgers:
            resync = topics.encode(topics.resync(1))
            controller.client.publish(controller.topics.kiosk_resync(device), resync, 1)
        events = sum(events_in(p) for p in ledgers.values())
        wait_until(lambda: controller.duplicates - before == events, 30, what="the resend")
        wait_until(lambda: all(p.drain(1) for p in publishers), 30, what="the journals resent")
        assert controller.journals == expected and controller.dead == 0
        # a kiosk cannot publish another kiosk's journal (the broker's ACL), and a changed
        # repeat of its own is dead-lettered as a conflict
        intruder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="x", protocol=mqtt.MQTTv5)
        intruder.username_pw_set("cart-01", shop.passwords["cart-01"])
        intruder.connect("127.0.0.1", shop.port)
        intruder.loop_start()
        with sqlite3.connect(ledgers["cart-01"]) as db:
            payload = json.loads(db.execute("SELECT payload FROM journal_outbox").fetchone()[0])
        payload["total"] = "0.01"
        forged = dict(payload, device="till-01")
        for device, message in (("till-01", forged), ("cart-01", payload)):
            topic = f"{ROOT}/kiosk/{device}/journal"
            intruder.publish(topic, json.dumps(message), 1).wait_for_publish(5)
        wait_until(lambda: controller.dead == 1, 30, what="the conflict dead-lettered")
        intruder.loop_stop()
        intruder.disconnect()
        with sqlite3.connect(database) as db:
            reason = db.execute("SELECT error FROM dead_letter").fetchone()[0]
        assert reason.startswith("conflict: journal cart-01:")
        assert controller.journals == expected and controller.dead == 1  # the forgery: dropped
    finally:
        for publisher in publishers:
            publisher.stop()
        stop.set()
        thread.join(15)
    store.open_store(str(database))
    today = datetime.now().astimezone().date()
    figures = kpis.compute(kpis.period("day", today))
    zs = {}
    for device, path in ledgers.items():
        with open_ledger(path, device):
            zs[device] = reports.z_report(today)
    for device, z in zs.items():
        mine = figures.kiosks[device]
        assert mine.revenue == z.net_total
        assert mine.transactions == z.counts["sale"]
        assert mine.return_count == z.counts["return"]
        assert mine.voids == z.counts["void"]
        assert mine.gross_sales == z.gross_sales
        assert mine.returns == z.returns
        assert mine.void_value == z.voids
        assert mine.discounts == z.discounts
        assert mine.tenders == {k: v for k, v in z.tenders.items() if v}
    assert figures.sales.revenue == sum(z.net_total for z in zs.values())
    assert figures.sales.transactions == sum(z.counts["sale"] for z in zs.values())
    assert figures.sync.journal_missing == 0
    assert figures.sync.rate == D("100.0")
    assert figures.daily[-1][1] == figures.sales.revenue
    # shrink: the damaged returns of both kiosks (one pen each), at the master's cost
    assert figures.stock.shrink_units == 2


def test_stock_kpis_from_receiving_sales_and_counts(db):
    now = datetime.now(UTC)
    zone = datetime.now().astimezone().tzinfo
    start = now - timedelta(hours=2)
    if (start + timedelta(minutes=30)).astimezone(zone).date() != start.astimezone(zone).date():
        start -= timedelta(hours=1)  # the four events on one local day, whatever the hour
    day = start.astimezone(zone).date()  # (run after midnight, two hours ago was yesterday)

    def event(seq, kind, moves, at, counted=None):
        when = {s: at for s in counted} if counted else None
        return topics.StockEvent("till-01", seq, at, kind, f"T{seq}", tuple(moves),
                                 counted=counted, clock="synced", counted_at=when)  # fmt: skip

    store.MasterItem.insert_many(
        [{"sku": sku, "name": sku, "price": "2.00", "tax_code": "A", "cost": cost,
          "version": 1, "digest": ""} for sku, cost in (("A", "1.00"), ("B", "0.50"), ("C", None))]
    ).execute()  # fmt: skip
    store.apply_events(
        [
            event(1, "receive", [("A", 100), ("B", 10)], start),
            event(2, "sale", [("A", -30), ("B", -10)], start + timedelta(minutes=10)),
            event(3, "count", [], start + timedelta(minutes=20), counted={"A": 65}),
            event(4, "count", [], start + timedelta(minutes=30), counted={"A": 65}),
        ],
        now,
    )
    figures = kpis.compute(kpis.period("day", day, zone=zone))
    st = figures.stock
    assert (st.skus, st.out_of_stock) == (3, 2)  # B sold out, C never stocked
    assert (st.sold, st.received) == (40, 110)
    assert st.sell_through == D("36.4")  # 40 of 110
    assert (st.shrink_units, st.shrink_value) == (5, D("5.00"))  # the first count found 5 gone
    assert (st.counted, st.counted_exact, st.accuracy) == (2, 1, D("50.0"))
    assert st.cogs == D("35.00")  # 30 x 1.00 + 10 x 0.50
    assert st.end_units == 65


def test_periods_are_checked():
    day = datetime(2026, 12, 2).date()
    assert kpis.period("week", day).first.isoformat() == "2026-11-30"  # its Monday
    assert len(kpis.period("week", day).days) == 7
    for kind, last, words in (
        ("range", day - timedelta(days=1), "before it starts"),
        ("range", day + timedelta(days=400), "at most 366 days"),
        ("range", None, "needs its last day"),
        ("month", None, "day, week or range"),
    ):
        with pytest.raises(kpis.PeriodError, match=words):
            kpis.period(kind, day, last)


def test_a_sale_is_posted_even_when_its_journal_cannot_be_made(tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ValueError("a bug in the summary")

    monkeypatch.setattr(journal, "messages", broken)
    path = tmp_path / "till.db"
    with open_ledger(path, "till-01") as ledger:
        catalog_csv.import_text(ledger, CATALOG)
        posted = sales.post_sale(ledger, [sales.SaleLine("PEN")], [Tender("cash", D("5"))])
    assert posted.number and "no journal for till-01-" in caplog.text
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1  # its stock event
        assert db.execute("SELECT COUNT(*) FROM journal_outbox").fetchone()[0] == 0


def test_sales_before_a_kiosk_journaled_are_not_counted_missing(db):
    """A kiosk updated to this release journals from then on: its older sales' events
    have no journal and are not "missing"; a gap after its first journal is."""
    now = datetime.now(UTC)

    def sale(seq):
        return topics.StockEvent("till-01", seq, now, "sale", f"T{seq}", (("PEN", -1),),
                                 clock="synced")  # fmt: skip

    store.apply_events([sale(1), sale(2), sale(3), sale(4)], now)  # 1-2 from old firmware
    store.KioskState.insert(device="till-01", reported_seq=4, applied_to=4).execute()
    for seq in (3,):  # the first journal; 4's never came
        raw = hostile(lambda d, seq=seq: d.update(seq=seq, txn=f"T{seq}"))
        apply_journals([parse_journal(raw, "till-01", now=now)], now)
    zone = datetime.now().astimezone().tzinfo
    figures = kpis.compute(kpis.period("day", now.astimezone(zone).date(), zone=zone))
    assert figures.sync.journal_missing == 1


def test_journals_missing_count_each_kiosk_from_its_own_first_journal(db):
    """till-01 journals from seq 3 (its update) and again at 6: 4 and 5 are missing; till-02
    never journaled (older firmware): none of its sales count as missing."""
    now = datetime.now(UTC)

    def sale(device, seq):
        return topics.StockEvent(device, seq, now, "sale", f"{device}-{seq}", (("PEN", -1),),
                                 clock="synced")  # fmt: skip

    store.apply_events([sale("till-01", n) for n in range(1, 7)]
                       + [sale("till-02", n) for n in range(1, 4)], now)  # fmt: skip
    store.KioskState.insert(device="till-01", reported_seq=6, applied_to=6).execute()
    store.KioskState.insert(device="till-02", reported_seq=3, applied_to=3).execute()
    for seq in (3, 6):
        raw = hostile(lambda d, seq=seq: d.update(seq=seq, txn=f"till-01-{seq}"))
        apply_journals([parse_journal(raw, "till-01", now=now)], now)
    zone = datetime.now().astimezone().tzinfo
    figures = kpis.compute(kpis.period("day", now.astimezone(zone).date(), zone=zone))
    assert figures.sync.journal_missing == 2


def test_a_journal_part_that_fails_to_apply_is_dead_lettered_and_the_rest_apply(
    tmp_path, monkeypatch
):
    from kiosk.mqtt import journal_store  # noqa: PLC0415

    controller = Controller(parse('[device]\nid = "hq"\nstore = "store-042"\n'),
                            str(tmp_path / "controller.db"))  # fmt: skip
    real = journal_store.apply_journals

    def apply_journals(journals, now):
        if any(j.txn == "till-01-boom" for j in journals):
            raise sqlite3.IntegrityError("simulated failure applying one journal")
        return real(journals, now)

    monkeypatch.setattr(journal_store, "apply_journals", apply_journals)

    def message(seq, txn):
        raw = hostile(lambda d: d.update(seq=seq, txn=txn))
        msg = mqtt.MQTTMessage(seq, f"{ROOT}/kiosk/till-01/journal".encode())
        msg.payload, msg.qos = raw, 1
        return msg

    try:
        controller.apply_batch([message(1, "till-01-1"), message(2, "till-01-boom"),
                                message(3, "till-01-3")])  # fmt: skip
        assert controller.journals == 2 and controller.dead == 1
        assert store.DeadLetter.get().error.startswith("could not apply: IntegrityError(")
        assert [j.seq for j in store.JournalTxn.select().order_by(store.JournalTxn.seq)] == [1, 3]
    finally:
        controller.db.close()
