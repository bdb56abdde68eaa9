"""Drive the real kiosk app under Xvfb with real X input (xdotool).

The app, started with KIOSK_UI_STATE, writes its screen, checkout snapshot and the
centre of every named widget to state.json after each change; the tests click and
type through X like a person would, then wait for the state they expect."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from kiosk.testing.xvfb import Xvfb

ARTIFACTS = Path(os.environ.get("KIOSK_ARTIFACTS", Path(__file__).parent.parent / "artifacts"))


class KioskUI:
    def __init__(self, xvfb: Xvfb, folder: Path, name: str, extra_args=(), env=None, wrap=()):
        """`wrap`: a command the app is started through (e.g. unshare with a small disk)."""
        self.xvfb = xvfb
        self.folder = folder
        self.state_dir = folder / "ui"
        self.state_dir.mkdir(parents=True)
        self.shots = ARTIFACTS / "screens"
        self.name = name
        self.clicks: list[tuple[str, str, int, int]] = []  # (widget, screen, x, y), for failures
        self.env = {
            **os.environ,
            "DISPLAY": xvfb.display,
            "KIOSK_UI_STATE": str(self.state_dir),
            "XDG_DATA_HOME": str(folder / "data"),
            "XDG_CACHE_HOME": str(folder / "cache"),
            "KIOSK_ARTIFACTS": str(ARTIFACTS / name),
            "KIVY_NO_FILELOG": "1",
            **(env or {}),
        }
        if not (env or {}).get("KIOSK_CONFIG"):
            self.env.pop("KIOSK_CONFIG", None)
        self.log = open(folder / "app.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [*wrap, sys.executable, "-m", "kiosk.cli", "run", "--demo", "--offline", *extra_args],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.wait(lambda s: s["snap"].get("state") == "attract" and "headline" in s["widgets"],
                  "the attract screen", 60)  # fmt: skip
        self.window = self._window()

    def _window(self) -> str:
        """Kivy's SDL2 window: `search --name` misses it (shared/FINDINGS.md), so list
        windows by class and pick ours by its title."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = subprocess.run(
                ["xdotool", "search", "--classname", "."],
                env=self.env, capture_output=True, text=True, timeout=20,
            )  # fmt: skip
            for window in found.stdout.split():
                title = subprocess.run(
                    ["xdotool", "getwindowname", window],
                    env=self.env, capture_output=True, text=True, timeout=20,
                ).stdout  # fmt: skip
                if title.startswith("kiosk "):
                    return window
            time.sleep(0.1)
        raise AssertionError("no kiosk window on the X display")

    # ------------------------------------------------------------ state

    def state(self) -> dict:
        path = self.state_dir / "state.json"
        for _ in range(20):
            try:
                return json.loads(path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.05)
        raise AssertionError("the app wrote no state")

    def wait(self, check, what: str, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the app exited: {(self.folder / 'app.log').read_text()[-2000:]}"
                )
            try:
                state = self.state()
                if check(state):
                    return state
            except AssertionError:
                pass
            time.sleep(0.05)
        snap = state["snap"] if state else None
        with contextlib.suppress(AssertionError):  # what the screen showed (artifacts)
            self.screenshot(f"timeout-{'-'.join(what.split())}")
        raise AssertionError(
            f"timed out waiting for {what}; last clicks {self.clicks[-3:]}; widgets at "
            f"{state['widgets'] if state else None}; last state {snap}"
        )

    # ------------------------------------------------------------ real X input

    def _xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=self.env, check=True, timeout=20)

    def click(self, widget: str) -> None:
        state = self.wait(lambda s: widget in s["widgets"], f"widget {widget}")
        x, y = state["widgets"][widget]
        self.clicks.append((widget, state["screen"], int(x), int(y)))
        self._xdotool("mousemove", "--window", self.window, str(int(x)), str(int(y)))
        self._xdotool("click", "1")
        time.sleep(0.15)

    def enter_pin(self, pin: str) -> None:
        """Type a PIN on the pad and press OK once every digit is shown: a click lost
        while a busy machine redraws must not become "Wrong PIN"."""
        for digit in pin:
            self.click(f"pin_{digit}")
        self.wait(lambda s: s["pin"] == len(pin), "the PIN typed")
        self.click("ok_button")

    def login(self, pin: str) -> None:
        """Open the staff PIN pad from the attract screen and type `pin`."""
        self.click("staff_button")
        self.wait(lambda s: s["screen"] == "pin", "the PIN pad")
        self.enter_pin(pin)

    def type(self, text: str, enter: bool = True) -> None:
        self._xdotool("type", "--delay", "15", text)
        if enter:
            self._xdotool("key", "Return")
        time.sleep(0.1)

    def scan(self, code: str) -> None:
        """The demo scanner field has focus: type the code and Enter, as a wedge would."""
        self.click("demo_demo_scanner")
        self.type(code)

    def screenshot(self, name: str) -> Path:
        target = self.shots / f"{name}.png"
        request = self.state_dir / f"shot-{name}.request"
        request.write_text(str(target))
        done = self.state_dir / f"shot-{name}.done"
        deadline = time.monotonic() + 10
        while not done.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"no screenshot {name}")
            time.sleep(0.05)
        return target

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
