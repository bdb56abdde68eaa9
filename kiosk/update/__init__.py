"""Signed A/B updates on RAUC: bundles (bundle), the Pi firmware's tryboot slot switch
(tryboot, RAUC's custom bootloader backend), the boot check that marks a new version
good or rolls it back (health), the quiet moment for the switch (schedule) and the
technician's commands (manager). The database side (a copy before a migration, and what
a rollback does with a newer schema) is in kiosk.update.dbcopy."""

from __future__ import annotations


class UpdateError(Exception):
    """An update step refused or failed for a reason given in one line."""
