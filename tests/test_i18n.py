"""Languages: the gettext catalogs are complete and current, Babel formats money,
quantities, weights and dates per locale, a German sale prints German receipt bytes
on the right code page and shows German on screen, and a customer's switch to French
lasts for that customer only.

When a catalog test fails, bring the catalogs up to date (README, Languages):
    pybabel extract -F babel.cfg -k _n:1,2 --no-location --sort-output \\
        --project kiosk --copyright-holder "kiosk contributors" -o kiosk/locale/kiosk.pot kiosk
    pybabel update -D kiosk -i kiosk/locale/kiosk.pot -d kiosk/locale --no-fuzzy-matching
then translate every empty msgstr in kiosk/locale/*/LC_MESSAGES/kiosk.po.
"""

from __future__ import annotations

import json
import pickle
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from escpos.capabilities import get_profile
from escpos.printer import Dummy

from kiosk import i18n, strings
from kiosk.checkout import Checkout
from kiosk.checkout.report_text import z_report_lines
from kiosk.config import ConfigError, parse
from kiosk.documents import KitLabel, Receipt, ReceiptLine, TaxLine, TenderLine, TextReport
from kiosk.drivers.base import MemoryDrawer
from kiosk.drivers.layout import paper_for
from kiosk.drivers.printer import EscposPrinter
from kiosk.drivers.zvt import codec
from kiosk.ledger import catalog_csv
from kiosk.ledger.core import Ledger
from tests.conftest import CATALOG, D
from tests.escpos_decoder import Decoder
from tests.test_printing import ZREPORT
from tests.ui_driver import KioskUI, Xvfb

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "kiosk" / "locale"
LANGUAGES = ("de", "fr")
KEYWORDS = {**DEFAULT_KEYWORDS, "_n": (1, 2)}
NBSP = "\xa0"


def catalog(language: str):
    with (LOCALE / language / "LC_MESSAGES" / "kiosk.po").open("rb") as fh:
        return read_po(fh, locale=language)


def source_msgids() -> set[str]:
    """What `pybabel extract -F babel.cfg -k _n:1,2 ... kiosk` finds in the code now."""
    with (ROOT / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    found = extract_from_dir(ROOT / "kiosk", method_map, options_map, keywords=KEYWORDS)
    return {msg[0] if isinstance(msg, tuple) else msg for _f, _l, msg, _c, _ctx in found}


# ---------------------------------------------------------------- the catalogs


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated_and_none_is_fuzzy(language):
    cat = catalog(language)
    assert len(cat) > 100, "the catalog lost its messages"
    untranslated = [m.id for m in cat if m.id and not all(m.string if isinstance(
        m.string, tuple) else (m.string,))]  # fmt: skip
    fuzzy = [m.id for m in cat if m.id and m.fuzzy]
    assert not untranslated, f"{language}: untranslated: {untranslated}"
    assert not fuzzy, f"{language}: fuzzy (check and clear the flag): {fuzzy}"
    assert not cat.obsolete, f"{language}: obsolete entries left: {list(cat.obsolete)}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogs_are_up_to_date_with_the_source(language):
    wanted = source_msgids()
    with (LOCALE / "kiosk.pot").open("rb") as fh:
        template = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(fh) if m.id}
    have = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog(language) if m.id}
    assert wanted - template == set(), "kiosk.pot misses messages: run pybabel extract"
    assert template - wanted == set(), "kiosk.pot has messages no code uses: run pybabel extract"
    assert wanted - have == set(), f"{language}: run pybabel update, then translate"


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_the_placeholders(language):
    for message in catalog(language):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        texts = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set().union(*(i18n.placeholders(i) for i in ids))
        for text in texts:
            assert i18n.placeholders(text) == wanted, (language, message.id, text)


def test_every_screen_string_is_in_every_catalog():
    alike = {"de": {"ok", "version", "broker"}, "fr": {"ok", "version", "broker", "total"}}
    for language in LANGUAGES:
        shown = strings.for_language(language)
        same = {k for k, text in shown.items() if text == strings.DEFAULTS[k]}
        assert same <= alike[language], (language, same)  # words the languages share


