"""`kiosk run` (the kiosk itself) and `kiosk replay` (a session script, headless)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kiosk import i18n, textfile
from kiosk.cli.base import UserError, config_option, db_option, get_config, say


@click.command()
@config_option
@db_option
@click.option("--demo", is_flag=True, help="Simulated hardware, demo catalog, demo ledger.")
@click.option("--headless", is_flag=True, help="No screen: replay the demo shift in text.")
@click.option("--offline", is_flag=True, help="Start no broker, controller or publisher.")
def run(db_path: Path | None, demo: bool, headless: bool, offline: bool) -> None:
    """Start the kiosk (full screen on a device, a window with --demo)."""
    from kiosk import app  # noqa: PLC0415 - keep `kiosk --help` fast

    config = get_config()
    if headless or not app.has_display():
        if not demo:
            raise UserError(
                i18n._("no display: set DISPLAY, or SDL_VIDEODRIVER=kmsdrm on a Pi console")
            )
        if not headless:
            say(i18n._("no display here: running the demo shift in text instead"), err=True)
        from kiosk.demo.session import run_demo  # noqa: PLC0415

        run_demo(config, db_path, out=click.echo)
        return
    from kiosk.drivers.base import ScannerError  # noqa: PLC0415

    try:
        app.run(config, demo, db_path, offline, out=click.echo)
    except ScannerError as exc:
        raise UserError(str(exc)) from None


@click.command("replay")
@config_option
@db_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@click.option(
    "--role",
    type=click.Choice(["self-checkout", "staffed", "mobile-cart"]),
    help="Act as this device role instead of the configured one.",
)
@click.option("--catalog", "catalog_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Import this catalog CSV into the replay ledger first.")  # fmt: skip
@click.option("--print", "to_printer", is_flag=True,
              help="Print the session's receipts and labels on the [printer].")  # fmt: skip
@click.option("--terminal", type=click.Choice(["sim"]),
              help="Card payments through the ZVT driver to a simulated terminal.")  # fmt: skip
def replay_command(
    db_path: Path | None,
    file: Path,
    role: str | None,
    catalog_file: Path | None,
    to_printer: bool = False,
    terminal: str | None = None,
) -> None:
    """Run a session script (one JSON action per line) through the checkout.

    Without --db it works on a temporary copy of the configured ledger (or a demo
    ledger when there is none), so nothing real is touched."""
    from kiosk.checkout.replay_run import run_replay  # noqa: PLC0415

    config = get_config()
    if role:
        config = config.replace(device=config.device.replace(role=role))
    try:
        if str(file) == "-":
            text = textfile.decode(sys.stdin.buffer.read(), "<stdin>")
        else:
            text = textfile.read_text(file)
    except FileNotFoundError:
        raise UserError(i18n._("{file}: no such file", file=file)) from None
    printer = _replay_printer(config) if to_printer else None
    status = run_replay(
        config,
        text.splitlines(),
        db_path,
        catalog_file,
        out=click.echo,
        printer=printer,
        terminal=terminal,
    )
    if status:
        raise click.exceptions.Exit(status)


def _replay_printer(config):
    """`replay --print`: the configured printer; the session's documents go to it."""
    from kiosk.drivers.printer import EscposPrinter  # noqa: PLC0415

    try:
        printer = EscposPrinter.from_config(config.printer)
    except Exception as exc:  # noqa: BLE001 - USB, serial and socket errors differ
        raise UserError(
            i18n._("printer ({kind}): {error}", kind=config.printer.kind, error=exc)
        ) from None
    if printer is None:
        raise UserError(i18n._('--print: no printer configured ([printer] kind = "none")'))
    return printer
