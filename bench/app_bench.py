"""The kiosk app under Xvfb: cold start to the first frame, and resident memory
after 500 scans, beside a bare Kivy app's cold start in the same run.

    .venv/bin/python -m bench.app_bench
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kiosk.testing.xvfb import Xvfb

BARE = """
import os, time
os.environ["KIVY_NO_ARGS"] = "1"
from kivy.app import App
from kivy.clock import Clock
from kivy.uix.button import Button
def first_frame(dt):
    print("FIRST", time.time() - float(os.environ["T0"]), flush=True)
    App.get_running_app().stop()
class Bare(App):
    def build(self):
        Clock.schedule_once(first_frame, 0)
        return Button(text="bare")
Bare().run()
"""
CODES = ["4006381333931", "14001234000012", "2800123005320", "4001234000022", "036000291452"]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_state(folder: Path, check, timeout=120.0) -> dict:
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


def main() -> None:
    xvfb = Xvfb()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            env = {**os.environ, "DISPLAY": xvfb.display, "KIVY_NO_FILELOG": "1",
                   "XDG_DATA_HOME": str(root / "data"), "XDG_CACHE_HOME": str(root / "cache"),
                   "KIOSK_UI_STATE": str(root), "KIOSK_ARTIFACTS": str(root / "art")}  # fmt: skip
            env.pop("KIOSK_CONFIG", None)
            script = root / "bare.py"  # Kivy wants its app class in a file
            script.write_text(BARE)
            bare = subprocess.run(
                [sys.executable, str(script)], env={**env, "T0": str(time.time())},
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            found = [x for x in bare.stdout.splitlines() if x.startswith("FIRST")]
            if not found:
                raise SystemExit(f"the bare Kivy app failed: {bare.stderr[-1500:]}")
            bare_s = float(found[0].split()[1])
            # Seed the demo ledger first, so the timed start is a kiosk's ordinary start.
            subprocess.run([sys.executable, "-m", "kiosk.cli", "run", "--demo", "--headless"],
                           env=env, capture_output=True, timeout=120, check=True)  # fmt: skip
            env["KIOSK_STARTED_AT"] = str(time.time())
            app = subprocess.Popen(
                [sys.executable, "-m", "kiosk.cli", "run", "--demo", "--offline"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                first = wait_state(root, lambda s: "first_frame_s" in s)["first_frame_s"]
                time.sleep(1)
                before = rss_kib(app.pid)
                actions = []
                for index in range(500):
                    if index % 25 == 0:
                        actions.append(["cancel"])
                    actions.append(["scan", CODES[index % len(CODES)]])
                (root / "act-1.request").write_text(json.dumps(actions))
                wait_state(root, lambda s: s.get("idle") and not (root / "act-1.request").exists()
                           and s["snap"]["lines"])  # fmt: skip
                time.sleep(2)
                after = rss_kib(app.pid)
            finally:
                app.terminate()
                app.wait(20)
    finally:
        xvfb.stop()
    print("kiosk app under Xvfb (demo catalog, offline)")
    print(f"  cold start to first frame  {first:5.2f} s   bare Kivy app {bare_s:5.2f} s"
          f"   ratio {first / bare_s:.1f}")  # fmt: skip
    print(
        f"  resident memory            {before / 1024:5.0f} MiB at start, "
        f"{after / 1024:.0f} MiB after 500 scans ({(after - before) / 1024:+.1f} MiB)"
    )


if __name__ == "__main__":
    main()
