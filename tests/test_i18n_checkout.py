"""Every word the checkout says is translated (issue 15): shifts at a self-checkout and
at a staffed till, driven headlessly through the replay format, emit only Messages whose
German and French differ from the English and use no msgid the catalogs lack; a German
customer reads German refusals and German money; the command line speaks German.

The English of each Message is unchanged (tests/test_checkout.py and the replay
transcripts compare it word for word); here only the other languages are checked.
"""

from __future__ import annotations

import pytest
from babel.messages.pofile import read_po

from kiosk import i18n
from kiosk.checkout.core import Outcome
from kiosk.checkout.replay import ReplayClock, Step, replay
from kiosk.checkout.session import Checkout
from kiosk.drivers.base import MemoryDrawer, MemoryPrinter
from kiosk.ledger import stock
from kiosk.ledger.barcodes import with_check_digit
from kiosk.ledger.models import utc_now
from tests.test_checkout import with_role
from tests.test_cli import assert_user_error, env, kiosk  # noqa: F401 - env is a fixture
from tests.test_i18n import LANGUAGES, LOCALE
from tests.test_payment_refunds import do_return, sim, terminal_for  # noqa: F401 - sim: fixture

NBSP = "\xa0"
UNKNOWN_EAN = with_check_digit("400123400999")  # a valid EAN-13 that no item has
# Replay lines that answer for the replay tool itself, not for the checkout.
REPLAY_ONLY = {"expect", "printer", "idle", "terminal"}

SELF_CHECKOUT = f"""
{{"scan": "4006381333932"}}
{{"scan": "{UNKNOWN_EAN}"}}
{{"lookup": "x"}}
{{"lookup": "zzzz"}}
{{"lookup": "pen"}}
{{"pay": "start"}}
{{"qty": "abc"}}
{{"qty": "0"}}
{{"qty": "2.5"}}
{{"qty": "3"}}
{{"scan": "4006381333931"}}
{{"scan": "2800123005320"}}
{{"set_qty": {{"line": 9, "qty": "1"}}}}
{{"set_qty": {{"line": 1, "qty": "1.5"}}}}
{{"set_qty": {{"line": 1, "qty": "1"}}}}
{{"logout": true}}
{{"remove": 2}}
{{"staff": "5678"}}
{{"scan": "4001234000084"}}
{{"pay": "start"}}
{{"approve": true}}
{{"discount": {{"line": 1}}}}
{{"discount": {{"amount": "1.00"}}}}
{{"discount": {{"line": 1, "percent": "10"}}}}
{{"override": {{"line": 1, "price": "0.99"}}}}
{{"logout": true}}
{{"help": true}}
{{"staff": "1234"}}
{{"logout": true}}
{{"add": {{"sku": "BANANA", "qty": "abc"}}}}
{{"add": {{"sku": "NOSUCH"}}}}
{{"add": {{"sku": "PEN", "qty": "0"}}}}
{{"add": {{"sku": "PEN", "qty": "1.5"}}}}
{{"pay": "start"}}
{{"pay": {{"cash": "-1"}}}}
{{"pay": {{"card": "1.00"}}}}
{{"pay": {{"card": "1.00", "ref": "4111111111111111"}}}}
{{"pay": {{"card": "999.00", "ref": "AUTH1"}}}}
{{"pay": {{"cash": "1.00"}}}}
{{"cancel": true}}
{{"pay": "cancel"}}
{{"pay": "cancel"}}
{{"cancel": true}}
{{"scan": "4006381333931"}}
{{"pay": "start"}}
{{"pay": {{"cash": "50"}}}}
{{"printer": "paper_out"}}
{{"receipt": "print"}}
{{"printer": "ok"}}
{{"cancel": true}}
{{"staff": "0000"}}
{{"staff": "1234"}}
{{"expect": {{"state": "staff_menu"}}}}
{{"scan": "4006381333931"}}
{{"reprint": "failed"}}
{{"start": "return", "receipt": "till-01-999999"}}
{{"start": "return"}}
{{"scan": "RCP{{last_sale}}"}}
{{"return_item": {{"sku": "PEN", "qty": "1", "condition": "shiny"}}}}
{{"scan": "4006381333931"}}
{{"finish": "return", "reason": "bored"}}
{{"finish": "return", "reason": "unwanted"}}
{{"kit": {{"sku": "PEN"}}}}
{{"kit": {{"sku": "REPAIR", "qty": 50}}}}
{{"kit": {{"sku": "REPAIR", "qty": 1, "lot": "L1"}}}}
{{"payments": "list"}}
{{"report": "z", "float": "abc"}}
{{"report": "z", "float": "100.00"}}
{{"logout": true}}
{{"logout": true}}
{{"idle": 600}}
"""

