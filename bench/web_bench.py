"""Web view bench (not a test): the stock page of a shop with 100,000 items and 20 kiosks.

    .venv/bin/python -m bench.web_bench [--items 100000] [--kiosks 20] [--runs 30]

1. First screen: GET /stock (logged in) against a controller store of ITEMS items,
   their levels and KIOSKS kiosks' moves, timed at the client over loopback (median and
   95th percentile of RUNS), next to a bare baseline from the same run: the same
   framework and server returning the same HTML as a static page. Also a search by
   name (a scan), a page deep in the list, an item's page and the low-stock list.
   Target: first screen within 300 ms.
2. A sale reaching an open page: a real Mosquitto, the controller with its web view on
   that store, a kiosk publishing stock events; the time from publishing an event to
   its level arriving on an open page's event stream (/events). Target: within 500 ms.
Prints figures and ratios.
"""

from __future__ import annotations

import argparse
import http.client
import http.cookiejar
import json
import random
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from kiosk.config import parse
from kiosk.mqtt import store, topics
from kiosk.mqtt.web import auth
from kiosk.mqtt.web.app import build_app

USER, PASSWORD = "bench", "bench password 1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_store(path: Path, items: int, kiosks: int, moves_per_kiosk: int) -> None:
    db = store.open_store(str(path))
    db.close()
    rng = random.Random(42)
    now = datetime.now(UTC)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        skus = [f"SKU{n:06d}" for n in range(items)]
        conn.executemany(
            "INSERT INTO master_item (sku, name, price, tax_code, unit, cost, active, min_age, kit,"
            " components, bom_version, barcodes, case_pack, version, digest)"
            " VALUES (?, ?, ?, 'A', 'each', ?, 1, 0, '', '', 0, ?, ?, 1, '')",
            (
                (sku, f"Item {n} {rng.choice(['tea', 'soap', 'pen', 'rice', 'cable'])}",
                 f"{rng.randint(50, 5000) / 100:.2f}", f"{rng.randint(20, 2000) / 100:.2f}",
                 f"{4000000000000 + n}*1", rng.choice([1, 1, 6, 12]))
                for n, sku in enumerate(skus)
            ),
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO stock_level (sku, on_hand, updated_at) VALUES (?, ?, ?)",
            ((sku, rng.randint(0, 200), store.ts(now)) for sku in skus),
        )
        seq = 0
        for k in range(kiosks):
            device = f"till-{k + 1:02d}"
            rows = []
            for seq in range(1, moves_per_kiosk + 1):
                at = store.ts(now - timedelta(minutes=rng.randint(0, 60 * 24 * 28)))
                rows.append((device, seq, rng.choice(skus), "sale", -rng.randint(1, 3), at))
            conn.executemany(
                "INSERT INTO move (device, seq, sku, kind, delta, at) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.executemany(
                "INSERT INTO applied_event (device, seq, kind, txn, ts, applied_at)"
                " VALUES (?, ?, 'sale', ?, ?, ?)",
                ((r[0], r[1], f"R{r[1]}", r[5], r[5]) for r in rows),
            )
            conn.execute(
                "INSERT INTO kiosk_state (device, online, last_seen, outbox, printer, applied_to,"
                " reported_seq) VALUES (?, 1, ?, 0, 'ok', ?, ?)",
                (device, store.ts(now), seq, seq),
            )
        conn.execute("ANALYZE")


class Served:
    """An ASGI app on a free port, in a thread."""

    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                           access_log=False, lifespan="off", http="h11")
        )  # fmt: skip
        threading.Thread(target=self.server.run, daemon=True).start()
        while not self.server.started:
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True


def log_in(port: int) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"http://127.0.0.1:{port}/login").read()
    token = next(c.value for c in jar if c.name == auth.LOGIN_CSRF_COOKIE)
    body = urllib.parse.urlencode({"user": USER, "password": PASSWORD, "csrf_token": token})
    opener.open(f"http://127.0.0.1:{port}/login", body.encode()).read()
    assert any(c.name == auth.SESSION_COOKIE for c in jar), "login failed"
    opener.jar = jar
    return opener


def timed(opener, url: str, runs: int) -> tuple[list[float], bytes]:
    times = []
    body = b""
    for _ in range(runs):
        start = time.perf_counter()
        with opener.open(url) as answer:
            body = answer.read()
        times.append((time.perf_counter() - start) * 1000)
    return times, body


def figure(times: list[float]) -> str:
    times = sorted(times)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    return f"median {statistics.median(times):7.1f} ms  p95 {p95:7.1f} ms"


