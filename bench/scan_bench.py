"""Scan to pixels: from the scanner's terminator key to the cart repainted, under Xvfb.

    .venv/bin/python -m bench.scan_bench [--items 50000] [--scans 500] [--cart 25]

The real app (`kiosk.app.run`, a self-checkout, offline) on a 50,000-item ledger. Its
scanner is the real keyboard-wedge decoder (kiosk.drivers.scanner.KeyDecoder, us
keymap) in a reader thread like EvdevScanner's, fed evdev InputEvent objects: a
barcode's key presses and releases, then Enter, whose scan goes to the app's own
on_scan (Clock -> checkout worker -> snapshot -> Clock -> the cart's widgets).

Measured: from just before the Enter press goes into the decoder, to the return of
the first buffer swap (Window.flip, after on_draw) at which the cart screen's list
holds the new line: the frame handed to the X server. One scan at a time, 0.3 s
after the last one was shown (PAUSE_S); a cart is
cancelled after `--cart` distinct items (the cancel is not timed). Pricing calls
are counted per scan (kiosk.checkout.cart.price_cart; the Cart memoises its price).

The bare baseline, in the same run: a bare Kivy app (one Label), the same reader
thread and decoder; on Enter it schedules the Label's text to the scan, timed to the
first swap showing it, under Kivy's default clock and under the app's; and once more
with the app's clock and its graphics settings (no multisampling, kiosk/app.py), so the
last ratio compares like with like.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

GOAL_MS = 16.0
# Between one scan on screen and the next Enter: a fast cashier's pace is ~1 scan a
# second; at 0.3 s the previous scan's frames are drawn, so each scan is timed alone.
PAUSE_S = 0.3
NEXT_CUSTOMER_S = 1.0  # after a cart is cancelled, before the next customer's first scan
STEPS = (
    "Enter -> the UI thread's act",
    "act -> the checkout worker",
    "checkout.scan and snapshot",
    "-> the answer on the UI thread",
    "the answer -> widgets (_done)",
    "layout, textures, draw",
    "the buffer swap (flip)",
)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def key_events(code: str) -> list:
    """A keyboard-wedge scanner typing `code` (digits) on a us layout, then Enter."""
    from evdev import InputEvent, ecodes  # noqa: PLC0415

    now = time.time()
    sec, usec = int(now), int(now % 1 * 1e6)
    events = []
    for char in code:
        key = ecodes.ecodes[f"KEY_{char}"]
        events += [InputEvent(sec, usec, ecodes.EV_KEY, key, 1),
                   InputEvent(sec, usec, ecodes.EV_KEY, key, 0)]  # fmt: skip
    return [*events, InputEvent(sec, usec, ecodes.EV_KEY, ecodes.KEY_ENTER, 1),
            InputEvent(sec, usec, ecodes.EV_KEY, ecodes.KEY_ENTER, 0)]  # fmt: skip


class FrameWatch:
    """Wraps Window.flip: after each buffer swap, `shown()` is asked whether the
    awaited change is on screen; the first swap that shows it ends the wait."""

    def __init__(self, window):
        self.lock = threading.Lock()
        self.shown = None
        self.done = threading.Event()
        self.at = 0.0
        self.flip_ms = 0.0  # the swap of the frame that showed the change
        self.frames = 0
        flip = window.flip

        def timed_flip() -> None:
            self.frames += 1
            started = time.perf_counter()
            flip()
            now = time.perf_counter()
            with self.lock:
                if self.shown is not None and self.shown():
                    self.at, self.shown = now, None
                    self.flip_ms = (now - started) * 1e3
                    self.done.set()

        window.flip = timed_flip

    def expect(self, shown) -> None:
        with self.lock:
            self.done.clear()
            self.shown = shown

    def wait(self, timeout=30.0) -> float:
        if not self.done.wait(timeout):
            raise AssertionError("the change never reached the screen")
        return self.at


def feed(decoder, events, on_scan) -> float:
    """The reader thread's work for one scan; returns the time the Enter went in."""
    for event in events[:-2]:
        if decoder.feed(event):
            raise AssertionError("a scan ended before its Enter")
    started = time.perf_counter()
    scan = decoder.feed(events[-2])
    on_scan(scan)
    decoder.feed(events[-1])
    return started


