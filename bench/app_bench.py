"""The kiosk app under Xvfb: cold start to the first frame and resident memory, at
start and after 2,000 scans, beside a bare Kivy app measured in the same run.

    .venv/bin/python -m bench.app_bench [--scans 2000] [--where]

Goals (issue 19): cold start at most 1.5x the bare app's; resident memory at most the
bare app's + 40 MiB, at start and after the scans, growing at most 5 MiB past start.
`--where` also shows where the memory goes: module groups imported one after another
in a fresh interpreter (on the same X server: Kivy's window opens its GL context),
each group's resident growth and import time, and whether `kiosk run` loads it.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kiosk
from kiosk.app import MULTISAMPLES, WINDOW_SIZE
from kiosk.testing.app_start import STARTED
from kiosk.testing.xvfb import Xvfb

START_RATIO_GOAL = 1.5
MEMORY_GOAL_MIB = 40.0  # over the bare Kivy app
GROWTH_GOAL_MIB = 5.0
WARM_SCANS = 500  # resident memory is also read here: past the first carts' warm-up
SETTLE_S = 1.0  # after the first frame, before resident memory is read (both apps)

BARE = """
import os, time
os.environ["KIVY_NO_ARGS"] = "1"
from kivy.config import Config
if os.environ.get("BARE_AS_APP"):  # the window the kiosk app asks for, from kiosk/app.py
    width, height, samples = os.environ["BARE_AS_APP"].split()
    Config.set("graphics", "width", width)
    Config.set("graphics", "height", height)
    Config.set("graphics", "multisamples", samples)
from kivy.app import App
from kivy.clock import Clock
from kivy.uix.button import Button
def rss(dt):
    status = open(f"/proc/{os.getpid()}/status").read().split("VmRSS:")[1]
    print("RSS", int(status.split()[0]), flush=True)
    App.get_running_app().stop()
def first_frame(dt):
    print("FIRST", time.time() - float(os.environ["T0"]), flush=True)
    Clock.schedule_once(rss, float(os.environ["SETTLE_S"]))
class Bare(App):
    def build(self):
        Clock.schedule_once(first_frame, 0)
        return Button(text="bare")
Bare().run()
"""
CODES = ["4006381333931", "14001234000012", "2800123005320", "4001234000022", "036000291452"]

# Module groups in the order `kiosk run --demo` meets them; shared dependencies count
# in the first group that imports them. `lazy` groups are loaded only by the screen or
# command that needs them (see the README).
GROUPS = [
    ("the kiosk command (click)", ["kiosk.cli"]),
    ("config (msgspec structs)", ["kiosk.config"]),
    ("wiring (kiosk.app)", ["kiosk.app"]),
    ("peewee, SQLite only (kiosk.app hides psycopg from it)", ["kiosk.app:_peewee_for_sqlite"]),
    ("ledger and checkout", ["kiosk.checkout.session"]),
    ("money and words (babel)", ["babel.numbers", "kiosk.i18n"]),
    ("the demo's preview printer (its receipt layout)", ["kiosk.drivers.preview"]),
    ("Kivy, its window and GL context (Mesa)", ["kivy.app", "kivy.core.window"]),
    ("the screens (Kivy widgets, layout.kv rules)", ["kiosk.screens.shell"]),
    ("receipt printer (python-escpos, profiles from the cache)", ["kiosk.escpos_lib:printers"]),
    ("preview images (PIL, python-barcode, qrcode)", ["PIL.ImageDraw", "barcode", "qrcode"]),
    ("scanner (evdev, xkbcommon, pyserial)", ["evdev", "xkbcommon.xkb", "serial"]),
    ("drawer on GPIO (gpiozero)", ["gpiozero"]),
    ("MQTT (paho)", ["paho.mqtt.client"]),
    ("controller web view (starlette, uvicorn, jinja2)", ["starlette", "uvicorn", "jinja2"]),
    ("sample receipt", ["kiosk.drivers.sample"]),
    ("card terminal (ZVT)", ["kiosk.drivers.zvt.driver"]),
    ("PostgreSQL driver (psycopg: the controller's)", ["psycopg"]),
]
WHERE = """
import importlib, json, os, sys, time
os.environ["KIVY_NO_ARGS"] = "1"
os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
def rss():
    status = open(f"/proc/{os.getpid()}/status").read().split("VmRSS:")[1]
    return int(status.split()[0])
