"""Scanner keyboard layouts: any layout(variant) the machine's xkb-data has, decoded by
libxkbcommon from real evdev InputEvent objects.

The key strokes below are written down from the layouts themselves (which key of a
US-labelled keyboard a Swiss, Belgian, French or Dvorak user presses for each character),
not asked of xkbcommon, so a wrong keymap choice shows up as a wrong scan.
"""

from __future__ import annotations

import pytest
from evdev import InputEvent
from evdev import ecodes as e

from kiosk.config import ConfigError, ScannerConfig, parse
from kiosk.drivers import keymaps
from kiosk.drivers.scanner import GS, KeyDecoder, ScannerError, compile_keymap
from kiosk.ledger.barcodes import BarcodeParser

SHIFT, ALTGR, CTRL = e.KEY_LEFTSHIFT, e.KEY_RIGHTALT, e.KEY_LEFTCTRL
TOP_ROW = [e.KEY_1, e.KEY_2, e.KEY_3, e.KEY_4, e.KEY_5, e.KEY_6, e.KEY_7, e.KEY_8, e.KEY_9, e.KEY_0]
SCAN = "]C1" + "0109501101530003" + GS + "10ZAY-12" + GS + "21Q7"


def events(strokes, start=1_800_000_000.0):
    """Strokes (modifiers..., key) -> press and release InputEvents, modifiers held
    around the key the way a wedge scanner sends them, then Enter."""
    out, t = [], start
    for stroke in [*strokes, (e.KEY_ENTER,)]:
        *mods, key = stroke
        for code, value in [*((m, 1) for m in mods), (key, 1), (key, 0), *((m, 0) for m in mods)]:
            t += 0.002
            out.append(InputEvent(int(t), int(t % 1 * 1e6), e.EV_KEY, code, value))
            out.append(InputEvent(int(t), int(t % 1 * 1e6), e.EV_SYN, e.SYN_REPORT, 0))
    return out


def digits(text, shifted=False):
    return [(SHIFT, TOP_ROW[int(d) - 1]) if shifted else (TOP_ROW[int(d) - 1],) for d in text]


# What each layout's user presses for SCAN. Swiss German: Y and Z swapped, "-" right of
# ".", "]" on AltGr of the key right of U-umlaut. Belgian and French AZERTY: digits need
# Shift, A/Z/Q swapped with Q/W/A. Dvorak: "]" where US has "=", C on I, "-" on "'".
STROKES = {
    "ch": [
        (ALTGR, e.KEY_RIGHTBRACE), (SHIFT, e.KEY_C), *digits("1"),
        *digits("0109501101530003"), (CTRL, ALTGR, e.KEY_RIGHTBRACE),
        *digits("10"), (SHIFT, e.KEY_Y), (SHIFT, e.KEY_A), (SHIFT, e.KEY_Z), (e.KEY_SLASH,),
        *digits("12"), (CTRL, ALTGR, e.KEY_RIGHTBRACE),
        *digits("21"), (SHIFT, e.KEY_Q), *digits("7"),
    ],
    "be": [
        (ALTGR, e.KEY_RIGHTBRACE), (SHIFT, e.KEY_C), *digits("1", True),
        *digits("0109501101530003", True), (CTRL, ALTGR, e.KEY_RIGHTBRACE),
        *digits("10", True), (SHIFT, e.KEY_W), (SHIFT, e.KEY_Q), (SHIFT, e.KEY_Y),
        (e.KEY_EQUAL,), *digits("12", True), (CTRL, ALTGR, e.KEY_RIGHTBRACE),
        *digits("21", True), (SHIFT, e.KEY_A), *digits("7", True),
    ],
    "fr(azerty)": [
        (ALTGR, e.KEY_MINUS), (SHIFT, e.KEY_C), *digits("1", True),
        *digits("0109501101530003", True), (CTRL, ALTGR, e.KEY_MINUS),
        *digits("10", True), (SHIFT, e.KEY_W), (SHIFT, e.KEY_Q), (SHIFT, e.KEY_Y),
        (e.KEY_6,), *digits("12", True), (CTRL, ALTGR, e.KEY_MINUS),
        *digits("21", True), (SHIFT, e.KEY_A), *digits("7", True),
    ],
    "us(dvorak)": [
        (e.KEY_EQUAL,), (SHIFT, e.KEY_I), *digits("1"),
        *digits("0109501101530003"), (CTRL, e.KEY_EQUAL),
        *digits("10"), (SHIFT, e.KEY_SLASH), (SHIFT, e.KEY_A), (SHIFT, e.KEY_T),
        (e.KEY_APOSTROPHE,), *digits("12"), (CTRL, e.KEY_EQUAL),
        *digits("21"), (SHIFT, e.KEY_X), *digits("7"),
    ],
    "de(nodeadkeys)": [
        (ALTGR, e.KEY_9), (SHIFT, e.KEY_C), *digits("1"),
        *digits("0109501101530003"), (CTRL, ALTGR, e.KEY_9),
        *digits("10"), (SHIFT, e.KEY_Y), (SHIFT, e.KEY_A), (SHIFT, e.KEY_Z), (e.KEY_SLASH,),
        *digits("12"), (CTRL, ALTGR, e.KEY_9),
        *digits("21"), (SHIFT, e.KEY_Q), *digits("7"),
    ],
}  # fmt: skip


