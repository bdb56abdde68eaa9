"""The kiosk app for real: Kivy under Xvfb, driven with xdotool clicks and keys.

Assertions are on the app's state (the checkout snapshot it exports) and on the
ledger; screenshots of every screen go to artifacts/screens for people to look at."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image, ImageGrab, ImageOps, ImageStat

from tests.ui_driver import KioskUI, Xvfb


@pytest.fixture(scope="module")
def xvfb():
    server = Xvfb()
    yield server
    server.stop()


@pytest.fixture
def ui(xvfb, tmp_path, request):
    app = KioskUI(xvfb, tmp_path, request.node.name)
    yield app
    app.stop()


def ledger_rows(ui, sql):
    path = ui.folder / "data" / "kiosk" / "demo-ledger.db"
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def test_cash_sale_with_every_customer_screen(ui):
    ui.screenshot("attract")
    ui.scan("4006381333931")
    state = ui.wait(lambda s: s["screen"] == "cart" and s["snap"]["total"] == "1.49", "the cart")
    ui.click("sheet_1")  # tap the 6-pack on the demo sheet
    ui.wait(lambda s: len(s["snap"]["lines"]) == 2, "two lines")
    ui.screenshot("cart")
    ui.click("lookup_button")
    ui.wait(lambda s: s["screen"] == "lookup", "lookup")
    ui.type("bag")
    ui.wait(lambda s: "result_0" in s["widgets"], "lookup results")
    ui.screenshot("lookup")
    ui.click("result_0")
    state = ui.wait(lambda s: len(s["snap"]["lines"]) == 3, "the bag added")
    assert state["snap"]["total"] == "6.43"  # 1.49 + 4.74 + 0.20
    ui.click("pay_button")
    ui.wait(lambda s: s["screen"] == "pay", "the pay screen")
    ui.screenshot("pay")
    ui.click("cash_20")
    state = ui.wait(lambda s: s["screen"] == "receipt", "the receipt screen")
    assert state["snap"]["change"] == "13.55"  # 6.43 -> 6.45 in cash
    ui.screenshot("receipt-choice")
    ui.click("print_button")
    state = ui.wait(lambda s: s["screen"] == "thanks" and s["preview"], "the receipt preview")
    ui.screenshot("thanks")
    receipt = state["snap"]["last_receipt"]
    image = Image.open(state["preview"])
    assert f"RCP{receipt}" in {r.text for r in zxingcpp.read_barcodes(image)}
    ui.scan("4006381333931")  # the next customer: the thank-you makes way
    ui.wait(lambda s: s["screen"] == "cart" and s["snap"]["total"] == "1.49", "a new sale")
    rows = ledger_rows(ui, "SELECT kind, total FROM txn WHERE kind = 'sale'")
    assert rows == [("sale", "6.43")]


def test_card_sale(ui):
    ui.scan("2800123005320")  # 0.532 kg of bananas from the scale
    ui.wait(lambda s: s["snap"]["total"] == "1.06", "the bananas")
    ui.click("pay_button")
    ui.wait(lambda s: s["screen"] == "pay", "the pay screen")
    ui.click("card_ref")
    ui.type("AUTH-42", enter=False)
    ui.click("card_button")
    ui.wait(lambda s: s["screen"] == "receipt", "paid by card")
    ui.click("none_button")
    ui.wait(lambda s: s["screen"] == "attract", "attract again")
    assert ledger_rows(ui, "SELECT kind, amount, reference FROM tender") == [
        ("card", "1.06", "AUTH-42")
    ]


def test_wrong_pin_then_staff_menu_and_diagnostics(ui):
    ui.login("0000")
    state = ui.wait(lambda s: s["pin_message"], "the refusal")
    assert "Wrong PIN" in state["pin_message"] and state["screen"] == "pin"
    ui.screenshot("pin-wrong")
    ui.enter_pin("1234")
    state = ui.wait(lambda s: s["screen"] == "staff", "the staff menu")
    assert state["snap"]["staff"] == "S1"
    ui.screenshot("staff-menu")
    ui.click("diag_button")
    ui.wait(lambda s: s["screen"] == "diagnostics", "diagnostics")
    ui.screenshot("diagnostics")
    ui.click("back_button")
    ui.wait(lambda s: s["screen"] == "staff", "back to the menu")


def test_return_by_receipt_scan(ui):
    ui.scan("4006381333931")
    ui.scan("4006381333931")
    ui.wait(lambda s: s["snap"]["total"] == "2.98", "two highlighters")
    ui.click("pay_button")
    ui.click("cash_5")
    state = ui.wait(lambda s: s["screen"] == "receipt", "paid")
    receipt = state["snap"]["last_receipt"]
    ui.click("none_button")
    ui.wait(lambda s: s["screen"] == "attract", "attract")
    ui.login("5678")
    ui.wait(lambda s: s["screen"] == "staff", "the staff menu")
    ui.scan(f"RCP{receipt}")
    ui.wait(lambda s: s["screen"] == "returning" and s["snap"]["returning"]["receipt"], "return")
    ui.scan("4006381333931")
    ui.wait(lambda s: s["snap"]["returning"]["lines"], "the returned line")
    ui.screenshot("returning")
    ui.click("finish_button")
    state = ui.wait(lambda s: s["screen"] == "staff" and "refund" in s["snap"]["message"], "done")
    assert "1.50" in state["snap"]["message"]  # 1.49 refunded in cash, rounded
    assert ledger_rows(ui, "SELECT total FROM txn WHERE kind = 'return'") == [("-1.49",)]


def test_cycle_count_and_the_other_staff_screens(ui):
    ui.login("5678")
    ui.wait(lambda s: s["screen"] == "staff", "the staff menu")
    ui.click("count_button")
    ui.wait(lambda s: s["screen"] == "counting", "counting")
    ui.scan("4006381333931")
    ui.scan("14001234000012")
    ui.wait(lambda s: s["snap"]["counted"] == {"HL-YEL": 1, "WATER-15": 6}, "two counted")
    ui.screenshot("counting")
    ui.click("finish_button")
    ui.wait(lambda s: s["screen"] == "staff", "posted")
    assert ledger_rows(ui, "SELECT on_hand FROM stock_balance WHERE sku = 'HL-YEL'") == [(1,)]
    ui.click("receiving_button")
    ui.wait(lambda s: s["screen"] == "receiving", "receiving")
    ui.screenshot("receiving")
    ui.click("back_button")
    ui.click("kit_button")
    ui.wait(lambda s: s["screen"] == "text", "the kit prompt")
    ui.type("REPAIR-KIT")
    ui.wait(lambda s: s["screen"] == "kit", "kit assembly")
    ui.screenshot("kit")
    ui.click("back_button")
    ui.click("logout_button")
    ui.wait(lambda s: s["screen"] == "attract" and s["snap"]["staff"] is None, "logged out")
    ui.click("help_button")
    ui.wait(lambda s: s["screen"] == "help", "help")
    ui.screenshot("help")


# Runs the app with its data folder on a 16 MiB tmpfs of its own (a private mount
# namespace), fills that disk when the test asks, and frees it again.
SMALL_DISK = """
mkdir -p "$XDG_DATA_HOME" && mount -t tmpfs -o size=16m tmpfs "$XDG_DATA_HOME" || exit 90
"$@" &
app=$!
keep() { cp "$XDG_DATA_HOME"/kiosk/demo-ledger.db* "$KIOSK_UI_STATE"/; }
trap 'kill $app; wait $app; keep; exit 0' TERM
step() { while [ ! -e "$KIOSK_UI_STATE/$1" ]; do kill -0 $app || exit 0; sleep 0.1; done; }
step fill-disk
dd if=/dev/zero of="$XDG_DATA_HOME/fill" bs=4k 2>/dev/null
touch "$KIOSK_UI_STATE/disk-full"
step free-disk
rm "$XDG_DATA_HOME/fill"
touch "$KIOSK_UI_STATE/disk-free"
wait $app
"""


def _step(ui, ask: str, done: str) -> None:
    (ui.state_dir / ask).touch()
    ui.wait(lambda s: (ui.state_dir / done).exists(), done)


def test_a_full_disk_keeps_the_sale_and_tells_staff(xvfb, tmp_path):
    ui = KioskUI(xvfb, tmp_path, "full-disk", wrap=["unshare", "-rm", "sh", "-c", SMALL_DISK, "sh"])
    try:
        ui.scan("4006381333931")
        ui.wait(lambda s: s["snap"]["total"] == "1.49", "the cart")
        _step(ui, "fill-disk", "disk-full")
        ui.click("pay_button")
        ui.wait(lambda s: s["screen"] == "pay", "the pay screen")
        ui.click("cash_5")
        state = ui.wait(lambda s: s["snap"]["storage_full"], "the full disk noticed")
        assert state["screen"] == "pay" and len(state["snap"]["lines"]) == 1
        assert "storage is full" in state["snap"]["message"]
        state = ui.wait(lambda s: s["alert"].startswith("Storage full"), "the staff banner")
        assert state["snap"]["due"] == "0"  # the 5.00 covers it: nothing more to pay
        ui.screenshot("full-disk")
        _step(ui, "free-disk", "disk-free")
        ui.click("cash_5")  # pressed again: the sale is recorded, 5.00 taken once
        state = ui.wait(lambda s: s["screen"] == "receipt", "the receipt screen")
        assert state["snap"]["change"] == "3.50" and not state["snap"]["storage_full"]
    finally:
        ui.stop()
    with sqlite3.connect(ui.state_dir / "demo-ledger.db") as db:  # copied off the tmpfs
        rows = db.execute("SELECT kind, total FROM txn WHERE kind = 'sale'").fetchall()
        tenders = db.execute("SELECT kind, amount FROM tender").fetchall()
    assert rows == [("sale", "1.49")] and tenders == [("cash", "5")]


def test_high_contrast_and_translated_strings(xvfb, tmp_path):
    strings = tmp_path / "strings.toml"
    strings.write_text(
        'attract_title = "Scannen Sie einen Artikel"\ncall_staff = "Personal rufen"\n'
    )
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[ui]\nhigh_contrast = true\nstrings = "{strings}"\n')
    ui = KioskUI(xvfb, tmp_path, "high-contrast", env={"KIOSK_CONFIG": str(config)})
    try:
        shot = ui.screenshot("attract-high-contrast-de")
        image = Image.open(shot).convert("RGB")
        assert image.getpixel((5, 5)) == (0, 0, 0)  # black background
        widgets = ui.state()["widgets"]
        x, y = widgets["help_button"]
        assert image.getpixel((int(x) - 150, int(y))) == (255, 255, 0)  # yellow button
        # The translations are what the screen shows, read back off the X display by
        # OCR (not the app's own screenshot path): the title and the help button.
        screen = ImageGrab.grab(xdisplay=xvfb.display)
        assert read_text(screen, widgets["headline"], 400) == "Scannen Sie einen Artikel"
        assert read_text(screen, widgets["help_button"], 190) == "Personal rufen"
        assert read_text(screen, widgets["lookup_button"], 190) == "Look up item"  # untranslated
    finally:
        ui.stop()


def read_text(image: Image.Image, centre, half_width: int, half_height: int = 28) -> str:
    """One line of text around a widget's centre, by Tesseract OCR (dark text on a light
    background works best, so light text is inverted first)."""
    if shutil.which("tesseract") is None:
        pytest.fail("tesseract is not installed: apt-get install tesseract-ocr")
    x, y = int(centre[0]), int(centre[1])
    part = ImageOps.grayscale(
        image.crop((x - half_width, y - half_height, x + half_width, y + half_height))
    )
    if ImageStat.Stat(part).mean[0] < 128:
        part = ImageOps.invert(part)
    part = part.resize((part.width * 2, part.height * 2)).point(lambda v: 255 if v > 140 else 0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "line.png"
        part.save(path)
        done = subprocess.run(["tesseract", str(path), "-", "--psm", "7"],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    return done.stdout.strip()


def test_ready_comes_only_once_the_selling_screen_is_drawn(xvfb, tmp_path):
    """systemd's READY=1 means the kiosk can sell: the selling screen is on the display.
    The test's notify socket stops the app (SIGSTOP, by the sender's pid from the
    socket's credentials) the moment READY arrives, grabs the X display, and reads the
    attract screen's title and help button off it."""
    short = Path("/tmp") / f"kr{os.getpid()}"  # AF_UNIX paths are short
    short.mkdir(exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(short / "notify.sock"))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.settimeout(0.2)
    seen: dict = {}

    def receive():
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "frame" not in seen:
            try:
                data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except TimeoutError:
                continue
            if not data.startswith(b"READY=1"):
                continue
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    seen["pid"] = struct.unpack("iII", payload[:12])[0]
            os.kill(seen["pid"], signal.SIGSTOP)  # nothing drawn from here on
            try:
                seen["frame"] = ImageGrab.grab(xdisplay=xvfb.display)
            finally:
                os.kill(seen["pid"], signal.SIGCONT)

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    ui = KioskUI(xvfb, tmp_path, "ready", env={"NOTIFY_SOCKET": str(short / "notify.sock")})
    try:
        receiver.join(60)
        assert "frame" in seen, "no READY=1 from the app"
        assert seen["pid"] == ui.process.pid
        widgets = ui.state()["widgets"]
        frame = seen["frame"]
        frame.save(tmp_path / "at-ready.png")
        assert read_text(frame, widgets["headline"], 400) == "Scan an item to start"
        assert read_text(frame, widgets["help_button"], 190) == "Call staff"
    finally:
        ui.stop()
        sock.close()
        shutil.rmtree(short, ignore_errors=True)