TILL = """
{"scan": "4006381333931"}
{"staff": "5678"}
{"scan": "4006381333931"}
{"scan": "2100456004374"}
{"pay": "start"}
{"pay": {"card": "5.00", "ref": "AUTH7"}}
{"pay": "cancel"}
{"menu": true}
{"pay": "start"}
{"pay": {"cash": "100"}}
{"receipt": "none"}
{"scan": "4006381333931"}
{"scan": "4006381333931"}
{"remove": 1}
{"scan": "4006381333931"}
{"override": {"line": 1, "price": "0.10"}}
{"staff": "1234"}
{"cancel": true}
{"menu": true}
{"void": {"receipt": "{last_sale}", "reason": "post_void"}}
{"logout": true}
{"idle": 900}
"""


def shift(ledger, script: str, role: str) -> list[str]:
    """Replay `script` at a kiosk of `role`; every text the checkout showed or alerted."""
    clock = ReplayClock(utc_now)
    co = Checkout(with_role(ledger, role), MemoryPrinter(), MemoryDrawer(), clock)
    texts: list[str] = [co.message]

    def heard(event) -> None:
        if event.kind in ("message", "alert"):
            texts.append(event.detail["text"])

    def said(step: Step) -> None:
        if step.action not in REPLAY_ONLY:
            texts.append(step.outcome.message)

    co.subscribe(heard)
    replay(co, script.strip().splitlines(), clock, said)
    texts += [co.message, *co.alerts]
    return texts


def assert_translated(texts: list[str], at_least: int) -> None:
    """Each text is a Message; German and French read otherwise than the English and
    use only msgids their catalog translates."""
    texts = [t for t in texts if t]
    plain = sorted({t for t in texts if not isinstance(t, i18n.Message)})
    assert not plain, f"not Messages (mark them with kiosk.i18n._): {plain}"
    distinct = {t.msgid for t in texts}
    assert len(distinct) >= at_least, sorted(distinct)  # the shift reaches that much
    for language in LANGUAGES:
        have = translated_ids(language)
        for message in {str(t): t for t in texts}.values():
            shown = message.render(language)
            assert shown != str(message), (language, str(message))
            missing = msgids(message) - have
            assert not missing, (language, str(message), missing)


def translated_ids(language: str) -> set[str]:
    with (LOCALE / language / "LC_MESSAGES" / "kiosk.po").open("rb") as fh:
        catalog = read_po(fh, locale=language)
    return {
        m.id if isinstance(m.id, str) else m.id[0]
        for m in catalog
        if m.id and all(m.string if isinstance(m.string, tuple) else (m.string,))
    }


def msgids(message: i18n.Message) -> set[str]:
    """The message's own msgid and those of the Messages inside it."""
    found = {message.msgid}
    for _key, value in message.args:
        value = i18n.message_of(value)
        if isinstance(value, i18n.Message):
            found |= msgids(value)
        for item in getattr(value, "items", ()) or ():
            if isinstance(item, i18n.Message):
                found |= msgids(item)
    return found


@pytest.fixture
def stocked(shop):
    stock.receive(shop, [stock.ReceiveLine(s, 20) for s in ("PEN", "SCREW", "PRY")], "S1")
    return shop


def test_every_message_of_a_shift_is_translated(stocked):
    texts = shift(stocked, SELF_CHECKOUT, "self-checkout") + shift(stocked, TILL, "staffed-till")
    assert_translated(texts, 60)


