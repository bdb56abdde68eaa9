"""Regenerate the scanner event files NAME.xkbcommon.json: what a keyboard-wedge
scanner set to a given layout would send, key by key (EV_MSC scan code, EV_KEY,
EV_SYN), as evdev reports it. They are generated, not recorded from a real scanner:
the key for each character comes from libxkbcommon's own layout tables (the
xkbcommon binding), hence the name. Run: .venv/bin/python tests/data/make_scanner_events.py"""

import json
from pathlib import Path

from evdev import ecodes
from xkbcommon import xkb

HERE = Path(__file__).parent
SHIFT, CTRL, CAPS = ecodes.KEY_LEFTSHIFT, ecodes.KEY_LEFTCTRL, ecodes.KEY_CAPSLOCK


ALTGR = ecodes.KEY_RIGHTALT


def reverse_map(layout: str) -> dict[str, tuple[int, tuple[int, ...]]]:
    """char -> (evdev key, modifiers) for a layout, from xkb itself."""
    ctx = xkb.Context()
    table: dict[str, tuple[int, tuple[int, ...]]] = {}
    for mods in ((), (SHIFT,), (ALTGR,)):
        state = ctx.keymap_new_from_names(layout=layout).state_new()
        for mod in mods:
            state.update_key(mod + 8, xkb.XKB_KEY_DOWN)
        for code in range(1, 120):
            text = state.key_get_string(code + 8)
            if text and text.isprintable() and text not in table:
                table[text] = (code, mods)
    return table


class Recorder:
    def __init__(self):
        self.t = 1_795_400_000.0
        self.events = []

    def key(self, code: int, value: int) -> None:
        self.t += 0.004  # scanners type fast: ~4 ms a key event
        sec, usec = int(self.t), int((self.t % 1) * 1_000_000)
        self.events += [
            [sec, usec, ecodes.EV_MSC, ecodes.MSC_SCAN, 0x70000 + code],
            [sec, usec, ecodes.EV_KEY, code, value],
            [sec, usec, ecodes.EV_SYN, ecodes.SYN_REPORT, 0],
        ]

    def tap(self, code: int, *mods: int) -> None:
        for mod in mods:
            self.key(mod, 1)
        self.key(code, 1)
        self.key(code, 0)
        for mod in reversed(mods):
            self.key(mod, 0)

    def type(self, text: str, layout: str) -> None:
        table = reverse_map(layout)
        for char in text:
            if char == "\x1d":  # FNC1: Ctrl+] in the scanner's US key positions
                self.tap(ecodes.KEY_RIGHTBRACE, CTRL)
                continue
            code, mods = table[char]
            self.tap(code, *mods)


def save(name: str, recorder: Recorder, expect: list[str], keymap: str, note: str) -> None:
    data = {"note": note, "keymap": keymap, "expect": expect, "events": recorder.events}
    (HERE / f"{name}.xkbcommon.json").write_text(json.dumps(data, indent=0) + "\n")


def main() -> None:
    r = Recorder()
    r.type("4006381333931", "us")
    r.tap(ecodes.KEY_ENTER)
    r.type("SKUPEN-01", "us")
    r.tap(ecodes.KEY_ENTER)
    save("us_ean13", r, ["4006381333931", "SKUPEN-01"], "us", "US scanner: EAN-13, SKU label")

    r = Recorder()
    r.type("SKUZY-7", "de")  # Y and Z swap places on a German keyboard, so does "-"
    r.tap(ecodes.KEY_ENTER)
    r.type("RCPtill-01-000042", "de")
    r.tap(ecodes.KEY_ENTER)
    save(
        "de_layout",
        r,
        ["SKUZY-7", "RCPtill-01-000042"],
        "de",
        "German-layout scanner: decoded with the us map it would read SKUYZß7",
    )

    r = Recorder()
    r.tap(ecodes.KEY_ENTER)  # this scanner's preamble is an Enter
    r.type("4006381333931", "us")
    r.tap(ecodes.KEY_ENTER)
    r.tap(ecodes.KEY_ENTER)
    r.type("96385074", "us")
    r.tap(ecodes.KEY_ENTER)
    save("enter_first", r, ["4006381333931", "96385074"], "us", "Enter before every scan")

    r = Recorder()
    r.type("]C10109501101530003\x1d17261231\x1d10ABC123", "us")
    r.tap(ecodes.KEY_ENTER)
    save(
        "gs1_fnc1",
        r,
        ["]C10109501101530003\x1d17261231\x1d10ABC123"],
        "us",
        "GS1-128 with AIM identifier; FNC1 sent as Ctrl+] (ASCII 29)",
    )

    r = Recorder()
    r.tap(CAPS)
    for char in "sku":  # caps lock on: unshifted letters come out upper case
        r.tap(ecodes.ecodes[f"KEY_{char.upper()}"])
    r.tap(CAPS)
    r.type("pen-01", "us")
    r.tap(ecodes.KEY_ENTER)
    save("caps_lock", r, ["SKUpen-01"], "us", "caps lock toggled by the scanner")

    r = Recorder()
    r.type("]E04006381333931", "fr")
    r.tap(ecodes.KEY_ENTER)
    save(
        "fr_layout",
        r,
        ["]E04006381333931"],
        "fr",
        "French AZERTY scanner: digits need Shift; with the us map it reads garbage",
    )


if __name__ == "__main__":
    main()
