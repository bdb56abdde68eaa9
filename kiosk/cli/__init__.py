"""The `kiosk` command: one module per command group, the shared parts in `base`.

Built on click. `base` holds the root group, the shared options (--config, --db), the
one-line error handling and `main` (the console entry point, `kiosk.cli:main`). Each
group's module defines its commands with plain `@click.command` / `@click.group` and
imports what it needs inside the command, so `kiosk --help` loads none of the layers;
they are named to the root group here, in one table, and imported when asked for.
"""

from __future__ import annotations

from kiosk.cli.base import UserError, cli, main

# Each command and the module that defines it, imported when the command is asked for.
COMMANDS = {
    "run": "kiosk.cli.run:run",
    "replay": "kiosk.cli.run:replay_command",
    "config": "kiosk.cli.config:config_group",
    "catalog": "kiosk.cli.catalog:catalog",
    "stock": "kiosk.cli.stock:stock",
    "report": "kiosk.cli.stock:report",
    "ledger": "kiosk.cli.staff:ledger_group",
    "staff": "kiosk.cli.staff:staff",
    "sync": "kiosk.cli.sync:sync_command",
    "outbox": "kiosk.cli.sync:outbox_command",
    "controller": "kiosk.cli.controller:controller_group",
    "broker": "kiosk.cli.broker:broker_group",
    "hw": "kiosk.cli.hw:hw_group",
    "provision": "kiosk.cli.provision:provision_group",
    "payment": "kiosk.cli.payment:payment_group",
    "update": "kiosk.cli.update:update_group",
}
cli.lazy.update(COMMANDS)

__all__ = ["COMMANDS", "UserError", "cli", "main"]
