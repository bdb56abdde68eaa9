"""A real PostgreSQL server of our own on a free loopback port, for tests and benches
(Debian's `postgresql` package: its initdb and pg_ctl, run as the postgres user when
we are root, since initdb refuses root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kiosk.testing import MissingPart
from kiosk.testing.mosquitto import free_port

PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=Path("/nonexistent"))


@contextmanager
def postgres_server(database: str = "shop") -> Iterator[str]:
    """Yields the URL of an empty database on a server that is gone afterwards."""
    if not (PG_BIN / "initdb").exists():
        raise MissingPart("PostgreSQL is not installed: apt-get install postgresql (./dev.sh test)")
    top = Path(tempfile.mkdtemp(prefix="kiosk-pg-"))  # outside pytest's root-only tmp tree
    data = top / "pg"
    data.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        os.chmod(top, 0o755)
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, text=True, timeout=120)

    run(str(PG_BIN / "initdb"), "-D", str(data), "-U", "kiosk", "--auth=trust")
    run(
        str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(data / "log"), "-w", "-o",
        f"-p {port} -c listen_addresses=127.0.0.1 -k {data}", "start",
    )  # fmt: skip
    try:
        run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "kiosk", database)
        yield f"postgresql://kiosk@127.0.0.1:{port}/{database}"
    finally:
        run(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(top, ignore_errors=True)
