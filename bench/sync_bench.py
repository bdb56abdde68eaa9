"""Stock sync throughput: K kiosks x N stock events (and their sales' transaction journals)
through a real Mosquitto.

    .venv/bin/python -m bench.sync_bench [--events N] [--kiosks K] [--database postgresql]
    .venv/bin/python -m bench.sync_bench --catchup   # 20 kiosks x 5,000 queued events
    .venv/bin/python -m bench.sync_bench --events 3000 --profile /tmp/controller.prof

--catchup is the morning after an outage: every kiosk of a shop reconnects at once with
its outbox full, and the controller drains them all; the time to apply everything is
printed. --database postgresql runs the controller on a PostgreSQL server of its own.

Phase 1, the bare baseline: three bare paho QoS 1 publishers (same in-flight
window) send the same messages (payloads, and the MQTT 5 properties a kiosk's
Publisher sets: paho decodes them for every message), and a bare paho subscriber
receives them.
Phase 2, ours: three Publishers drain their ledgers' outboxes (reading rows,
marking them sent on PUBACK) while the controller applies every event (dedupe,
levels, transactions, manual acks, retained level publishes).
Both on the same broker in the same run; figures are messages per second, with
ratios ours / bare, and a zero-loss check against the kiosks' ledgers.
"""

from __future__ import annotations

import argparse
import contextlib
import pstats
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from kiosk.mqtt.publisher import JSON_PROPERTIES, Publisher
from kiosk.testing.ledgers import controller_levels as sqlite_levels
from kiosk.testing.ledgers import ledger_totals, make_ledger
from kiosk.testing.mosquitto import ROOT, Mosquitto, wait_until
from kiosk.testing.postgres import postgres_server

WINDOW = 200


def kiosk_names(count: int) -> list[str]:
    return ["till-01", "till-02", "cart-01"][:count] + [f"till-{n:02d}" for n in range(3, count)]


