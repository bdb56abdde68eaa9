"""Real parts for tests and benchmarks, shipped with the package the way gpiozero ships
its MockFactory: a Mosquitto on a free loopback port (`mosquitto`), ledgers made with
the real posting code (`ledgers`), an X server for the app (`xvfb`), a PostgreSQL
server for the controller's store (`postgres`). The tests and the
benches in bench/ both import from here; nothing here is used by the kiosk itself.

A part that is missing fails loudly (MissingPart, an AssertionError, so pytest reports
a failure, never a skip) with the Debian package that brings it.
"""

from __future__ import annotations

import shutil


class MissingPart(AssertionError):
    """A tool a test or bench needs is not installed."""


def need(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        raise MissingPart(
            f"{tool} is not installed: apt-get install {package} (./dev.sh test does)"
        )