def page_bench(config, runs: int) -> None:
    app = build_app(config)
    served = Served(app)
    opener = log_in(served.port)
    base = f"http://127.0.0.1:{served.port}"
    timed(opener, base + "/stock", 3)  # warm: templates compiled, caches filled
    first, html = timed(opener, base + "/stock", runs)
    bare_app = Starlette(routes=[Route("/", lambda request: HTMLResponse(html))])
    bare = Served(bare_app)
    plain = urllib.request.build_opener()
    timed(plain, f"http://127.0.0.1:{bare.port}/", 3)
    baseline, _ = timed(plain, f"http://127.0.0.1:{bare.port}/", runs)
    ratio = statistics.median(first) / statistics.median(baseline)
    print(f"stock page, first screen ({len(html)} bytes): {figure(first)}  (target 300 ms)")
    print(f"bare baseline (same HTML, static):  {figure(baseline)}")
    print(f"  ratio first screen / baseline: {ratio:.1f}x")
    for what, path, n in (
        ("page deep in the list (after=SKU050000)", "/stock?after=SKU050000", runs),
        ("search by name 'rice' (scan)", "/stock?q=rice", max(5, runs // 3)),
        ("search by barcode", "/stock?q=4000000012345", max(5, runs // 3)),
        ("search by SKU prefix", "/stock?q=SKU0777", max(5, runs // 3)),
        ("an item's page (per-kiosk movements)", "/stock/item/SKU012345", runs),
        ("kiosks page (20 kiosks)", "/kiosks", runs),
        ("low stock list (every item's demand)", "/stock/low", 3),
    ):
        times, _ = timed(opener, base + path, n)
        print(f"{what:<40} {figure(times)}")
    served.stop()
    bare.stop()


def sale_bench(folder: Path, database: Path, samples: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import paho.mqtt.client as mqtt  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    from kiosk.mqtt.controller import Controller  # noqa: PLC0415
    from kiosk.testing.mosquitto import ROOT, Mosquitto, wait_until  # noqa: PLC0415

    broker = Mosquitto(folder / "broker", ["controller", "till-99"])
    with open(folder / "broker" / "acl", "a") as acl:
        acl.write("\n".join(topics.alert_acl(ROOT)) + "\n")
    broker.start()
    port = free_port()
    config = broker.config("controller", controller=f'web_port = {port}\nweb_host = "127.0.0.1"')
    controller = Controller(config, str(database))
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    thread.start()
    wait_until(lambda: controller.web is not None and controller.web.running, 60, what="web")
    opener = log_in(port)
    cookie = "; ".join(f"{c.name}={c.value}" for c in opener.jar)
    arrivals: dict[str, float] = {}
    got = threading.Condition()

    def listen() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("GET", "/events", headers={"Cookie": cookie})
        answer = conn.getresponse()
        event = None
        while True:
            line = answer.fp.readline().decode()
            if line.startswith("event: "):
                event = line[7:].strip()
            elif line.startswith("data: ") and event == "stock":
                sku = json.loads(line[6:])["sku"]
                with got:
                    arrivals.setdefault(sku, time.perf_counter())
                    got.notify_all()

    threading.Thread(target=listen, daemon=True).start()
    wait_until(lambda: controller.web.live.listeners > 0, 10, what="the page's stream")
    kiosk = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    kiosk.username_pw_set("till-99", broker.passwords["till-99"])
    kiosk.connect("127.0.0.1", broker.port)
    kiosk.loop_start()
    delays = []
    for seq in range(1, samples + 1):
        sku = f"SKU{random.randrange(100_000):06d}"
        event = {"v": 1, "device": "till-99", "seq": seq, "id": f"till-99:{seq}",
                 "ts": topics.ts_now(), "kind": "sale", "txn": f"R{seq}",
                 "moves": [{"sku": sku, "delta": -1}], "clock": "synced"}  # fmt: skip
        arrivals.pop(sku, None)
        start = time.perf_counter()
        kiosk.publish(f"{ROOT}/kiosk/till-99/stock", topics.encode(event), 1)
        with got:
            got.wait_for(lambda sku=sku: sku in arrivals, 10)
        if sku in arrivals:
            delays.append((arrivals[sku] - start) * 1000)
        time.sleep(0.05)
    kiosk.loop_stop()
    stop.set()
    thread.join(15)
    broker.stop(kill=True)
    print(
        f"a sale reaching an open page ({len(delays)}/{samples} arrived): {figure(delays)}"
        f"  max {max(delays):.1f} ms  (target 500 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--kiosks", type=int, default=20)
    parser.add_argument("--moves", type=int, default=5_000, help="sale moves per kiosk")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--sales", type=int, default=30)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="web-bench-"))
    database = folder / "controller.db"
    start = time.perf_counter()
    build_store(database, args.items, args.kiosks, args.moves)
    print(
        f"store: {args.items} items, {args.kiosks} kiosks x {args.moves} moves "
        f"(built in {time.perf_counter() - start:.1f} s)"
    )
    config = parse(f'[controller]\ndatabase = "{database}"\nweb_port = 8080\n')
    store.open_store(str(database))
    auth.add_user(USER, PASSWORD, "manager")
    page_bench(config, args.runs)
    sale_bench(folder, database, args.sales)


if __name__ == "__main__":
    main()
