"""`kiosk hw ...`: hardware diagnostics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kiosk import i18n
from kiosk.cli.base import UserError, config_option, get_config, say, wait_for_signal


@click.group("hw")
def hw_group() -> None:
    """Check the scanner, printer and cash drawer."""


@hw_group.command("scanners")
@config_option
def hw_scanners() -> None:
    """Input devices, and which match [scanner] match."""
    from kiosk.drivers import scanner  # noqa: PLC0415

    config = get_config()
    if not scanner.input_devices_visible():
        raise UserError(i18n._("no /dev/input here: no USB scanners can be seen on this machine"))
    try:
        devices = scanner.list_devices()
    except scanner.ScannerError as exc:
        raise UserError(i18n.text_of(exc)) from None
    match = config.scanner.match
    for device in devices:
        mark = "*" if scanner.matches(device, match) else " "
        click.echo(f"{mark} {device.path:<22} {device.ident}  {device.name}")
    if not any(scanner.matches(d, match) for d in devices):
        raise UserError(i18n._("no input device matches [scanner] match = {match!r}", match=match))


@hw_group.command("scan-test")
@config_option
@click.option("--events", "events_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Decode recorded events (JSON) instead of reading the scanner.")  # fmt: skip
@click.option("--keymap", help='Override: any xkb layout or layout(variant), e.g. "ch(fr)".')
def hw_scan_test(events_file: Path | None, keymap: str | None) -> None:
    """Print every decoded scan (and what the barcode parser makes of it)."""

    from kiosk.drivers import scanner  # noqa: PLC0415
    from kiosk.ledger.barcodes import BarcodeError, BarcodeParser  # noqa: PLC0415

    config = get_config()
    settings = config.scanner
    if keymap:
        from kiosk.drivers.keymaps import KeymapError, check  # noqa: PLC0415

        try:
            check(keymap)
        except KeymapError as exc:
            raise UserError(i18n._("--keymap: {error}", error=exc)) from None
        settings = settings.replace(keymap=keymap)
    parser = BarcodeParser(config.barcodes, config.money)

    def show(text: str) -> None:
        try:
            meaning = repr(parser.parse(text))
        except BarcodeError as exc:
            meaning = f"refused: {exc.reason}"
        click.echo(f"{text.replace(scanner.GS, '<GS>')}  ->  {meaning}")

    if events_file is not None:
        from evdev import InputEvent  # noqa: PLC0415

        try:
            data = json.loads(events_file.read_text())
            events = [InputEvent(*row) for row in data["events"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(
                i18n._(
                    "{events_file}: not a recorded event file ({error})",
                    events_file=events_file,
                    error=exc,
                )
            ) from None
        for text in scanner.KeyDecoder(settings).feed_all(events):
            show(text)
        return
    if settings.kind == "serial":
        reader = scanner.SerialScanner(settings, show)
    else:
        if not scanner.input_devices_visible():
            raise UserError(
                i18n._("no /dev/input here: no USB scanners can be seen on this machine")
            )
        try:
            reader = scanner.EvdevScanner(settings, show)
        except scanner.ScannerError as exc:
            raise UserError(i18n.text_of(exc)) from None
    say(i18n._("scan barcodes; Ctrl+C ends"), err=True)
    reader.start()
    try:
        wait_for_signal()
    finally:
        reader.stop()


@hw_group.command("print-test")
@config_option
@click.option("--preview", type=click.Path(path_type=Path, dir_okay=False),
              help="Write a PNG preview here instead of printing.")  # fmt: skip
def hw_print_test(preview: Path | None) -> None:
    """Print a test receipt (barcode and QR included) on the configured printer."""
    from kiosk.drivers.base import PrinterError  # noqa: PLC0415
    from kiosk.drivers.layout import paper_from_config, receipt_ops  # noqa: PLC0415
    from kiosk.drivers.preview import render_png  # noqa: PLC0415
    from kiosk.drivers.printer import EscposPrinter  # noqa: PLC0415
    from kiosk.drivers.sample import sample_receipt  # noqa: PLC0415

    config = get_config()
    receipt = sample_receipt(config)
    paper = paper_from_config(config.printer)
    about = (
        f"profile {paper.profile}: {paper.columns} columns, {paper.dots} dots "
        f"at {paper.dpi} dpi, code pages {' '.join(p.name for p in paper.code_pages[:4])}"
    )
    if preview is not None:
        render_png(receipt_ops(receipt, paper), paper).save(preview)
        say(i18n._("preview written to {preview} ({about})", preview=preview, about=about))
        return
    try:
        printer = EscposPrinter.from_config(config.printer)
        if printer is None:
            raise UserError(i18n._('no printer configured ([printer] kind = "none")'))
        printer.print_receipt(receipt)
    except PrinterError as exc:
        raise UserError(
            i18n._("printer ({kind}): {error}", kind=config.printer.kind, error=exc)
        ) from None
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - USB, serial and socket errors differ
        raise UserError(
            i18n._("printer ({kind}): {error}", kind=config.printer.kind, error=exc)
        ) from None
    say(
        i18n._(
            "test receipt sent to the {kind} printer ({about}); status {status}",
            kind=config.printer.kind,
            about=about,
            status=printer.status(),
        )
    )


@hw_group.command("printers")
@config_option
@click.option("--profile", "name", help="Show one profile in full.")
def hw_printers(name: str | None) -> None:
    """Printer profiles (python-escpos): columns, print width, code pages, barcodes."""
    from kiosk.config import printer_profile  # noqa: PLC0415
    from kiosk.drivers.layout import paper_for, paper_from_config, profile_names  # noqa: PLC0415

    config = get_config()
    if name is not None:
        try:
            name = printer_profile(name)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    click.echo(f"{'':1} {'profile':<15} {'cols':>4} {'print':>6} {'dots':>5} {'dpi':>4}  "
               "barcodes cutter  code pages (best first)")  # fmt: skip
    for profile in [name] if name else profile_names():
        paper = paper_for(profile)
        if profile == config.printer.profile:
            paper = paper_from_config(config.printer)
        mark = "*" if profile == config.printer.profile else " "
        pages = " ".join(page.name for page in paper.code_pages) or "ASCII only"
        if not name and len(pages) > 40:
            pages = pages[:37].rsplit(" ", 1)[0] + " ..."
        barcodes = "printer" if paper.hw_barcodes else ("bitmap" if paper.image_impl else "none")
        width_mm = paper.dots * 25.4 / paper.dpi
        click.echo(
            f"{mark} {profile:<15} {paper.columns:>4} {width_mm:>4.0f}mm {paper.dots:>5} "
            f"{paper.dpi:>4}  {barcodes:<8} {'yes' if paper.cutter else 'no':<6}  {pages}"
        )


@hw_group.command("drawer")
@config_option
@click.option("--mock", is_flag=True, help="Use gpiozero's MockFactory and show the pulse.")
def hw_drawer(mock: bool) -> None:
    """Pulse the cash drawer once."""
    import time  # noqa: PLC0415
    import warnings  # noqa: PLC0415

    from kiosk.drivers.base import DrawerError  # noqa: PLC0415
    from kiosk.drivers.factory import make_drawer, make_printer  # noqa: PLC0415

    config = get_config()
    warnings.simplefilter("ignore")  # gpiozero's pin-factory fallbacks; the error says it all
    if mock:
        from gpiozero import Device  # noqa: PLC0415
        from gpiozero.pins.mock import MockFactory  # noqa: PLC0415

        Device.pin_factory = MockFactory()
    try:
        printer = make_printer(config) if config.drawer.kind == "printer" else None
        drawer = make_drawer(config, printer)
        drawer.open()
    except DrawerError as exc:
        raise UserError(i18n.text_of(exc)) from None
    time.sleep(config.drawer.pulse_ms / 1000 + 0.1)
    if mock:
        states = Device.pin_factory.pin(config.drawer.pin).states
        changes = ", ".join(f"{s.timestamp * 1000:.0f} ms {'high' if s.state else 'low'}"
                            for s in states)  # fmt: skip
        say(i18n._("GPIO {pin}: {changes}", pin=str(config.drawer.pin), changes=changes))
    say(
        i18n._(
            "drawer pulsed ({kind}, {pulse_ms} ms)",
            kind=config.drawer.kind,
            pulse_ms=config.drawer.pulse_ms,
        )
    )


@hw_group.command("payment")
@config_option
@click.option("--end-of-day", "end_of_day", is_flag=True, help="Also close the terminal's day.")
@click.option("--log-off", "log_off", is_flag=True, help="Log the kiosk off the terminal after.")
def hw_payment(end_of_day: bool, log_off: bool) -> None:
    """Check the card terminal: registration (password, currency) and a diagnosis.
    Exit 1 when the terminal does not answer or refuses."""
    from kiosk.drivers.payment import TerminalError, TerminalResult, make_terminal  # noqa: PLC0415

    config = get_config()
    if config.payment.kind == "manual":
        raise UserError(
            i18n._('[payment] kind = "manual": no terminal to check (set kind = "zvt")')
        )
    try:
        terminal = make_terminal(config)
    except TerminalError as exc:
        raise UserError(i18n.text_of(exc)) from None
    steps = [("registration", terminal.register), ("diagnosis", terminal.diagnose)]
    if end_of_day:
        steps.append(("end of day", terminal.end_of_day))
    if log_off:
        steps.append(("log-off", terminal.log_off))
    failed = False
    for name, step in steps:
        try:
            result = step()
        except Exception as exc:  # noqa: BLE001 - a hostile terminal: one line, exit 1
            result = TerminalResult("failed", f"terminal error: {type(exc).__name__}: {exc}")
        click.echo(f"{name}: {result.outcome} ({result.message})")
        for line in result.admin_receipt:
            click.echo(f"  | {line}")
        failed = failed or not result.approved
        if failed:
            break
    click.echo(terminal.state())
    terminal.close()
    if failed:
        sys.exit(1)
