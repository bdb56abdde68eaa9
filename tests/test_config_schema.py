"""The config file's contract key by key, read from the schema itself (msgspec.inspect),
so a key added later is covered too: every value a bounded key refuses is refused naming
that key and the bound; whole numbers and seconds stay strict; money stays an exact
Decimal; what files could always write (spaces around text, "yes" for true, a port as
text in a site file) still reads the same."""

from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.config import Config, ConfigError, parse
from kiosk.provision.site import load_site
from kiosk.schema import WHITESPACE

INT64 = (-(2**63), 2**63 - 1)  # what a TOML integer can hold


def _keys() -> list[tuple[str, str, mi.Type]]:
    """(section, key, msgspec type) of every key of every section, `X | None` as X."""
    keys = []
    for section in mi.type_info(Config).fields:
        if not isinstance(section.type, mi.StructType):
            continue  # `source`: set by code, not a key of the file
        for key in section.type.fields:
            kind = key.type
            if isinstance(kind, mi.UnionType):
                (kind,) = [t for t in kind.types if not isinstance(t, mi.NoneType)]
            keys.append((section.name, key.name, kind))
    return keys


KEYS = _keys()
INTS = [k for k in KEYS if isinstance(k[2], mi.IntType)]
FLOATS = [k for k in KEYS if isinstance(k[2], mi.FloatType)]
PATTERNS = [k for k in KEYS if isinstance(k[2], mi.StrType) and k[2].pattern]
CHOICES = [k for k in KEYS if isinstance(k[2], mi.LiteralType)]
FLAGS = [k for k in KEYS if isinstance(k[2], mi.BoolType)]
MONEY = [k for k in KEYS if isinstance(k[2], mi.DecimalType)]


def toml_string(text: str) -> str:
    """`text` as a TOML basic string (control characters and DEL escaped)."""
    escaped = "".join(
        f"\\u{ord(c):04X}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\' else c for c in text
    )
    return f'"{escaped}"'


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text, "k.toml")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_schema_has_the_keys_the_tests_walk():
    assert len(INTS) >= 25 and len(FLOATS) >= 10 and len(PATTERNS) >= 10
    assert len(CHOICES) >= 7 and len(FLAGS) >= 11
    assert {(s, k) for s, k, _ in MONEY} == {
        ("money", "cash_rounding"),
        ("checkout", "cashier_discount_pct"),
        ("controller", "lead_time_days"),
        ("controller", "safety_days"),
        ("controller", "review_days"),
    }


@given(st.data())
def test_every_whole_number_out_of_bounds_is_refused_naming_the_key_and_the_bound(data):
    section, key, kind = data.draw(st.sampled_from(INTS))
    low = kind.ge if kind.ge is not None else kind.gt + 1
    high = kind.le if kind.le is not None else kind.lt - 1
    value = data.draw(st.integers(INT64[0], low - 1) | st.integers(high + 1, INT64[1]))
    message = refused(f"[{section}]\n{key} = {value}")
    bound = f"at least {low}" if value < low else f"at most {high}"  # > 0 is >= 1
    assert message == f"k.toml: {section}.{key}: must be {bound}"


def _number(bound: float | None) -> str:
    return str(bound).removesuffix(".0")


@given(st.data())
def test_every_seconds_value_out_of_bounds_is_refused_naming_the_key_and_the_bound(data):
    section, key, kind = data.draw(st.sampled_from(FLOATS))
    low = kind.ge if kind.ge is not None else kind.gt
    high = kind.le if kind.le is not None else kind.lt
    value = data.draw(
        st.floats(max_value=low, exclude_max=kind.ge is not None)
        | st.floats(min_value=high, exclude_min=True)
    )
    message = refused(f"[{section}]\n{key} = {value!r}")
    assert message.startswith(f"k.toml: {section}.{key}: must be ")
    if value == value:  # nan is out of every range; it names the first bound it misses
        if value <= high:
            bound = f"at least {_number(kind.ge)}" if kind.ge is not None else None
            bound = bound or f"more than {_number(kind.gt)}"
        else:
            bound = f"at most {_number(kind.le)}" if kind.le is not None else None
            bound = bound or f"less than {_number(kind.lt)}"
        assert message.endswith(f"must be {bound}")


