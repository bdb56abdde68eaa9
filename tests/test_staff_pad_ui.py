"""The quantity pad on screen (issue 15): the real app under Xvfb, driven with xdotool.

A count of 234 bottles is one scan and 2-3-4-OK on the pad; a case scan counts its
pack and the line says so; a line is chosen by a tap and corrected or removed; a blind
count shows no expected quantities; at a staffed till the same pad sets the chosen
line's quantity. Screenshots: artifacts/screens/count-pad.png, count-blind.png, till-pad.png.
"""

from __future__ import annotations

import time

import pytest

from tests.test_app_ui import ledger_rows
from tests.ui_driver import KioskUI, Xvfb

WATER = "4001234000015"
WATER_CASE = "14001234000012"
HIGHLIGHTER = "4006381333931"


@pytest.fixture(scope="module")
def xvfb():
    server = Xvfb()
    yield server
    server.stop()


def app_with(xvfb, tmp_path, name: str, config: str) -> KioskUI:
    path = tmp_path / "kiosk.toml"
    path.write_text(config)
    return KioskUI(xvfb, tmp_path, name, env={"KIOSK_CONFIG": str(path)})


def type_on_pad(ui: KioskUI, digits: str, ok: bool = True, mark: str = ".") -> None:
    ui.click("pad_key_clear")
    for key in digits:
        ui.click("pad_key_dot" if key == "." else f"pad_key_{key}")
    # what the pad holds, and what its entry label shows (with the language's mark)
    shown = digits.replace(".", mark)
    ui.wait(lambda s: s["pad"]["entry"] == digits and s["texts"]["pad_entry"] == shown, shown)
    if ok:
        ui.click("pad_key_ok")


def stock_line(state: dict, sku: str) -> dict:
    lines = state["snap"]["stock_lines"]["lines"]
    return next((li for li in lines if li["sku"] == sku), {})


def test_a_shelf_counted_on_the_pad(xvfb, tmp_path):
    ui = app_with(xvfb, tmp_path, "count-pad", "[checkout]\nblind_counts = false\n")
    try:
        ui.login("5678")
        ui.wait(lambda s: s["screen"] == "staff", "the staff menu")
        ui.click("count_button")
        ui.wait(lambda s: s["screen"] == "counting", "the count screen")
        ui.scan(WATER)
        state = ui.wait(lambda s: s["pad"]["target"] == "Still water 1.5 l", "the pad's line")
        assert state["snap"]["counted"] == {"WATER-15": 1}
        type_on_pad(ui, "234")
        state = ui.wait(lambda s: s["snap"]["counted"] == {"WATER-15": 234}, "234 counted")
        assert stock_line(state, "WATER-15")["difference"] == "-6"  # the demo holds 240
        assert state["pad"]["entry"] == ""  # ready for the next line
        ui.scan(WATER_CASE)  # a case of 6 adds its pack
        state = ui.wait(lambda s: s["snap"]["counted"].get("WATER-15") == 240, "a case")
        assert stock_line(state, "WATER-15")["cases"] == [{"pack": 6, "cases": 1}]
        assert "1 case of 6" in state["texts"]["stock_WATER-15"]  # the line says so
        assert "a case of 6" in state["snap"]["message"]
        ui.scan(HIGHLIGHTER)
        ui.wait(lambda s: s["pad"]["target"] == "Highlighter, yellow", "the highlighter")
        type_on_pad(ui, "9999999")  # past the bound: one line, nothing changes
        state = ui.wait(lambda s: "must be from 0 to 1,000,000" in s["snap"]["message"], "refusal")
        assert state["snap"]["counted"]["HL-YEL"] == 1
        type_on_pad(ui, "118", ok=False)
        time.sleep(0.3)  # the typed digits' texture is drawn on the next frame
        ui.screenshot("count-pad")  # 118 on the pad, not yet taken
        ui.click("pad_key_ok")
        ui.wait(lambda s: s["snap"]["counted"].get("HL-YEL") == 118, "118 highlighters")
        ui.click("stock_WATER-15")  # a tap chooses the line; the pad corrects it
        ui.wait(lambda s: s["pad"]["target"] == "Still water 1.5 l", "the water chosen")
        type_on_pad(ui, "238")
        ui.wait(lambda s: s["snap"]["counted"].get("WATER-15") == 238, "corrected")
        ui.click("stock_HL-YEL")
        ui.wait(lambda s: s["snap"]["stock_lines"]["selected"]["sku"] == "HL-YEL", "chosen")
        ui.click("remove_line_button")
        ui.wait(lambda s: s["snap"]["counted"] == {"WATER-15": 238}, "the line removed")
        ui.click("finish_button")
        ui.wait(lambda s: s["screen"] == "staff", "posted")
        rows = ledger_rows(ui, "SELECT sku, on_hand FROM stock_balance WHERE sku IN "
                               "('WATER-15', 'HL-YEL') ORDER BY sku")  # fmt: skip
        assert rows == [("HL-YEL", 120), ("WATER-15", 238)]
    finally:
        ui.stop()