def test_a_missing_mo_is_compiled_into_the_cache_or_in_memory(tmp_path, monkeypatch):
    """The device's root is read-only and a checkout may have no .mo: the .po is
    compiled on first use into the cache, or in memory when that cannot be written."""
    copy = tmp_path / "locale"
    shutil.copytree(LOCALE, copy, ignore=shutil.ignore_patterns("*.mo"))
    monkeypatch.setattr(i18n, "LOCALE_DIR", copy)
    monkeypatch.setenv(i18n.CACHE_ENV, str(tmp_path / "cache"))
    i18n.translator.cache_clear()
    try:
        assert i18n.gettext("de", "Pay") == "Bezahlen"
        assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".mo"]
        i18n.translator.cache_clear()
        blocked = tmp_path / "file"
        blocked.write_text("not a folder")
        monkeypatch.setenv(i18n.CACHE_ENV, str(blocked / "cache"))
        assert i18n.gettext("fr", "Pay") == "Payer"
        assert i18n.gettext("de_AT", "Pay") == "Bezahlen"  # a region falls back
        assert i18n.gettext("es", "Pay") == "Pay"  # no catalog: the English
    finally:
        i18n.translator.cache_clear()


def test_a_fuzzy_translation_is_not_used(tmp_path, monkeypatch):
    copy = tmp_path / "locale"
    shutil.copytree(LOCALE, copy, ignore=shutil.ignore_patterns("*.mo"))
    po = copy / "de" / "LC_MESSAGES" / "kiosk.po"
    po.write_text(po.read_text().replace('msgid "Pay"\n', '#, fuzzy\nmsgid "Pay"\n'))
    monkeypatch.setattr(i18n, "LOCALE_DIR", copy)
    monkeypatch.setenv(i18n.CACHE_ENV, str(tmp_path / "cache"))
    i18n.translator.cache_clear()
    try:
        assert i18n.gettext("de", "Pay") == "Pay"
        assert i18n.gettext("de", "Cancel") == "Abbrechen"
    finally:
        i18n.translator.cache_clear()


# ---------------------------------------------------------------- formats


def test_money_quantities_weights_and_dates_per_locale():
    assert i18n.format_money(D("1.49"), "EUR", "de") == f"1,49{NBSP}€"
    assert i18n.format_money(D("1234.5"), "EUR", "de") == f"1.234,50{NBSP}€"
    assert i18n.format_money(D("1234.5"), "EUR", "fr") == f"1{NBSP}234,50{NBSP}€"
    assert i18n.format_money(D("1.49"), "EUR", "en") == "€1.49"
    assert i18n.format_money(D("-0.05"), "CHF", "de") == f"-0,05{NBSP}CHF"
    assert i18n.format_amount(D("1234.5"), "EUR", "de") == "1.234,50"
    assert i18n.format_amount(D("1234"), "JPY", "de") == "1.234"  # no minor unit
    assert i18n.format_money_code(D("-1234.5"), "EUR", "de") == "-1.234,50 EUR"
    assert i18n.format_number(D("6"), "de") == "6"
    assert i18n.format_number(D("1.5"), "de") == "1,5"
    assert i18n.format_weight(D("0.532"), "de") == f"0,532{NBSP}kg"
    assert i18n.format_weight(D("0.532"), "fr") == f"0,532{NBSP}kg"
    assert i18n.format_percent(D("0.075"), "de") == f"7,5{NBSP}%"
    assert i18n.format_date(date(2026, 11, 23), "de") == "23.11.2026"
    moment = datetime(2026, 11, 23, 14, 5, tzinfo=UTC)
    assert i18n.format_datetime(moment, "de") == "23.11.2026 14:05"
    assert i18n.format_datetime(moment, "fr") == "23 nov. 2026 14:05"


def test_a_lazy_message_renders_in_each_readers_language():
    """The checkout's way: a message made once, shown in the customer's language while
    the shop's staff read it in theirs."""
    message = i18n._(
        "print test failed: {error}", error=i18n._("paper out")
    )  # an existing msgid with a nested message
    assert message.render("de") == "Drucktest fehlgeschlagen: Papier leer"
    assert message.render("fr") == "échec du test d'impression : plus de papier"
    assert str(message) == "print test failed: paper out"
    # It is its English text: records, logs, JSON and text searches are unchanged.
    assert message == "print test failed: paper out" and "paper out" in message
    assert json.dumps({"m": message}) == '{"m": "print test failed: paper out"}'
    assert pickle.loads(pickle.dumps(message)).render("de") == message.render("de")
    queued = i18n._n("{n} receipt still queued", "{n} receipts still queued", 1234)
    assert queued == "1,234 receipts still queued"
    money = i18n._("receipt {number}", number=i18n.Money(D("1.49"), "EUR"))
    assert money.render("de") == f"Beleg 1,49{NBSP}€"
    assert i18n.render("Wrong PIN", "de") == "Falsche PIN"  # plain text the catalog has
    assert i18n.render("no such text", "de") == "no such text"


