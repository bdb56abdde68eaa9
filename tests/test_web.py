"""The controller's web view in a real browser: Debian's headless Chromium driven by
Playwright, against a controller (with its web view) fed by a real Mosquitto and
kiosk ledgers whose publishers send their outboxes. Screenshots go to artifacts/web/.

One shop is set up for the module (broker, controller, web view, browser); each test
opens its own browser context (its own cookies)."""

from __future__ import annotations

import csv
import io
import os
import re
import sqlite3
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from kiosk.checkout.session import Checkout
from kiosk.config import parse
from kiosk.drivers.base import MemoryDrawer, MemoryPrinter
from kiosk.ledger import catalog_csv, reports, sales, stock
from kiosk.ledger.core import Ledger
from kiosk.ledger.money import Tender
from kiosk.mqtt import master, store, topics
from kiosk.mqtt.alerts import KioskAlerts
from kiosk.mqtt.controller import Controller
from kiosk.mqtt.publisher import Publisher
from kiosk.mqtt.web import auth
from tests.conftest import CATALOG
from tests.mqtt_env import ROOT, Mosquitto, free_port, wait_until

CHROMIUM = os.environ.get("KIOSK_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "web"
MANAGER, PASSWORD = "manager", "correct horse battery"
# The item master: the test catalog plus case packs (COFFEE comes in cases of 6).
MASTER = CATALOG.replace("min_age\n", "min_age,case_pack\n", 1)
MASTER = "\n".join(
    line + ("" if i == 0 else (",6" if line.startswith("COFFEE") else ",1"))
    for i, line in enumerate(MASTER.strip().splitlines())
)
WAIT_MS = 15_000  # a condition in the page, with its deadline (Playwright's expect)

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - said once, clearly
    pytest.fail("playwright is not installed: .venv/bin/pip install playwright", pytrace=False)
expect.set_options(timeout=WAIT_MS)


def kiosk_ledger(path: Path, device: str, received: dict[str, int]) -> Path:
    config = parse(f'[device]\nid = "{device}"\nstore = "store-042"\n[ledger]\npath = "{path}"\n')
    with Ledger.open(config) as ledger:
        catalog_csv.import_text(ledger, CATALOG)
        stock.receive(ledger, [stock.ReceiveLine(s, n) for s, n in received.items()], None)
    return path


def sell(path: Path, device: str, lines: dict[str, int]) -> None:
    config = parse(f'[device]\nid = "{device}"\nstore = "store-042"\n[ledger]\npath = "{path}"\n')
    with Ledger.open(config) as ledger:
        sales.post_sale(
            ledger,
            [sales.SaleLine(s, Decimal(n)) for s, n in lines.items()],
            [Tender("cash", Decimal("500.00"))],
        )


def level(database: Path, sku: str) -> int | None:
    with sqlite3.connect(database) as db:
        row = db.execute("SELECT on_hand FROM stock_level WHERE sku = ?", (sku,)).fetchone()
    return row[0] if row else None


class Shop:
    """Broker, controller with its web view, two kiosks' publishers."""

    def __init__(self, folder: Path):
        if not Path(CHROMIUM).exists():
            pytest.fail(
                f"no Chromium at {CHROMIUM}: apt-get install chromium (./dev.sh test does)",
                pytrace=False,
            )
        self.folder = folder
        self.broker = Mosquitto(folder / "broker", ["controller", "till-01", "cart-01"])
        self.broker.start()
        self.port = free_port()
        self.database = folder / "controller.db"
        web = f'web_port = {self.port}\nweb_host = "127.0.0.1"\nstale_after_s = 60'
        self.config = self.broker.config("controller", controller=web)
        self.controller = Controller(self.config, str(self.database))
        with self.controller.db.atomic():
            rows = master.read_text(master.rules(self.config), MASTER, "master.csv")
            master.import_rows(rows, None, datetime.now(UTC), note="test master")
        auth.add_user(MANAGER, PASSWORD, "manager")
        auth.add_user("clerk", "clerk password 1", "attendant")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.controller.run, args=(self.stop,), daemon=True)
        self.thread.start()
        wait_until(
            lambda: self.controller.web is not None and self.controller.web.running,
            30,
            what="the web view to start",
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.ledgers = {
            "till-01": kiosk_ledger(folder / "till-01.db", "till-01", {"PEN": 100, "COFFEE": 5}),
            "cart-01": kiosk_ledger(folder / "cart-01.db", "cart-01", {"WATER": 50}),
        }
        self.publishers = [
            Publisher(
                self.broker.config(device, path), path, status_every=1.0, max_backoff=1.0
            ).start()
            for device, path in self.ledgers.items()
        ]
        self.wait_level("PEN", 100)
        self.wait_level("WATER", 50)

    def wait_level(self, sku: str, on_hand: int) -> None:
        wait_until(lambda: level(self.database, sku) == on_hand, 30, what=f"{sku} at {on_hand}")

    def close(self) -> None:
        for publisher in self.publishers:
            publisher.stop()
        self.stop.set()
        self.thread.join(15)
        self.broker.stop(kill=True)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    opened = Shop(tmp_path_factory.mktemp("web-shop"))
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def browser():
    shutil_rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser, shop):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    yield opened
    context.close()


