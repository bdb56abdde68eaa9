"""Hostile input at the kiosk: numbers past every range, text that is not UTF-8,
damaged ledgers and a full disk. Every case ends in a one-line refusal (exit 2 on
the command line) and a ledger that still verifies; nothing raises past the layer
that owns the input."""

from __future__ import annotations

import io
import re
import shutil
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk import numbers
from kiosk.checkout.replay import ReplayError, replay
from kiosk.checkout.session import Checkout
from kiosk.config import ConfigError, parse
from kiosk.ledger import catalog_csv, posting, sales, staff, stock
from kiosk.ledger.catalog_csv import CatalogFileError
from kiosk.ledger.core import Ledger, LedgerError, StorageFullError
from kiosk.ledger.migrations import LATEST
from kiosk.ledger.money import Tender
from kiosk.ledger.verify import verify
from kiosk.mqtt import topics
from kiosk.textfile import TextFileError, decode
from tests.conftest import CATALOG
from tests.test_cli import assert_user_error, kiosk
from tests.test_cli import env as _env  # noqa: F401 - the fixture `env`

HEADER = "sku,name,price,tax,unit,cost,barcodes,kit,components,min_age\n"

# Text people type, and text an attacker types: exponents, digits of other scripts,
# separators, signs, whitespace, and plain garbage.
NUMBER_TEXT = st.one_of(
    st.from_regex(r"\A[+-]?[0-9]{0,25}(\.[0-9]{0,25})?([eE][+-]?[0-9]{1,6})?\Z"),
    st.sampled_from(["1e400", "-1e400", "1e-400", "1_000", "١٢", "１２", "1,50", "NaN", "inf",
                     "-0", "0x10", "٣.٥", " 7 ", "9" * 5000, "1" + "0" * 30, ""]),
    st.text(max_size=30),
)  # fmt: skip
ANY_VALUE = st.one_of(
    NUMBER_TEXT,
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


# ------------------------------------------------------------------ the parser


@given(ANY_VALUE)
def test_the_number_parser_refuses_with_number_error_or_stays_in_bounds(value):
    try:
        result = numbers.decimal(value, "x", minimum=-5, maximum=1000, places=3, floats=True)
    except numbers.NumberError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(result, Decimal) and result.is_finite()
        assert -5 <= result <= 1000
        assert result == result.quantize(Decimal("0.001"))
    try:
        whole = numbers.whole(value, "x", minimum=0, maximum=99)
    except numbers.NumberError:
        pass
    else:
        assert type(whole) is int and 0 <= whole <= 99


@pytest.mark.parametrize(
    "text",
    ["1e400", "1_000", "١٢٣", "１２", "1e-400", "0.0001", "1,50", "nan", "Infinity", "--1"],
)
def test_weights_and_money_refuse_what_a_person_did_not_mean(text):
    with pytest.raises(numbers.NumberError):
        numbers.cart_quantity(text, "kg")
    with pytest.raises(numbers.NumberError):
        numbers.money(text, "price", Decimal("0.01"))


def test_written_down_bounds():
    assert numbers.cart_quantity("0.001", "kg") == Decimal("0.001")  # one gram is sellable
    assert numbers.cart_quantity("1E+1", "each") == 10
    assert numbers.money("10000000", "price", Decimal("0.01")) == numbers.MAX_MONEY
    with pytest.raises(numbers.NumberError, match="must be from 0 to 10000000"):
        numbers.money("10000000.01", "price", Decimal("0.01"))
    with pytest.raises(numbers.NumberError, match="at most 2 decimal"):
        numbers.money("1.001", "price", Decimal("0.01"))
    with pytest.raises(numbers.NumberError, match="from 1 to 9999"):
        numbers.cart_quantity("10000", "each")


# ------------------------------------------------------------------ every entry point


@given(ANY_VALUE)
def test_config_numbers_are_a_config_error_or_valid(value):
    for section, key in (("money", "cash_rounding"), ("checkout", "cashier_discount_pct")):
        text = f"[{section}]\n{key} = {_toml(value)}\n"
        try:
            parse(text, "k.toml")
        except ConfigError as exc:
            assert str(exc).startswith("k.toml: ")
            assert "\n" not in str(exc)


def _toml(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(value), repr(value))
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if value is None:
        return '""'
    return '"' + value.encode("unicode_escape").decode().replace('"', '\\"') + '"'


FIXTURE = settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FIXTURE
@given(price=NUMBER_TEXT, pack=NUMBER_TEXT, age=NUMBER_TEXT)
def test_catalog_numbers_are_reported_per_line_or_valid(shop, price, pack, age):
    def cell(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    row = f"X1,Thing,{cell(price)},A,each,,4001234000091*{cell(pack)},,,{cell(age)}\n"
    try:
        rows = catalog_csv.read_rows(shop, io.StringIO(HEADER + row), "c.csv")
    except CatalogFileError as exc:
        assert all(p.startswith("line ") for p in exc.problems), exc.problems
    else:
        (parsed,) = rows
        assert 0 <= parsed.price <= numbers.MAX_MONEY
        assert all(1 <= q <= numbers.MAX_PACK for q in parsed.barcodes.values())
        assert 0 <= parsed.min_age <= 99


@FIXTURE
@given(value=ANY_VALUE)
def test_checkout_numbers_are_refusals_never_exceptions(shop, value):
    co = Checkout(shop)
    co.role = "staffed"  # a supervisor at a till may do all of it without approvals
    assert co.staff_login(pin="1234").ok
    assert co.scan("4006381333931").ok
    assert co.add_item("BANANA", "0.250").ok
    calls = [
        lambda: co.quantity(value),
        lambda: co.set_quantity(1, value),
        lambda: co.add_item("PEN", value),
        lambda: co.override_price(1, value),
        lambda: co.discount(1, value, None),
        lambda: co.discount(1, None, value),
        lambda: co.end_of_day(value),
    ]
    for call in calls:
        outcome = call()
        assert isinstance(outcome.ok, bool) and "\n" not in outcome.message
    for line in co.cart.lines:
        numbers.cart_quantity(line.qty, line.unit)  # nothing out of bounds got in
    co.pay()
    outcome = co.tender_cash(value)
    assert "\n" not in outcome.message
    assert verify(shop) == []


@FIXTURE
@given(value=ANY_VALUE)
def test_staff_flows_take_only_bounded_whole_numbers(shop, value):
    co = Checkout(shop)
    co.staff_login(pin="1234")
    co.start_count()
    co.set_count("PEN", value)
    co.finish_count()
    co.start_receiving("DN-1")
    co.receive_item("CABLE", value)
    co.finish_receiving()
    co.start_kit("REPAIR")
    co.build_kit(value)
    assert verify(shop) == []


@pytest.mark.parametrize(
    "line",
    [
        '{"remove": 1e400}',
        '{"set_qty": {"line": 1e400, "qty": "1"}}',
        '{"override": {"line": -1, "price": "1"}}',
        '{"idle": 1e300}',
        '{"idle": -1}',
        '{"idle": "60"}',
        '{"remove": ' + "9" * 5000 + "}",
        "[" * 100_000,
        '{"scan": "' + "x" * 200_000 + '"}',
    ],
)
def test_replay_lines_out_of_range_are_one_line_errors(shop, line):
    co = Checkout(shop)
    with pytest.raises(ReplayError) as info:
        replay(co, ['{"scan": "4006381333931"}', line])
    assert str(info.value).startswith("line 2: ")
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ the ledger defends itself


def test_the_ledger_refuses_out_of_range_rows_even_past_the_parser(shop):
    big = posting.Posting(kind="receive", moves=[("CABLE", posting.MAIN, 2**62)])
    refused = pytest.raises(LedgerError, match="refused by the ledger: out of range")
    with refused, shop.transaction():
        posting.write(shop, big)
    line = posting.LineRow(
        1, "PEN", Decimal("1e30"), Decimal(1), "A", Decimal(0), *[Decimal(0)] * 5
    )
    with pytest.raises(LedgerError, match="out of range"), shop.transaction():
        posting.write(shop, posting.Posting(kind="sale", lines=[line]))
    assert verify(shop) == []
    sale = sales.post_sale(shop, [sales.SaleLine("PEN")], [Tender("cash", Decimal("2.00"))])
    assert sale.total == Decimal("1.49")


def test_verify_reports_a_damaged_ledger_instead_of_crashing(shop):
    sales.post_sale(shop, [sales.SaleLine("PEN")], [Tender("cash", Decimal("2.00"))])
    path = shop.path
    shop.close()
    raw = sqlite3.connect(path)
    raw.executescript(
        """
        DROP TRIGGER stock_balance_bounds_update;
        DROP TRIGGER stock_move_bounds;
        DROP TRIGGER txn_no_update;
        UPDATE stock_balance SET on_hand = 9.3e18 WHERE sku = 'PEN';
        INSERT INTO stock_move (txn_id, sku, location, delta, at)
            VALUES (1, 'PEN', 'main', 9223372036854775807, '2026-01-01T00:00:00.000000Z');
        INSERT INTO stock_move (txn_id, sku, location, delta, at)
            VALUES (1, 'PEN', 'main', 9223372036854775807, '2026-01-01T00:00:00.000000Z');
        UPDATE txn SET total = 'lots', net = '1e999999' WHERE id = 1;
        UPDATE outbox SET payload = '[[[[' || 'x' WHERE seq = 1;
        """
    )
    raw.commit()
    raw.close()
    with Ledger.open(shop.config, path) as damaged:
        problems = verify(damaged)
    text = "\n".join(problems)
    assert "stock PEN@main: '9.3e+18' is not a whole number" in text
    assert "move of PEN: '9223372036854775807' is not a whole number" in text
    assert "'lots' is not a number" in text
    assert "event 1: payload is not JSON" in text


def test_a_version_1_ledger_is_migrated_to_the_bounds(tmp_path, config):
    """A ledger as the previous release made it: schema 1, without the bound triggers."""
    path = tmp_path / "old.db"
    with Ledger.open(config, path) as ledger:
        catalog_csv.import_text(ledger, CATALOG)
        sales.post_sale(ledger, [sales.SaleLine("PEN")], [Tender("cash", Decimal("2.00"))])
    raw = sqlite3.connect(path)
    for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE name LIKE '%bounds%'"):
        raw.execute(f"DROP TRIGGER {name}")
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    with Ledger.open(config, path) as ledger:
        version = ledger.db.execute_sql("PRAGMA user_version").fetchone()[0]
        triggers = ledger.db.execute_sql(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%bounds%'"
        ).fetchone()[0]
        assert (version, triggers) == (LATEST, 6)
        assert verify(ledger) == []
        with pytest.raises(LedgerError, match="out of range"), ledger.transaction():
            posting.write(ledger, posting.Posting("adjust", moves=[("PEN", "main", 10**10)]))


# ------------------------------------------------------------------ text files


def test_invalid_utf8_names_the_file_and_line():
    with pytest.raises(TextFileError, match=r"^c.csv: line 3: not UTF-8 text \(byte 0xe9"):
        decode(b"a,b\n1,2\ncaf\xe9\n", "c.csv")
    assert decode(b"\xef\xbb\xbfsku\n", "c.csv") == "sku\n"
    with pytest.raises(TextFileError, match=r"^c.csv: line 2: .* \(byte 0xe9 at column 4"):
        decode(b"\xef\xbb\xbfsku\ncaf\xe9\n", "c.csv")  # counted after the byte-order mark


def test_cli_refuses_hostile_files_in_one_line(tmp_path, _env):  # noqa: F811 - the fixture
    env = _env
    bad = tmp_path / "cat.csv"
    bad.write_bytes(HEADER.encode() + b"PEN,Stift \xfc,1.49,A,each,,,,,\n")
    assert_user_error(kiosk(env, "catalog", "import", str(bad)), "cat.csv: line 2: not UTF-8")
    assert_user_error(kiosk(env, "catalog", "import", "--dry-run", str(bad)), "line 2: not UTF-8")
    twice = tmp_path / "twice.csv"
    twice.write_text("sku,name,price,price,tax\nPEN,Pen,1.49,9.99,A\n")
    assert_user_error(kiosk(env, "catalog", "import", str(twice)), "column(s) named twice: price")
    for price in ("1_000", "١٢", "１.４９", "1e400"):
        sheet = tmp_path / "digits.csv"
        sheet.write_text(f"sku,name,price,tax\nPEN,Pen,{price},A\n", encoding="utf-8")
        assert_user_error(kiosk(env, "catalog", "import", str(sheet)), "line 2: price")
    script = tmp_path / "s.jsonl"
    script.write_bytes(b'{"scan": "4006381333931"}\n{"scan": "\xff"}\n')
    assert_user_error(kiosk(env, "replay", str(script)), "s.jsonl: line 2: not UTF-8")
    config = tmp_path / "bad.toml"
    config.write_bytes(b'[device]\nid = "t\xff"\n')
    assert_user_error(kiosk(env, "config", "check", str(config)), "bad.toml: line 2: not UTF-8")
    assert_user_error(kiosk(env, "report", "z", "--float", "1e400"), "--float '1e400' must be")
    result = kiosk(env, "ledger", "verify")
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------ a full disk


def _fill_until_full(ledger: Ledger) -> None:
    """Let SQLite itself report SQLITE_FULL: the file may not grow past its size now."""
    pages = ledger.db.execute_sql("PRAGMA page_count").fetchone()[0]
    ledger.db.execute_sql(f"PRAGMA max_page_count = {pages}")


def test_a_full_disk_keeps_the_cart_alerts_staff_and_refuses_new_sales(shop):
    co = Checkout(shop)
    co.role = "staffed"
    events = []
    co.subscribe(events.append)
    co.staff_login(pin="5678")
    _fill_until_full(shop)
    full = None
    for _ in range(500):  # sell until the last free page is used up
        assert co.add_item("PEN", "3").ok
        co.pay()
        outcome = co.tender_cash("50.00")
        if not outcome.ok:
            full = outcome
            break
        co.choose_receipt(False)
    assert full is not None and "storage is full" in full.message
    assert len(co.cart.lines) == 1 and co.cart.lines[0].qty == 3  # the sale is still there
    assert any(e.kind == "alert" and "Storage full" in e.detail["text"] for e in events)
    co.tick()  # an idle timeout does not throw the unrecorded sale away
    assert co.cart.lines and co.snapshot()["storage_full"]
    assert not co.pay().ok  # still full: retrying changes nothing
    assert verify(shop) == []
    shop.db.execute_sql("PRAGMA max_page_count = 1073741823")  # space again
    retried = co.tender_cash("50.00")  # any payment button retries; the 50 is not taken twice
    assert retried.ok and co.last_posted.change == Decimal("45.55"), retried
    assert co.storage_full is None
    assert verify(shop) == []


def test_no_new_sale_starts_while_the_disk_is_full(shop):
    co = Checkout(shop)
    co.role = "staffed"
    co.staff_login(pin="5678")
    co.storage_full = "the disk is full"
    _fill_until_full(shop)
    while shop.writable():  # the probe itself uses up the last free pages
        pass
    refused = co.add_item("PEN")
    assert not refused.ok and "storage full" in refused.message
    shop.db.execute_sql("PRAGMA max_page_count = 1073741823")
    assert co.add_item("PEN").ok and co.storage_full is None


def test_a_full_disk_is_one_line_from_the_posting_services(shop):
    _fill_until_full(shop)
    with pytest.raises(StorageFullError, match="the disk is full, nothing was written"):
        for _ in range(2000):
            sales.post_sale(shop, [sales.SaleLine("PEN")], [Tender("cash", Decimal("2.00"))])
    shop.db.execute_sql("PRAGMA max_page_count = 1073741823")
    assert verify(shop) == []


SELL_ON_A_FULL_DISK = """
import subprocess, sys
from pathlib import Path
from kiosk.checkout.session import Checkout
from kiosk.config import parse
from kiosk.ledger.core import Ledger
mnt = Path(sys.argv[1])
config = parse(f'[device]\\nid = "till-01"\\nstore = "s1"\\nrole = "self-checkout"\\n')
with Ledger.open(config, mnt / "ledger.db") as ledger:
    co = Checkout(ledger)
    def sell(cash):
        co.scan("4006381333931")
        co.pay()
        return co.tender_cash(cash)
    print("first:", sell("2.00").message)
    co.choose_receipt(False)
    subprocess.run(["dd", "if=/dev/zero", f"of={mnt}/fill", "bs=4k"], capture_output=True)
    print("full:", sell("5.00").message)
    print("cart kept:", len(co.cart.lines), co.alerts[-1])
    (mnt / "fill").unlink()
    print("again:", co.pay().message, co.last_posted.change)
"""


def test_selling_on_a_really_full_file_system(tmp_path):
    """A real tmpfs filled to the last byte, in a private mount namespace (unshare)."""
    if shutil.which("unshare") is None:
        pytest.fail("needs unshare from util-linux: apt-get install util-linux")
    work = tmp_path / "work"
    mnt = work / "mnt"
    mnt.mkdir(parents=True)
    (work / "catalog.csv").write_text(CATALOG)
    (work / "sell.py").write_text(SELL_ON_A_FULL_DISK)
    (work / "sale.jsonl").write_text('{"scan": "4006381333931"}\n')
    db = f"--db {mnt}/ledger.db"
    cli = f"{sys.executable} -m kiosk.cli"
    script = f"""
mount -t tmpfs -o size=1m tmpfs {mnt} || exit 90
{cli} catalog import {db} {work}/catalog.csv >/dev/null || exit 91
{sys.executable} {work}/sell.py {mnt} 2>&1
dd if=/dev/zero of={mnt}/fill bs=4k 2>/dev/null
echo "--- replay"
{cli} replay {db} {work}/sale.jsonl 2>&1
echo "--- rc $?"
{cli} catalog import {db} {work}/catalog.csv 2>&1
echo "--- import rc $?"
rm {mnt}/fill
{cli} ledger verify {db} 2>&1
echo "--- verify rc $?"
"""
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode not in (90, 91), (
        "could not mount a tmpfs in a private mount namespace (unshare -rm); "
        "enable unprivileged user namespaces or run the tests as root\n" + result.stderr
    )
    out = result.stdout
    assert "Traceback" not in out + result.stderr, out + result.stderr
    assert "first: Paid, thank you!" in out, out
    assert "full: Could not record the sale: this kiosk's storage is full" in out, out
    assert "cart kept: 1 Storage full, sales cannot be recorded" in out, out
    assert "again: Paid, thank you! Change: 3.50 EUR." in out, out  # 5.00 once, not twice
    replayed = out.split("--- replay")[1].split("--- rc")[0].strip()
    assert replayed.endswith("cannot open the ledger: the disk is full; free space and try again")
    assert len(replayed.splitlines()) == 1 and "--- rc 2" in out, out
    assert "--- import rc 2" in out, out
    assert "--- verify rc 0" in out, out


def test_cli_number_options_are_bounded(_env):  # noqa: F811 - the fixture
    for args, text in (
        (("outbox", "--limit", "9" * 30), "Invalid value for '--limit'"),
        (("sync", "--once", "--timeout", "1e400"), "Invalid value for '--timeout'"),
        (("report", "z", "--float", "1_000"), "--float '1_000' is not a number"),
        (("report", "z", "--float", "-5"), "--float '-5' must be from 0"),
    ):
        assert_user_error(kiosk(_env, *args), text)


def test_a_technician_sets_a_new_pin_after_the_pin_key_is_lost(tmp_path, _env):  # noqa: F811
    add = kiosk(_env, "staff", "add", "S1", "--name", "Sam", "--role", "supervisor", stdin="4321\n")
    assert add.returncode == 0, add.stderr
    (tmp_path / "pin.key").unlink()  # the key is lost: the old hash cannot be checked
    assert_user_error(kiosk(_env, "staff", "pin", "S1", stdin="12\n"), "PIN must be 4 to 8 digits")
    assert_user_error(kiosk(_env, "staff", "pin", "ZZ", stdin="1234\n"), "no staff member 'ZZ'")
    done = kiosk(_env, "staff", "pin", "S1", "--by", "T1", stdin="5678\n")
    assert done.returncode == 0 and "new PIN set for S1" in done.stdout, done.stderr
    config = parse(
        f'[device]\nid = "till-01"\nstore = "s1"\n[ledger]\npath = "{tmp_path / "l.db"}"\n'
    )
    with Ledger.open(config) as ledger:
        assert staff.login(ledger, "5678", code="S1").code == "S1"


def test_no_transaction_makes_a_stock_event_the_controller_would_refuse(shop):
    """The kiosk's limits are the controller's (kiosk.numbers, kiosk.mqtt.topics)."""
    half = numbers.MAX_STOCK_QTY // 2 + 1
    lines = [stock.ReceiveLine("CABLE", half), stock.ReceiveLine("CABLE", half)]
    with pytest.raises(LedgerError, match="units of one item in one transaction"):
        stock.receive(shop, lines, "S1")
    catalog_csv.import_text(shop, HEADER + "BIG,Big kit,1.00,A,each,,,assembled,PRY*10000,\n")
    with pytest.raises(LedgerError, match="units of one item in one transaction"):
        stock.build_kit(shop, "BIG", 101, "S1")
    assert topics.MAX_MOVE_QTY == numbers.MAX_STOCK_QTY
    assert topics.MAX_LINES == numbers.MAX_EVENT_LINES
    co = Checkout(shop)
    co.staff_login(pin="1234")
    co.start_count()
    co.counting.counted.update({f"X{n}": 1 for n in range(numbers.MAX_EVENT_LINES)})
    refused = co.set_count("PEN", 3)
    assert not refused.ok and "at most 1000 items" in refused.message
    assert verify(shop) == []


def test_tenders_finer_than_the_currency_are_refused_and_the_payment_goes_on(shop):
    co = Checkout(shop)
    co.scan("4006381333931")
    co.pay()
    refused = co.tender_cash("1.499")
    assert not refused.ok and "at most 2 decimal" in refused.message
    assert not co.tender_card("1.485", "A").ok and not co.payment.tenders
    assert co.tender_cash("1.50").ok and co.last_posted is not None  # 1.49 rounds to 1.50


@pytest.mark.parametrize(
    "line",
    [
        '{"void": {"receipt": [], "reason": "x"}}',
        '{"void": {"receipt": "demo-1", "reason": {}}}',
        '{"void": {"receipt": ["x"]}}',
        '{"start": "return", "receipt": [1]}',
        '{"add": {"sku": ["PEN"]}}',
        '{"return_item": {"sku": 5}}',
        '{"lookup": ' + "[" * 600 + "]" * 600 + "}",
    ],
)
def test_replay_values_of_the_wrong_type_are_one_line_errors(shop, line):
    co = Checkout(shop)
    co.staff_login(pin="1234")
    co.scan("4006381333931")  # a sale first: {last_sale} substitution walks every line
    co.pay()
    co.tender_cash("5.00")
    with pytest.raises(ReplayError) as info:
        replay(co, ['{"staff": "1234"}', line])
    assert str(info.value).startswith("line 2: ") and "\n" not in str(info.value)
    assert verify(shop) == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[money]\ncash_rounding = 1000", "money.cash_rounding: must divide 1"),
        ("[money]\ncash_rounding = 1.5", "money.cash_rounding: must divide 1"),
        ("[scanner]\nbaudrate = 99999999999999999999", "scanner.baudrate"),
        ("[scanner]\ntimeout_ms = '1_000'", "scanner.timeout_ms: must be a whole number, not text"),
        ("[drawer]\npin = 1e-400", "drawer.pin: must be a whole number, not a decimal number"),
        ("[controller]\nresync_after_s = true", "controller.resync_after_s"),
        ("[checkout]\nidle_timeout_s = 120.0", "checkout.idle_timeout_s"),
    ],
)
def test_config_whole_numbers_and_the_cash_step_are_bounded(text, reason):
    with pytest.raises(ConfigError, match=re.escape(reason)):
        parse(text, "k.toml")