def test_zvt_result_texts_in_the_shops_language():
    assert codec.result_text(0x6C) == "aborted by timeout or the abort key"
    assert codec.result_text(0x6C, "de") == "abgebrochen durch Zeitüberschreitung oder Abbruchtaste"
    assert codec.result_text(0x11, "fr") == "erreur du terminal 11"


def test_the_command_line_speaks_its_users_language(monkeypatch):
    for name in ("KIOSK_LANGUAGE", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    assert i18n.user_language("fr") == "fr"  # nothing set: the shop's
    monkeypatch.setenv("LANG", "C.UTF-8")
    assert i18n.user_language("fr") == "fr"
    monkeypatch.setenv("LANG", "de_AT.UTF-8")
    assert i18n.user_language("fr") == "de"
    monkeypatch.setenv("LANGUAGE", "es:fr")
    assert i18n.user_language("de") == "fr"  # the first with a catalog
    monkeypatch.setenv("KIOSK_LANGUAGE", "en")
    assert i18n.user_language("de") == "en"


# ---------------------------------------------------------------- config and overrides


def test_ui_language_must_have_a_catalog():
    assert parse('[ui]\nlanguage = "de"\n').ui.screen_languages == ["de", "en", "fr"]
    assert parse('[ui]\nlanguage = "fr"\nlanguages = ["de"]\n').ui.screen_languages == [
        "fr",
        "de",
    ]
    with pytest.raises(ConfigError, match=r"ui.language: no catalog for language 'xx'"):
        parse('[ui]\nlanguage = "xx"\n')
    with pytest.raises(ConfigError, match=r"ui.languages.*'es'"):
        parse('[ui]\nlanguages = ["es"]\n')


def test_shop_overrides_on_top_of_the_catalogs(tmp_path):
    path = tmp_path / "strings.toml"
    path.write_text('pay = "Jetzt zahlen"\n[fr]\npay = "Régler"\n')
    overrides = strings.load_overrides(path)
    assert strings.for_language("de", overrides, "de")["pay"] == "Jetzt zahlen"
    assert strings.for_language("fr", overrides, "de")["pay"] == "Régler"
    assert strings.for_language("en", overrides, "de")["pay"] == "Pay"
    assert strings.for_language("de", overrides, "de")["cancel_sale"] == "Abbrechen"
    path.write_text('[es]\npay = "Pagar"\n')
    with pytest.raises(strings.StringsError, match=r"\[es\]: no catalog"):
        strings.load_overrides(path)
    path.write_text('[fr]\npayer = "Payer"\n')
    with pytest.raises(strings.StringsError, match="fr.payer: unknown string"):
        strings.load_overrides(path)


# ---------------------------------------------------------------- printed documents


def decode(output: bytes, profile: str):
    return Decoder(get_profile(profile).profile_data["codePages"]).decode(output)


def german_receipt() -> Receipt:
    return Receipt(
        store="Bäckerei Müller",
        device="till-01",
        number="till-01-000042",
        kind="return",
        when=datetime(2026, 11, 23, 9, 30),
        currency="EUR",
        lines=(
            ReceiptLine("Brötchen", D(6), "each", D("0.45"), D("2.70"), "B"),
            ReceiptLine("Äpfel Elstar", D("1.532"), "kg", D("2.99"), D("4.58"), "B", D("0.20")),
            ReceiptLine("Kaffee", D(-1), "each", D("1234.50"), D("-1234.50"), "A", note="returned"),
        ),
        taxes=(TaxLine("B", D("0.07"), D("6.80"), D("0.48")),),
        tenders=(TenderLine("card", D("1000.00"), "AUTH77"), TenderLine("cash", D("300.00"))),
        total=D("-1227.22"),
        rounding=D("0.02"),
        change=D("53.20"),
        barcode="RCPtill-01-000042",
        reprint=True,
        language="de",
    )


@pytest.mark.parametrize("profile", ["TM-T88V", "TM-T20II", "POS-5890"])
def test_a_german_receipt_decoded_from_the_bytes(profile):
    dummy = Dummy(profile=profile)
    EscposPrinter(dummy, paper_for(profile, 80)).print_receipt(german_receipt())
    (doc,) = decode(dummy.output, profile)
    assert doc.pages == [16], "CP1252 (ESC t 16) holds every German letter"
    text = [line.text for line in doc.lines]
    assert "RÜCKGABE KOPIE" in text
    assert text[2].startswith("23.11.2026 09:30")  # shop, title, date

    def line_with(*parts: str) -> str:
        found = [t for t in text if all(p in t for p in parts)]
        assert found, (parts, text)
        return found[0]

    assert line_with("SUMME EUR").endswith("-1.227,22")
    assert line_with("Kaffee").endswith("-1.234,50 A")
    assert line_with("6 x 0,45")
    assert line_with(f"1,532{NBSP}kg x 2,99")
    assert line_with("Rabatt").endswith("-0,20")
    assert line_with("zurückgegeben")
    assert line_with("Karte AUTH77").endswith("1.000,00")
    assert line_with("Bar ").endswith("300,00")
    assert line_with("Rückgeld").endswith("53,20")
    assert line_with("Bargeldrundung").endswith("0,02")
    assert line_with(f"B 7{NBSP}%", "netto 6,80", "MwSt 0,48")
    assert line_with("Vielen Dank!")


def test_a_german_kit_label():
    label = KitLabel(
        "REPAIR", "Reparaturset", "4001234000077", 3, date(2026, 11, 23), "K-7",
        (("Schraubendreher", 1), ("Hebelwerkzeug", 2)), language="de",
    )  # fmt: skip
    dummy = Dummy(profile="TM-T88V")
    EscposPrinter(dummy, paper_for("TM-T88V", 80)).print_kit_label(label)
    (doc,) = decode(dummy.output, "TM-T88V")
    text = [line.text for line in doc.lines]
    assert any(t.endswith("Stückliste v3") for t in text), text
    assert any("montiert 23.11.2026" in t and t.endswith("Charge K-7") for t in text), text
    assert "Inhalt:" in text and "  2 x Hebelwerkzeug" in text


def test_a_german_sale_through_the_checkout_prints_german_bytes(tmp_path):
    """The whole way: a German shop's sale at the self-checkout, posted to a real
    ledger, printed through python-escpos, read back from the bytes."""
    config = parse(
        f'[device]\nid = "till-01"\nstore = "laden-7"\n'
        f'[ledger]\npath = "{tmp_path / "ledger.db"}"\n[ui]\nlanguage = "de"\n'
    )
    dummy = Dummy(profile="TM-T88V")
    with Ledger.open(config) as ledger:
        catalog_csv.import_text(ledger, CATALOG)
        checkout = Checkout(ledger, EscposPrinter(dummy, paper_for("TM-T88V", 80)), MemoryDrawer())
        steps = [("scan", "4006381333931"), ("scan", "2800123005320"), ("pay",),
                 ("tender_cash", "5"), ("choose_receipt", True)]  # fmt: skip
        for step, *args in steps:
            outcome = getattr(checkout, step)(*args)
            assert outcome.ok, (step, outcome.message)
    (doc,) = decode(dummy.output, "TM-T88V")
    assert doc.pages == [16]
    text = [line.text for line in doc.lines]
    total = next(t for t in text if t.startswith("SUMME EUR"))
    assert total.endswith("2,55"), text  # 1.49 + 0.532 kg x 1.99 = 1.06
    assert any(t.startswith("Bananas") and t.endswith("1,06 B") for t in text), text
    assert any(f"0,532{NBSP}kg x 1,99" in t for t in text), text
    assert any(t.startswith("Bar") and t.endswith("5,00") for t in text), text
    assert any(t.startswith("Rückgeld") and t.endswith("2,45") for t in text), text
    assert "Vielen Dank!" in text


@pytest.mark.parametrize("width", [32, 42])
def test_a_german_z_report_printed(width):
    config = parse('[ui]\nlanguage = "de"\n[printer]\nprofile = "TM-T20II"\n')
    lines = tuple(z_report_lines(ZREPORT, config, width))
    assert lines[0].startswith("Z-Bericht 23.11.2026")
    dummy = Dummy(profile="TM-T20II")
    EscposPrinter(dummy, paper_for("TM-T20II", 80)).print_report(TextReport(lines[0], lines))
    (doc,) = decode(dummy.output, "TM-T20II")
    text = [line.text for line in doc.lines]
    assert all(len(t) <= 48 for t in text)

    def on_one_line(label: str, figure: str) -> None:
        assert any(label in t and t.endswith(figure) for t in text), (label, figure, text)

    on_one_line("Brutto" if width == 32 else "Bruttoumsatz", "123.456,78 EUR")
    on_one_line("Rückgaben", "-1.234,50 EUR")
    on_one_line("Bar", "45.678,90 EUR")
    on_one_line("Karte", "76.443,48 EUR")
    on_one_line("Bargeld-Soll", "45.828,90 EUR")
    on_one_line(f"A 19{NBSP}%", "18.765,43 EUR")
    assert any("Verkäufe: 128" in t for t in text), text
    assert doc.pages == [16]


# ---------------------------------------------------------------- on screen


@pytest.fixture(scope="module")
def xvfb():
    server = Xvfb()
    yield server
    server.stop()


def test_a_german_sale_on_screen_and_a_french_customer(xvfb, tmp_path):
    config = tmp_path / "kiosk.toml"
    config.write_text('[ui]\nlanguage = "de"\n[checkout]\nreceipt_timeout_s = 3\n')
    ui = KioskUI(xvfb, tmp_path, "language-de", env={"KIOSK_CONFIG": str(config)})
    try:
        state = ui.wait(lambda s: s["texts"].get("headline"), "the attract texts")
        assert state["language"] == "de"
        assert state["texts"]["headline"] == "Scannen Sie einen Artikel"
        assert state["texts"]["help_button"] == "Personal rufen"
        ui.screenshot("language-de-attract")
        ui.scan("4006381333931")
        state = ui.wait(lambda s: s["screen"] == "cart", "the cart")
        assert state["texts"]["total"] == f"Summe  1,49{NBSP}€"
        assert state["texts"]["pay_button"] == "Bezahlen"
        ui.screenshot("language-de-cart")
        ui.click("pay_button")
        state = ui.wait(lambda s: s["screen"] == "pay", "the pay screen")
        assert state["texts"]["cash_5"] == f"5,00{NBSP}€" and state["texts"]["cash_exact"] == (
            "Passend"
        )
        ui.screenshot("language-de-pay")
        ui.click("cash_5")
        state = ui.wait(lambda s: s["screen"] == "receipt", "the receipt choice")
        assert state["texts"]["print_button"] == "Beleg drucken"
        ui.click("print_button")
        state = ui.wait(lambda s: s["screen"] == "thanks" and s["preview"], "the receipt")
        ui.screenshot("language-de-thanks")
        # The next customer reads French: the attract screen's switch.
        ui.wait(lambda s: s["screen"] == "attract" and "language_fr" in s["widgets"],
                "the attract screen again", 60)  # fmt: skip
        ui.click("language_fr")
        state = ui.wait(lambda s: s["language"] == "fr", "French on screen")
        assert state["texts"]["headline"] == "Scannez un article pour commencer"
        assert state["texts"]["lookup_button"] == "Rechercher un article"
        ui.screenshot("language-fr-attract")
        ui.scan("4006381333931")
        state = ui.wait(lambda s: s["screen"] == "cart", "the French cart")
        assert state["language"] == "fr"
        assert state["texts"]["total"] == f"Total  1,49{NBSP}€"
        assert state["texts"]["pay_button"] == "Payer"
        ui.screenshot("language-fr-cart")
        ui.click("pay_button")
        ui.wait(lambda s: s["screen"] == "pay", "the French pay screen")
        ui.click("cash_5")
        state = ui.wait(lambda s: s["screen"] == "receipt", "the French receipt choice")
        assert state["texts"]["print_button"] == "Imprimer le ticket"
        ui.click("print_button")
        # The thank-you is still theirs; the shop's language returns once it has gone.
        state = ui.wait(lambda s: s["screen"] == "thanks" and s["preview"], "the French thanks")
        assert state["language"] == "fr" and state["snap"]["state"] == "attract"
        ui.screenshot("language-fr-thanks")
        state = ui.wait(lambda s: s["screen"] == "attract", "the attract screen", 30)
        state = ui.wait(lambda s: s["language"] == "de", "German for the next customer")
        assert state["texts"]["headline"] == "Scannen Sie einen Artikel"
        # An English customer who leaves without paying: German again at once.
        ui.click("language_en")
        ui.wait(lambda s: s["texts"].get("headline") == "Scan an item to start", "English")
        ui.scan("4006381333931")
        ui.wait(lambda s: s["screen"] == "cart" and s["language"] == "en", "the English cart")
        ui.click("cancel_button")
        state = ui.wait(lambda s: s["screen"] == "attract" and s["language"] == "de", "German")
        assert state["texts"]["headline"] == "Scannen Sie einen Artikel"
    finally:
        ui.stop()
