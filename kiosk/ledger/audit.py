"""The audit trail: who changed what, when, from which value to which."""

from __future__ import annotations

from kiosk.ledger.models import Audit, utc_now


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def record(
    action: str,
    staff: str | None,
    subject: str | None = None,
    field: str | None = None,
    old: object = None,
    new: object = None,
    detail: str | None = None,
) -> None:
    """Append one audit row, inside the caller's transaction."""
    Audit.insert(
        ts=utc_now(),
        staff=staff,
        action=action,
        subject=subject,
        field=field,
        old=_text(old),
        new=_text(new),
        detail=detail,
    ).execute()
