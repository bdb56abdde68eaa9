"""What the app's start loads (issue 19: a light, fast start), and that a scan prices
the cart once. Figures are the benches' business (bench/app_bench.py, scan_bench.py);
these check the facts behind them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import kiosk.checkout.cart as cart_module
from kiosk.checkout.session import Checkout
from kiosk.drivers.base import MemoryDrawer, MemoryPrinter
from kiosk.testing.app_start import STARTED
from kiosk.testing.xvfb import Xvfb

# Loaded only by the screen, command or driver that needs them.
LAZY = (
    "escpos",  # the receipt printer (loads every printer profile: 0.2 s)
    "PIL",  # receipt previews and images
    "barcode",
    "qrcode",
    "gpiozero",  # a drawer on GPIO
    "serial",  # a serial scanner
    "psycopg",  # peewee's PostgreSQL driver: the controller's, never the kiosk's
    "psycopg2",
    "paho",  # MQTT: the publisher and alerts, not an offline start
    "starlette",  # the controller's web view
    "uvicorn",
    "jinja2",
    "kiosk.drivers.layout",  # receipt layout: printing only
    "kiosk.drivers.zvt",  # the ZVT card terminal
    "kiosk.checkout.replay_run",  # the headless demo shift
    # the other commands' modules (kiosk/cli/__init__.py: imported when asked for)
    *(
        f"kiosk.cli.{name}"
        for name in (
            "broker",
            "catalog",
            "config",
            "controller",
            "hw",
            "payment",
            "provision",
            "staff",
            "stock",
            "sync",
            "update",
        )
    ),  # fmt: skip
)
# Never loaded by the app: the config is on msgspec (pydantic is installed for the tests
# only, for the rollback test's older release).
NEVER = ("pydantic",)
# The start up to Kivy's main loop: the app's own run(), with App.run stopped.


def loaded(modules: list[str], names) -> list[str]:
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


def test_importing_the_app_loads_none_of_the_heavy_modules():
    code = "import json, sys, kiosk.app; print(json.dumps(sorted(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = json.loads(run.stdout)
    assert loaded(modules, (*LAZY, *NEVER, "kivy", "peewee", "kiosk.ledger")) == []


def test_the_demo_start_loads_none_of_the_lazy_modules(tmp_path):
    xvfb = Xvfb()
    try:
        env = {**os.environ, "DISPLAY": xvfb.display, "KIVY_NO_FILELOG": "1",
               "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
               "KIOSK_ARTIFACTS": str(tmp_path / "art")}  # fmt: skip
        env.pop("KIOSK_CONFIG", None)
        env.pop("KIOSK_UI_STATE", None)
        run = subprocess.run([sys.executable, "-c", STARTED], env=env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    finally:
        xvfb.stop()
    found = [line for line in run.stdout.splitlines() if line.startswith("LOADED ")]
    assert found, run.stderr[-2000:]
    modules = json.loads(found[0].split(" ", 1)[1])
    assert "kiosk.screens.shell" in modules and "kiosk.checkout.session" in modules
    # Kivy's own image loader brings Pillow; the demo's preview printer its layout.
    assert loaded(modules, (*LAZY, *NEVER)) == ["PIL", "kiosk.drivers.layout"]


@pytest.fixture
def priced(monkeypatch) -> list[int]:
    calls = [0]
    price_cart = cart_module.price_cart

    def counted(*args, **kwargs):
        calls[0] += 1
        return price_cart(*args, **kwargs)

    monkeypatch.setattr(cart_module, "price_cart", counted)
    return calls


def test_a_scan_and_its_snapshot_price_the_cart_once(shop, priced):
    checkout = Checkout(shop, MemoryPrinter(), MemoryDrawer())
    checkout.snapshot()  # the screen's first state: the empty cart, priced
    priced[0] = 0
    for scans, code in enumerate(["4006381333931", "4006381333931", "4001234000022"], 1):
        assert checkout.scan(code).ok
        checkout.snapshot()  # what the screen's worker takes after every call
        checkout.snapshot()
        assert priced[0] == scans
    checkout.refresh()  # the worker's tick: nothing changed, nothing priced again
    checkout.snapshot()
    assert priced[0] == 3