def payloads(path: Path) -> list[tuple[str, bytes]]:
    """What a kiosk sends: each stock event, then its transaction's journal (if any)."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT 'stock', seq, 0, payload FROM outbox UNION ALL "
            "SELECT 'journal', seq, part, payload FROM journal_outbox ORDER BY 2, 3"
        )
        return [(kind, p.encode()) for kind, _, _, p in rows]


def outbox_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]


def bare_phase(broker: Mosquitto, ledgers: dict[str, Path]) -> tuple[float, float]:
    total = sum(len(payloads(p)) for p in ledgers.values())
    received = []
    done = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bare-sub", protocol=mqtt.MQTTv5)
    sub.username_pw_set("controller", broker.passwords["controller"])

    def on_message(_c, _u, message):
        received.append(time.perf_counter())
        if len(received) == total:
            done.set()

    sub.on_message = on_message
    sub.on_connect = lambda c, *a: c.subscribe(
        [(f"{ROOT}/kiosk/+/stock", 1), (f"{ROOT}/kiosk/+/journal", 1)]
    )
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    time.sleep(0.5)

    def publish_all(device: str, path: Path, finished: list) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bare-{device}",
                             protocol=mqtt.MQTTv5)  # fmt: skip
        client.username_pw_set(device, broker.passwords[device])
        client.max_inflight_messages_set(WINDOW)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        infos = [
            client.publish(f"{ROOT}/kiosk/{device}/{kind}", p, qos=1, properties=JSON_PROPERTIES)
            for kind, p in payloads(path)
        ]
        for info in infos:
            info.wait_for_publish(60)
        finished.append(time.perf_counter())
        client.loop_stop()
        client.disconnect()

    finished: list[float] = []
    start = time.perf_counter()
    threads = [
        threading.Thread(target=publish_all, args=(d, p, finished)) for d, p in ledgers.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.wait(120)
    sub.loop_stop()
    sub.disconnect()
    assert len(received) == total, f"bare subscriber got {len(received)} of {total}"
    return total / (max(finished) - start), total / (received[-1] - start)


def controller_process(
    broker: Mosquitto, database: str, folder: Path, profile: Path | None = None
) -> subprocess.Popen:
    """The controller as it runs in a shop: its own process (and so its own GIL); with
    `profile`, under cProfile (its main thread: the apply loop, not paho's thread)."""
    extra = f'[controller]\ndatabase = "{database}"\n'
    if profile:
        python = ("-m", "cProfile", "-o", str(profile))
        process = broker.spawn("controller", "controller", folder, extra, python=python)
    else:
        process = broker.spawn("controller", "controller", folder, extra)
    wait_until(lambda: applied(database) is not None, 60, what="the controller to start")
    time.sleep(1.0)
    return process


def applied(database: str) -> int | None:
    """Stock events the controller's store holds (None: no store yet)."""
    return _count(database, "applied_event")


def applied_journals(database: str) -> int | None:
    return _count(database, "journal_part")


def _count(database: str, table: str) -> int | None:
    if "://" in database:
        import psycopg  # noqa: PLC0415 - only for --database postgresql

        try:
            with psycopg.connect(database) as db, db.cursor() as cursor:
                cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - our names
                return cursor.fetchone()[0]
        except psycopg.Error:
            return None
    try:
        with sqlite3.connect(database) as db:
            return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
    except sqlite3.OperationalError:
        return None


def controller_levels(database: str) -> dict[str, int]:
    if "://" not in database:
        return sqlite_levels(Path(database))
    import psycopg  # noqa: PLC0415

    with psycopg.connect(database) as db, db.cursor() as cursor:
        cursor.execute("SELECT sku, on_hand FROM stock_level")
        return dict(cursor.fetchall())


def our_phase(
    broker: Mosquitto, ledgers: dict[str, Path], db: str, folder: Path, profile=None
) -> tuple[float, float, float]:
    total = sum(len(payloads(p)) for p in ledgers.values())
    process = controller_process(broker, db, folder, profile)
    try:
        start = time.perf_counter()
        publishers = [
            Publisher(broker.config(d, p), p, window=WINDOW).start() for d, p in ledgers.items()
        ]
        wait_until(lambda: all(p.drain(0.01) for p in publishers), 300, 0.01, "drained")
        drained = time.perf_counter()
        events = sum(outbox_rows(p) for p in ledgers.values())
        wait_until(
            lambda: applied(db) == events and applied_journals(db) == total - events,
            300,
            0.01,
            "all applied",
        )
        done = time.perf_counter()
        for publisher in publishers:
            publisher.stop()
    finally:
        process.terminate()
        process.wait(30)
    levels = controller_levels(db)
    assert levels == ledger_totals(ledgers.values()), "the controller lost or doubled a move"
    return total / (drained - start), total / (done - start), done - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="per kiosk")
    parser.add_argument("--kiosks", type=int, default=3)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--catchup", action="store_true", help="20 kiosks x 5,000 events")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="run the controller under cProfile, keep its profile in FILE and print its top",
    )
    args = parser.parse_args()
    if args.catchup:
        args.kiosks, args.events = 20, 5_000
    kiosks = kiosk_names(args.kiosks)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        database = str(root / "controller.db")
        if args.database == "postgresql":
            database = stack.enter_context(postgres_server())
        started = time.perf_counter()
        ledgers = {
            d: make_ledger(root / f"{d}.db", d, args.events - 1, seed=i)
            for i, d in enumerate(kiosks)
        }
        made = time.perf_counter() - started
        print(f"made {len(kiosks)} ledgers x {args.events} events in {made:.0f} s")
        broker = Mosquitto(root / "broker", ["controller", *kiosks]).start()
        try:
            bare_pub, bare_sub = bare_phase(broker, ledgers)
            our_pub, our_apply, took = our_phase(broker, ledgers, database, root, args.profile)
            total = sum(len(payloads(p)) for p in ledgers.values())
        finally:
            broker.stop()
    print(f"stock sync on {args.database}, {len(kiosks)} kiosks x {args.events} stock events "
          "and their sales' journals, QoS 1, zero loss checked")  # fmt: skip
    print("  (figures count every message: stock events and journals)")
    print(f"  outbox drain     {our_pub:8.0f} msg/s   bare paho publish   {bare_pub:8.0f} msg/s"
          f"   ratio {our_pub / bare_pub:.2f}")  # fmt: skip
    print(f"  controller apply {our_apply:8.0f} msg/s   bare paho subscribe {bare_sub:8.0f} msg/s"
          f"   ratio {our_apply / bare_sub:.2f}")  # fmt: skip
    print(
        f"  all {total} messages of {len(kiosks)} kiosks reconnecting at once applied in "
        f"{took:.1f} s (bare subscriber: {total / bare_sub:.1f} s)"
    )
    if args.profile:
        stats = pstats.Stats(str(args.profile))
        stats.sort_stats("cumulative").print_stats(25)
        stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