def log_in(page, shop, user=MANAGER, password=PASSWORD, target="/stock") -> None:
    page.goto(shop.url + target)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def shutil_rmtree(folder: Path) -> None:
    for old in folder.glob("*.png") if folder.exists() else ():
        old.unlink()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_login_then_a_kiosk_sale_updates_the_stock_page_without_reload(page, shop):
    page.goto(shop.url + "/login")
    shot(page, "01-login")
    log_in(page, shop)
    expect(page.locator("h1")).to_contain_text("Stock")
    pen = page.locator('#stock-table tr[data-sku="PEN"] .on-hand')
    expect(pen).to_have_text("100")
    expect(page.locator("#live-state.on")).to_be_visible()  # the event stream is open
    page.evaluate("window.__same_page = 'yes'")
    sell(shop.ledgers["till-01"], "till-01", {"PEN": 3})  # the kiosk's publisher sends it
    expect(pen).to_have_text("97")
    assert page.evaluate("window.__same_page") == "yes"  # no reload
    assert level(shop.database, "PEN") == 97
    page.fill("input[name=q]", "coff")
    page.click("form.toolbar button")
    expect(page.locator("#stock-table tbody tr")).to_have_count(1)
    expect(page.locator('#stock-table tr[data-sku="COFFEE"]')).to_be_visible()
    page.fill("input[name=q]", "4001234000015")  # a barcode of WATER
    page.click("form.toolbar button")
    expect(page.locator('#stock-table tr[data-sku="WATER"] .on-hand')).to_have_text("50")
    page.goto(shop.url + "/stock")
    shot(page, "02-stock")


def test_an_alert_from_a_kiosk_is_shown_live_and_acknowledged_everywhere(page, shop):
    till_config = shop.broker.config("till-01", shop.ledgers["till-01"])
    cart_config = shop.broker.config("cart-01", shop.ledgers["cart-01"])
    till = KioskAlerts(till_config, listen=False).start()
    cart = KioskAlerts(cart_config, listen=True).start()  # a mobile cart's screen
    try:
        wait_until(lambda: till.connected.is_set() and cart.connected.is_set(), 20, what="links")
        log_in(page, shop, target="/alerts")
        expect(page.locator("h1")).to_have_text("Alerts")
        expect(page.locator("#live-state.on")).to_be_visible()
        with Ledger.open(till_config) as ledger:  # the customer presses "call staff"
            checkout = Checkout(ledger, MemoryPrinter(), MemoryDrawer())
            checkout.subscribe(lambda event: till.on_event(event, checkout))
            checkout.call_staff()
        row = page.locator("#open-alerts tr[data-alert^='till-01/']")
        expect(row).to_have_count(1)
        expect(row.locator(".kind")).to_have_text("Call staff")
        expect(page.locator("#alert-banner")).to_contain_text("till-01: Call staff")
        expect(page.locator("#alert-count")).to_have_text("1")
        page.wait_for_function("window.kioskLive.played >= 1")  # the chime played
        wait_until(lambda: len(cart.open_alerts()) == 1, 20, what="the cart to show it")
        assert "customer asks for help" in cart.banner_text(cart.open_alerts())
        shot(page, "03-alert")
        row.locator("button.ack").click()
        expect(row).to_have_count(0)
        expect(page.locator("#done-alerts tbody tr").first).to_contain_text("manager@web")
        expect(page.locator("#alert-banner")).to_be_hidden()
        wait_until(lambda: not cart.open_alerts(), 20, what="the cart to clear it")
        # The other way: the cart's staff acknowledge a printer alert; the page clears it.
        till.raise_alert("paper_out", "receipt printer paper out")
        paper = page.locator("#open-alerts tr.kind-paper_out")
        expect(paper).to_have_count(1)
        wait_until(lambda: len(cart.open_alerts()) == 1, 20, what="the cart to show it")
        cart.acknowledge_newest("C1")
        expect(paper).to_have_count(0)
        expect(page.locator("#done-alerts tbody tr").first).to_contain_text("C1@cart-01")
        shot(page, "04-alert-acknowledged")
    finally:
        till.stop()
        cart.stop()


