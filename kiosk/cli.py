"""The `kiosk` command.

Built on click: usage mistakes exit 2 with one line, and every domain error the
layers below raise (config, barcode, money, ledger) is turned into one line on
stderr and exit status 2 as well; never a traceback for a user's mistake.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import click

from kiosk import __version__, numbers, textfile
from kiosk.checkout.replay import ReplayError
from kiosk.config import Config, ConfigError
from kiosk.config import load as load_config
from kiosk.config import load_file as load_config_file
from kiosk.ledger.barcodes import BarcodeError
from kiosk.ledger.core import Ledger, LedgerError
from kiosk.ledger.money import MoneyError
from kiosk.strings import StringsError

USER_ERRORS = (
    ConfigError,
    LedgerError,
    BarcodeError,
    MoneyError,
    ReplayError,
    numbers.NumberError,
    textfile.TextFileError,
    StringsError,
)


class UserError(click.ClickException):
    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"kiosk: {self.format_message()}", err=True)


class KioskGroup(click.Group):
    """Turns the layers' user-facing errors into exit status 2 with their message."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            raise UserError(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from None


def _remember_config(ctx: click.Context, _param, value: Path | None) -> None:
    if value is not None:
        ctx.find_root().meta["kiosk.config_path"] = value


config_option = click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    expose_value=False,
    is_eager=True,
    callback=_remember_config,
    help="Config file (default: $KIOSK_CONFIG, then /etc/kiosk/kiosk.toml, then built-in).",
)
db_option = click.option(
    "--db",
    "db_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Ledger file, instead of [ledger] path.",
)


def get_config() -> Config:
    ctx = click.get_current_context()
    root = ctx.find_root()
    if "kiosk.config" not in root.meta:
        root.meta["kiosk.config"] = load_config(root.meta.get("kiosk.config_path"))
    return root.meta["kiosk.config"]


def open_ledger(db_path: Path | None = None) -> Ledger:
    ledger = Ledger.open(get_config(), db_path)
    click.get_current_context().call_on_close(ledger.close)
    return ledger


def _money_option(value: str, what: str) -> Decimal:
    """A money amount given on the command line, in the configured currency's unit."""
    unit = get_config().money.minor_unit
    try:
        return numbers.money(value, what, unit)
    except numbers.NumberError as exc:
        raise UserError(str(exc)) from None


@click.group(cls=KioskGroup, context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.version_option(__version__, prog_name="kiosk")
def cli() -> None:
    """Retail kiosk firmware: self-checkout, staffed till and mobile cart."""


# ---------------------------------------------------------------- run


@cli.command()
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
            raise UserError("no display: set DISPLAY, or SDL_VIDEODRIVER=kmsdrm on a Pi console")
        if not headless:
            click.echo("no display here: running the demo shift in text instead", err=True)
        from kiosk.demo.session import run_demo  # noqa: PLC0415

        run_demo(config, db_path, out=click.echo)
        return
    app.run(config, demo, db_path, offline, out=click.echo)


# ---------------------------------------------------------------- replay


@cli.command("replay")
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
        config = config.model_copy(
            update={"device": config.device.model_copy(update={"role": role})}
        )
    try:
        if str(file) == "-":
            text = textfile.decode(sys.stdin.buffer.read(), "<stdin>")
        else:
            text = textfile.read_text(file)
    except FileNotFoundError:
        raise UserError(f"{file}: no such file") from None
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
        raise UserError(f"printer ({config.printer.kind}): {exc}") from None
    if printer is None:
        raise UserError('--print: no printer configured ([printer] kind = "none")')
    return printer


# ---------------------------------------------------------------- config


@cli.group("config")
def config_group() -> None:
    """Check and show configuration."""


@config_group.command("check")
@config_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def config_check(file: Path) -> None:
    """Validate FILE; exit 2 naming the key and the reason if it is wrong."""
    config = load_config_file(file)
    if config.ui.strings is not None:  # the screens' strings file is part of the config
        from kiosk import strings  # noqa: PLC0415

        strings.load(config.ui.strings)
    click.echo(f"{file}: ok")


@config_group.command("show")
@config_option
def config_show() -> None:
    """Print the effective config (secrets masked) as JSON."""
    config = get_config()
    click.echo(f"# from {config.source or 'built-in defaults'}")
    click.echo(json.dumps(config.to_display(), indent=2, default=str))


# ---------------------------------------------------------------- catalog


@cli.group()
def catalog() -> None:
    """Import and export the item master as CSV."""


@catalog.command("import")
@config_option
@db_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check the file only; write nothing.")
@click.option("--staff", help="Staff code recorded in the audit trail.")
def catalog_import(db_path: Path | None, file: Path, dry_run: bool, staff: str | None) -> None:
    """Import items from FILE (checked whole first: all rows or none)."""
    from kiosk.ledger import catalog_csv  # noqa: PLC0415

    ledger = open_ledger(db_path)
    if dry_run:
        rows = catalog_csv.read_file(ledger, file)
        click.echo(f"{file}: {len(rows)} rows ok (nothing written)")
        return
    result = catalog_csv.import_file(ledger, file, staff)
    click.echo(
        f"{file}: {result.added} added, {result.updated} updated, {result.unchanged} unchanged, "
        f"{result.barcodes} barcodes"
    )


@catalog.command("export")
@config_option
@db_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
                default="-")  # fmt: skip