# ---------------------------------------------------------------- the kiosk app


def time_the_screens(marks: dict[str, float]) -> None:
    """Marks when the UI thread takes the scan and when the worker's answer is shown."""
    from kiosk.screens.shell import KioskApp  # noqa: PLC0415
    from kiosk.screens.worker import CheckoutWorker  # noqa: PLC0415

    act, call = KioskApp.act, CheckoutWorker.call

    def timed_act(self, method, *args) -> None:
        if method == "scan":
            marks["ui"] = time.perf_counter()
        act(self, method, *args)

    def timed_call(self, method, *args, then=None) -> None:
        if method == "scan" and then is not None:

            def answered(*outcome) -> None:  # on the UI thread, the worker's answer
                marks["answer"] = time.perf_counter()
                then(*outcome)
                marks["widgets"] = time.perf_counter()

            call(self, method, *args, then=answered)
        else:
            call(self, method, *args, then=then)

    KioskApp.act, CheckoutWorker.call = timed_act, timed_call


def time_the_checkout(marks: dict[str, float]) -> None:
    """Marks when the worker starts the scan and when its snapshot is taken."""
    from kiosk.checkout.session import Checkout  # noqa: PLC0415

    scan, snapshot = Checkout.scan, Checkout.snapshot

    def timed_scan(self, code):
        marks["worker"] = time.perf_counter()
        return scan(self, code)

    def timed_snapshot(self):
        taken = snapshot(self)
        if "worker" in marks and "snapshot" not in marks:
            marks["snapshot"] = time.perf_counter()
        return taken

    Checkout.scan, Checkout.snapshot = timed_scan, timed_snapshot


