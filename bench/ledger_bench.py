"""Ledger benchmarks: sale commits per second vs a bare sqlite3 loop, and catalog import.

    .venv/bin/python -m bench.ledger_bench [--sales N] [--items N]

The baseline does the same SQL (counters, sale row, 3 lines, 1 tender, 3 moves, 3
balance upserts, 1 outbox row) with the same durability (WAL, synchronous=FULL) on
the same schema in the same run, with none of the ledger's work around it: no item
lookup, pricing, validation or event building. The ratio is ours / bare.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from kiosk.config import parse
from kiosk.ledger import catalog_csv, sales
from kiosk.ledger.barcodes import with_check_digit
from kiosk.ledger.core import Ledger, open_database
from kiosk.ledger.money import Tender
from kiosk.ledger.sales import SaleLine

SKUS = [f"SKU{i:05d}" for i in range(300)]


def make_catalog(path: Path, count: int) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write("sku,name,price,tax,unit,cost,barcodes\n")
        for i in range(count):
            ean = with_check_digit(f"40{i:010d}")
            out.write(f"SKU{i:05d},Item number {i},{1 + i % 97}.{i % 100:02d},A,each,0.50,{ean}\n")


def config_for(path: Path, synchronous: str):
    return parse(
        f'[device]\nid = "bench-01"\n[ledger]\npath = "{path}"\nsynchronous = "{synchronous}"\n'
    )


def ledger_sales(path: Path, n: int, synchronous: str) -> float:
    config = config_for(path, synchronous)
    with Ledger.open(config) as ledger:
        catalog_csv.import_file(ledger, path.with_suffix(".csv"))
        tender = [Tender("cash", Decimal("5000.00"))]
        start = time.perf_counter()
        for i in range(n):
            lines = [SaleLine(SKUS[(i + k) % len(SKUS)], Decimal(1 + k)) for k in range(3)]
            sales.post_sale(ledger, lines, tender)
        return n / (time.perf_counter() - start)


def bare_sales(path: Path, n: int, synchronous: str) -> float:
    open_database(path, synchronous).close()  # the same schema, made by the ledger
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = wal")
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    conn.execute("PRAGMA foreign_keys = 1")
    counter = (
        "INSERT INTO counter (name, value) VALUES (?, 1) "
        "ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value"
    )
    start = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        txn = conn.execute(counter, ("txn",)).fetchone()[0]
        conn.execute(
            "INSERT INTO txn (id, number, kind, ts, net, tax, total, discount, rounding, change) "
            "VALUES (?, ?, 'sale', '2026-01-01T00:00:00.000000Z', '1', '1', '2', '0', '0', '0')",
            (txn, f"bench-01-{txn:06d}"),
        )
        skus = [SKUS[(i + k) % len(SKUS)] for k in range(3)]
        conn.executemany(
            "INSERT INTO txn_line (txn_id, line_no, sku, qty, unit_price, tax_code, tax_rate, "
            "gross, discount, net, tax, total) "
            "VALUES (?, ?, ?, '1', '1.00', 'A', '0.19', '1', '0', '0.84', '0.16', '1.00')",
            [(txn, k + 1, sku) for k, sku in enumerate(skus)],
        )
        conn.execute(
            "INSERT INTO tender (txn_id, kind, amount) VALUES (?, 'cash', '500.00')", (txn,)
        )
        conn.executemany(
            "INSERT INTO stock_move (txn_id, sku, location, delta, at) "
            "VALUES (?, ?, 'main', -1, '2026-01-01T00:00:00.000000Z')",
            [(txn, sku) for sku in skus],
        )
        conn.executemany(
            "INSERT INTO stock_balance (sku, location, on_hand) VALUES (?, 'main', -1) "
            "ON CONFLICT (sku, location) DO UPDATE SET on_hand = on_hand + excluded.on_hand",
            [(sku,) for sku in skus],
        )
        seq = conn.execute(counter, ("seq",)).fetchone()[0]
        conn.execute(
            "INSERT INTO outbox (seq, txn_id, kind, payload, created_at, state, attempts) "
            "VALUES (?, ?, 'sale', ?, '2026-01-01T00:00:00.000000Z', 'pending', 0)",
            (seq, txn, json.dumps({"seq": seq})),
        )
        conn.execute("COMMIT")
    rate = n / (time.perf_counter() - start)
    conn.close()
    return rate


def catalog_import(path: Path, items: int) -> tuple[float, float]:
    csv_path = path.with_suffix(".csv")
    make_catalog(csv_path, items)
    with Ledger.open(config_for(path, "full")) as ledger:
        start = time.perf_counter()
        catalog_csv.import_file(ledger, csv_path)
        first = time.perf_counter() - start
        start = time.perf_counter()
        catalog_csv.import_file(ledger, csv_path)  # again: every row unchanged
        second = time.perf_counter() - start
    return first, second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sales", type=int, default=3000)
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_catalog(root / "ledger-full.csv", len(SKUS))
        make_catalog(root / "ledger-normal.csv", len(SKUS))
        print(f"sale commits, 3 lines each, {args.sales} sales")
        for sync in ("full", "normal"):
            bare = bare_sales(root / f"bare-{sync}.db", args.sales, sync)
            ours = ledger_sales(root / f"ledger-{sync}.db", args.sales, sync)
            print(
                f"  synchronous={sync:<6}  ledger {ours:8.0f}/s   bare sqlite3 {bare:8.0f}/s"
                f"   ratio {ours / bare:.2f}"
            )
        first, second = catalog_import(root / "catalog.db", args.items)
        print(f"catalog import, {args.items} items: {first:.1f} s new, {second:.1f} s unchanged")


if __name__ == "__main__":
    main()