def catalog_export(db_path: Path | None, file: Path) -> None:
    """Write the item master to FILE (default: standard output)."""
    from kiosk.ledger import catalog_csv  # noqa: PLC0415

    ledger = open_ledger(db_path)
    if str(file) == "-":
        catalog_csv.export(ledger, sys.stdout)
        return
    with open(file, "w", encoding="utf-8", newline="") as stream:
        count = catalog_csv.export(ledger, stream)
    click.echo(f"{file}: {count} items", err=True)


# ---------------------------------------------------------------- stock and reports


@cli.command()
@config_option
@db_option
@click.argument("sku", required=False)
def stock(db_path: Path | None, sku: str | None) -> None:
    """On-hand stock, for one SKU or all (pieces, or grams for kg items)."""
    from kiosk.ledger import reports  # noqa: PLC0415

    open_ledger(db_path)
    rows = reports.stock(sku)
    if sku and not rows:
        raise UserError(f"unknown item {sku!r}")
    for row in rows:
        unit = "g" if row.unit == "kg" else ""
        extra = "".join(
            f"  {loc}: {qty}{unit}" for loc, qty in sorted(row.locations.items()) if loc != "main"
        )
        click.echo(f"{row.sku:<16} {row.on_hand:>8}{unit:<1}  {row.name}{extra}")


@cli.group()
def report() -> None:
    """Reports."""


@report.command("z")
@config_option
@db_option
@click.option("--date", "day", help="Local calendar day, YYYY-MM-DD (default: today).")
@click.option("--float", "opening_float", default="0", help="Cash in the drawer at opening.")
def report_z(db_path: Path | None, day: str | None, opening_float: str) -> None:
    """End-of-day totals: tenders, tax per rate, returns, voids, discounts, cash expected."""
    from kiosk.checkout.report_text import z_report_lines  # noqa: PLC0415
    from kiosk.ledger import reports  # noqa: PLC0415

    try:
        the_day = date.fromisoformat(day) if day else date.today()
    except ValueError:
        raise UserError(f"--date {day!r} is not YYYY-MM-DD") from None
    ledger = open_ledger(db_path)
    z = reports.z_report(the_day, _money_option(opening_float, "--float"))
    for line in z_report_lines(z, ledger.config):
        click.echo(line)


# ---------------------------------------------------------------- ledger


@cli.group("ledger")
def ledger_group() -> None:
    """Ledger maintenance."""


@ledger_group.command("verify")
@config_option
@db_option
def ledger_verify(db_path: Path | None) -> None:
    """Check balances, transaction totals and the outbox; exit 1 on any problem."""
    from kiosk.ledger.verify import verify  # noqa: PLC0415

    ledger = open_ledger(db_path)
    problems = verify(ledger)
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise click.exceptions.Exit(1)
    click.echo(f"{ledger.path}: ok")


# ---------------------------------------------------------------- staff


@cli.group()
def staff() -> None:
    """Staff members and their PINs."""


@staff.command("add")
@config_option
@db_option
@click.argument("code")
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["cashier", "supervisor", "technician"]), required=True)
@click.option("--by", help="Staff code of whoever adds this member (audit).")
def staff_add(db_path: Path | None, code: str, name: str, role: str, by: str | None) -> None:
    """Add a staff member; the PIN is read from the terminal (or one line of stdin)."""
    from kiosk.ledger import staff as staff_service  # noqa: PLC0415

    if sys.stdin.isatty():
        pin = click.prompt("PIN", hide_input=True, confirmation_prompt=True)
    else:
        pin = sys.stdin.readline().strip()
    staff_service.add(open_ledger(db_path), code, name, role, pin, by)
    click.echo(f"added {code} ({role})")


@staff.command("pin")
@config_option
@db_option
@click.argument("code")
@click.option("--by", help="Staff code of whoever sets it (audit).")
def staff_pin(db_path: Path | None, code: str, by: str | None) -> None:
    """Set a new PIN for a member (forgotten, or set under a lost PIN key); the PIN is
    read from the terminal (or one line of stdin). Clears any lockout; audited."""
    from kiosk.ledger import staff as staff_service  # noqa: PLC0415

    if sys.stdin.isatty():
        pin = click.prompt("PIN", hide_input=True, confirmation_prompt=True)
    else:
        pin = sys.stdin.readline().strip()
    staff_service.set_pin(open_ledger(db_path), code, pin, by)
    click.echo(f"new PIN set for {code}")


