"""Item master distribution: a 100,000-item master to three kiosks through a real
Mosquitto, then one scheduled price change.

    .venv/bin/python -m bench.catalog_bench [--items 100000]

Prints (in one run, so the ratios hold on this machine):
  cold start: seconds from three empty kiosk ledgers (their syncs started, each in a
              process of its own, as on three devices) until all three sell from
              the master's version, against the 10 s target. The kiosk processes are
              started (Python and its imports loaded) before the clock starts, as on a
              device where the app is running: the clock starts when they are told to
              start their syncs;
  one price:  seconds from the change's effective time until every kiosk sells at the
              new price, against the 1 s target;
  the bytes the controller published for each, and the import time for reference.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from kiosk.config import parse
from kiosk.mqtt.catalog_sync import CatalogSync

KIOSKS = ["till-01", "till-02", "till-03"]


def catalog_text(n: int) -> str:
    lines = ["sku,name,price,tax,unit,cost,barcodes,case_pack,lead_time_days"]
    for i in range(n):
        code = f"200{i:09d}"
        check = (10 - sum(int(d) * (3 if k % 2 else 1) for k, d in enumerate(code)) % 10) % 10
        lines.append(
            f"SKU{i:06d},Item number {i} of the shop,{1 + i % 97}.{i % 100:02d},"
            f"{'AB'[i % 2]},each,0.{i % 90 + 10},{code}{check},{1 + i % 12},{1 + i % 9}"
        )
    return "\n".join(lines) + "\n"


def version_of(path: Path) -> int:
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT version FROM catalog_state WHERE id = 1").fetchone()
    return row[0] if row else 0


def kiosk_process(config: Path) -> None:
    """One kiosk's catalog sync in a process of its own (three devices, not three threads
    sharing one interpreter): ready once loaded, its sync started on "go", stopped
    when its standard input closes."""
    print("ready", flush=True)
    sys.stdin.readline()
    sync = CatalogSync(parse(config.read_text()), gate=lambda: True).start()
    sys.stdin.read()
    sync.stop()


def spawn_kiosk(broker, device: str, path: Path, trace: bool) -> subprocess.Popen:
    config = path.with_suffix(".toml")
    config.write_text(
        f'[device]\nid = "{device}"\nstore = "store-042"\n[ledger]\npath = "{path}"\n'
        f'[mqtt]\nport = {broker.port}\nusername = "{device}"\n'
        f'password = "{broker.passwords[device]}"\n'
    )
    return subprocess.Popen(
        [sys.executable, "-m", "bench.catalog_bench", "--kiosk", str(config)]
        + (["--trace"] if trace else []),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--trace", action="store_true", help="log each step with its time")
    parser.add_argument("--kiosk", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trace:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(message)s")
    if args.kiosk:
        kiosk_process(args.kiosk)
        return
    # the controller's side only (a kiosk process needs none of it)
    from kiosk.ledger.core import Ledger
    from kiosk.ledger.models import utc_now
    from kiosk.mqtt import master, topics
    from kiosk.mqtt.controller import Controller
    from kiosk.testing.mosquitto import ROOT, Mosquitto, wait_until

    folder = Path(tempfile.mkdtemp(prefix="kiosk-catalog-bench-"))
    broker = Mosquitto(folder / "broker", ["controller", *KIOSKS])
    with open(broker.dir / "acl", "a", encoding="utf-8") as acl:
        acl.write("\n".join(topics.Topics(ROOT).catalog_acl()) + "\n")
    broker.start()
    kiosks: list[subprocess.Popen] = []
    stop = threading.Event()
    try:
        controller = Controller(broker.config("controller"), str(folder / "controller.db"))
        rules = controller.rules
        started = time.perf_counter()
        rows = master.read_text(rules, catalog_text(args.items), "bench.csv")
        with controller.db.atomic():
            made = master.import_rows(rows, "bench", utc_now())
        imported = time.perf_counter() - started
        thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
        thread.start()
        wait_until(controller.connected.is_set, 30, what="the controller")
        paths = {}
        for device in KIOSKS:
            paths[device] = folder / f"{device}.db"
            Ledger.open(broker.config(device, paths[device])).close()
        for device in KIOSKS:
            kiosks.append(spawn_kiosk(broker, device, paths[device], args.trace))
        for kiosk in kiosks:
            if kiosk.stdout.readline() != "ready\n":
                raise SystemExit("a kiosk process did not start")
        sent0 = controller.catalog_bytes
        started = time.perf_counter()
        for kiosk in kiosks:
            kiosk.stdin.write("go\n")
            kiosk.stdin.flush()
        wait_until(
            lambda: all(version_of(p) == made.version for p in paths.values()),
            120,
            every=0.01,
            what="three kiosks at the master's version",
        )
        cold = time.perf_counter() - started
        cold_bytes = controller.catalog_bytes - sent0

        # one price change, effective 2 s from now
        at = utc_now() + timedelta(seconds=2)
        with controller.db.atomic():
            master.set_fields(rules, "SKU000042", {"price": "0.99"}, "bench", utc_now(), at)
        sent1 = controller.catalog_bytes

        def sellable() -> bool:
            for path in paths.values():
                with sqlite3.connect(path) as db:
                    price = db.execute("SELECT price FROM item WHERE sku = 'SKU000042'").fetchone()
                if price[0] != "0.99":
                    return False
            return True

        wait_until(sellable, 30, every=0.005, what="the new price on every kiosk")
        change = (utc_now() - at).total_seconds()
        change_bytes = controller.catalog_bytes - sent1
    finally:
        for kiosk in kiosks:
            kiosk.stdin.close()
            kiosk.wait(20)
        stop.set()
        broker.stop(kill=True)
    print(f"item master of {args.items:,} items: import {imported:.2f} s (reference)")
    print(
        f"cold start to 3 kiosks: {cold:.2f} s (target 10 s, ratio {cold / 10:.2f}), "
        f"{cold_bytes:,} bytes sent ({cold_bytes // 3:,} per kiosk)"
    )
    print(
        f"one price change sellable on every kiosk: {change:.3f} s after its effective time "
        f"(target 1 s, ratio {change:.2f}), {change_bytes:,} bytes sent"
    )


if __name__ == "__main__":
    main()
