"""The card flow on screen: the kiosk app under Xvfb with `run --demo` driving the
simulated ZVT terminal through the real driver; real X clicks, the terminal's status
shown in the shop's strings, a decline that leaves the cart, an approval that sells,
the terminal's state on the diagnostics screen."""

from __future__ import annotations

import sqlite3

import pytest

from tests.ui_driver import KioskUI, Xvfb


@pytest.fixture(scope="module")
def xvfb():
    server = Xvfb()
    yield server
    server.stop()


@pytest.fixture
def ui(xvfb, tmp_path, request):
    config = tmp_path / "kiosk.toml"
    config.write_text('[payment]\nkind = "zvt"\nhost = "127.0.0.1"\n')
    strings = tmp_path / "de.toml"
    strings.write_text('terminal_insert_card = "Karte einstecken oder auflegen"\n')
    config.write_text(config.read_text() + f'[ui]\nstrings = "{strings}"\n')
    env = {
        "KIOSK_CONFIG": str(config),
        "KIOSK_DEMO_TERMINAL_STEP": "0.4",
        "KIOSK_DEMO_TERMINAL_PLAN": "decline",
    }
    app = KioskUI(xvfb, tmp_path, request.node.name, env=env)
    yield app
    app.stop()


def rows(ui, sql):
    with sqlite3.connect(ui.folder / "data" / "kiosk" / "demo-ledger.db") as db:
        return db.execute(sql).fetchall()


def test_card_payment_at_the_terminal_on_screen(ui):
    ui.scan("4006381333931")
    ui.wait(lambda s: s["snap"]["total"] == "1.49", "the pen")
    ui.click("pay_button")
    state = ui.wait(lambda s: s["screen"] == "pay", "the pay screen")
    assert "card_ref" not in state["widgets"]  # nobody types an approval code
    ui.click("card_button")
    ui.wait(lambda s: s["terminal"] == "Karte einstecken oder auflegen", "insert card")
    ui.screenshot("pay-terminal-insert-card")
    state = ui.wait(lambda s: "declined" in s["snap"]["message"].lower(), "the decline", 30)
    assert state["screen"] == "pay" and state["snap"]["total"] == "1.49"
    assert len(state["snap"]["lines"]) == 1
    ui.screenshot("pay-terminal-declined")
    ui.click("card_button")
    ui.wait(lambda s: s["terminal"] == "Enter your PIN on the card terminal", "the PIN")
    state = ui.wait(lambda s: s["screen"] == "receipt", "paid by card", 30)
    ui.click("print_button")
    ui.wait(lambda s: s["screen"] == "thanks", "the receipt")
    ((kind, amount, reference),) = rows(ui, "SELECT kind, amount, reference FROM tender")
    assert (kind, amount) == ("card", "1.49") and reference.startswith("T29001006 R0002")
    assert rows(ui, "SELECT kind, state FROM payment ORDER BY id") == [
        ("authorize", "declined"),
        ("authorize", "committed"),
    ]


def test_diagnostics_show_the_terminal(ui):
    ui.login("1234")
    ui.wait(lambda s: s["screen"] == "staff", "the staff menu")
    ui.click("diag_button")
    # the screen is refreshed every second: the terminal may still be registering
    state = ui.wait(lambda s: "registered, TID" in s["diagnostics"], "the terminal's line")
    assert "card terminal (simulated): zvt 127.0.0.1:" in state["diagnostics"]
    assert "registered, TID 29001006" in state["diagnostics"]  # registered at start
    ui.screenshot("diagnostics-terminal")


@pytest.fixture
def approving(xvfb, tmp_path, request):
    """The demo with the simulated terminal approving everything."""
    config = tmp_path / "kiosk.toml"
    config.write_text('[payment]\nkind = "zvt"\nhost = "127.0.0.1"\n')
    env = {"KIOSK_CONFIG": str(config), "KIOSK_DEMO_TERMINAL_STEP": "0.2"}
    app = KioskUI(xvfb, tmp_path, request.node.name, env=env)
    yield app
    app.stop()


def test_a_card_refund_on_screen_and_the_card_payments_view(approving):
    ui = approving
    ui.scan("4006381333931")
    ui.wait(lambda s: s["snap"]["total"] == "1.49", "the pen")
    ui.click("pay_button")
    ui.wait(lambda s: s["screen"] == "pay", "the pay screen")
    ui.click("card_button")
    state = ui.wait(lambda s: s["screen"] == "receipt", "paid by card", 30)
    receipt = state["snap"]["last_receipt"]
    ui.click("none_button")
    ui.wait(lambda s: s["screen"] == "attract", "attract")
    ui.login("5678")
    ui.wait(lambda s: s["screen"] == "staff", "the staff menu")
    ui.scan(f"RCP{receipt}")
    ui.wait(lambda s: s["screen"] == "returning" and s["snap"]["returning"]["receipt"], "return")
    ui.scan("4006381333931")
    ui.wait(lambda s: s["snap"]["returning"]["lines"], "the returned line")
    ui.click("finish_button")
    state = ui.wait(
        lambda s: s["screen"] == "staff" and "refund" in s["snap"]["message"], "done", 30
    )
    assert "1.49" in state["snap"]["message"]  # back to the card, not 1.50 in cash
    rows_ = rows(ui, "SELECT kind, state FROM payment ORDER BY id")
    assert rows_ == [("authorize", "committed"), ("reversal", "committed")]
    ((kind, amount, reference),) = rows(
        ui, "SELECT kind, amount, reference FROM tender WHERE amount < 0"
    )
    assert (kind, amount) == ("card", "-1.49") and reference.startswith("T29001006 R0002")
    ui.click("payments_button")
    state = ui.wait(lambda s: s["screen"] == "payments", "the card payments view")
    assert "ask_terminal_button" in state["widgets"] and "resolve_button" in state["widgets"]
    ui.wait(lambda s: "no unsettled" in s["snap"]["message"].lower(), "nothing unsettled")
    ui.screenshot("card-payments-view")
    ui.click("back_button")
    ui.wait(lambda s: s["screen"] == "staff", "back to the menu")