@staff.command("list")
@config_option
@db_option
def staff_list(db_path: Path | None) -> None:
    """List staff members (never their PINs)."""
    from kiosk.ledger.models import Staff  # noqa: PLC0415

    open_ledger(db_path)
    for member in Staff.select().order_by(Staff.code):
        state = "active" if member.active else "inactive"
        if member.locked_until:
            state += f", locked until {member.locked_until.astimezone():%H:%M}"
        click.echo(f"{member.code:<8} {member.role:<11} {member.name}  ({state})")


# ---------------------------------------------------------------- stock sync


@cli.command("sync")
@config_option
@db_option
@click.option("--once", is_flag=True, help="Drain the outbox, then exit (1 if it could not).")
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(0, 86_400),
              help="With --once: give up after this many seconds.")  # fmt: skip
def sync_command(db_path: Path | None, once: bool, timeout: float) -> None:
    """Publish the outbox to the shop broker (the app runs this in the background)."""
    from kiosk.mqtt.publisher import Publisher, read_password  # noqa: PLC0415

    config = get_config()
    path = db_path or config.ledger.path
    if not path.exists():
        raise UserError(f"{path}: no ledger here")
    read_password(config)  # a password file that cannot be read: one line, now
    publisher = Publisher(config, path).start()
    catalog = None
    if not once:  # no app here: the item master is applied as soon as it is checked
        from kiosk.mqtt.catalog_sync import CatalogSync  # noqa: PLC0415

        catalog = CatalogSync(config, path).start()
    try:
        if once:
            drained = publisher.drain(timeout)
            counts = publisher.store.counts()
            click.echo(f"sent {publisher.sent}; outbox {counts}")
            if not drained:
                raise UserError(
                    f"outbox not drained within {timeout:g} s: {publisher.last_error or 'busy'}"
                )
            return
        _wait_for_signal()
    finally:
        publisher.stop()
        if catalog is not None:
            catalog.stop()


def _wait_for_signal() -> None:
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()


@cli.command("outbox")
@config_option
@db_option
@click.option("--state", type=click.Choice(["pending", "sent", "dead"]), help="Only this state.")
@click.option("--retry", is_flag=True, help="Send dead-lettered events again.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100_000))
def outbox_command(db_path: Path | None, state: str | None, retry: bool, limit: int) -> None:
    """Stock events waiting, sent and dead-lettered."""
    from kiosk.mqtt.outbox import OutboxStore  # noqa: PLC0415

    ledger = open_ledger(db_path)
    store = OutboxStore(ledger.path)
    try:
        if retry:
            click.echo(f"{store.retry_dead()} dead event(s) queued again")
        counts = store.counts()
        click.echo(
            "outbox: "
            + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("pending", "sent", "dead"))
            + f"; last seq {store.last_seq() or 0}"
        )
        for row in store.rows(state, limit):
            error = f"  ({row.last_error})" if row.last_error else ""
            click.echo(f"{row.seq:>8} {row.kind:<9} {row.state:<7} tries {row.attempts}{error}")
    finally:
        store.close()


@cli.group("controller", invoke_without_command=True)
@config_option
@click.option("--db", "database", help="Controller database: a path or postgresql://... URL.")
@click.pass_context
def controller_group(ctx: click.Context, database: str | None) -> None:
    """Run the shop controller (no subcommand), or inspect it."""
    ctx.ensure_object(dict)
    ctx.obj["database"] = database
    if ctx.invoked_subcommand is not None:
        return
    import logging  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from kiosk.mqtt.controller import Controller  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = get_config()
    controller = Controller(config, database)
    stop = threading.Event()
    import signal  # noqa: PLC0415

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(
        f"controller for {config.topic_root} on {config.mqtt.host}:{config.mqtt.port}", err=True
    )
    controller.run(stop)


@controller_group.command("status")
@config_option
@click.option("--dead-letters", "shown", default=10, show_default=True,
              type=click.IntRange(0, 10_000), help="How many to list.")  # fmt: skip
