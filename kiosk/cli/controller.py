"""`kiosk controller` (the shop controller) and its status and item master."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kiosk import i18n
from kiosk.cli.base import UserError, config_option, get_config, say


@click.group("controller", invoke_without_command=True)
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
    say(
        i18n._(
            "controller for {topic_root} on {host}:{port}",
            topic_root=config.topic_root,
            host=config.mqtt.host,
            port=str(config.mqtt.port),
        ),
        err=True,
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
        say(i18n._("shop {topic_root}", topic_root=config.topic_root))
        say(i18n._("kiosks:"))
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
        say(i18n._("stock: {count} SKU(s)", count=len(rows)))
        low = [r for r in rows if r.low and (r.daily_demand or r.on_hand <= 0)]
        say(i18n._("low stock: {count}", count=len(low)))
        for r in low:
            click.echo(
                f"  {r.sku:<12} on hand {r.on_hand:>6}  reorder point {r.reorder_point:>5}  "
                f"{r.daily_demand}/day  order {r.order_qty} (case {r.case_pack})  {r.name}"
            )
        unknown = reorder.unknown_skus()
        if not reorder.catalog_known():
            say(
                i18n._(
                    "unknown SKUs: not checked (no item master: kiosk controller catalog import "
                    "FILE)"
                )
            )
        else:
            say(i18n._("unknown SKUs: {count} (no reorder suggestions)", count=len(unknown)))
        for u in unknown:
            click.echo(f"  {u.sku:<12} on hand {u.on_hand:>6}  from {', '.join(u.devices)}")
        dead = store.DeadLetter.select().count()
        say(i18n._("dead letters: {dead}", dead=dead))
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
        say(i18n._("item master: none (kiosk controller catalog import FILE)"))
        return
    say(
        i18n._("item master: version {version}, {items} item(s)", version=str(version), items=items)
    )
    made = dict(store.CatalogVersion.select(store.CatalogVersion.version,
                                            store.CatalogVersion.created_at).tuples())  # fmt: skip
    behind = [k for k in reorder.kiosks() if (k.catalog_version or 0) < version]
    say(i18n._("kiosks behind: {count}", count=len(behind)))
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
                i18n._(
                    "the item master is imported with: kiosk controller catalog import {file}",
                    file=args[0],
                )
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
        raise UserError(i18n.text_of(exc)) from None


def _at_time(text: str | None):
    """--at: "2026-12-01 07:00" in this machine's local time, or ISO 8601 with a zone."""
    from datetime import datetime as _dt  # noqa: PLC0415

    if text is None:
        return None
    try:
        moment = _dt.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            i18n._("--at {text!r}: write a time like 2026-12-01 07:00", text=text)
        ) from None
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
        say(
            i18n._(
                "{file}: {added} added, {updated} updated, {unchanged} unchanged; {made}",
                file=file,
                added=result.added,
                updated=result.updated,
                unchanged=result.unchanged,
                made=made,
            )
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
        raise UserError(
            i18n._("--at {at_text}: that time has passed (leave --at out for now)", at_text=at_text)
        )
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
            say(i18n._("{sku}: unchanged", sku=sku))
        else:
            say(
                i18n._(
                    "{sku}: {changes}; version {version}",
                    sku=sku,
                    changes=", ".join(assignments),
                    version=str(version),
                )
            )
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
        say(i18n._("{file}: {count} items", file=file, count=count), err=True)
    finally:
        db.close()


@controller_group.command("web-user")
@config_option
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["manager", "attendant"]),
    default="manager",
    show_default=True,
    help="Managers also adjust stock, export orders and handle dead letters.",
)
@click.pass_context
def controller_web_user(ctx: click.Context, name: str, role: str) -> None:
    """Add a web view user, or give one a new password and role (and unlock it). The
    password is read from the terminal, twice, or from one line of stdin; staff PINs
    are never web passwords."""
    import sys  # noqa: PLC0415

    from kiosk.mqtt import store  # noqa: PLC0415
    from kiosk.mqtt.web.auth import AuthError, add_user  # noqa: PLC0415

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    config = get_config()
    db = store.open_store(ctx.obj.get("database") or config.controller.database)
    try:
        add_user(name, password, role)
    except AuthError as exc:
        raise UserError(i18n.text_of(exc)) from None
    finally:
        db.close()
    say(i18n._("web user {name} ({role}) saved", name=name, role=role))


@controller_group.command("offer-update")
@config_option
@click.argument("bundle", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--devices", help="Only these kiosks, comma-separated (default: every kiosk).")
@click.option("--not-before", "not_before", help='Not before this time, e.g. "2026-12-01 22:00".')
@click.option("--keyring", type=click.Path(path_type=Path, dir_okay=False),
              help="Certificates it must be signed by (default: [update] keyring).")  # fmt: skip
def controller_offer_update(bundle: Path, devices, not_before, keyring) -> None:
    """Offer a signed bundle to the shop's kiosks: checked against the shop's keyring,
    kept in the updates folder and served by the web view; each kiosk fetches it within
    15 minutes and switches at a quiet moment."""
    from kiosk.update import UpdateError, offer  # noqa: PLC0415
    from kiosk.update import bundle as bundles  # noqa: PLC0415

    config = get_config()
    chosen = None
    if devices:
        chosen = tuple(d.strip() for d in devices.split(",") if d.strip())
        bad = [d for d in chosen if not offer._DEVICE.fullmatch(d)]
        if bad or not chosen:
            what = bad[0] if bad else devices
            raise UserError(i18n._("--devices: {what!r} is not a device id", what=what))
    try:
        info = bundles.check(bundle, keyring or config.update.keyring)
        made = offer.publish(
            config.controller.updates_folder(), bundle, info.version, chosen, _at_time(not_before)
        )
    except UpdateError as exc:
        raise UserError(str(exc)) from None
    who = i18n._("every kiosk") if made.devices is None else ", ".join(made.devices)
    say(
        i18n._(
            "offering {version} ({size} bytes, sha256 {digest}...) to {who}",
            version=made.version, size=str(made.size), digest=made.sha256[:16], who=who,
        )
    )  # fmt: skip


@controller_group.command("withdraw-update")
@config_option
def controller_withdraw_update() -> None:
    """Stop offering the update (kiosks keep the version they run)."""
    from kiosk.update import offer  # noqa: PLC0415

    withdrawn = offer.withdraw(get_config().controller.updates_folder())
    if withdrawn is None:
        say(i18n._("no update was offered"))
    else:
        say(i18n._("withdrew {version}", version=withdrawn.version))