@pytest.mark.parametrize("keymap", sorted(STROKES))
def test_a_gs1_scan_decodes_in_its_layout_and_parses(keymap):
    config = parse(f'[scanner]\nkeymap = "{keymap}"\n').scanner  # through the config file
    scans = KeyDecoder(config).feed_all(events(STROKES[keymap]))
    assert scans == [SCAN]
    parsed = BarcodeParser().parse(scans[0])
    assert (parsed.gtin, parsed.batch, parsed.serial) == ("09501101530003", "ZAY-12", "Q7")


@pytest.mark.parametrize("keymap", ["ch", "be", "us(dvorak)"])
def test_the_same_strokes_in_the_us_layout_are_another_scan(keymap):
    scans = KeyDecoder(ScannerConfig()).feed_all(events(STROKES[keymap]))
    assert scans != [SCAN]


def test_a_variant_is_honoured_dead_keys_or_not():
    caret = events([(e.KEY_GRAVE,), (e.KEY_SPACE,), (e.KEY_1,)])  # "^" then space, then 1
    assert KeyDecoder(ScannerConfig(keymap="de(nodeadkeys)")).feed_all(caret) == ["^ 1"]
    assert KeyDecoder(ScannerConfig(keymap="de")).feed_all(caret) != ["^ 1"]


def test_the_old_names_still_work():
    for name, layout in [("us", "English (US)"), ("de", "German"), ("fr", "French")]:
        assert compile_keymap(name).layout_get_name(0) == layout
    assert compile_keymap("uk").layout_get_name(0) == "English (UK)"  # xkb calls it gb
    assert keymaps.check("uk") == ("gb", "")
    assert keymaps.check("de(nodeadkeys)") == ("de", "nodeadkeys")


@pytest.mark.parametrize(
    ("keymap", "message"),
    [
        ("zz", "keyboard layout 'zz' is not in xkb-data; "
               "`localectl list-x11-keymap-layouts` lists them"),
        ("dee", "keyboard layout 'dee' is not in xkb-data (closest: ee, de); "),
        ("de(bogus)", "layout 'de' has no variant 'bogus' in xkb-data; "
                      "`localectl list-x11-keymap-variants de` lists them"),
        ("de(nodedkeys)", "layout 'de' has no variant 'nodedkeys' in xkb-data "
                          "(closest: nodeadkeys"),
        ("DE", "keymap 'DE' is not a layout name like \"de\" or \"de(nodeadkeys)\""),
        ("de()", "keymap 'de()' is not a layout name"),
        ("de(nodeadkeys", "keymap 'de(nodeadkeys' is not a layout name"),
        ("../../etc", "keymap '../../etc' is not a layout name"),
        ("", "keymap '' is not a layout name"),
    ],
)  # fmt: skip
def test_a_made_up_layout_or_variant_is_refused_in_one_line(keymap, message):
    with pytest.raises(keymaps.KeymapError) as info:
        keymaps.check(keymap)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    with pytest.raises(ConfigError) as config_error:
        parse(f'[scanner]\nkeymap = "{keymap}"\n', "kiosk.toml")
    assert "scanner.keymap" in str(config_error.value) and message in str(config_error.value)
    assert "\n" not in str(config_error.value)


def test_the_decoder_refuses_a_layout_xkb_data_lacks_in_one_line():
    config = ScannerConfig(keymap="de(bogus)")  # built in code: the file check does not run
    with pytest.raises(ScannerError) as info:
        KeyDecoder(config)
    assert str(info.value) == (
        "[scanner] keymap: layout 'de' has no variant 'bogus' in xkb-data; "
        "`localectl list-x11-keymap-variants de` lists them"
    )


def test_xkb_data_from_xkb_config_root(tmp_path, monkeypatch):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "evdev.xml").write_text(
        "<xkbConfigRegistry><layoutList><layout><configItem><name>qq</name></configItem>"
        "<variantList><variant><configItem><name>v1</name></configItem></variant>"
        "</variantList></layout></layoutList></xkbConfigRegistry>"
    )
    monkeypatch.setenv("XKB_CONFIG_ROOT", str(tmp_path))
    assert keymaps.layouts() == {"qq": frozenset({"v1"})}
    assert keymaps.check("qq(v1)") == ("qq", "v1")
    with pytest.raises(keymaps.KeymapError, match="keyboard layout 'de' is not in xkb-data"):
        keymaps.check("de")
    monkeypatch.setenv("XKB_CONFIG_ROOT", str(tmp_path / "none"))
    with pytest.raises(keymaps.KeymapError) as info:
        keymaps.check("de")
    assert str(info.value) == (
        f"no keyboard layouts in {tmp_path / 'none'}/rules "
        "(install xkb-data, or set XKB_CONFIG_ROOT)"
    )
    (rules / "evdev.extras.xml").write_text("<xkbConfigRegistry><layoutList>")
    monkeypatch.setenv("XKB_CONFIG_ROOT", str(tmp_path))
    keymaps._registry.cache_clear()
    with pytest.raises(keymaps.KeymapError, match="cannot read xkb-data's .*evdev.extras.xml"):
        keymaps.check("qq")
    keymaps._registry.cache_clear()


def test_every_layout_in_xkb_data_compiles():
    """What the config accepts, libxkbcommon builds: every layout and variant listed,
    but for xkb-data's "custom" placeholder (a symbols file the user writes), which the
    decoder refuses in one line."""
    failed = []
    for layout, variants in sorted(keymaps.layouts().items()):
        for variant in ["", *sorted(variants)]:
            name = f"{layout}({variant})" if variant else layout
            try:
                compile_keymap(name)
            except ScannerError as exc:
                failed.append(str(exc))
    assert failed == [
        "[scanner] keymap 'custom': libxkbcommon cannot build it: "
        "xkb_keymap_new_from_names returned NULL"
    ]
