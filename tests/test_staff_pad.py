"""Counting and receiving with the numeric pad (issue 15), presenter level: a shelf of 234
is one scan and "234", a case counts its pack, lines are corrected or removed, blind
counts hide what the ledger expects, typed quantities stay within their bounds, and
the same pad sets a quantity at a staffed till."""

from __future__ import annotations

import json

import pytest

from kiosk import i18n, numbers
from kiosk.checkout.replay import ReplayClock, replay
from kiosk.checkout.session import Checkout, State
from kiosk.config import ConfigError, load_file, parse
from kiosk.drivers.base import MemoryDrawer, MemoryPrinter
from kiosk.ledger import stock
from kiosk.ledger.models import Outbox, utc_now
from kiosk.ledger.verify import verify
from tests.test_checkout import with_role

WATER = "4001234000015"
WATER_CASE = "14001234000012"  # in the item master: a case of 6
WATER_CASE_UNLISTED = "24001234000019"  # indicator 2 of the same GTIN: not in the master
PEN = "4006381333931"
BANANA_1250_G = "2800123012502"
NBSP = "\xa0"


@pytest.fixture
def stocked(shop):
    stock.receive(shop, [stock.ReceiveLine("WATER", 20), stock.ReceiveLine("PEN", 7)], "S1")
    return shop


def staff_checkout(ledger, role="mobile-cart", **checkout) -> Checkout:
    clock = ReplayClock(utc_now)
    co = Checkout(with_role(ledger, role, **checkout), MemoryPrinter(), MemoryDrawer(), clock)
    assert co.staff_login(pin="5678").ok
    return co


def line(co: Checkout, sku: str) -> dict:
    return next(li for li in co.snapshot()["stock_lines"]["lines"] if li["sku"] == sku)


def test_a_shelf_of_234_is_one_scan_and_the_pad(stocked):
    co = staff_checkout(stocked)
    assert co.start_count().ok
    assert co.scan(WATER).message == "Water 1.5 l: 1 counted (expected 20, -19)"
    lines = co.snapshot()["stock_lines"]
    assert lines["kind"] == "count" and not lines["blind"]
    assert lines["selected"]["sku"] == "WATER" and lines["selected"]["name"] == "Water 1.5 l"
    done = co.set_stock_line("WATER", "234")  # replaces the scanned 1, does not add
    assert done.ok and done.message == "Water 1.5 l: 234 counted (expected 20, +214)"
    assert line(co, "WATER") == {
        "sku": "WATER", "name": "Water 1.5 l", "unit": "each", "qty": "234", "on_list": True,
        "cases": [], "expected": "20", "difference": "214",
    }  # fmt: skip
    assert co.snapshot()["counted"] == {"WATER": 234}
    assert co.finish_count().ok and co.state == State.STAFF_MENU
    assert stock.on_hand("WATER") == 234
    assert json.loads(Outbox.get(Outbox.kind == "count").payload)["counted"] == {"WATER": 234}
    assert verify(stocked) == []


def test_a_case_counts_and_receives_its_whole_pack(stocked):
    co = staff_checkout(stocked)
    co.start_count()
    first = co.scan(WATER_CASE)
    assert first.message == "Water 1.5 l: a case of 6, 6 counted (expected 20, -14)"
    co.scan(WATER_CASE)
    co.scan(WATER)
    assert line(co, "WATER")["qty"] == "13"
    assert line(co, "WATER")["cases"] == [{"pack": 6, "cases": 2}]
    co.set_stock_line("WATER", "18")  # typed: the line is what was typed, no cases any more
    assert line(co, "WATER")["cases"] == [] and line(co, "WATER")["qty"] == "18"
    co.staff_menu()
    co.start_receiving("DN-7")
    assert co.scan(WATER_CASE).message == "Water 1.5 l: a case of 6, 6 received"
    assert co.scan(WATER_CASE).message == "Water 1.5 l: a case of 6, 12 received"
    # a case code the item master does not list: the item inside is known, its pack
    # is not, so nothing is guessed: the line is selected for the pad
    unlisted = co.scan(WATER_CASE_UNLISTED)
    assert unlisted.ok and "not in the item master: type the pieces" in unlisted.message
    assert co.snapshot()["received"] == {"WATER": 12}
    assert co.snapshot()["stock_lines"]["selected"]["sku"] == "WATER"
    stranger = co.scan("24001234999993")  # a case of an item the master does not know
    assert not stranger.ok and stranger.message == "Unknown item (barcode 24001234999993)"
    co.set_stock_line("WATER", "36")
    assert co.finish_receiving().message.endswith(": 36 unit(s)")
    assert stock.on_hand("WATER") == 56
    assert verify(stocked) == []


