"""`kiosk ledger verify` and `kiosk staff add|pin|list`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kiosk import i18n
from kiosk.cli.base import config_option, db_option, open_ledger, say


@click.group("ledger")
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
    say(i18n._("{path}: ok", path=ledger.path))


@click.group()
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
    say(i18n._("added {code} ({role})", code=code, role=role))


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
    say(i18n._("new PIN set for {code}", code=code))


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