def run_kiosk(ledger: str, codes: list[str], cart: int) -> dict:
    import kiosk.app  # noqa: PLC0415
    import kiosk.checkout.cart as cart_module  # noqa: PLC0415
    import kiosk.drivers.factory as factory  # noqa: PLC0415
    from kiosk.config import parse  # noqa: PLC0415
    from kiosk.drivers.scanner import KeyDecoder, ReaderThread  # noqa: PLC0415

    priced = [0]
    price_cart = cart_module.price_cart

    def counted(*args, **kwargs):
        priced[0] += 1
        return price_cart(*args, **kwargs)

    cart_module.price_cart = counted
    result: dict = {"ms": [], "priced": [], "steps": [], "gc_ms": []}
    collecting = [0.0]

    def gc_pause(phase: str, info: dict) -> None:  # the collector's full passes, timed
        if info["generation"] == 2 and phase == "start":
            collecting[0] = time.perf_counter()
        elif info["generation"] == 2 and result["ms"]:
            result["gc_ms"].append((time.perf_counter() - collecting[0]) * 1e3)

    gc.callbacks.append(gc_pause)
    marks: dict[str, float] = {}  # when each step of the scan now being timed ended
    kivy_environment = kiosk.app._kivy_environment

    def set_up_then_time(*args) -> None:  # Kivy is imported only once the app set it up
        kivy_environment(*args)
        time_the_screens(marks)
        time_the_checkout(marks)

    kiosk.app._kivy_environment = set_up_then_time

    class BenchScanner(ReaderThread):
        """EvdevScanner's reading loop with the key events given, not read."""

        def __init__(self, config, on_scan):
            super().__init__()
            self.decoder = KeyDecoder(config)
            self.on_scan = on_scan

        def run(self) -> None:
            try:
                self._scans()
            except BaseException as exc:  # noqa: BLE001 - reported by the parent
                result["error"] = repr(exc)
            finally:
                from kivy.clock import Clock  # noqa: PLC0415 - kiosk.app sets Kivy up

                Clock.schedule_once(lambda dt: app().stop())

        def _scans(self) -> None:
            while app() is None or not getattr(app(), "ready", False):
                time.sleep(0.05)
            from kivy.clock import Clock  # noqa: PLC0415
            from kivy.core.window import Window  # noqa: PLC0415

            result["clock"] = os.environ.get("KIVY_CLOCK", "default")
            kiosk_app = app()
            watch = FrameWatch(Window)
            screens = kiosk_app.root.ids.screens

            def rows() -> int:  # the cart's rows on screen; asked on the UI thread, as the
                cart = screens.built("cart")  # cart screen is built at the first scan
                return 0 if cart is None else len(cart.ids.lines.children)

            shown_lines = 0
            for index, code in enumerate(codes):
                if index and index % cart == 0:  # the customer leaves; not timed
                    watch.expect(lambda: rows() == 0)
                    Clock.schedule_once(lambda dt: kiosk_app.act("cancel"))
                    watch.wait()
                    time.sleep(NEXT_CUSTOMER_S)  # the next customer steps up (the app
                    shown_lines = 0  # collects garbage fully between customers)
                shown_lines += 1
                events = key_events(code)
                before = priced[0]
                watch.expect(lambda n=shown_lines: rows() == n)
                marks.clear()
                result.setdefault("frames", []).append(watch.frames)
                watch.frames = 0
                started = feed(self.decoder, events, self.on_scan)
                result["ms"].append((watch.wait() - started) * 1e3)
                swapped = watch.at - watch.flip_ms / 1e3
                result["steps"].append([(b - a) * 1e3 for a, b in zip(
                    [started, marks["ui"], marks["worker"], marks["snapshot"], marks["answer"],
                     marks["widgets"], swapped],
                    [marks["ui"], marks["worker"], marks["snapshot"], marks["answer"],
                     marks["widgets"], swapped, watch.at],
                    strict=True)])  # fmt: skip
                time.sleep(PAUSE_S)  # the next customer's item: a scan's own latency
                result["priced"].append(priced[0] - before)
                if kiosk_app.snap["message"] and "Cannot" in str(kiosk_app.snap["message"]):
                    raise AssertionError(f"{code}: {kiosk_app.snap['message']}")

    def app():
        from kivy.app import App  # noqa: PLC0415

        return App.get_running_app()

    factory.make_scanner = lambda config, on_scan, demo=False: BenchScanner(config.scanner, on_scan)
    config = parse(
        f'[device]\nid = "bench-01"\nrole = "self-checkout"\n[ledger]\npath = "{ledger}"\n'
        '[printer]\nkind = "none"\n[drawer]\nkind = "none"\n[ui]\nfullscreen = false\n'
        '[scanner]\nkind = "evdev"\nmatch = "bench"\n'
    )
    if os.environ.get("SCAN_BENCH_PROFILE"):  # --profile: the UI thread, by own time
        import cProfile  # noqa: PLC0415
        import pstats  # noqa: PLC0415

        profile = cProfile.Profile()
        profile.runcall(kiosk.app.run, config, demo=False, offline=True, out=lambda text: None)
        stats = pstats.Stats(profile, stream=sys.stderr)
        stats.sort_stats(os.environ["SCAN_BENCH_PROFILE"]).print_stats(40)
    else:
        kiosk.app.run(config, demo=False, offline=True, out=lambda text: None)
    return result


# ---------------------------------------------------------------- the bare app


