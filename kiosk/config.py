"""TOML config file -> typed, validated settings.

Every key has a default, so the demo runs with no file at all. Unknown keys, wrong
types and bad values are refused with the file, the key and the reason
(`ConfigError`), never a traceback.
"""

from __future__ import annotations

import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from msgspec import Meta, field

from kiosk import numbers, textfile
from kiosk.schema import After, Before, Invalid, Section, convert, lax_bool, to_builtins
from kiosk.update.settings import UpdateConfig

SYSTEM_CONFIG = Path("/etc/kiosk/kiosk.toml")
MAX_CASH_ROUNDING = Decimal(10)  # the coarsest cash step (e.g. 10 in a currency without coins)
ENV_VAR = "KIOSK_CONFIG"
SECRET_KEYS = {"password", "psk"}
MASK = "********"


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file and the key."""


def _to_decimal(value: Any) -> Decimal:
    # TOML floats are binary: numbers.decimal goes through repr(), so 0.05 stays 0.05.
    return numbers.decimal(value, "value", maximum=numbers.MAX_MONEY, floats=True)


def _percent(value: Any) -> Decimal:
    """A tax rate written "19%" or "19" (percent), stored as the fraction 0.19."""
    if isinstance(value, str):
        value = value.strip().removesuffix("%")
    rate = numbers.decimal(value, "rate", maximum=100, floats=True) / 100
    if not Decimal(0) <= rate < Decimal(1):
        raise ValueError("a tax rate must be between 0% and 100%")
    return rate


DecimalValue = Annotated[Decimal, Before(_to_decimal)]
PercentValue = Annotated[Decimal, Before(_percent)]
# true or false; text such as "yes" and 0 or 1 pass too, as they always have.
Flag = Annotated[bool, Before(lax_bool)]
# Whole numbers and seconds are strict (msgspec's own): TOML has real integers, so
# "1_000" as text, 1e-400 as a float or true are not one; a seconds value may be an int.
NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
Port = Annotated[int, Meta(ge=1, le=65535)]
Baudrate = Annotated[int, Meta(gt=0, le=4_000_000)]
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]

# Currencies whose minor unit is not hundredths (ISO 4217); every other code uses 2.
_MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip


class DeviceConfig(Section):
    id: Annotated[str, Meta(pattern=NAME)] = "demo-01"
    store: Annotated[str, Meta(pattern=NAME)] = "demo-store"
    role: Literal["self-checkout", "staffed", "mobile-cart"] = "self-checkout"


def default_ledger_path() -> Path:
    """The user's data folder: a device's config names /var/lib/kiosk explicitly."""
    return Path(platformdirs.user_data_dir("kiosk")) / "ledger.db"


class LedgerConfig(Section):
    path: Path = field(default_factory=default_ledger_path)
    # FULL: a committed sale survives a power cut. NORMAL trades that for speed.
    synchronous: Literal["full", "normal"] = "full"
    # The device's secret that keys staff PIN hashes: never inside the ledger, so a copy
    # of the ledger alone (a backup, a support upload) does not give the PINs away.
    pin_key: Path | None = None  # default: pin.key beside the ledger

    @property
    def pin_key_path(self) -> Path:
        """Beside the ledger: on a device the data partition (/var/lib/kiosk), which
        persists and is the kiosk user's; the root file system is read-only."""
        return self.pin_key or self.path.parent / "pin.key"


def _topic_root(value: str | None) -> str | None:
    if value is not None and (not value or re.search(r"[#+]|^/|/$", value)):
        raise ValueError("must be a topic prefix without wildcards or outer slashes")
    return value


class MqttConfig(Section):
    host: str = "127.0.0.1"
    port: Port = 1883
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None
    tls: Flag = False
    ca_file: Path | None = None
    # The topic root; default shop/<store>.
    root: Annotated[str | None, After(_topic_root)] = None
    keepalive: Annotated[int, Meta(ge=5, le=3600)] = 30


def _known_keymap(value: str) -> str:
    from kiosk.drivers import keymaps  # noqa: PLC0415 - reads xkb-data only when set

    keymaps.check(value)
    return value


