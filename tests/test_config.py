from decimal import Decimal
from pathlib import Path

import pytest

from kiosk.config import Config, ConfigError, load, load_file, parse


def test_defaults_need_no_file(monkeypatch, tmp_path):
    monkeypatch.delenv("KIOSK_CONFIG", raising=False)
    monkeypatch.setattr("kiosk.config.SYSTEM_CONFIG", tmp_path / "absent.toml")
    config = load()
    assert config.device.role == "self-checkout"
    assert config.money.cash_rounding == Decimal("0.05")
    assert config.money.tax_rates["A"] == Decimal("0.19")
    assert config.topic_root == "shop/demo-store"
    assert config.source is None


def test_full_file_is_typed():
    config = parse(
        """
[device]
id = "till-01"
store = "store-042"
role = "staffed"
[ledger]
path = "/var/lib/kiosk/ledger.db"
synchronous = "normal"
[mqtt]
host = "10.0.0.5"
port = 8883
username = "till-01"
password_file = "/etc/kiosk/mqtt.pass"
tls = true
[scanner]
match = "0c2e:0b61"
keymap = "de"
[printer]
kind = "network"
host = "192.0.2.10"
[drawer]
kind = "gpio"
pin = 17
pulse_ms = 120
[money]
currency = "CHF"
prices_include_tax = false
cash_rounding = 0.05
tax_rates = { N = "8.1%", R = "2.6", Z = 0 }
[barcodes]
variable_measure = [{ prefix = "23", kind = "weight", item_digits = 4 }]
"""
    )
    assert config.ledger.path == Path("/var/lib/kiosk/ledger.db")
    assert config.mqtt.port == 8883 and config.mqtt.tls
    assert config.money.cash_rounding == Decimal("0.05")  # a TOML float, kept exact
    assert config.money.tax_rates == {
        "N": Decimal("0.081"),
        "R": Decimal("0.026"),
        "Z": Decimal("0"),
    }
    layout = config.barcodes.variable_measure[0]
    assert layout.value_digits == 6 and layout.value_decimals == 3
    assert config.topic_root == "shop/store-042"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[device]\nid = 'x'\ncolour = 'red'", "<t>: device.colour: unknown key"),
        ("[mqtt]\nport = 'high'", "<t>: mqtt.port: must be a whole number, not text"),
        ("[mqtt]\nport = 70000", "<t>: mqtt.port: must be at most 65535"),
        ("[money]\ncash_rounding = '0.001'", "finer than EUR's minor unit"),
        ("[money]\ncash_rounding = 'lots'", "money.cash_rounding: value 'lots' is not a number"),
        ("[money]\ntax_rates = { A = '150%' }", "tax_rates.A: rate '150' must be from 0 to 100"),
        (
            "[device]\nrole = 'robot'",
            "device.role: must be 'self-checkout', 'staffed' or 'mobile-cart', not 'robot'",
        ),
        ("[printer]\nkind = 'usb'", 'kind = "usb" needs usb'),
        ("[drawer]\npin = 99", "drawer.pin"),
        ("[nonsense]\na = 1", "<t>: nonsense: unknown key"),
        ("this is = = not toml", "<t>: not valid TOML"),
        ("[mqtt]\nroot = 'shop/#'", "mqtt.root: must be a topic prefix"),
        (
            "[barcodes]\nvariable_measure = [{prefix = '20', kind = 'price'},"
            " {prefix = '20', kind = 'weight'}]",
            "lists a prefix twice",
        ),
    ],
)
def test_bad_files_name_the_key_and_reason(text, message):
    with pytest.raises(ConfigError) as info:
        parse(text, "<t>")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_file(tmp_path / "nope.toml")
    binary = tmp_path / "bad.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match=r"bad.toml: line 1: not UTF-8 text \(byte 0xff"):
        load_file(binary)


def test_env_var_and_explicit_path(monkeypatch, tmp_path):
    path = tmp_path / "k.toml"
    path.write_text('[device]\nid = "cart-7"\n')
    monkeypatch.setenv("KIOSK_CONFIG", str(path))
    assert load().device.id == "cart-7"
    other = tmp_path / "o.toml"
    other.write_text('[device]\nid = "till-9"\n')
    assert load(other).device.id == "till-9"


def test_display_masks_secrets():
    config = parse('[mqtt]\nusername = "u"\npassword = "hunter2"\n')
    shown = config.to_display()
    assert shown["mqtt"]["password"] == "********"
    assert shown["mqtt"]["username"] == "u"
    assert "hunter2" not in repr(shown)
    assert Config().to_display()["mqtt"]["password"] is None
