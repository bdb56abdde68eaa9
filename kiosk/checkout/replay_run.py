"""Running a session script from the command line: ledger set-up, output, totals.

Shared by `kiosk replay` and the headless `kiosk run --demo`, which replays a
bundled shift through the same Checkout the screens use; beside replay.py, whose
scripts it runs.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from kiosk.checkout.replay import ExpectationFailed, ReplayClock, Step, replay
from kiosk.checkout.report_text import money, receipt_lines
from kiosk.checkout.session import Checkout, Event
from kiosk.config import Config
from kiosk.documents import KitLabel, Receipt, TextReport
from kiosk.drivers.base import MemoryDrawer, MemoryPrinter
from kiosk.ledger import catalog_csv
from kiosk.ledger.core import Ledger
from kiosk.ledger.models import Item, utc_now
from kiosk.ledger.verify import verify

Out = Callable[[str], None]


class TerminalPrinter(MemoryPrinter):
    """Prints documents as text to the terminal (and keeps them, like MemoryPrinter)."""

    def __init__(self, out: Out):
        super().__init__()
        self.out = out

    def _out(self, document) -> None:
        super()._out(document)
        if isinstance(document, Receipt):
            lines = list(receipt_lines(document))
        elif isinstance(document, KitLabel):
            label = document
            lines = [
                f"KIT LABEL {label.name} ({label.kit_sku}) BOM v{label.bom_version}",
                f"  assembled {label.assembled}  lot {label.lot or '-'}  [{label.barcode}]",
                *(f"  {qty} x {name}" for name, qty in document.contents),
            ]
        elif isinstance(document, TextReport):
            lines = list(document.lines)
        else:  # pragma: no cover - every document type is above
            lines = [repr(document)]
        self.out("")
        for line in lines:
            self.out("    | " + line)
        self.out("")


@contextmanager
def replay_ledger(config: Config, db_path: Path | None, out: Out):
    """--db as given; else a temporary copy of the configured ledger; else a fresh one."""
    if db_path is not None:
        with Ledger.open(config, db_path) as ledger:
            yield ledger
        return
    with tempfile.TemporaryDirectory(prefix="kiosk-replay-") as tmp:
        copy = Path(tmp) / "ledger.db"
        source = config.ledger.path
        if source.exists():
            with sqlite3.connect(source) as src, sqlite3.connect(copy) as dst:
                src.backup(dst)  # consistent even while the kiosk is writing
            out(f"replaying on a copy of {source}")
        else:
            out("replaying on a fresh demo ledger")
        with Ledger.open(config, copy) as ledger:
            if not source.exists():
                from kiosk.demo.seed import seed  # noqa: PLC0415

                seed(ledger, out)
            yield ledger
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def replay_terminal(config: Config, kind: str | None, out: Out):
    """`--terminal sim`: a simulated ZVT terminal on 127.0.0.1 (kiosk.demo.terminal),
    driven through the real driver; yields (terminal, simulator), or (None, None)."""
    if kind is None:
        yield None, None
        return
    from kiosk.demo.terminal import TerminalSimulator  # noqa: PLC0415
    from kiosk.drivers.payment import make_terminal  # noqa: PLC0415

    simulator = TerminalSimulator(password=config.payment.password).start()
    terminal = make_terminal(config, demo_port=simulator.port)
    out(f"simulated card terminal on 127.0.0.1:{simulator.port}")
    try:
        yield terminal, simulator
    finally:
        terminal.close()
        simulator.stop()


def run_steps(
    ledger: Ledger, lines: Iterable[str], out: Out, printer=None, terminal=None, simulator=None
) -> tuple[int, Checkout]:
    """Replay `lines`; print each step and the totals. Returns (exit status, checkout)."""
    clock = ReplayClock(utc_now)
    co = Checkout(
        ledger, printer or MemoryPrinter(), MemoryDrawer(), clock=clock, terminal=terminal
    )
    co.terminal_simulator = simulator  # for {"terminal": {"plan": [...]}} lines
    posted: list[tuple[str, Decimal]] = []

    def on_event(event: Event) -> None:
        if event.kind == "posted":
            posted.append((event.detail["receipt"], Decimal(event.detail["total"])))
        elif event.kind == "alert":
            out(f"       ! staff alert: {event.detail['text']}")

    def on_step(step: Step) -> None:
        mark = "ok" if step.outcome.ok else "no"
        out(f"{step.line:>4} {step.action:<13} {mark}  {step.outcome.message}")

    co.subscribe(on_event)
    status = 0
    try:
        replay(co, lines, clock, on_step)
    except ExpectationFailed as exc:
        out(f"expectation failed: {exc}")
        status = 1
    snap = co.snapshot()
    takings = sum((total for _, total in posted), Decimal(0))
    out(
        f"end: state {snap['state']}, cart {len(snap['lines'])} line(s) "
        f"{money(Decimal(snap['total']), ledger.config)}; posted {len(posted)} "
        f"transaction(s), net {money(takings, ledger.config)}"
    )
    return status, co


def run_replay(
    config: Config,
    lines: list[str],
    db_path: Path | None,
    catalog_file: Path | None,
    out: Out,
    printer=None,
    terminal: str | None = None,
) -> int:
    """`printer`: where the session's receipts, labels and reports go (`replay
    --print`: the configured printer); default: kept in memory. `terminal` "sim":
    card payments go through the ZVT driver to a simulated terminal."""
    with (
        replay_ledger(config, db_path, out) as ledger,
        replay_terminal(config, terminal, out) as (card_terminal, simulator),
    ):
        if catalog_file is not None:
            result = catalog_csv.import_file(ledger, catalog_file)
            out(f"{catalog_file}: {result.added} added, {result.updated} updated")
        if not Item.select().exists():
            out("warning: the ledger has no items; give --catalog FILE")
        status, _ = run_steps(ledger, lines, out, printer, card_terminal, simulator)
        problems = verify(ledger)
        if problems:
            for problem in problems:
                out(f"ledger verify: {problem}")
            return 1
        return status