class ScannerConfig(Section):
    kind: Literal["evdev", "serial", "none"] = "evdev"
    # evdev: a name substring, "vendor:product" in hex, or a /dev/input/by-id/ path
    match: str = ""
    # The layout the scanner types in, as xkb writes it: "de", "de(nodeadkeys)",
    # "us(dvorak)"; any layout and variant this machine's xkb-data has (kiosk/drivers/keymaps.py).
    keymap: Annotated[str, After(_known_keymap)] = "us"
    terminator: Literal["enter", "tab", "none"] = "enter"
    # terminator "none": a pause ends a scan
    timeout_ms: Annotated[int, Meta(ge=10, le=2000)] = 60
    prefix: str = ""  # stripped from every scan
    suffix: str = ""
    fnc1: str = ""  # a character the scanner sends for FNC1, turned into ASCII 29
    port: str = "/dev/ttyACM0"  # serial scanners
    baudrate: Baudrate = 9600


def printer_profile(value: str) -> str:
    """A python-escpos profile's name as escpos spells it; ValueError names the closest."""
    if value == "default":
        return value
    import difflib  # noqa: PLC0415

    from kiosk import escpos_lib  # noqa: PLC0415 - python-escpos: only when set

    names = list(escpos_lib.capabilities()["profiles"])
    if value in names:
        return value
    folded = {name.lower(): name for name in names}
    if value.lower() in folded:
        return folded[value.lower()]
    close = difflib.get_close_matches(value.lower(), list(folded), n=3, cutoff=0.5)
    hint = ", ".join(folded[name] for name in close) or "see `kiosk hw printers`"
    raise ValueError(f"unknown printer profile {value!r}; closest: {hint}")


