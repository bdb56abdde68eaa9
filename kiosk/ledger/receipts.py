"""Receipts and kit labels as documents, rebuilt from posted transactions.

A receipt is never stored as text: it is rebuilt from the ledger, so a reprint
shows exactly what was posted. Print jobs remember what still has to come out of
the printer, across restarts.
"""

from __future__ import annotations

from kiosk.documents import KitLabel, Receipt, ReceiptLine, TaxLine, TenderLine
from kiosk.i18n import _
from kiosk.ledger import catalog
from kiosk.ledger.core import Ledger, LedgerError
from kiosk.ledger.models import Item, PrintJob, Txn, TxnLine, utc_now
from kiosk.ledger.money import ZERO

CUSTOMER_KINDS = ("sale", "return", "void", "exchange")


def receipt_for(ledger: Ledger, number: str, reprint: bool = False) -> Receipt:
    txn = Txn.get_or_none(Txn.number == number)
    if txn is None or txn.kind not in CUSTOMER_KINDS:
        raise LedgerError(_("no receipt {number}", number=number))
    cfg = ledger.config
    lines = list(txn.lines.order_by(TxnLine.line_no))
    names = {
        i.sku: (i.name, i.unit) for i in Item.select().where(Item.sku.in_([li.sku for li in lines]))
    }
    taxes: dict[str, list] = {}
    for li in lines:
        acc = taxes.setdefault(li.tax_code, [li.tax_rate, ZERO, ZERO])
        acc[1] += li.net
        acc[2] += li.tax
    # Notes are stored words; the layout prints them in the receipt's language.
    notes = {"return": "returned", "void": "voided"}
    return Receipt(
        store=cfg.device.store,
        device=cfg.device.id,
        number=txn.number,
        kind=txn.kind,
        when=txn.ts.astimezone(),
        currency=cfg.money.currency,
        lines=tuple(
            ReceiptLine(
                name=names.get(li.sku, (li.sku, "each"))[0],
                qty=li.qty,
                unit=names.get(li.sku, (li.sku, "each"))[1],
                unit_price=li.unit_price,
                total=li.total,
                tax_code=li.tax_code,
                discount=li.discount,
                note=notes.get(txn.kind) if li.qty < 0 else (f"lot {li.lot}" if li.lot else None),
            )
            for li in lines
        ),
        taxes=tuple(TaxLine(code, v[0], v[1], v[2]) for code, v in sorted(taxes.items())),
        tenders=tuple(TenderLine(t.kind, t.amount, t.reference) for t in txn.tenders),
        total=txn.total,
        rounding=txn.rounding,
        change=txn.change,
        barcode=cfg.barcodes.receipt_prefix + txn.number,
        staff=txn.staff,
        header=tuple(cfg.checkout.receipt_header),
        footer=tuple(cfg.checkout.receipt_footer),
        reprint=reprint,
        logo=str(cfg.printer.logo) if cfg.printer.logo else None,
        language=cfg.ui.language,
    )


def kit_label_for(ledger: Ledger, number: str) -> KitLabel:
    txn = Txn.get_or_none(Txn.number == number)
    if txn is None or txn.kind != "kit_build":
        raise LedgerError(_("no kit assembly {number}", number=number))
    line = txn.lines.get()
    kit = catalog.get_item(line.sku)
    codes = [b.code for b in kit.barcodes]
    components = catalog.bom_components(line.bom_id)
    return KitLabel(
        kit_sku=kit.sku,
        name=kit.name,
        barcode=codes[0].lstrip("0").zfill(13)
        if codes
        else ledger.config.barcodes.sku_prefix + kit.sku,
        bom_version=line.bom.version,
        assembled=txn.ts.astimezone().date(),
        lot=line.lot,
        contents=tuple((catalog.get_item(c.component_id).name, c.qty) for c in components),
        language=ledger.config.ui.language,
    )


# ---------------------------------------------------------------- print queue


def enqueue(ledger: Ledger, kind: str, ref: str) -> PrintJob:
    return PrintJob.create(kind=kind, ref=ref, created_at=utc_now())


def mark_printed(job: PrintJob) -> None:
    PrintJob.update(state="printed", attempts=PrintJob.attempts + 1, last_error=None).where(
        PrintJob.id == job.id
    ).execute()


def mark_failed(job: PrintJob, error: str) -> None:
    PrintJob.update(state="failed", attempts=PrintJob.attempts + 1, last_error=error).where(
        PrintJob.id == job.id
    ).execute()


def unprinted() -> list[PrintJob]:
    return list(PrintJob.select().where(PrintJob.state != "printed").order_by(PrintJob.id))