def test_a_blind_count_shows_no_expected_quantity(xvfb, tmp_path):
    ui = app_with(xvfb, tmp_path, "count-blind", "[checkout]\nblind_counts = true\n")
    try:
        ui.login("5678")
        ui.wait(lambda s: s["screen"] == "staff", "the staff menu")
        ui.click("count_button")
        ui.scan(WATER)
        ui.wait(lambda s: s["pad"]["target"] == "Still water 1.5 l", "the pad's line")
        type_on_pad(ui, "17")
        state = ui.wait(lambda s: s["snap"]["counted"] == {"WATER-15": 17}, "17 counted")
        assert state["snap"]["stock_lines"]["blind"] is True
        assert "expected" not in stock_line(state, "WATER-15")
        assert "240" not in str(state["snap"]) and "expected" not in state["snap"]["message"]
        ui.screenshot("count-blind")
        ui.click("back_button")
        ui.wait(lambda s: s["screen"] == "staff", "the staff menu")
        ui.click("receiving_button")
        ui.wait(lambda s: s["screen"] == "receiving", "receiving")
        ui.scan(WATER_CASE)
        state = ui.wait(lambda s: s["snap"]["received"] == {"WATER-15": 6}, "a case received")
        assert "1 case of 6" in state["texts"]["stock_WATER-15"]
        type_on_pad(ui, "24")  # four cases came, not one
        ui.wait(lambda s: s["snap"]["received"] == {"WATER-15": 24}, "24 received")
        ui.screenshot("receiving-pad")
        ui.click("finish_button")
        ui.wait(lambda s: s["screen"] == "staff", "posted")
        assert ledger_rows(ui, "SELECT on_hand FROM stock_balance WHERE sku = 'WATER-15'") == [
            (264,)
        ]
    finally:
        ui.stop()


def test_the_pad_at_a_staffed_till(xvfb, tmp_path):
    config = '[device]\nrole = "staffed"\n[ui]\nlanguage = "de"\n'  # "," is the mark
    ui = app_with(xvfb, tmp_path, "till-pad", config)
    try:
        ui.login("5678")
        ui.wait(lambda s: s["screen"] == "cart" and s["snap"]["staff"], "the till")
        state = ui.wait(lambda s: s["pad"]["target"], "the pad: the next scan")
        assert state["texts"]["pad_key_dot"] == ","
        type_on_pad(ui, "3")  # an empty cart: the next scan counts 3 times
        ui.wait(lambda s: "Next scan counts 3 times" in s["snap"]["message"], "a multiplier")
        ui.scan(HIGHLIGHTER)
        ui.wait(lambda s: [li["qty"] for li in s["snap"]["lines"]] == ["3"], "3 highlighters")
        ui.scan(WATER)
        ui.wait(lambda s: s["pad"]["target"] == "Still water 1.5 l", "the last line")
        type_on_pad(ui, "12")
        ui.wait(lambda s: [li["qty"] for li in s["snap"]["lines"]] == ["3", "12"], "12 waters")
        ui.click("line_1")
        ui.wait(lambda s: s["pad"]["target"] == "Highlighter, yellow", "line 1 chosen")
        type_on_pad(ui, "5")
        state = ui.wait(lambda s: s["snap"]["lines"][0]["qty"] == "5", "5 highlighters")
        assert state["snap"]["total"] == "16.93"  # 5 x 1.49 + 12 x 0.79
        ui.scan("2800123005320")  # 0.532 kg of bananas: the pad takes kilograms
        ui.wait(lambda s: s["pad"]["target"] == "Bananas", "the bananas")
        type_on_pad(ui, "1.25", mark=",")
        state = ui.wait(lambda s: s["snap"]["lines"][-1]["qty"] == "1.25", "1.25 kg")
        assert state["snap"]["lines"][-1]["unit"] == "kg"
        ui.click("line_1")
        ui.wait(lambda s: s["pad"]["target"] == "Highlighter, yellow", "line 1 again")
        type_on_pad(ui, "7", ok=False)
        time.sleep(0.3)  # the typed digit's texture is drawn on the next frame
        ui.screenshot("till-pad")
    finally:
        ui.stop()
