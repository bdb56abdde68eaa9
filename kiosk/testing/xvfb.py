"""An X server (Xvfb) on a free display number, for the app under test and its bench."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from kiosk.testing import need


class Xvfb:
    def __init__(self):
        need("Xvfb", "xvfb")
        need("xdotool", "xdotool")
        for number in range(90, 140):
            if not Path(f"/tmp/.X{number}-lock").exists():
                break
        self.display = f":{number}"
        self.process = subprocess.Popen(
            ["Xvfb", self.display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError("Xvfb did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