def test_demo_starts_a_local_broker_and_controller(tmp_path):
    """Where mosquitto exists, the demo's sales reach a real shop controller."""
    from kiosk.config import parse
    from kiosk.demo.seed import seed
    from kiosk.demo.services import DemoServices
    from kiosk.ledger import sales
    from kiosk.ledger.core import Ledger
    from kiosk.ledger.money import Tender
    from tests.mqtt_env import wait_until

    config = parse(f'[ledger]\npath = "{tmp_path / "ledger.db"}"\n')
    with Ledger.open(config) as ledger:
        seed(ledger, lambda _: None)
        sales.post_sale(ledger, [sales.SaleLine("HL-YEL")], [Tender("cash", "2.00")])
        services = DemoServices(config, ledger.path, tmp_path / "shop").start("off", "on")
        try:
            assert services.note.startswith("on (local broker 127.0.0.1:")
            wait_until(lambda: services.publisher.store.depth() == 0, 30, what="drained")
            db = tmp_path / "shop" / "controller.db"

            def level():
                # The file appears before the controller has made its tables.
                try:
                    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
                        row = con.execute("SELECT on_hand FROM stock_level WHERE sku = 'HL-YEL'")
                        return (row.fetchone() or [None])[0]
                except sqlite3.OperationalError:
                    return None

            wait_until(lambda: level() == 119, 30, what="the controller's level")
        finally:
            services.stop()
