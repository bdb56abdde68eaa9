"""Peewee models of the ledger: small, explicit, one table each.

Money and quantities are stored as decimal TEXT (exact, readable in sqlite3) and
read back as Decimal. Times are UTC, stored as ISO-8601 text that sorts correctly.
Stock is kept in integer base units: pieces for "each" items, grams for "kg" items.

Posted rows (txn, txn_line, tender, stock_move) are append-only: corrections are
new transactions (returns, voids, adjustments) that point at the rows they correct.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from peewee import (
    BooleanField,
    CharField,
    DatabaseProxy,
    Field,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

database = DatabaseProxy()

TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> datetime:
    return datetime.now(UTC)


def ts_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the ledger stores UTC only")
    return moment.astimezone(UTC).strftime(TS_FORMAT)


def ts_parse(text: str) -> datetime:
    return datetime.strptime(text, TS_FORMAT).replace(tzinfo=UTC)


class DecimalText(Field):
    field_type = "TEXT"

    def db_value(self, value):
        return None if value is None else str(value)

    def python_value(self, value):
        return None if value is None else Decimal(value)


class UtcTime(Field):
    field_type = "TEXT"

    def db_value(self, value):
        return None if value is None else (value if isinstance(value, str) else ts_text(value))

    def python_value(self, value):
        return None if value is None else ts_parse(value)


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class Item(BaseModel):
    sku = CharField(primary_key=True, max_length=32)
    name = CharField(max_length=120)
    price = DecimalText()
    tax_code = CharField(max_length=8)
    cost = DecimalText(null=True)
    unit = CharField(max_length=4, default="each")  # "each" or "kg"
    active = BooleanField(default=True)
    kit = CharField(max_length=10, default="")  # "", "bundle" or "assembled"
    min_age = IntegerField(default=0)


class Barcode(BaseModel):
    code = CharField(primary_key=True, max_length=32)  # GTIN-14, scale key or SKU
    item = ForeignKeyField(Item, backref="barcodes", column_name="sku", on_delete="CASCADE")
    pack_qty = IntegerField(default=1)


class KitBom(BaseModel):
    kit = ForeignKeyField(Item, backref="boms", column_name="kit_sku")
    version = IntegerField()
    created_at = UtcTime()
    created_by = CharField(null=True)

    class Meta:
        indexes = ((("kit", "version"), True),)


class KitComponent(BaseModel):
    bom = ForeignKeyField(KitBom, backref="components", on_delete="CASCADE")
    component = ForeignKeyField(Item, column_name="component_sku", object_id_name="component_id")
    qty = IntegerField()  # base units of the component per kit


class Staff(BaseModel):
    code = CharField(primary_key=True, max_length=16)
    name = CharField(max_length=80)
    role = CharField(max_length=16)  # cashier, supervisor, technician
    pin_hash = CharField()
    active = BooleanField(default=True)
    failed_attempts = IntegerField(default=0)
    locked_until = UtcTime(null=True)
    created_at = UtcTime()


class Audit(BaseModel):
    ts = UtcTime(index=True)
    staff = CharField(null=True)
    action = CharField(max_length=32)
    subject = CharField(null=True)
    field = CharField(null=True)
    old = TextField(null=True)
    new = TextField(null=True)
    detail = TextField(null=True)


class Txn(BaseModel):
    """One posted transaction: a sale, return, void, exchange or stock operation."""

    id = IntegerField(primary_key=True)
    number = CharField(unique=True)  # "<device>-<id>": receipt number
    kind = CharField(max_length=10, index=True)
    ts = UtcTime(index=True)
    staff = CharField(null=True)
    ref = ForeignKeyField("self", null=True, backref="corrections", column_name="ref_id")
    net = DecimalText(default=Decimal(0))
    tax = DecimalText(default=Decimal(0))
    total = DecimalText(default=Decimal(0))
    discount = DecimalText(default=Decimal(0))
    rounding = DecimalText(default=Decimal(0))
    change = DecimalText(default=Decimal(0))
    reason = CharField(null=True)
    note = TextField(null=True)
    effective_at = UtcTime(null=True)  # counts: the moment of counting


class TxnLine(BaseModel):
    txn = ForeignKeyField(Txn, backref="lines")
    line_no = IntegerField()
    sku = CharField()
    qty = DecimalText()  # negative on returns
    unit_price = DecimalText()
    tax_code = CharField()
    tax_rate = DecimalText()
    gross = DecimalText()
    discount = DecimalText()
    net = DecimalText()
    tax = DecimalText()
    total = DecimalText()
    barcode = CharField(null=True)
    bom = ForeignKeyField(KitBom, null=True)
    ref_line = ForeignKeyField("self", null=True, backref="returned_by")
    condition = CharField(null=True)  # returns: resaleable or damaged
    lot = CharField(null=True)

    class Meta:
        indexes = ((("txn", "line_no"), True),)


class Tender(BaseModel):
    txn = ForeignKeyField(Txn, backref="tenders")
    kind = CharField()
    amount = DecimalText()
    reference = CharField(null=True)


class StockMove(BaseModel):
    txn = ForeignKeyField(Txn, backref="moves")
    sku = CharField(index=True)
    location = CharField(default="main")
    delta = IntegerField()
    at = UtcTime(index=True)  # when it took effect (a count: the moment of counting)


class StockBalance(BaseModel):
    sku = CharField()
    location = CharField(default="main")
    on_hand = IntegerField(default=0)

    class Meta:
        indexes = ((("sku", "location"), True),)


class Outbox(BaseModel):
    """One stock event per stock-changing transaction, in gap-free per-device seq."""

    seq = IntegerField(primary_key=True)
    txn = ForeignKeyField(Txn, unique=True, backref="events")
    kind = CharField()
    payload = TextField()
    created_at = UtcTime()
    state = CharField(default="pending", index=True)  # pending, sent, dead
    attempts = IntegerField(default=0)
    last_error = TextField(null=True)
    sent_at = UtcTime(null=True)


class PrintJob(BaseModel):
    """A document to print after a commit; a printer fault leaves it queued for reprint."""

    kind = CharField()  # receipt, kit_label
    ref = CharField()  # receipt number, or kit build receipt number
    created_at = UtcTime()
    state = CharField(default="pending", index=True)  # pending, printed, failed
    attempts = IntegerField(default=0)
    last_error = TextField(null=True)


class Counter(BaseModel):
    name = CharField(primary_key=True)
    value = IntegerField(default=0)


class Payment(BaseModel):
    """The payment journal: one row per request to a card terminal, written before the
    request is sent, then its outcome and what became of it. References only: the
    terminal's receipt and trace numbers, its id and the approval code, never card
    data (the table's CHECKs keep every reference too short to hold a card number).
    Made by migration step 3, not by create_tables."""

    created_at = UtcTime(index=True)
    updated_at = UtcTime()
    kind = CharField()  # authorize, refund, reversal
    amount = DecimalText()
    currency = CharField()
    terminal = CharField()  # "zvt host:port"
    # requested -> approved | declined | aborted | failed | unknown;
    # approved -> committed (in a sale) | reversed | refund_needed; unknown -> resolved
    state = CharField(index=True)
    receipt_no = CharField(null=True)
    trace = CharField(null=True)
    terminal_id = CharField(null=True)
    approval = CharField(null=True)
    reference = CharField(null=True)  # the tender's reference, as the sale records it
    txn = CharField(null=True)  # the receipt number of the sale it paid
    original = ForeignKeyField("self", null=True, backref="reversals")
    note = TextField(null=True)  # the terminal's message, what staff were told


MODELS = [
    Item,
    Barcode,
    KitBom,
    KitComponent,
    Staff,
    Audit,
    Txn,
    TxnLine,
    Tender,
    StockMove,
    StockBalance,
    Outbox,
    PrintJob,
    Counter,
]