@click.pass_context
def controller_status(ctx: click.Context, shown: int) -> None:
    """Kiosks, low stock with reorder suggestions, unknown SKUs and dead letters."""
    from kiosk.ledger.models import utc_now  # noqa: PLC0415
    from kiosk.mqtt import reorder, store  # noqa: PLC0415

    config = get_config()
    db = store.open_store(ctx.obj.get("database") or config.controller.database)
    try:
        click.echo(f"shop {config.topic_root}")
        click.echo("kiosks:")
        unsynced = reorder.unsynced_events()
        for kiosk in reorder.kiosks():
            state = "online " if kiosk.online else "OFFLINE"
            clock = (
                f"  clock unsynced in {unsynced[kiosk.device]} event(s)"
                if kiosk.device in unsynced
                else ""
            )
            click.echo(
                f"  {kiosk.device:<12} {state} last seen {kiosk.last_seen or '-'}  outbox "
                f"{kiosk.outbox}  printer {kiosk.printer}  applied to seq {kiosk.applied_to}"
                f"{clock}"
            )
        _catalog_status()
        rows = reorder.suggestions(config.controller, utc_now())
        click.echo(f"stock: {len(rows)} SKU(s)")
        low = [r for r in rows if r.low and (r.daily_demand or r.on_hand <= 0)]
        click.echo(f"low stock: {len(low)}")
        for r in low:
            click.echo(
                f"  {r.sku:<12} on hand {r.on_hand:>6}  reorder point {r.reorder_point:>5}  "
                f"{r.daily_demand}/day  order {r.order_qty} (case {r.case_pack})  {r.name}"
            )
        unknown = reorder.unknown_skus()
        if not reorder.catalog_known():
            click.echo(
                "unknown SKUs: not checked (no item master: kiosk controller catalog import FILE)"
            )
        else:
            click.echo(f"unknown SKUs: {len(unknown)} (no reorder suggestions)")
        for u in unknown:
            click.echo(f"  {u.sku:<12} on hand {u.on_hand:>6}  from {', '.join(u.devices)}")
        dead = store.DeadLetter.select().count()
        click.echo(f"dead letters: {dead}")
        letters = store.DeadLetter.select().order_by(store.DeadLetter.id.desc()).limit(shown)
        for letter in letters:
            times = f" (x{letter.times})" if (letter.times or 1) > 1 else ""
            click.echo(
                f"  {letter.last_at or letter.received_at} {letter.topic}{times}: {letter.error}"
            )
    finally:
        db.close()


def _catalog_status() -> None:
    """The item master's version, and the kiosks behind it since when."""
    from kiosk.mqtt import master, reorder, store  # noqa: PLC0415

    version, _, items = master.current()
    if version == 0:
        click.echo("item master: none (kiosk controller catalog import FILE)")
        return
    click.echo(f"item master: version {version}, {items} item(s)")
    made = dict(store.CatalogVersion.select(store.CatalogVersion.version,
                                            store.CatalogVersion.created_at).tuples())  # fmt: skip
    behind = [k for k in reorder.kiosks() if (k.catalog_version or 0) < version]
    click.echo(f"kiosks behind: {len(behind)}")
    for k in behind:
        have = k.catalog_version or 0
        since = made.get(have + 1, "-")
        why = f"  refused: {k.catalog_error}" if k.catalog_error else ""
        click.echo(f"  {k.device:<12} version {have} since {since}{why}")


class _CatalogGroup(click.Group):
    """`kiosk controller catalog FILE` (the old form) gets a one-line hint."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            raise UserError(
                f"the item master is imported with: kiosk controller catalog import {args[0]}"
            )
        return super().resolve_command(ctx, args)


@controller_group.group("catalog", cls=_CatalogGroup)
def controller_catalog() -> None:
    """The shop's item master: import, set (now or at a time), history, export."""


def _master_store(ctx: click.Context):
    from kiosk.mqtt import store  # noqa: PLC0415

    config = get_config()
    ctx.ensure_object(dict)
    database = (ctx.find_root().obj or {}).get("database") or config.controller.database
    return config, store.open_store(database)


def _master_call(fn, *args, **kwargs):
    from kiosk.mqtt.master import MasterError  # noqa: PLC0415

    try:
        return fn(*args, **kwargs)
    except MasterError as exc:
        raise UserError(str(exc)) from None


def _at_time(text: str | None):
    """--at: "2026-12-01 07:00" in this machine's local time, or ISO 8601 with a zone."""
    from datetime import datetime as _dt  # noqa: PLC0415

    if text is None:
        return None
    try:
        moment = _dt.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"--at {text!r}: write a time like 2026-12-01 07:00") from None
    return moment.astimezone() if moment.tzinfo is None else moment


@controller_catalog.command("import")
@config_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--by", "staff", help="Staff code recorded in the audit trail.")
@click.pass_context
def controller_catalog_import(ctx: click.Context, file: Path, staff: str | None) -> None:
    """Import the item master from FILE (the kiosk's catalog CSV, plus case_pack,
    lead_time_days, reorder_point, safety_stock): every row checked first, then one version."""
    from kiosk.ledger.models import utc_now  # noqa: PLC0415
    from kiosk.mqtt import master  # noqa: PLC0415

    config, db = _master_store(ctx)
    try:
        rules = master.rules(config)
        rows = _master_call(master.read_file, rules, file)
        with db.atomic():
            result = master.import_rows(rows, staff, utc_now(), note=f"import {file.name}")
        made = f"version {result.version}" if result.version else "no new version"
        click.echo(
            f"{file}: {result.added} added, {result.updated} updated, "
            f"{result.unchanged} unchanged; {made}"
        )
    finally:
        db.close()