class PrinterConfig(Section):
    kind: Literal["usb", "serial", "network", "file", "none"] = "file"
    usb: Annotated[str, Meta(pattern=r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")] | None = None
    device: str = "/dev/usb/lp0"
    host: str | None = None
    port: Port = 9100
    baudrate: Baudrate = 19200
    # python-escpos's capability profile of the printer (`kiosk hw printers` lists
    # them): its columns, print width, code pages, barcode and cutter support.
    profile: Annotated[str, After(printer_profile)] = "default"
    # The paper roll's width (mm) when narrower than the printer's head (a 58 mm
    # guide in an 80 mm printer); default: the profile's width, or 80 mm.
    paper_mm: Annotated[int, Meta(ge=40, le=120)] | None = None
    # Characters per line in font A when the printer differs from its profile.
    columns: Annotated[int, Meta(ge=24, le=96)] | None = None
    logo: Path | None = None  # a PNG printed at the top of every receipt

    def __post_init__(self) -> None:
        if self.kind == "usb" and not self.usb:
            raise ValueError('kind = "usb" needs usb = "vendor:product", e.g. "04b8:0202"')
        if self.kind == "network" and not self.host:
            raise ValueError('kind = "network" needs host')


class DrawerConfig(Section):
    kind: Literal["gpio", "printer", "none"] = "gpio"
    pin: Annotated[int, Meta(ge=0, le=27)] = 17
    pulse_ms: Annotated[int, Meta(ge=10, le=1000)] = 100
    active_high: Flag = True
    # A drawer-open switch, if fitted.
    sensor_pin: Annotated[int, Meta(ge=0, le=27)] | None = None
    sensor_open_when_pressed: Flag = False  # the switch closes when the drawer shuts
    open_warn_s: Annotated[int, Meta(ge=5, le=3600)] = 60  # warn when left open this long


def _cash_step(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("must be a positive amount such as 0.05 (or 0.01 for none)")
    if value > MAX_CASH_ROUNDING or (1 % value and value % 1):
        raise ValueError(
            f"must divide 1 (0.05, 0.10, 0.25, 0.50) or be a whole amount up to "
            f"{MAX_CASH_ROUNDING} (1, 5, 10): cash is rounded to it"
        )
    return value


def _tax_codes(value: dict[str, Decimal]) -> dict[str, Decimal]:
    if not value:
        raise ValueError("needs at least one tax category")
    for code in value:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,8}", code):
            raise ValueError(f"tax category {code!r} must be 1-8 letters or digits")
    return value


class MoneyConfig(Section):
    currency: Currency = "EUR"
    prices_include_tax: Flag = True
    cash_rounding: Annotated[Decimal, Before(_to_decimal), After(_cash_step)] = Decimal("0.05")
    tax_rates: Annotated[dict[str, PercentValue], After(_tax_codes)] = field(
        default_factory=lambda: {"A": Decimal("0.19"), "B": Decimal("0.07"), "Z": Decimal(0)}
    )

    @property
    def minor_unit(self) -> Decimal:
        return Decimal(1).scaleb(-_MINOR_UNITS.get(self.currency, 2))

    def __post_init__(self) -> None:
        if self.cash_rounding % self.minor_unit:
            raise ValueError(
                f"cash_rounding {self.cash_rounding} is finer than {self.currency}'s minor unit"
            )


class VariableMeasureLayout(Section):
    """A GS1 restricted-circulation EAN-13 layout (prefix 20-29) printed by scales."""

    prefix: Annotated[str, Meta(pattern=r"^2[0-9]$")]
    kind: Literal["price", "weight"]
    item_digits: Annotated[int, Meta(ge=3, le=6)] = 5
    value_check: Flag = False  # a check digit over the value, before it
    # default: 2 for price, 3 (kg) for weight
    decimals: Annotated[int, Meta(ge=0, le=3)] | None = None

    @property
    def value_digits(self) -> int:
        return 13 - 2 - self.item_digits - (1 if self.value_check else 0) - 1

    @property
    def value_decimals(self) -> int:
        if self.decimals is not None:
            return self.decimals
        return 2 if self.kind == "price" else 3

    def __post_init__(self) -> None:
        if self.value_digits < 4:
            raise ValueError("item_digits leave fewer than 4 digits for the value")
        if self.value_check and self.value_digits != 4:
            raise ValueError("value_check needs a 4-digit value (item_digits = 5)")


BarcodePrefix = Annotated[str, Meta(pattern=r"^[A-Z]{1,4}$")]


class BarcodeConfig(Section):
    variable_measure: list[VariableMeasureLayout] = field(
        default_factory=lambda: [
            VariableMeasureLayout(prefix="21", kind="price"),
            VariableMeasureLayout(prefix="28", kind="weight"),
        ]
    )
    sku_prefix: BarcodePrefix = "SKU"
    receipt_prefix: BarcodePrefix = "RCP"
    staff_prefix: BarcodePrefix = "STF"

    def __post_init__(self) -> None:
        prefixes = [layout.prefix for layout in self.variable_measure]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError("variable_measure lists a prefix twice")
        texts = [self.sku_prefix, self.receipt_prefix, self.staff_prefix]
        if len(set(texts)) != 3:
            raise ValueError("sku_prefix, receipt_prefix and staff_prefix must differ")


class StaffConfig(Section):
    max_pin_attempts: Annotated[int, Meta(ge=1, le=20)] = 5
    lockout_minutes: Annotated[int, Meta(ge=1, le=24 * 60)] = 5


def _percentage(value: Decimal) -> Decimal:
    if not Decimal(0) <= value <= Decimal(100):
        raise ValueError("must be a percentage from 0 to 100")
    return value


class CheckoutConfig(Section):
    # An untouched cart goes back to attract.
    idle_timeout_s: Annotated[int, Meta(ge=10, le=3600)] = 120
    receipt_timeout_s: Annotated[int, Meta(ge=3, le=600)] = 20  # the thank-you screen
    # Above this a supervisor approves.
    cashier_discount_pct: Annotated[Decimal, Before(_to_decimal), After(_percentage)] = Decimal(10)
    cart_tendering: Flag = False  # may a mobile cart take payment?
    badge_login: Flag = True  # a staff badge scan logs in without a PIN
    # Counts show no expected quantity and no difference (screen, messages): staff count
    # what is there, not what the ledger says should be there.
    blind_counts: Flag = False
    receipt_header: list[str] = field(default_factory=list)
    receipt_footer: list[str] = field(default_factory=lambda: ["Thank you!"])


def default_controller_db() -> str:
    return str(Path(platformdirs.user_data_dir("kiosk")) / "controller.db")


def _days(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must be zero or more days")
    return value


Days = Annotated[Decimal, Before(_to_decimal), After(_days)]


class ControllerConfig(Section):
    # A file path (SQLite) or a database URL such as postgresql://user@host/db
    database: str = field(default_factory=default_controller_db)
    lead_time_days: Days = Decimal(3)  # order to delivery
    safety_days: Days = Decimal(2)  # extra cover against demand swings
    review_days: Days = Decimal(7)  # how long an order should last
    history_days: Annotated[int, Meta(ge=1, le=365)] = 28  # demand is averaged over this window
    # A gap older than this asks to resend.
    resync_after_s: Annotated[float, Meta(gt=0, le=600)] = 2.0
    # Events dated more than this ahead of the controller's clock are dead-lettered
    future_tolerance_s: Annotated[float, Meta(ge=0, le=86_400)] = 300.0
    # The web view (kiosk.mqtt.web) for managers and attendants, on the shop LAN. Off
    # unless a port is given (8080 is the usual choice); HTTPS when both files are given.
    web_port: Port | None = None
    web_host: str = "0.0.0.0"  # every interface of the controller's machine
    web_certfile: Path | None = None  # PEM certificate (chain) of the site: HTTPS
    web_keyfile: Path | None = None  # its private key
    # Where `kiosk controller offer-update` keeps the offered bundle (default: beside a
    # SQLite database, else /var/lib/kiosk/updates), served to kiosks at /updates/.
    updates_dir: Path | None = None
    # A login lasts this long idle.
    web_session_hours: Annotated[float, Meta(gt=0, le=24 * 30)] = 12.0
    # Failed logins before a lockout.
    web_lockout_attempts: Annotated[int, Meta(ge=1, le=100)] = 5
    web_lockout_minutes: Annotated[float, Meta(gt=0, le=24 * 60)] = 15.0
    # No status for this long: red.
    stale_after_s: Annotated[float, Meta(gt=0, le=86_400)] = 120.0

    def updates_folder(self) -> Path:
        if self.updates_dir is not None:
            return self.updates_dir
        if "://" in self.database:
            return Path("/var/lib/kiosk/updates")
        return Path(self.database).parent / "updates"

    def __post_init__(self) -> None:
        if (self.web_certfile is None) != (self.web_keyfile is None):
            raise ValueError("web_certfile and web_keyfile go together (HTTPS needs both)")


Timeout = Annotated[float, Meta(gt=0, le=60)]


class PaymentConfig(Section):
    """The card terminal. "manual": staff type the terminal's approval code (a staffed
    till's stand-alone terminal). "zvt": the kiosk drives the terminal over ZVT, by TCP
    (host, port) or a serial line (serial = "/dev/ttyUSB0")."""

    kind: Literal["manual", "zvt"] = "manual"
    host: str | None = None
    port: Port = 20007
    serial: str | None = None
    baudrate: Baudrate = 9600
    # The terminal's ECR password.
    password: Annotated[str, Meta(pattern=r"^[0-9]{6}$")] = "000000"
    currency: Currency | None = None  # default: [money] currency
    # ISO 4217 number, if not known here.
    currency_code: Annotated[int, Meta(ge=1, le=999)] | None = None
    connect_timeout_s: Timeout = 5.0
    ack_timeout_s: Timeout = 5.0  # the terminal acknowledges each command
    # Silence from the terminal for this long during a payment: the kiosk aborts it.
    payment_timeout_s: Annotated[float, Meta(ge=5, le=600)] = 120.0
    terminal_prints: Flag = False  # the terminal prints its own receipts, not the kiosk
    print_merchant_receipt: Flag = False  # a staffed till keeps the merchant copy

    def __post_init__(self) -> None:
        if self.kind == "zvt" and not (self.host or self.serial):
            raise ValueError('kind = "zvt" needs host (TCP, port 20007) or serial (a device)')
        if self.host and self.serial:
            raise ValueError("give host or serial, not both")


def _catalog_language(value: str) -> str:
    from kiosk import i18n  # noqa: PLC0415

    if value not in i18n.catalog_languages():
        known = ", ".join(i18n.catalog_languages())
        raise ValueError(f"no catalog for language {value!r} (have {known})")
    return value


def _catalog_languages(value: list[str]) -> list[str]:
    return list(dict.fromkeys(_catalog_language(language) for language in value))


class UiConfig(Section):
    fullscreen: Flag = True
    high_contrast: Flag = False
    # The shop's language: receipts, labels, reports, and the screen between customers.
    language: Annotated[str, After(_catalog_language)] = "en"
    # The screen languages a customer can switch to on the attract screen (a button each;
    # empty: every language with a catalog). The shop's language is always offered.
    languages: Annotated[list[str], Meta(max_length=12), After(_catalog_languages)] = field(
        default_factory=list
    )
    strings: Path | None = None  # a TOML file of the shop's own wording (kiosk/strings.py)

    @property
    def screen_languages(self) -> list[str]:
        """The attract screen's choices: the shop's language first."""
        from kiosk import i18n  # noqa: PLC0415

        chosen = self.languages or list(i18n.catalog_languages())
        return [self.language, *(lang for lang in chosen if lang != self.language)]


class Config(Section):
    internal = frozenset({"source"})

    device: DeviceConfig = field(default_factory=DeviceConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    scanner: ScannerConfig = field(default_factory=ScannerConfig)
    printer: PrinterConfig = field(default_factory=PrinterConfig)
    drawer: DrawerConfig = field(default_factory=DrawerConfig)
    money: MoneyConfig = field(default_factory=MoneyConfig)
    barcodes: BarcodeConfig = field(default_factory=BarcodeConfig)
    staff: StaffConfig = field(default_factory=StaffConfig)
    checkout: CheckoutConfig = field(default_factory=CheckoutConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    payment: PaymentConfig = field(default_factory=PaymentConfig)
    update: UpdateConfig = field(default_factory=UpdateConfig)  # signed A/B updates

    source: Path | None = None  # the file it was read from (not a key of the file)

    @property
    def topic_root(self) -> str:
        return self.mqtt.root or f"shop/{self.device.store}"

    def with_ledger_path(self, path: Path) -> Config:
        return self.replace(ledger=self.ledger.replace(path=path))

    def to_display(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets masked."""
        shown = to_builtins(self)
        del shown["source"]
        return _mask(shown)


def _mask(data: Any) -> Any:
    if isinstance(data, dict):
        return {
            key: (MASK if key in SECRET_KEYS and value else _mask(value))
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_mask(item) for item in data]
    return data


def _format_error(source: str, error: Invalid) -> str:
    first, *others = error.problems
    more = len(others)
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{source}: {first.key}: {first.reason}{suffix}"


def parse(text: str, source: str = "<config>") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid TOML: nested too deeply") from None
    try:
        return convert(data, Config)
    except Invalid as exc:
        raise ConfigError(_format_error(source, exc)) from None


def load_file(path: Path) -> Config:
    try:
        text = textfile.read_text(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except textfile.TextFileError as exc:
        raise ConfigError(str(exc)) from None
    return parse(text, str(path)).replace(source=path)


def load(explicit: Path | None = None) -> Config:
    """--config, else $KIOSK_CONFIG, else /etc/kiosk/kiosk.toml if present, else defaults."""
    if explicit is not None:
        return load_file(explicit)
    if os.environ.get(ENV_VAR):
        return load_file(Path(os.environ[ENV_VAR]))
    if SYSTEM_CONFIG.exists():
        return load_file(SYSTEM_CONFIG)
    return Config()