def test_a_line_is_corrected_or_removed(stocked):
    co = staff_checkout(stocked)
    co.start_count()
    for code in (PEN, PEN, PEN, WATER):
        co.scan(code)
    assert [li["sku"] for li in co.snapshot()["stock_lines"]["lines"]] == ["WATER", "PEN"]
    assert co.snapshot()["stock_lines"]["selected"]["sku"] == "WATER"  # the last scan
    picked = co.select_stock_line("PEN")
    assert picked.ok and co.snapshot()["stock_lines"]["selected"]["sku"] == "PEN"
    assert co.set_stock_line("PEN", "5").message == "Pen: 5 counted (expected 7, -2)"
    assert co.set_stock_line("PEN", "0").message == "Pen: 0 counted (expected 7, -7)"  # empty
    removed = co.remove_stock_line("WATER")
    assert removed.ok and removed.message == "Removed Water 1.5 l"
    assert co.snapshot()["counted"] == {"PEN": 0}
    assert co.snapshot()["stock_lines"]["selected"]["sku"] == "PEN"
    assert not co.remove_stock_line("WATER").ok  # "WATER is not on the list"
    assert not co.select_stock_line("CABLE").ok
    co.finish_count()
    assert stock.on_hand("PEN") == 0 and stock.on_hand("WATER") == 20  # water was not counted
    co.start_receiving()
    co.scan(PEN)
    co.scan(PEN)
    assert co.set_stock_line("PEN", "0").message == "Removed Pen"  # none came after all
    assert co.snapshot()["received"] == {} and not co.finish_receiving().ok
    assert not co.set_stock_line("PEN", "0").ok  # nothing to receive
    assert verify(stocked) == []


def test_blind_counts_show_neither_expected_nor_difference(stocked):
    co = staff_checkout(stocked, blind_counts=True)
    assert co.start_count().message == "Blind count: scan every item on the shelf"
    texts = [co.scan(WATER).message, co.scan(WATER_CASE).message]
    texts.append(co.set_stock_line("WATER", "19").message)
    texts.append(co.scan(PEN).message)
    assert texts == [
        "Water 1.5 l: 1 counted",
        "Water 1.5 l: a case of 6, 7 counted",
        "Water 1.5 l: 19 counted",
        "Pen: 1 counted",
    ]
    view = co.snapshot()["stock_lines"]
    assert view["blind"] is True
    for shown in view["lines"]:
        assert "expected" not in shown and "difference" not in shown
    assert "20" not in json.dumps(co.snapshot())  # the ledger's 20 waters nowhere
    assert co.counting.expected == {}
    assert co.finish_count().ok and stock.on_hand("WATER") == 19


@pytest.mark.parametrize(
    ("sku", "typed", "refusal"),
    [
        ("WATER", "1000001", "Water 1.5 l: the quantity must be from 0 to 1,000,000"),
        ("WATER", "-1", "Water 1.5 l: the quantity must be from 0 to 1,000,000"),
        ("WATER", "2.5", "Water 1.5 l is counted in whole pieces"),
        ("WATER", "", "Water 1.5 l: type the quantity in digits"),
        ("WATER", "1e400", "Water 1.5 l: type the quantity in digits"),
        ("WATER", "١٢", "Water 1.5 l: type the quantity in digits"),
        ("BANANA", "1.2345", "Bananas: a weight has at most 3 decimals (grams)"),
        ("BANANA", "1000.001", "Bananas: the quantity must be from 0 kg to 1,000 kg"),
        ("NOPE", "1", "Unknown item 'NOPE'"),
    ],
)
def test_typed_quantities_out_of_bounds_are_one_line_refusals(stocked, sku, typed, refusal):
    co = staff_checkout(stocked)
    co.start_count()
    co.scan(WATER)
    refused = co.set_stock_line(sku, typed)
    shown = refused.message.replace(NBSP, " ")  # a weight keeps its unit on its line
    assert not refused.ok and shown == refusal and "\n" not in shown
    assert co.snapshot()["counted"] == {"WATER": 1}  # nothing changed