def run_bare(codes: list[str]) -> dict:
    os.environ["KIVY_NO_ARGS"] = "1"
    from kivy.config import Config  # noqa: PLC0415

    from kiosk.app import MULTISAMPLES, WINDOW_SIZE  # noqa: PLC0415

    Config.set("graphics", "width", WINDOW_SIZE[0])
    Config.set("graphics", "height", WINDOW_SIZE[1])
    if os.environ.get("SCAN_BENCH_AS_APP"):  # the app's graphics settings, as well
        Config.set("graphics", "multisamples", MULTISAMPLES)
    from kivy.app import App  # noqa: PLC0415
    from kivy.clock import Clock  # noqa: PLC0415
    from kivy.core.window import Window  # noqa: PLC0415
    from kivy.uix.label import Label  # noqa: PLC0415

    from kiosk.config import ScannerConfig  # noqa: PLC0415
    from kiosk.drivers.scanner import KeyDecoder  # noqa: PLC0415

    result: dict = {"ms": []}
    label = Label(text="bare", font_size="22sp")

    def scans() -> None:
        try:
            time.sleep(1)
            watch = FrameWatch(Window)
            decoder = KeyDecoder(ScannerConfig())

            def on_scan(text: str) -> None:
                Clock.schedule_once(lambda dt: setattr(label, "text", text))

            for code in codes:
                watch.expect(lambda c=code: label.text == c)
                started = feed(decoder, key_events(code), on_scan)
                result["ms"].append((watch.wait() - started) * 1e3)
                result.setdefault("flip_ms", []).append(watch.flip_ms)
                time.sleep(PAUSE_S)
        except BaseException as exc:  # noqa: BLE001
            result["error"] = repr(exc)
        finally:
            Clock.schedule_once(lambda dt: App.get_running_app().stop())

    class Bare(App):
        def build(self):
            threading.Thread(target=scans, daemon=True).start()
            return label

    Bare().run()
    return result


# ---------------------------------------------------------------- the run