def test_purchase_order_csv_of_low_stock_in_case_packs(page, shop):
    sell(shop.ledgers["till-01"], "till-01", {"COFFEE": 4})  # 1 left, selling: low
    shop.wait_level("COFFEE", 1)
    log_in(page, shop, target="/stock/low")
    expect(page.locator('#low-table tr[data-sku="COFFEE"]')).to_be_visible()
    shot(page, "05-low-stock")
    with page.expect_download() as download:
        page.click("#po-csv")
    text = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    coffee = next(r for r in rows if r["sku"] == "COFFEE")
    assert coffee["on_hand"] == "1"
    assert coffee["case_pack"] == "6"
    assert int(coffee["order_qty"]) % 6 == 0 and int(coffee["order_qty"]) >= 6
    assert coffee["cases"] == str(int(coffee["order_qty"]) // 6)
    assert Decimal(coffee["line_cost"]) == Decimal("4.10") * int(coffee["order_qty"])
    assert rows[-1]["sku"] == "TOTAL"


def test_a_manager_adjustment_is_applied_published_and_audited(page, shop):
    before = level(shop.database, "WATER")
    log_in(page, shop, target="/stock/item/WATER")
    page.fill("input[name=delta]", "-2")
    page.fill("input[name=reason]", "two bottles burst in storage")
    page.click("#adjust-form button")
    expect(page.locator("#on-hand")).to_have_text(str(before - 2))
    expect(page.locator("#adjustments")).to_contain_text("two bottles burst in storage")
    expect(page.locator("#per-kiosk")).to_contain_text("manager (web)")
    assert level(shop.database, "WATER") == before - 2
    retained = read_retained(shop, f"{ROOT}/stock/WATER")
    assert retained["on_hand"] == before - 2
    shot(page, "06-item-adjusted")


def read_retained(shop, topic: str) -> dict:
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set("controller", shop.broker.passwords["controller"])
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.connect("127.0.0.1", shop.broker.port)
    client.subscribe(topic, 1)
    client.loop_start()
    try:
        wait_until(lambda: got, 10, what=f"the retained {topic}")
    finally:
        client.disconnect()
        client.loop_stop()
    import json  # noqa: PLC0415

    return json.loads(got[-1])


def test_repeated_failed_logins_lock_the_user_out(page, shop):
    for _ in range(shop.config.controller.web_lockout_attempts):
        log_in(page, shop, user="clerk", password="wrong password")
        expect(page.locator(".error")).to_be_visible()
    expect(page.locator(".error")).to_contain_text("locked until")
    log_in(page, shop, user="clerk", password="clerk password 1")  # the right one: refused
    expect(page.locator(".error")).to_contain_text("locked until")
    shot(page, "07-locked-out")
    assert page.context.cookies() and not any(
        c["name"] == auth.SESSION_COOKIE for c in page.context.cookies()
    )


def test_state_changing_requests_without_the_csrf_token_are_refused(page, shop):
    log_in(page, shop)
    expect(page.locator("h1")).to_contain_text("Stock")
    before = level(shop.database, "PEN")
    status = page.evaluate(
        """async () => (await fetch('/stock/item/PEN/adjust', {method: 'POST',
            headers: {'Content-Type': 'application/x-www-form-urlencoded'},
            body: 'delta=50&reason=no+token'})).status"""
    )
    assert status == 403
    # A form on another site posting to the web view (the browser sends no cookie, no token).
    page.set_content(
        f'<form method="post" action="{shop.url}/stock/item/PEN/adjust">'
        '<input name="delta" value="50"><input name="reason" value="forged">'
        '<button id="go">go</button></form>'
    )
    with page.expect_response(lambda r: r.url.endswith("/adjust")) as answer:
        page.click("#go")
    assert answer.value.status == 403
    assert level(shop.database, "PEN") == before


def test_dead_letters_are_readable_and_retried(page, shop):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set("till-01", shop.broker.passwords["till-01"])
    client.connect("127.0.0.1", shop.broker.port)
    client.loop_start()
    poison = (
        b'{"v":1,"device":"till-01","id":"x1","kind":"fire!","text":"","ts":"2026-01-01T00:00:00Z"}'
    )
    client.publish(f"{ROOT}/kiosk/till-01/alert", poison, 1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    wait_until(
        lambda: store.DeadLetter.select().where(store.DeadLetter.error.contains("fire!")).exists(),
        20,
        what="the poison alert's dead letter",
    )
    log_in(page, shop, target="/dead-letters")
    row = page.locator("#dead-table tr", has_text="unknown alert kind")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(f"{ROOT}/kiosk/till-01/alert")
    shot(page, "08-dead-letters")
    row.locator("button", has_text="Retry").click()
    expect(page.locator(".notice")).to_have_text("sent again")
    wait_until(  # refused again: back as a new dead letter
        lambda: store.DeadLetter.select().where(store.DeadLetter.error.contains("fire!")).exists(),
        20,
        what="the retried alert to come back",
    )
    assert shop.controller.web.relay.dead >= 2


def test_kiosks_page_shows_health_and_a_silent_kiosk_in_red(page, shop):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set("controller", shop.broker.passwords["controller"])
    client.connect("127.0.0.1", shop.broker.port)
    client.loop_start()
    offline = topics.kiosk_status("till-09", False, 12, "paper_out", 40)
    client.publish(f"{ROOT}/kiosk/till-09/status", topics.encode(offline), 1, True)
    rolled = topics.kiosk_status("till-08", True, 0, "ok", 3) | topics.status_extras(
        "1.2.4", True, {"slot": "B", "other": "1.3.0", "version": "1.3.0",
                        "result": "rolled_back", "reason": "no selling screen within 300 s"}
    )  # fmt: skip
    sent = client.publish(f"{ROOT}/kiosk/till-08/status", topics.encode(rolled), 1, True)
    sent.wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    log_in(page, shop, target="/kiosks")
    red = page.locator('#kiosk-table tr[data-device="till-09"]')
    expect(red).to_have_class("red")
    expect(red).to_contain_text("OFFLINE")
    expect(red).to_contain_text("paper out")
    till = page.locator('#kiosk-table tr[data-device="till-01"]')
    expect(till).to_have_class("ok")
    expect(till).to_contain_text("synced")  # the status's clock extension (or "unsynced")
    expect(till).to_contain_text("0.1")  # the app version
    updated = page.locator('#kiosk-table tr[data-device="till-08"]')
    expect(updated.locator("td.app")).to_contain_text("1.2.4 slot B, other 1.3.0")
    expect(updated).to_contain_text("update to 1.3.0 rolled back: no selling screen within 300 s")
    shot(page, "09-kiosks")


def journals_at(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT COUNT(*) FROM journal_part").fetchone()[0]


def journals_made(paths) -> int:
    total = 0
    for path in paths:
        with sqlite3.connect(path) as db:
            total += db.execute("SELECT COUNT(*) FROM journal_outbox").fetchone()[0]
    return total


def test_kpis_equal_the_kiosks_own_z_reports(page, shop):
    """Sales at both kiosks and a return reach the KPI page through the journal; its
    revenue, sales and per-kiosk figures are the kiosks' Z reports'."""
    sell(shop.ledgers["till-01"], "till-01", {"PEN": 2, "COFFEE": 1})
    sell(shop.ledgers["cart-01"], "cart-01", {"WATER": 6})
    config = parse(f'[device]\nid = "till-01"\nstore = "store-042"\n[ledger]\npath = '
                   f'"{shop.ledgers["till-01"]}"\n')  # fmt: skip
    with Ledger.open(config) as ledger:
        receipt = sales.Txn.select().where(sales.Txn.kind == "sale").first().number
        sales.post_return(ledger, [sales.ReturnLine("PEN", Decimal(1))], "unwanted", None,
                          receipt=receipt)  # fmt: skip
    made = journals_made(shop.ledgers.values())
    wait_until(lambda: journals_at(shop.database) == made, 30, what=f"{made} journals")
    today = datetime.now().astimezone().date()
    z = {}
    for device, path in shop.ledgers.items():
        cfg = parse(f'[device]\nid = "{device}"\nstore = "store-042"\n[ledger]\npath = "{path}"\n')
        with Ledger.open(cfg):
            z[device] = reports.z_report(today)
    log_in(page, shop, target=f"/kpis?period=day&day={today.isoformat()}")
    expect(page.locator("h1")).to_contain_text("KPIs")
    revenue = sum(r.net_total for r in z.values())
    expect(page.locator("#kpi-revenue")).to_have_text(f"{revenue:,.2f} EUR")
    sold = sum(r.counts.get("sale", 0) for r in z.values())
    expect(page.locator("#kpi-transactions")).to_have_text(str(sold))
    for device, report in z.items():
        row = page.locator(f'#kpi-kiosks tr[data-kiosk="{device}"] .revenue')
        expect(row).to_have_text(f"{report.net_total:,.2f} EUR")
    expect(page.locator("#kpi-journal-missing")).to_have_text("0")
    expect(page.locator("#chart-daily canvas")).to_have_count(1)  # uPlot drew, offline
    expect(page.locator("#chart-kiosks canvas")).to_have_count(1)
    data = page.evaluate("fetch('/kpis/data?period=day').then(r => r.json())")
    assert Decimal(data["sales"]["revenue"]) == revenue
    returned = sum(r.returns for r in z.values())
    assert Decimal(data["sales"]["returns"]) == returned and returned < 0
    page.goto(shop.url + "/kpis?period=week")
    expect(page.locator("#kpi-revenue")).to_have_text(f"{revenue:,.2f} EUR")
    shot(page, "10-kpis")
    page.goto(shop.url + "/kpis?period=range&day=2026-12-09&last=2026-12-01")
    expect(page.locator(".error")).to_contain_text("before it starts")


def test_updates_page_shows_the_offer_and_each_kiosks_version(page, shop, tmp_path):
    from kiosk import __version__  # noqa: PLC0415
    from kiosk.update import offer  # noqa: PLC0415

    folder = shop.config.controller.updates_folder()
    offer.withdraw(folder)
    log_in(page, shop, target="/updates")
    expect(page.locator("#offer")).to_contain_text("No update is offered")
    expect(page.locator('#update-table tr[data-device="till-01"]')).to_contain_text(__version__)
    fake = tmp_path / "bundle.raucb"
    fake.write_bytes(b"x" * 4096)  # the page shows the offer; the CLI checks signatures
    offer.publish(folder, fake, "9.9.9", ("till-01",))
    page.reload()
    expect(page.locator("#offer")).to_contain_text("Offered: 9.9.9")
    expect(page.locator('#update-table tr[data-device="till-01"]')).to_contain_text("to get 9.9.9")
    expect(page.locator('#update-table tr[data-device="cart-01"]')).not_to_contain_text("to get")
    shot(page, "11-updates")
    offer.withdraw(folder)