@controller_catalog.command("set")
@config_option
@click.argument("sku")
@click.argument("assignments", nargs=-1, required=True)
@click.option("--at", "at_text", help='Effective time, e.g. "2026-12-01 07:00" (local).')
@click.option("--by", "staff", help="Staff code recorded in the audit trail.")
@click.pass_context
def controller_catalog_set(ctx, sku: str, assignments, at_text, staff) -> None:
    """Change fields of one item: kiosk controller catalog set SKU price=2.49 [--at TIME]."""
    from kiosk.ledger.models import utc_now  # noqa: PLC0415
    from kiosk.mqtt import master  # noqa: PLC0415

    at = _at_time(at_text)
    now = utc_now()
    if at is not None and at <= now:
        raise UserError(f"--at {at_text}: that time has passed (leave --at out for now)")
    config, db = _master_store(ctx)
    try:
        fields = _master_call(master.parse_assignments, assignments)
        with db.atomic():
            what, version = _master_call(
                master.set_fields, master.rules(config), sku, fields, staff, now, at
            )
        if what == "scheduled":
            click.echo(f"{sku}: {', '.join(assignments)} from {at.astimezone():%Y-%m-%d %H:%M %Z}")
        elif version is None:
            click.echo(f"{sku}: unchanged")
        else:
            click.echo(f"{sku}: {', '.join(assignments)}; version {version}")
    finally:
        db.close()


@controller_catalog.command("history")
@config_option
@click.argument("sku", required=False)
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(0, 10_000_000))
@click.pass_context
def controller_catalog_history(ctx, sku: str | None, limit: int) -> None:
    """The audit trail: version, time, staff, item, field, old -> new; then pending changes."""
    from kiosk.mqtt import master  # noqa: PLC0415

    _, db = _master_store(ctx)
    try:
        for c in master.history(sku, limit):
            click.echo(
                f"v{c.version:<5} {c.at}  {c.staff or '-':<8} {c.sku:<14} {c.field:<14} "
                f"{'-' if c.old is None else c.old} -> {'-' if c.new is None else c.new}"
            )
        for p in master.scheduled(sku):
            if p.state == "applied":
                continue
            why = f": {p.error}" if p.error else ""
            click.echo(
                f"{p.state:<6} {p.effective_at}  {p.staff or '-':<8} {p.sku:<14} {p.field:<14} "
                f"-> {p.value}{why}"
            )
    finally:
        db.close()


@controller_catalog.command("export")
@config_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
                default="-")  # fmt: skip
@click.pass_context
def controller_catalog_export(ctx, file: Path) -> None:
    """Write the item master as CSV to FILE (default: standard output)."""
    from kiosk.mqtt import master  # noqa: PLC0415

    config, db = _master_store(ctx)
    try:
        rules = master.rules(config)
        if str(file) == "-":
            master.export(rules, sys.stdout)
            return
        with open(file, "w", encoding="utf-8", newline="") as stream:
            count = master.export(rules, stream)
        click.echo(f"{file}: {count} items", err=True)
    finally:
        db.close()


def _scratch_path() -> Path:
    import tempfile  # noqa: PLC0415

    return Path(tempfile.mkdtemp(prefix="kiosk-check-")) / "check.db"


@cli.group("broker")
def broker_group() -> None:
    """Set up the shop's Mosquitto broker."""


@broker_group.command("config")
@config_option
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--port", default=1883, show_default=True, type=click.IntRange(1, 65535))
@click.option("--listen", default="0.0.0.0", show_default=True)
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--tls-ca", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--user", "run_as", help="User mosquitto runs as (default: its own).")
def broker_config(directory, port, listen, tls_cert, tls_key, tls_ca, run_as) -> None:
    """Write mosquitto.conf, the ACL and an empty password file into DIRECTORY."""
    from kiosk.mqtt import broker  # noqa: PLC0415

    tls = None
    if tls_cert or tls_key:
        if not (tls_cert and tls_key):
            raise UserError("TLS needs both --tls-cert and --tls-key")
        tls = broker.TlsFiles(tls_cert, tls_key, tls_ca)
    try:
        directory = directory.absolute()  # mosquitto.conf names its files: start it anywhere
        written = broker.write_config(
            directory, get_config().topic_root, port=port, listen=listen, tls=tls, run_as=run_as
        )
        problem = broker.reach_problem(directory, run_as)
    except broker.BrokerError as exc:
        raise UserError(str(exc)) from None
    for path in written:
        click.echo(str(path))
    if problem:  # written all the same: the folder may be copied to where it runs
        click.echo(f"kiosk: warning: {problem}", err=True)