@pytest.mark.parametrize("step", ["0.01", "0.05", "0.10", "0.25", "0.5", "1", "5", "10"])
def test_usual_cash_steps_are_accepted(step):
    assert parse(f"[money]\ncash_rounding = '{step}'").money.cash_rounding == Decimal(step)


def test_an_unreadable_mqtt_password_file_is_one_line(tmp_path, _env):  # noqa: F811
    secret = tmp_path / "bad.pass"
    secret.write_bytes(b"pw\xff\n")
    config = tmp_path / "pw.toml"
    config.write_text(
        f'[device]\nid = "till-01"\nstore = "s1"\n[ledger]\npath = "{tmp_path / "l.db"}"\n'
        f'[mqtt]\nusername = "till-01"\npassword_file = "{secret}"\nport = 1\n'
    )
    env = {**_env, "KIOSK_CONFIG": str(config)}
    demo = Path(__file__).parent.parent / "kiosk" / "demo" / "catalog.csv"
    assert kiosk(env, "catalog", "import", str(demo)).returncode == 0
    assert_user_error(kiosk(env, "sync", "--once", "--timeout", "2"), "line 1: not UTF-8")
    secret.unlink()
    assert_user_error(kiosk(env, "sync", "--once", "--timeout", "2"), "No such file")