def test_weighed_items_are_counted_in_kilograms(stocked):
    co = staff_checkout(stocked)
    co.start_count()
    weighed = co.scan(BANANA_1250_G).message.replace(NBSP, " ")
    assert weighed == "Bananas: 1.25 kg counted (expected 0 kg, +1.25 kg)"
    assert co.counting.counted == {"BANANA": 1250}  # grams
    plu = co.scan("SKUBANANA")  # a code without a weight: the pad takes the kilograms
    assert plu.ok and plu.message == "Bananas is weighed: type the kilograms on the pad"
    assert co.set_stock_line("BANANA", "12.5").ok
    assert line(co, "BANANA")["qty"] == "12.5" and line(co, "BANANA")["unit"] == "kg"
    german = co.message.render("de").replace(NBSP, " ")
    assert german == "Bananas: 12,5 kg gezählt (erwartet 0 kg, +12,5 kg)"
    assert co.finish_count().ok and stock.on_hand("BANANA") == 12500


def test_a_line_cannot_pass_the_stock_bound_by_scanning(stocked):
    co = staff_checkout(stocked)
    co.start_receiving()
    co.scan(WATER)
    co.set_stock_line("WATER", str(numbers.MAX_STOCK_QTY - 5))
    refused = co.scan(WATER_CASE)
    assert not refused.ok and refused.message == "Water 1.5 l: at most 1,000,000 on one line"
    assert co.scan(WATER).ok  # one more still fits
    co.receiving.received.update({f"X{n}": 1 for n in range(numbers.MAX_EVENT_LINES - 1)})
    full = co.scan(PEN)
    assert not full.ok and "at most 1000 items" in full.message


def test_the_pad_outside_a_count_or_delivery_is_refused(stocked):
    co = staff_checkout(stocked)
    for outcome in (
        co.set_stock_line("PEN", "3"),
        co.select_stock_line("PEN"),
        co.remove_stock_line("PEN"),
    ):
        assert not outcome.ok and outcome.message == "Start a count or receiving first"
    assert co.snapshot()["stock_lines"] is None


def test_the_same_pad_sets_a_quantity_at_a_staffed_till(stocked):
    co = staff_checkout(stocked, role="staffed")
    assert co.quantity("3").message == "Next scan counts 3 times"  # an empty cart
    co.scan(PEN)
    co.scan(BANANA_1250_G)
    lines = co.snapshot()["lines"]
    assert [(li["qty"], li["unit"]) for li in lines] == [("3", "each"), ("1.250", "kg")]
    assert co.set_quantity(1, "234").ok  # the selected line, replaced
    assert co.snapshot()["lines"][0]["qty"] == "234"
    refused = co.set_quantity(1, "10000")
    assert not refused.ok and "to 9999" in refused.message  # the selling bound
    assert not co.set_quantity(1, "2.5").ok  # pieces are whole
    assert co.set_quantity(2, "0.75").ok  # kilograms on a weighed line
    assert co.quantity("5").ok and co.snapshot()["lines"][1]["qty"] == "5"  # the last line
    assert co.set_quantity(1, "0").ok and len(co.snapshot()["lines"]) == 1  # 0 removes


def test_the_pad_steps_replay_from_a_session_log(stocked):
    clock = ReplayClock(utc_now)
    co = Checkout(with_role(stocked, "mobile-cart"), MemoryPrinter(), MemoryDrawer(), clock)
    logged: list[dict] = []
    co.log = logged.append
    co.staff_login(pin="5678")
    co.start_count()
    co.scan(WATER)
    co.set_stock_line("WATER", "234")
    co.scan(PEN)
    co.select_stock_line("PEN")
    co.set_stock_line("PEN", "4")
    co.remove_stock_line("PEN")
    assert {"line_qty": {"sku": "WATER", "qty": "234"}} in logged
    assert {"select_line": "PEN"} in logged and {"remove_sku": "PEN"} in logged
    again = Checkout(with_role(stocked, "mobile-cart"), MemoryPrinter(), MemoryDrawer(), clock)
    script = [json.dumps(e) for e in logged if "staff" not in e]
    replay(again, ['{"staff": "5678"}', *script], clock)
    assert again.snapshot()["counted"] == co.snapshot()["counted"] == {"WATER": 234}


def test_count_messages_render_in_the_readers_language(stocked):
    co = staff_checkout(stocked)
    co.start_count()
    co.scan(WATER)
    co.set_stock_line("WATER", "1234")
    assert isinstance(co.message, i18n.Message)
    assert co.message == "Water 1.5 l: 1,234 counted (expected 20, +1,214)"
    assert co.message.render("de").startswith("Water 1.5 l: 1.234")


def test_blind_counts_is_a_checked_config_key(tmp_path):
    assert parse("[checkout]\nblind_counts = true\n").checkout.blind_counts is True
    assert parse("").checkout.blind_counts is False
    path = tmp_path / "kiosk.toml"
    path.write_text('[checkout]\nblind_counts = "maybe"\n')
    with pytest.raises(ConfigError, match=r"checkout\.blind_counts"):
        load_file(path)