def child(kind: str, args) -> dict:
    """One app in its own interpreter (Kivy wants one window per process)."""
    env = {**os.environ, "DISPLAY": args.display, "KIVY_NO_FILELOG": "1",
           "XDG_CACHE_HOME": str(args.tmp / "cache"), "XDG_DATA_HOME": str(args.tmp / "data"),
           "KIVY_LOG_MODE": "PYTHON", "KIVY_NO_ARGS": "1"}  # fmt: skip
    env.pop("KIOSK_UI_STATE", None)
    env.pop("KIOSK_CONFIG", None)
    if kind == "kiosk" and args.profile:
        env["SCAN_BENCH_PROFILE"] = args.profile
    if kind == "bare-default":
        env.pop("KIVY_CLOCK", None)
    elif kind == "bare-app-clock":
        env["KIVY_CLOCK"] = args.app_clock
    elif kind == "bare-app-settings":
        env["KIVY_CLOCK"] = args.app_clock
        env["SCAN_BENCH_AS_APP"] = "1"
    run = subprocess.run(
        [sys.executable, "-m", "bench.scan_bench", "--child", kind, "--ledger", str(args.ledger),
         "--codes", str(args.codes)],
        env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    found = [x for x in run.stdout.splitlines() if x.startswith("RESULT ")]
    if not found:
        raise SystemExit(f"{kind}: no result\n{run.stderr[-3000:]}")
    result = json.loads(found[0][7:])
    if kind == "kiosk" and args.profile:
        print(run.stderr[run.stderr.find("   Ordered by") :], file=sys.stderr)
    if "error" in result:
        raise SystemExit(f"{kind}: {result['error']}\n{run.stderr[-3000:]}")
    return result


def line(name: str, ms: list[float]) -> str:
    return (f"  {name:<34} p50 {percentile(ms, 50):6.2f}  p95 {percentile(ms, 95):6.2f}  "
            f"p99 {percentile(ms, 99):6.2f}  max {max(ms):6.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--scans", type=int, default=500)
    parser.add_argument("--cart", type=int, default=25, help="distinct items per cart")
    parser.add_argument("--profile", choices=["tottime", "cumulative"],
                        help="profile the app's UI thread (printed on stderr)")  # fmt: skip
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--ledger", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--codes", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        codes = json.loads(args.codes.read_text())
        if args.child == "kiosk":
            result = run_kiosk(str(args.ledger), codes["codes"], codes["cart"])
        else:
            result = run_bare(codes["codes"])
        print("RESULT " + json.dumps(result), flush=True)
        return
    from bench.ledger_bench import config_for, make_catalog  # noqa: PLC0415
    from kiosk.ledger import catalog_csv  # noqa: PLC0415
    from kiosk.ledger.barcodes import with_check_digit  # noqa: PLC0415
    from kiosk.ledger.core import Ledger  # noqa: PLC0415
    from kiosk.testing.xvfb import Xvfb  # noqa: PLC0415

    rng = random.Random(19)
    codes = []
    while len(codes) < args.scans:  # carts of distinct items, as the lines are counted
        picked = rng.sample(range(args.items), min(args.cart, args.scans - len(codes)))
        codes += [with_check_digit(f"40{i:010d}") for i in picked]
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = Path(tmp)
        args.ledger = args.tmp / "ledger.db"
        make_catalog(args.ledger.with_suffix(".csv"), args.items)
        with Ledger.open(config_for(args.ledger, "normal")) as ledger:
            catalog_csv.import_file(ledger, args.ledger.with_suffix(".csv"))
        args.codes = args.tmp / "codes.json"
        args.codes.write_text(json.dumps({"codes": codes, "cart": args.cart}))
        args.app_clock = app_clock()
        xvfb = Xvfb()
        args.display = xvfb.display
        try:
            kiosk = child("kiosk", args)
            bare = child("bare-default", args)
            bare_app_clock = child("bare-app-clock", args) if args.app_clock else None
            bare_settings = child("bare-app-settings", args)
        finally:
            xvfb.stop()
    ours = kiosk["ms"]
    print(f"scan to pixels under Xvfb: {args.items} items, {args.scans} scans, carts of "
          f"{args.cart} distinct items (milliseconds, Enter into the decoder -> swap)")  # fmt: skip
    print(line(f"kiosk app, cart repainted ({kiosk['clock']})", ours))
    for index, step in enumerate(STEPS):
        print(line(f"  {step}", [s[index] for s in kiosk["steps"]]))
    print(line("bare Kivy, one Label, default clock", bare["ms"]))
    print(line("  of which: the buffer swap (flip)", bare["flip_ms"]))
    if bare_app_clock:
        print(line(f"bare Kivy, one Label, {args.app_clock} clock", bare_app_clock["ms"]))
    print(line("bare Kivy, the app's clock, no multisampling", bare_settings["ms"]))
    print(line("  of which: the buffer swap (flip)", bare_settings["flip_ms"]))
    p99 = percentile(ours, 99)
    for name, base in ((f"{args.app_clock or 'default'} clock", bare_app_clock or bare),
                       ("the app's clock, no multisampling", bare_settings)):  # fmt: skip
        print(f"  ratio kiosk / bare ({name}): p50 "
              f"{percentile(ours, 50) / percentile(base['ms'], 50):.1f}x, "
              f"p99 {p99 / percentile(base['ms'], 99):.1f}x")  # fmt: skip
    print(f"  p99 {p99:.2f} ms (goal <= {GOAL_MS:.0f} ms)  {'PASS' if p99 <= GOAL_MS else 'MISS'}")
    pauses = kiosk["gc_ms"]
    print(f"  full garbage collections during the scans: {len(pauses)}"
          + (f", longest {max(pauses):.1f} ms" if pauses else ""))  # fmt: skip
    frames = kiosk["frames"][1:]
    print(f"  frames drawn per scan (Enter to next Enter): mean {sum(frames) / len(frames):.1f},"
          f" max {max(frames)}")  # fmt: skip
    counts = sorted(set(kiosk["priced"]))
    once = counts == [1]
    print(f"  pricing calls per scan: {', '.join(map(str, counts))} "
          f"(goal: 1)  {'PASS' if once else 'MISS'}")  # fmt: skip


def app_clock() -> str:
    """The Kivy clock kiosk.app chooses ('' for Kivy's default)."""
    from kiosk import app  # noqa: PLC0415

    return getattr(app, "KIVY_CLOCK", "")


if __name__ == "__main__":
    main()