def test_broker_config_in_a_relative_folder_names_absolute_paths(tmp_path, _env):  # noqa: F811
    result = subprocess.run(
        [sys.executable, "-m", "kiosk.cli", "broker", "config", "brk", "--user", "root"],
        cwd=tmp_path, env=_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    conf = (tmp_path / "brk" / "mosquitto.conf").read_text()
    assert f"password_file {tmp_path}/brk/passwd" in conf and "acl_file /" in conf


def test_a_sale_cannot_total_more_than_one_amount_may(shop):
    catalog_csv.import_text(shop, HEADER + "GOLD,Gold bar,9000000.00,A,each,,,,,\n")
    co = Checkout(shop)
    co.role = "staffed"
    co.staff_login(pin="1234")
    assert co.add_item("GOLD").ok
    refused = co.add_item("GOLD")
    assert not refused.ok and "at most 10000000" in refused.message
    assert not co.set_quantity(1, "2").ok and not co.override_price(1, "10000000.01").ok
    assert co.pay().ok and co.tender_card(None, "AUTH1").ok  # 9,000,000.00 in one tender
    assert verify(shop) == []


def test_pins_are_ascii_digits_and_toml_nesting_is_bounded(shop, tmp_path):
    for pin in ("١٢٣٤", "１２３４"):
        with pytest.raises(LedgerError, match="PIN must be 4 to 8 digits"):
            staff.add(shop, "X1", "X", "cashier", pin, by=None)
    deep = "a = " + "[" * 5000 + "]" * 5000
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse(deep, "k.toml")
    strings_file = tmp_path / "s.toml"
    strings_file.write_text(deep)
    from kiosk import strings  # noqa: PLC0415

    with pytest.raises(strings.StringsError, match="nested too deeply"):
        strings.load(strings_file)


def test_config_check_reads_the_screen_strings_file_too(tmp_path, _env):  # noqa: F811
    config = tmp_path / "u.toml"
    config.write_text(f'[ui]\nstrings = "{tmp_path / "missing.toml"}"\n')
    assert_user_error(kiosk(_env, "config", "check", str(config)), "missing.toml")


def test_provisioning_device_lists_refuse_what_would_collide(tmp_path):
    from kiosk.provision import site  # noqa: PLC0415

    devices = tmp_path / "devices.csv"

    def problems_of(text: str) -> str:
        devices.write_text(text, encoding="utf-8")
        try:
            _, problems = site._read_devices(devices)
        except site.ProvisionError as exc:
            return str(exc)
        return "\n".join(problem for _, problem in problems)

    assert "column(s) named twice: role" in problems_of("device,role,role\nt1,staffed,staffed\n")
    assert "duplicate device TILL-01 (first on line 2)" in problems_of("device\ntill-01\nTILL-01\n")
    assert "the GPIO pin must be a number" in problems_of("device,drawer\ntill-01,gpio:١٧\n")
    assert "unreadable CSV" in problems_of("device,scanner\ntill-01," + "x" * 200_000 + "\n")
