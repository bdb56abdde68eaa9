"""Scan to priced cart: from a barcode's terminator to the cart total updated.

    .venv/bin/python -m bench.checkout_bench [--items N] [--scans N]

Times Checkout.scan (parse, item lookup, add or merge the line, price the cart and
notify) on a 50,000-item catalog, beside a bare sqlite3 barcode lookup on the same
file in the same run; carts are emptied every 25 scans, as customers would.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from bench.ledger_bench import config_for, make_catalog
from kiosk.checkout.session import Checkout
from kiosk.drivers.base import MemoryDrawer, MemoryPrinter
from kiosk.ledger import catalog_csv
from kiosk.ledger.barcodes import with_check_digit
from kiosk.ledger.core import Ledger


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--scans", type=int, default=5_000)
    args = parser.parse_args()
    rng = random.Random(7)
    codes = [with_check_digit(f"40{rng.randrange(args.items):010d}") for _ in range(args.scans)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        make_catalog(path.with_suffix(".csv"), args.items)
        with Ledger.open(config_for(path, "full")) as ledger:
            catalog_csv.import_file(ledger, path.with_suffix(".csv"))
            co = Checkout(ledger, MemoryPrinter(), MemoryDrawer())
            ours = []
            for index, code in enumerate(codes):
                if index % 25 == 0 and co.cart:
                    co.cancel()
                start = time.perf_counter()
                outcome = co.scan(code)
                ours.append(time.perf_counter() - start)
                assert outcome.ok, outcome.message
        db = sqlite3.connect(path)
        bare = []
        for code in codes:
            start = time.perf_counter()
            db.execute(
                "SELECT i.sku, i.name, i.price, i.tax_code FROM barcode b JOIN item i "
                "ON i.sku = b.sku WHERE b.code = ?",
                (code.zfill(14),),
            ).fetchone()
            bare.append(time.perf_counter() - start)
        db.close()
    print(f"scan to priced cart, {args.items} items, {args.scans} scans (milliseconds)")
    for name, values in (("checkout.scan", ours), ("bare sqlite3 lookup", bare)):
        print(
            f"  {name:<20} p50 {percentile(values, 50) * 1e3:7.3f}  "
            f"p99 {percentile(values, 99) * 1e3:7.3f}  mean {statistics.mean(values) * 1e3:7.3f}"
        )
    print(
        f"  ratio (checkout / bare): p50 {percentile(ours, 50) / percentile(bare, 50):.0f}x, "
        f"p99 {percentile(ours, 99) / percentile(bare, 99):.0f}x"
    )


if __name__ == "__main__":
    main()