@pytest.mark.parametrize(("section", "key", "kind"), INTS + FLOATS)
def test_numbers_stay_strict_text_true_and_fractions_are_refused(section, key, kind):
    noun = "a whole number" if isinstance(kind, mi.IntType) else "a number"
    low = kind.ge if kind.ge is not None else (kind.gt or 0) + 1
    text = refused(f'[{section}]\n{key} = "{int(low)}"')
    assert text == f"k.toml: {section}.{key}: must be {noun}, not text"
    flag = refused(f"[{section}]\n{key} = true")
    assert flag == f"k.toml: {section}.{key}: must be {noun}, not true/false"
    if isinstance(kind, mi.IntType):
        fraction = refused(f"[{section}]\n{key} = {float(low)!r}")
        assert fraction == f"k.toml: {section}.{key}: must be a whole number, not a decimal number"
    else:  # seconds may be written as a whole number, and are a float
        value = getattr(getattr(parse(f"[{section}]\n{key} = {int(low)}"), section), key)
        assert type(value) is float and value == int(low)


@given(st.data())
def test_every_text_that_misses_a_keys_pattern_is_refused_naming_it(data):
    section, key, kind = data.draw(st.sampled_from(PATTERNS))
    text = data.draw(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
    if re.search(kind.pattern, text.strip(WHITESPACE)):
        return
    message = refused(f"[{section}]\n{key} = {toml_string(text)}")
    assert message == f"k.toml: {section}.{key}: must match the pattern {kind.pattern!r}"


@given(st.data())
def test_every_choice_key_refuses_other_words_and_lists_its_choices(data):
    section, key, kind = data.draw(st.sampled_from(CHOICES))
    word = data.draw(st.text(st.characters(blacklist_categories=("Cs",)), max_size=20))
    if word in kind.values:
        return
    message = refused(f"[{section}]\n{key} = {toml_string(word)}")
    assert message.startswith(f"k.toml: {section}.{key}: must be ")
    assert message.endswith(f", not {word!r}")
    prefix, suffix = f"k.toml: {section}.{key}: must be ", f", not {word!r}"
    listed = message.removeprefix(prefix).removesuffix(suffix)
    assert sorted(re.findall(r"'([^']*)'", listed)) == sorted(kind.values)


@pytest.mark.parametrize(("section", "key", "kind"), FLAGS)
def test_flags_read_as_they_always_did(section, key, kind):
    for written, meant in [("true", True), ("false", False), ('"yes"', True), ('"OFF"', False),
                           ("1", True), ("0", False), ('"t"', True), ('"n"', False)]:  # fmt: skip
        assert getattr(getattr(parse(f"[{section}]\n{key} = {written}"), section), key) is meant
    for wrong in ('"maybe"', "2", "0.5", "[]", '" yes "'):
        assert refused(f"[{section}]\n{key} = {wrong}").startswith(f"k.toml: {section}.{key}: ")


@given(
    st.sampled_from([("controller", "lead_time_days"), ("controller", "review_days")]),
    st.decimals(min_value=0, max_value=100_000, places=2),
)
def test_a_float_where_a_decimal_is_wanted_is_read_exactly(where, amount):
    section, key = where
    written = float(amount)  # a TOML float, binary: 0.1 is not 1/10
    value = getattr(getattr(parse(f"[{section}]\n{key} = {written!r}"), section), key)
    assert type(value) is Decimal and value == Decimal(repr(written))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[money]\ncash_rounding = 0.1", ("money", "cash_rounding", Decimal("0.1"))),
        ("[money]\ncash_rounding = 5.0", ("money", "cash_rounding", Decimal("5.0"))),
        ("[money]\ncash_rounding = 1", ("money", "cash_rounding", Decimal(1))),
        ("[checkout]\ncashier_discount_pct = 12.5", ("checkout", "cashier_discount_pct",
                                                     Decimal("12.5"))),
        ("[money]\ntax_rates = { A = 8.1 }", ("money", "tax_rates", {"A": Decimal("0.081")})),
    ],
)  # fmt: skip
def test_money_from_toml_floats_is_an_exact_decimal(text, expected):
    section, key, value = expected
    got = getattr(getattr(parse(text), section), key)
    assert got == value
    assert all(type(v) is Decimal for v in (got.values() if isinstance(got, dict) else [got]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[money]\ncash_rounding = true", "money.cash_rounding: value must be a number, not true"),
        ("[money]\ncash_rounding = '1_000'", "money.cash_rounding: value '1_000' is not a number"),
        ("[money]\ncash_rounding = nan", "money.cash_rounding: value 'nan' is not a number"),
        ("[checkout]\ncashier_discount_pct = 100.5", "must be a percentage from 0 to 100"),
        ("[controller]\nsafety_days = -0.5", "controller.safety_days: value '-0.5' must be from 0"),
        ("[money]\ntax_rates = { A = 19, B = true }", "money.tax_rates.B: rate must be a number"),
        ("[money]\ntax_rates = {}", "money.tax_rates: needs at least one tax category"),
    ],
)
def test_bad_money_is_refused_naming_the_key(text, message):
    assert message in refused(text)