def test_every_message_of_card_terminal_trouble_is_translated(shop, sim):  # noqa: F811
    """Declines, aborts, lost answers, a refused refund and the terminal's end of day,
    through the real ZVT driver and the simulated terminal."""
    co = Checkout(shop, MemoryPrinter(), terminal=terminal_for(sim))
    texts: list[str] = []
    co.subscribe(lambda e: texts.append(e.detail["text"]) if e.kind in ("message", "alert") else 0)

    def said(outcome: Outcome | None) -> Outcome | None:
        if outcome is not None:
            texts.append(outcome.message)
        return outcome

    try:
        said(co.scan("4006381333931"))
        sim.plan("decline", "abort", "drop")
        for _ in range(4):  # declined, cancelled, lost before the card: nothing; paid
            said(co.tender_card())
            said(co.terminal_wait())
        said(co.choose_receipt(False))
        said(co.scan("4006381333931"))
        sim.plan("drop_after_approval")  # the answer is lost: asked for, not charged twice
        said(co.tender_card())
        said(co.terminal_wait())
        sale = co.last_posted.number
        said(co.choose_receipt(False))
        said(co.staff_login("5678"))
        sim.plan_refund("decline", "decline")
        said(do_return(co, sale, ("PEN", "1")))
        said(co.terminal_wait())
        said(co.refund_cash())
        said(co.staff_login("1234"))
        said(co.list_payments())
        said(co.end_of_day("100.00"))
        said(co.terminal_wait())
    finally:
        co.terminal.close()
    assert_translated(texts, 15)


def test_a_german_customer_reads_german_refusals_and_german_money(stocked):
    config = stocked.config.replace(ui=stocked.config.ui.replace(language="de"))
    ledger = type(stocked)(stocked.db, config, stocked.policy, stocked.parser)
    co = Checkout(ledger, MemoryPrinter(), MemoryDrawer())

    def german(outcome: Outcome) -> str:
        return i18n.render(outcome.message, "de")

    unknown = co.scan(UNKNOWN_EAN)
    assert not unknown.ok
    assert german(unknown) == (
        f"Unbekannter Artikel (Barcode 0{UNKNOWN_EAN}). Bitte per Name suchen oder Personal rufen."
    )
    unreadable = co.scan("4006381333932")
    assert german(unreadable) == (
        "Dieser Barcode ist nicht lesbar (falsche Prüfziffer). "
        "Bitte erneut versuchen oder Personal rufen."
    )
    added = co.scan("4006381333931")
    assert str(added.message) == "Pen x 1: total 1.49 EUR"  # the English, unchanged
    assert german(added) == f"Pen x 1: Summe 1,49{NBSP}€"
    assert i18n.render(added.message, "fr") == f"Pen x 1 : total 1,49{NBSP}€"
    refused = co.quantity("10000")
    assert german(refused) == "Menge '10000' muss zwischen 0 und 9.999 liegen"
    refused = co.quantity("0")
    assert german(refused) == "Die Menge muss zwischen 1 und 9.999 liegen"
    weighed = co.scan("2800123005320")  # 0.532 kg of bananas at 1.99
    assert german(weighed) == f"Bananas x 0,532{NBSP}kg: Summe 2,55{NBSP}€"
    co.pay()
    due = co.tender_cash("1.00")
    assert str(due.message) == "Still to pay: 1.55 EUR"
    assert german(due) == f"Noch zu zahlen: 1,55{NBSP}€"
    paid = co.tender_cash("2.00")
    assert german(paid) == (
        f"Bezahlt, vielen Dank! Rückgeld: 0,45{NBSP}€. Beleg {paid.data['receipt']}"
    )


def test_a_command_line_error_in_german(env):  # noqa: F811 - the fixture of test_cli
    """A technician with KIOSK_LANGUAGE=de reads the one-line errors in German; the
    same command in English is unchanged."""
    german = kiosk({**env, "KIOSK_LANGUAGE": "de"}, "stock", "NOSUCH")
    assert_user_error(german, "kiosk: unbekannter Artikel 'NOSUCH'")
    english = kiosk({**env, "KIOSK_LANGUAGE": "en"}, "stock", "NOSUCH")
    assert_user_error(english, "kiosk: unknown item 'NOSUCH'")
    typed = kiosk({**env, "KIOSK_LANGUAGE": "de"}, "report", "z", "--float", "1e999")
    assert typed.returncode == 2 and "muss zwischen" in typed.stderr, typed.stderr