groups = json.loads(sys.argv[1])
print(json.dumps(["python", rss(), 0.0, True]), flush=True)
loaded_by_run = set(json.loads(sys.argv[2]))
for name, modules in groups:
    started = time.perf_counter()
    for module in modules:
        module, _, function = module.partition(":")
        imported = importlib.import_module(module)
        if function:
            getattr(imported, function)()
    eager = any(m.partition(":")[0] in loaded_by_run for m in modules)
    if name.startswith("peewee"):
        eager = "peewee" in loaded_by_run
    if name.startswith("receipt printer"):  # kiosk.escpos_lib loads with the layout
        eager = "escpos" in loaded_by_run
    print(json.dumps([name, rss(), time.perf_counter() - started, eager]), flush=True)
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_state(folder: Path, check, timeout=300.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = json.loads((folder / "state.json").read_text())
            if check(state):
                return state
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.05)
    raise AssertionError("timed out")


def cart(state: dict) -> tuple:
    snap = state["snap"]
    return snap["total"], tuple((line["sku"], line["qty"]) for line in snap["lines"])


def wait_steady(folder: Path, steady_s=1.5, timeout=300.0) -> tuple:
    """The cart on screen once the app is idle and it has not changed for steady_s."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        state = wait_state(folder, lambda s: s.get("idle"))
        if cart(state) != last:
            last, since = cart(state), time.monotonic()
        elif time.monotonic() - since >= steady_s:
            return last
        time.sleep(0.1)
    raise AssertionError("the cart never settled")


def bare_app(env: dict, root: Path, as_app: bool = False) -> tuple[float, int]:
    """The bare Kivy app: seconds to its first frame, resident KiB SETTLE_S after it.
    `as_app`: with the kiosk app's window (1280x800, no multisampling), not Kivy's
    default (800x600, multisampled)."""
    script = root / "bare.py"  # Kivy wants its app class in a file
    script.write_text(BARE)
    window = {"BARE_AS_APP": " ".join([*WINDOW_SIZE, MULTISAMPLES])} if as_app else {}
    bare = subprocess.run(
        [sys.executable, str(script)],
        env={**env, "T0": str(time.time()), "SETTLE_S": str(SETTLE_S), **window},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    found = dict(x.split() for x in bare.stdout.splitlines() if x.startswith(("FIRST", "RSS")))
    if "RSS" not in found:
        raise SystemExit(f"the bare Kivy app failed: {bare.stderr[-1500:]}")
    return float(found["FIRST"]), int(found["RSS"])


def launch_kiosk(env: dict, root: Path) -> tuple[subprocess.Popen, float]:
    """`kiosk run --demo --offline` started: the process, seconds to its first frame."""
    env = {**env, "KIOSK_STARTED_AT": str(time.time())}
    with (root / "app.log").open("w") as stderr:
        app = subprocess.Popen(
            [sys.executable, "-m", "kiosk.cli", "run", "--demo", "--offline"],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        return app, wait_state(root, lambda s: "first_frame_s" in s)["first_frame_s"]
    except BaseException:
        stop_kiosk(app, root)
        raise


def stop_kiosk(app: subprocess.Popen, root: Path) -> None:
    app.terminate()
    try:
        app.wait(20)
    except subprocess.TimeoutExpired:
        app.kill()
        log = (root / "app.log").read_text()[-1500:]
        raise SystemExit(f"the app did not stop: {log}") from None
    finally:
        (root / "state.json").unlink(missing_ok=True)


def kiosk_app(env: dict, root: Path, scans: int) -> tuple[float, int, int, int]:
    """`kiosk run --demo --offline`: seconds to the first frame, resident KiB
    SETTLE_S after it, after WARM_SCANS scans and after `scans` scans (carts of 25)."""
    app, first = launch_kiosk(env, root)
    try:
        time.sleep(SETTLE_S)
        before = rss_kib(app.pid)
        full_cart = None
        for batch in range(0, scans, 25):  # a cart of 25 scans per request, as customers
            actions = [["cancel"]] + [["scan", CODES[i % len(CODES)]]
                                      for i in range(batch, min(scans, batch + 25))]  # fmt: skip
            request = root / f"act-{batch}.request"
            request.write_text(json.dumps(actions))
            while request.exists():
                time.sleep(0.02)
            if full_cart is None:  # every full cart of 25 is the same: wait for the first
                full_cart = wait_steady(root)
            if batch + 25 == WARM_SCANS:
                wait_state(root, lambda s, c=full_cart: s.get("idle") and cart(s) == c)
                time.sleep(2)
                warm = rss_kib(app.pid)
        # The last cart on screen: the same as the first (scans a multiple of 25).
        wait_state(root, lambda s: s.get("idle") and cart(s) == full_cart)
        time.sleep(2)
        after = rss_kib(app.pid)
    finally:
        stop_kiosk(app, root)
    return first, before, warm, after


def kiosk_start(env: dict, root: Path) -> float:
    """`kiosk run --demo --offline` once more, to its first frame only: seconds."""
    app, first = launch_kiosk(env, root)
    stop_kiosk(app, root)
    return first


def where(env: dict) -> list[tuple[str, float, float, bool]]:
    """Each module group's resident growth (MiB) and import time (s), imported one
    after another in a fresh interpreter, and whether `kiosk run --demo` loads it."""
    loaded = subprocess.run([sys.executable, "-c", STARTED], env=env, capture_output=True,
                            text=True, timeout=120).stdout  # fmt: skip
    modules = [x for x in loaded.splitlines() if x.startswith("LOADED ")]
    if not modules:
        raise SystemExit("--where: the app did not start")
    run = subprocess.run(
        [sys.executable, "-c", WHERE, json.dumps(GROUPS), modules[0].split(" ", 1)[1]],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if run.returncode:
        raise SystemExit(f"--where failed: {run.stderr[-1500:]}")
    rows, previous = [], None
    for line in run.stdout.splitlines():
        if not line.startswith("["):
            continue
        name, kib, seconds, eager = json.loads(line)
        rows.append((name, (kib - (previous or 0)) / 1024, seconds, eager))
        previous = kib
    return rows


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=2000)
    parser.add_argument("--where", action="store_true", help="where the memory goes")
    parser.add_argument("--starts", type=int, default=5,
                        help="cold starts of each app, alternating; medians compared")  # fmt: skip
    args = parser.parse_args()
    if args.scans % 25 or args.scans <= WARM_SCANS:
        parser.error(f"--scans: a multiple of 25 (carts of 25) above {WARM_SCANS}")
    # The kiosk's modules compiled, as pip compiles them when the image installs the app
    # (Kivy's are, in the venv): a checkout run with PYTHONDONTWRITEBYTECODE would
    # otherwise compile ~100 modules from source at every start (~0.2 s here).
    compileall.compile_dir(Path(kiosk.__file__).parent, quiet=1)
    xvfb = Xvfb()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            env = {**os.environ, "DISPLAY": xvfb.display, "KIVY_NO_FILELOG": "1",
                   "XDG_DATA_HOME": str(root / "data"), "XDG_CACHE_HOME": str(root / "cache"),
                   "KIOSK_UI_STATE": str(root), "KIOSK_ARTIFACTS": str(root / "art")}  # fmt: skip
            env.pop("KIOSK_CONFIG", None)
            # Seed the demo ledger first, so the timed start is a kiosk's ordinary start;
            # a first untimed start fills Kivy's and the catalogs' caches for both apps.
            subprocess.run([sys.executable, "-m", "kiosk.cli", "run", "--demo", "--headless"],
                           env=env, capture_output=True, timeout=120, check=True)  # fmt: skip
            bare_app(env, root)
            starts: dict[str, list[float]] = {"bare": [], "like": [], "kiosk": []}
            for _ in range(args.starts):  # alternating, so a busy moment hits all three
                starts["bare"].append(bare_app(env, root)[0])
                starts["like"].append(bare_app(env, root, as_app=True)[0])
                starts["kiosk"].append(kiosk_start(env, root))
            _, bare_kib = bare_app(env, root)
            _, like_kib = bare_app(env, root, as_app=True)
            first, before, warm, after = kiosk_app(env, root, args.scans)
            starts["kiosk"].append(first)
            bare_s, like_s, first = (statistics.median(starts[k]) for k in starts)
            rows = where(env) if args.where else []
    finally:
        xvfb.stop()
    mib = 1024
    bare_mib, start_mib, after_mib = bare_kib / mib, before / mib, after / mib
    growth = after_mib - start_mib
    ratio = first / bare_s
    print("kiosk app under Xvfb (demo catalog, offline) and a bare Kivy app, same run")
    print(f"  cold starts (s), {len(starts['kiosk'])} / {args.starts} each: kiosk "
          + " ".join(f"{x:.2f}" for x in starts["kiosk"]) + "; bare "
          + " ".join(f"{x:.2f}" for x in starts["bare"]) + "; bare with the app's window "
          + " ".join(f"{x:.2f}" for x in starts["like"]))  # fmt: skip
    print(
        f"  cold start (median)         {first:5.2f} s   bare Kivy {bare_s:5.2f} s   "
        f"ratio {ratio:.2f} (goal <= {START_RATIO_GOAL})  {verdict(ratio <= START_RATIO_GOAL)}"
    )
    print(
        f"  resident memory at start    {start_mib:5.0f} MiB bare Kivy {bare_mib:5.0f} MiB "
        f"  {start_mib - bare_mib:+.1f} MiB (goal <= +{MEMORY_GOAL_MIB:.0f})  "
        f"{verdict(start_mib - bare_mib <= MEMORY_GOAL_MIB)}"
    )
    print(
        f"  after {args.scans} scans          {after_mib:5.0f} MiB"
        f"                   {after_mib - bare_mib:+.1f} MiB (goal <= +{MEMORY_GOAL_MIB:.0f})  "
        f"{verdict(after_mib - bare_mib <= MEMORY_GOAL_MIB)}"
    )
    print(f"  growth past start           {growth:+5.1f} MiB (goal <= +{GROWTH_GOAL_MIB:.0f})"
          f"                           {verdict(growth <= GROWTH_GOAL_MIB)}")  # fmt: skip
    print(f"    of which after {WARM_SCANS} scans ({warm / mib:.0f} MiB): "
          f"{(after - warm) / mib:+.1f} MiB in the last {args.scans - WARM_SCANS}")  # fmt: skip
    print(f"  like for like: a bare Kivy app with the app's window (1280x800, no "
          f"multisampling): start {like_s:.2f} s, ratio {first / like_s:.2f}; resident "
          f"{like_kib / mib:.0f} MiB, the app {start_mib - like_kib / mib:+.1f} MiB at start, "
          f"{after_mib - like_kib / mib:+.1f} MiB after the scans")  # fmt: skip
    if rows:
        print("\nwhere the memory goes (module groups imported in order, fresh interpreter)")
        print(f"  {'group':<58} {'resident':>9} {'import':>8}  kiosk run --demo")
        for name, grown, seconds, eager in rows:
            loaded = "loads it" if eager else "lazy (not at start)"
            print(f"  {name:<58} {grown:+7.1f} MiB {seconds * 1e3:6.0f} ms  {loaded}")
        eager_mib = sum(r[1] for r in rows if r[3])
        print(f"  {'imports kiosk run --demo loads, in all':<58} {eager_mib:7.1f} MiB")
        print(f"  {'the rest at start (window, fonts, widgets, ledger cache)':<58} "
              f"{start_mib - eager_mib:7.1f} MiB")  # fmt: skip
        top = sorted((r for r in rows[1:] if r[3]), key=lambda r: -r[1])[:5]
        print("  top contributors at start: " + ", ".join(f"{r[0]} {r[1]:.1f} MiB" for r in top))


if __name__ == "__main__":
    main()