def test_outer_spaces_of_text_are_dropped_as_before():
    config = parse(
        '[device]\nid = " till-01 "\n[ledger]\npath = " /var/lib/kiosk/l.db "\n'
        '[money]\ntax_rates = { " A " = 19 }\n[checkout]\nreceipt_header = [" Shop "]\n'
    )
    assert config.device.id == "till-01"
    assert config.ledger.path == Path("/var/lib/kiosk/l.db")
    assert config.money.tax_rates == {"A": Decimal("0.19")}
    assert config.checkout.receipt_header == ["Shop"]
    assert refused('[device]\nrole = " staffed "').startswith("k.toml: device.role: must be")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("source = '/etc/kiosk/kiosk.toml'", "source"),  # set by load_file, not by the file
        ("[update]\nchannel = 'beta'", "update.channel"),
        ("[barcodes]\nvariable_measure = [{ prefix = '21', kind = 'price', x = 1 }]",
         "barcodes.variable_measure.0.x"),
    ],
)  # fmt: skip
def test_unknown_keys_are_refused_at_every_level(text, key):
    assert refused(text) == f"k.toml: {key}: unknown key"


def test_every_problem_is_counted_the_first_in_the_file_is_named():
    message = refused("[mqtt]\nport = 0\nkeepalive = 1\n[drawer]\npin = 99\n")
    assert message == "k.toml: mqtt.port: must be at least 1 (and 2 more problems)"
    assert refused("[device]\nid = 'x y'\n[nope]\n") == (
        "k.toml: device.id: must match the pattern '^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$' "
        "(and 1 more problem)"
    )


def test_settings_built_in_code_keep_their_checks_across_keys_and_stay_frozen():
    assert Config() == parse("")
    printer = Config().printer
    with pytest.raises(ValueError, match='kind = "usb" needs usb'):
        printer.replace(kind="usb")
    assert printer.replace(kind="usb", usb="04b8:0202").usb == "04b8:0202"
    with pytest.raises(AttributeError):
        printer.kind = "none"  # type: ignore[misc]
    assert isinstance(printer, msgspec.Struct)


def test_site_files_read_as_they_always_did(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text(
        '[site]\nstore = " store-042 "\n[broker]\nhost = "h"\nport = "1884"\nweb_port = 8081.0\n'
        'tls = "no"\n[wifi]\nssid = " Shop Net "\npsk = " change me please "\n'
    )
    loaded = load_site(site)
    assert loaded.site.store == "store-042" and loaded.broker.port == 1884
    assert loaded.broker.web_port == 8081 and loaded.broker.tls is False
    assert loaded.wifi.ssid == " Shop Net " and loaded.wifi.psk == " change me please "


def test_no_settings_module_loads_pydantic():
    """pydantic is in the test extra only (the rollback test runs an older release)."""
    code = (
        "import sys, kiosk.config, kiosk.provision.site, kiosk.update.settings, kiosk.cli.hw;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