@broker_group.command("add-device")
@config_option
@click.argument("username")
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The broker config folder.",
)
@click.option("--password-out", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the new password here (mode 600) instead of printing it.")  # fmt: skip
def broker_add_device(username: str, directory: Path, password_out: Path | None) -> None:
    """Give a kiosk (its device id) or the controller ('controller') broker credentials."""
    import re  # noqa: PLC0415

    from kiosk import files  # noqa: PLC0415
    from kiosk.mqtt import broker  # noqa: PLC0415

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", username):
        raise UserError(f"{username!r} is not a device id")
    if username != broker.CONTROLLER_USER and broker.reserved(username):
        raise UserError(f"{username!r} is reserved for the shop controller")
    if password_out and not (password_out.parent.is_dir() and (
            not password_out.exists() or password_out.is_file())):  # fmt: skip
        raise UserError(f"{password_out}: not a file in an existing folder")
    try:
        password = broker.add_credentials(directory / "passwd", username)
    except broker.BrokerError as exc:
        raise UserError(str(exc)) from None
    if password_out:  # a new 0600 file renamed into place: never in a readable one
        files.write_private(password_out, password + "\n")
        click.echo(f"{username}: password written to {password_out}")
    else:
        click.echo(f"{username}: {password}")


# ---------------------------------------------------------------- hardware diagnostics


@cli.group("hw")
def hw_group() -> None:
    """Check the scanner, printer and cash drawer."""


@hw_group.command("scanners")
@config_option
def hw_scanners() -> None:
    """Input devices, and which match [scanner] match."""
    from kiosk.drivers import scanner  # noqa: PLC0415

    config = get_config()
    if not scanner.input_devices_visible():
        raise UserError("no /dev/input here: no USB scanners can be seen on this machine")
    try:
        devices = scanner.list_devices()
    except scanner.ScannerError as exc:
        raise UserError(str(exc)) from None
    match = config.scanner.match
    for device in devices:
        mark = "*" if scanner.matches(device, match) else " "
        click.echo(f"{mark} {device.path:<22} {device.ident}  {device.name}")
    if not any(scanner.matches(d, match) for d in devices):
        raise UserError(f"no input device matches [scanner] match = {match!r}")


@hw_group.command("scan-test")
@config_option
@click.option("--events", "events_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Decode recorded events (JSON) instead of reading the scanner.")  # fmt: skip
@click.option("--keymap", type=click.Choice(["us", "de", "fr", "uk"]), help="Override.")
def hw_scan_test(events_file: Path | None, keymap: str | None) -> None:
    """Print every decoded scan (and what the barcode parser makes of it)."""
    import json  # noqa: PLC0415

    from kiosk.drivers import scanner  # noqa: PLC0415
    from kiosk.ledger.barcodes import BarcodeError, BarcodeParser  # noqa: PLC0415

    config = get_config()
    settings = config.scanner
    if keymap:
        settings = settings.model_copy(update={"keymap": keymap})
    parser = BarcodeParser(config.barcodes)

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
            raise UserError(f"{events_file}: not a recorded event file ({exc})") from None
        for text in scanner.KeyDecoder(settings).feed_all(events):
            show(text)
        return
    if settings.kind == "serial":
        reader = scanner.SerialScanner(settings, show)
    else:
        if not scanner.input_devices_visible():
            raise UserError("no /dev/input here: no USB scanners can be seen on this machine")
        try:
            reader = scanner.EvdevScanner(settings, show)
        except scanner.ScannerError as exc:
            raise UserError(str(exc)) from None
    click.echo("scan barcodes; Ctrl+C ends", err=True)
    reader.start()
    try:
        _wait_for_signal()
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
        click.echo(f"preview written to {preview} ({about})")
        return
    try:
        printer = EscposPrinter.from_config(config.printer)
        if printer is None:
            raise UserError('no printer configured ([printer] kind = "none")')
        printer.print_receipt(receipt)
    except PrinterError as exc:
        raise UserError(f"printer ({config.printer.kind}): {exc}") from None
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - USB, serial and socket errors differ
        raise UserError(f"printer ({config.printer.kind}): {exc}") from None
    click.echo(f"test receipt sent to the {config.printer.kind} printer ({about}); "
               f"status {printer.status()}")  # fmt: skip


@hw_group.command("printers")
@config_option
@click.option("--profile", "name", help="Show one profile in full.")
def hw_printers(name: str | None) -> None:
    """Printer profiles (python-escpos): columns, print width, code pages, barcodes."""
    from pydantic import ValidationError  # noqa: PLC0415

    from kiosk.config import PrinterConfig  # noqa: PLC0415
    from kiosk.drivers.layout import paper_for, paper_from_config, profile_names  # noqa: PLC0415

    config = get_config()
    if name is not None:
        try:
            name = PrinterConfig(profile=name).profile
        except ValidationError as exc:
            raise UserError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
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
        raise UserError(str(exc)) from None
    time.sleep(config.drawer.pulse_ms / 1000 + 0.1)
    if mock:
        states = Device.pin_factory.pin(config.drawer.pin).states
        changes = ", ".join(f"{s.timestamp * 1000:.0f} ms {'high' if s.state else 'low'}"
                            for s in states)  # fmt: skip
        click.echo(f"GPIO {config.drawer.pin}: {changes}")
    click.echo(f"drawer pulsed ({config.drawer.kind}, {config.drawer.pulse_ms} ms)")


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
        raise UserError('[payment] kind = "manual": no terminal to check (set kind = "zvt")')
    try:
        terminal = make_terminal(config)
    except TerminalError as exc:
        raise UserError(str(exc)) from None
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


# ---------------------------------------------------------------- provisioning


@cli.group("provision")
def provision_group() -> None:
    """Give SD cards their identity: config, broker credentials, Wi-Fi, time zone."""


def _provision_errors(fn):
    import functools  # noqa: PLC0415

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from kiosk.provision.card import CardError  # noqa: PLC0415
        from kiosk.provision.firstboot import FirstBootError  # noqa: PLC0415
        from kiosk.provision.site import ProvisionError  # noqa: PLC0415

        try:
            return fn(*args, **kwargs)
        except (ProvisionError, CardError, FirstBootError) as exc:
            raise UserError(str(exc)) from None

    return wrapper


@provision_group.command("build")
@config_option
@click.argument("site_file", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("devices_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False))
@click.option("--broker-dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="The shop broker's config folder (credentials go to its passwd).")  # fmt: skip
@_provision_errors
def provision_build(site_file: Path, devices_file: Path, out: Path, broker_dir: Path) -> None:
    """Check the site file and device list whole, then write one bundle per device."""
    from tqdm import tqdm  # noqa: PLC0415

    from kiosk.mqtt import broker  # noqa: PLC0415
    from kiosk.provision import bundle as bundle_mod  # noqa: PLC0415
    from kiosk.provision import site as site_mod  # noqa: PLC0415

    site = site_mod.load_site(site_file)
    devices, configs = site_mod.check_all(site, devices_file)
    site_mod.check_broker_device(site, devices, site_file, devices_file)

    def progress(items):
        return tqdm(items, desc="provisioning", unit="device")

    try:
        bundle_mod.write_bundles(site, devices, configs, out, broker_dir, progress)
    except broker.BrokerError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"{len(devices)} device bundle(s) in {out}; credentials in {broker_dir / 'passwd'}")
    if site.broker.device:
        click.echo(f"{site.broker.device} runs the shop broker and controller")


@provision_group.command("write")
@config_option
@click.argument("bundle", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("target", type=click.Path(path_type=Path, dir_okay=False))
@_provision_errors
def provision_write(bundle: Path, target: Path) -> None:
    """Write one device's bundle to a flashed card (/dev/sdX) or an image file."""
    from kiosk.provision import card  # noqa: PLC0415

    card.write_bundle(bundle, target)
    click.echo(f"{bundle.name} -> {target}")


@provision_group.command("images")
@config_option
@click.argument("bundles", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("base_image", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@_provision_errors
def provision_images(bundles: Path, base_image: Path, dest: Path) -> None:
    """One ready-to-flash image per device bundle, from a built base image."""
    import subprocess  # noqa: PLC0415

    from tqdm import tqdm  # noqa: PLC0415

    from kiosk.provision import card  # noqa: PLC0415

    card.boot_partition(base_image)  # refuse a wrong base image before copying anything
    dest.mkdir(parents=True, exist_ok=True)
    folders = sorted(p for p in bundles.iterdir() if (p / "kiosk.toml").exists())
    if not folders:
        raise UserError(f"{bundles}: no device bundles (run 'kiosk provision build' first)")
    for folder in tqdm(folders, desc="images", unit="image"):
        image = dest / f"{folder.name}.img"
        subprocess.run(["cp", "--sparse=always", str(base_image), str(image)], check=True)
        card.write_bundle(folder, image)
    click.echo(f"{len(folders)} image(s) in {dest}")


@provision_group.command("verify")
@config_option
@click.argument("target", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@_provision_errors
def provision_verify(target: Path) -> None:
    """Report what a card or image holds (secrets masked); exit 1 if incomplete."""
    import tomllib  # noqa: PLC0415

    from kiosk.config import parse  # noqa: PLC0415
    from kiosk.provision import card  # noqa: PLC0415

    for part in card.partitions(target):
        kind = "FAT boot" if part.is_fat else f"type {part.type:#04x}"
        click.echo(f"partition {part.number}: {kind}, {part.size // (1024 * 1024)} MiB")
    files = card.read_bundle(target)
    if "kiosk.toml" not in files:
        click.echo("no kiosk bundle on the boot partition (not provisioned, or already booted)")
        raise click.exceptions.Exit(1)
    config = parse(files["kiosk.toml"], f"{target}:/kiosk/kiosk.toml")
    click.echo(
        f"device {config.device.id} ({config.device.role}) at {config.device.store}; "
        f"broker {config.mqtt.host}:{config.mqtt.port} as {config.mqtt.username}"
    )
    click.echo(f"printer {config.printer.kind}, drawer {config.drawer.kind}, "
               f"scanner {config.scanner.match or '-'} ({config.scanner.keymap})")  # fmt: skip
    click.echo("broker password: " + ("present" if files.get("mqtt.pass") else "MISSING"))
    if "broker/mosquitto.conf" in files:
        users = [ln.split(":")[0] for ln in files.get("broker/passwd", "").split() if ":" in ln]
        missing = "" if files.get("controller.pass") else ": controller password MISSING"
        click.echo(f"hosts the shop broker ({len(users)} users) and the controller{missing}")
    settings = tomllib.loads(files.get("firstboot.toml", ""))
    host = settings.get("host", {})
    wifi = settings.get("wifi")
    click.echo(f"hostname {host.get('hostname', '-')}, time zone {host.get('timezone', '-')}, "
               + (f"Wi-Fi {wifi['ssid']} (key ********)" if wifi else "no Wi-Fi"))  # fmt: skip
    if not files.get("mqtt.pass") or (
        "broker/mosquitto.conf" in files and not files.get("controller.pass")
    ):
        raise click.exceptions.Exit(1)


@provision_group.command("firstboot")
@config_option
@click.option("--boot", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), default="/")
@_provision_errors
def provision_firstboot(boot: Path, root: Path) -> None:
    """On the device's first boot: install the bundle and wipe its secrets."""
    import subprocess  # noqa: PLC0415

    from kiosk.provision import firstboot  # noqa: PLC0415

    for line in firstboot.apply(boot, root):
        click.echo(line)
    enabled = firstboot.enabled_units(root)
    if enabled and root == Path("/"):
        # Enabled for every later boot; started now, once this unit has finished.
        subprocess.run(["systemctl", "--no-block", "start", *enabled], check=False, timeout=60)


# ---------------------------------------------------------------- card payments


@cli.group("payment")
def payment_group() -> None:
    """Card payments and refunds the terminal left unsettled (the payment journal)."""


@payment_group.command("list")
@config_option
@db_option
@click.option("--all", "show_all", is_flag=True, help="The last 50 journal rows, settled or not.")
def payment_list(db_path: Path | None, show_all: bool) -> None:
    """Unsettled card payments: in flight, lost answers, approved without their
    posting, money the terminal moved that no posting accounts for."""
    from kiosk.ledger import payments  # noqa: PLC0415

    open_ledger(db_path)
    rows = payments.recent(50)[::-1] if show_all else payments.unsettled()
    for row in rows:
        click.echo(payments.describe(row))
    if not rows:
        click.echo("no unsettled card payments" if not show_all else "the journal is empty")


@payment_group.command("resolve")
@config_option
@db_option
@click.argument("payment_id", type=int)
@click.option("--staff", "staff_code", required=True, help="The supervisor's staff code.")
@click.option("--reason", required=True, help="What was done (refunded at the terminal, ...).")
def payment_resolve(db_path: Path | None, payment_id: int, staff_code: str, reason: str) -> None:
    """Mark a payment settled by hand, with the reason (audited; supervisors only)."""
    from kiosk.ledger import payments  # noqa: PLC0415
    from kiosk.ledger.core import LedgerError  # noqa: PLC0415
    from kiosk.ledger.sales import require_role  # noqa: PLC0415

    if not 1 <= payment_id <= 2**62:
        raise UserError(f"no payment {payment_id} in the journal")
    ledger = open_ledger(db_path)
    try:
        require_role(staff_code, "supervisor")
        row = payments.resolve(ledger, payment_id, staff_code, reason)
    except LedgerError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"resolved: {payments.describe(row)}")


@payment_group.command("scrub")
@config_option
@db_option
def payment_scrub(db_path: Path | None) -> None:
    """Mask card numbers that a terminal's free text left in the journal's notes (an
    earlier version stored them): what `kiosk ledger verify` reports as a card number."""
    from kiosk.ledger import payments  # noqa: PLC0415

    ledger = open_ledger(db_path)
    changed = payments.scrub_card_numbers(ledger)
    click.echo(f"{changed} journal note(s) masked")


def main() -> None:
    """Entry point: every error a user can cause ends as one line and a status."""
    try:
        status = cli.main(prog_name="kiosk", standalone_mode=False)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "kiosk"
        click.echo(f"kiosk: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("kiosk: aborted", err=True)
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":
    main()
