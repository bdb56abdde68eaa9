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
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from kiosk import numbers, textfile
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


DecimalValue = Annotated[Decimal, BeforeValidator(_to_decimal)]
# TOML has real integers: "1_000" as text, 1e-400 as a float or true are not one.
Whole = Annotated[int, Strict()]
Seconds = Annotated[float, Strict()]  # an int is fine, text or true is not
PercentValue = Annotated[Decimal, BeforeValidator(_percent)]

# Currencies whose minor unit is not hundredths (ISO 4217); every other code uses 2.
_MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class DeviceConfig(Section):
    id: str = Field("demo-01", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
    store: str = Field("demo-store", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
    role: Literal["self-checkout", "staffed", "mobile-cart"] = "self-checkout"


def default_ledger_path() -> Path:
    """The user's data folder: a device's config names /var/lib/kiosk explicitly."""
    return Path(platformdirs.user_data_dir("kiosk")) / "ledger.db"


class LedgerConfig(Section):
    path: Path = Field(default_factory=default_ledger_path)
    # FULL: a committed sale survives a power cut. NORMAL trades that for speed.
    synchronous: Literal["full", "normal"] = "full"
    # The device's secret that keys staff PIN hashes: never inside the ledger, so a copy
    # of the ledger alone (a backup, a support upload) does not give the PINs away.
    pin_key: Path | None = Field(None, description="default: pin.key beside the ledger")

    @property
    def pin_key_path(self) -> Path:
        """Beside the ledger: on a device the data partition (/var/lib/kiosk), which
        persists and is the kiosk user's; the root file system is read-only."""
        return self.pin_key or self.path.parent / "pin.key"


class MqttConfig(Section):
    host: str = "127.0.0.1"
    port: Whole = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    root: str | None = Field(None, description="topic root; default shop/<store>")
    keepalive: Whole = Field(30, ge=5, le=3600)

    @field_validator("root")
    @classmethod
    def _root_has_no_wildcards(cls, value: str | None) -> str | None:
        if value is not None and (not value or re.search(r"[#+]|^/|/$", value)):
            raise ValueError("must be a topic prefix without wildcards or outer slashes")
        return value


class ScannerConfig(Section):
    kind: Literal["evdev", "serial", "none"] = "evdev"
    # evdev: a name substring, "vendor:product" in hex, or a /dev/input/by-id/ path
    match: str = ""
    # The layout the scanner types in, as xkb writes it: "de", "de(nodeadkeys)",
    # "us(dvorak)"; any layout and variant this machine's xkb-data has (kiosk/drivers/keymaps.py).
    keymap: str = "us"
    terminator: Literal["enter", "tab", "none"] = "enter"
    timeout_ms: Whole = Field(60, ge=10, le=2000)  # terminator "none": a pause ends a scan
    prefix: str = ""  # stripped from every scan
    suffix: str = ""
    fnc1: str = ""  # a character the scanner sends for FNC1, turned into ASCII 29
    port: str = "/dev/ttyACM0"  # serial scanners
    baudrate: Whole = Field(9600, gt=0, le=4_000_000)

    @field_validator("keymap")
    @classmethod
    def _known_keymap(cls, value: str) -> str:
        from kiosk.drivers import keymaps  # noqa: PLC0415 - reads xkb-data only when set

        keymaps.check(value)
        return value


class PrinterConfig(Section):
    kind: Literal["usb", "serial", "network", "file", "none"] = "file"
    usb: str | None = Field(None, pattern=r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")
    device: str = "/dev/usb/lp0"
    host: str | None = None
    port: Whole = Field(9100, ge=1, le=65535)
    baudrate: Whole = Field(19200, gt=0, le=4_000_000)
    # python-escpos's capability profile of the printer (`kiosk hw printers` lists
    # them): its columns, print width, code pages, barcode and cutter support.
    profile: str = "default"
    # The paper roll's width (mm) when narrower than the printer's head (a 58 mm
    # guide in an 80 mm printer); default: the profile's width, or 80 mm.
    paper_mm: Whole | None = Field(None, ge=40, le=120)
    # Characters per line in font A when the printer differs from its profile.
    columns: Whole | None = Field(None, ge=24, le=96)
    logo: Path | None = None  # a PNG printed at the top of every receipt

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value == "default":
            return value
        import difflib  # noqa: PLC0415

        from escpos.capabilities import CAPABILITIES  # noqa: PLC0415 - 0.2 s: only when set

        names = list(CAPABILITIES["profiles"])
        if value in names:
            return value
        folded = {name.lower(): name for name in names}
        if value.lower() in folded:
            return folded[value.lower()]
        close = difflib.get_close_matches(value.lower(), list(folded), n=3, cutoff=0.5)
        hint = ", ".join(folded[name] for name in close) or "see `kiosk hw printers`"
        raise ValueError(f"unknown printer profile {value!r}; closest: {hint}")

    @model_validator(mode="after")
    def _connection_is_complete(self) -> PrinterConfig:
        if self.kind == "usb" and not self.usb:
            raise ValueError('kind = "usb" needs usb = "vendor:product", e.g. "04b8:0202"')
        if self.kind == "network" and not self.host:
            raise ValueError('kind = "network" needs host')
        return self


class DrawerConfig(Section):
    kind: Literal["gpio", "printer", "none"] = "gpio"
    pin: Whole = Field(17, ge=0, le=27)
    pulse_ms: Whole = Field(100, ge=10, le=1000)
    active_high: bool = True
    sensor_pin: Whole | None = Field(None, ge=0, le=27)  # a drawer-open switch, if fitted
    sensor_open_when_pressed: bool = False  # the switch closes when the drawer shuts
    open_warn_s: Whole = Field(60, ge=5, le=3600)  # warn when left open this long


class MoneyConfig(Section):
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    prices_include_tax: bool = True
    cash_rounding: DecimalValue = Decimal("0.05")
    tax_rates: dict[str, PercentValue] = Field(
        default_factory=lambda: {"A": Decimal("0.19"), "B": Decimal("0.07"), "Z": Decimal(0)}
    )

    @property
    def minor_unit(self) -> Decimal:
        return Decimal(1).scaleb(-_MINOR_UNITS.get(self.currency, 2))

    @field_validator("cash_rounding")
    @classmethod
    def _positive(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError("must be a positive amount such as 0.05 (or 0.01 for none)")
        if value > MAX_CASH_ROUNDING or (1 % value and value % 1):
            raise ValueError(
                f"must divide 1 (0.05, 0.10, 0.25, 0.50) or be a whole amount up to "
                f"{MAX_CASH_ROUNDING} (1, 5, 10): cash is rounded to it"
            )
        return value

    @field_validator("tax_rates")
    @classmethod
    def _codes(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        if not value:
            raise ValueError("needs at least one tax category")
        for code in value:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,8}", code):
                raise ValueError(f"tax category {code!r} must be 1-8 letters or digits")
        return value

    @model_validator(mode="after")
    def _rounding_fits_currency(self) -> MoneyConfig:
        if self.cash_rounding % self.minor_unit:
            raise ValueError(
                f"cash_rounding {self.cash_rounding} is finer than {self.currency}'s minor unit"
            )
        return self


class VariableMeasureLayout(Section):
    """A GS1 restricted-circulation EAN-13 layout (prefix 20-29) printed by scales."""

    prefix: str = Field(pattern=r"^2[0-9]$")
    kind: Literal["price", "weight"]
    item_digits: Whole = Field(5, ge=3, le=6)
    value_check: bool = False  # a check digit over the value, before it
    decimals: Whole | None = Field(None, ge=0, le=3)  # default: 2 for price, 3 (kg) for weight

    @property
    def value_digits(self) -> int:
        return 13 - 2 - self.item_digits - (1 if self.value_check else 0) - 1

    @property
    def value_decimals(self) -> int:
        if self.decimals is not None:
            return self.decimals
        return 2 if self.kind == "price" else 3

    @model_validator(mode="after")
    def _fits(self) -> VariableMeasureLayout:
        if self.value_digits < 4:
            raise ValueError("item_digits leave fewer than 4 digits for the value")
        if self.value_check and self.value_digits != 4:
            raise ValueError("value_check needs a 4-digit value (item_digits = 5)")
        return self


class BarcodeConfig(Section):
    variable_measure: list[VariableMeasureLayout] = Field(
        default_factory=lambda: [
            VariableMeasureLayout(prefix="21", kind="price"),
            VariableMeasureLayout(prefix="28", kind="weight"),
        ]
    )
    sku_prefix: str = Field("SKU", pattern=r"^[A-Z]{1,4}$")
    receipt_prefix: str = Field("RCP", pattern=r"^[A-Z]{1,4}$")
    staff_prefix: str = Field("STF", pattern=r"^[A-Z]{1,4}$")

    @model_validator(mode="after")
    def _distinct(self) -> BarcodeConfig:
        prefixes = [layout.prefix for layout in self.variable_measure]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError("variable_measure lists a prefix twice")
        texts = [self.sku_prefix, self.receipt_prefix, self.staff_prefix]
        if len(set(texts)) != 3:
            raise ValueError("sku_prefix, receipt_prefix and staff_prefix must differ")
        return self


class StaffConfig(Section):
    max_pin_attempts: Whole = Field(5, ge=1, le=20)
    lockout_minutes: Whole = Field(5, ge=1, le=24 * 60)


class CheckoutConfig(Section):
    idle_timeout_s: Whole = Field(120, ge=10, le=3600)  # an untouched cart goes back to attract
    receipt_timeout_s: Whole = Field(20, ge=3, le=600)  # the thank-you screen
    cashier_discount_pct: DecimalValue = Decimal(10)  # above this a supervisor approves
    cart_tendering: bool = False  # may a mobile cart take payment?
    badge_login: bool = True  # a staff badge scan logs in without a PIN
    # Counts show no expected quantity and no difference (screen, messages): staff count
    # what is there, not what the ledger says should be there.
    blind_counts: bool = False
    receipt_header: list[str] = Field(default_factory=list)
    receipt_footer: list[str] = Field(default_factory=lambda: ["Thank you!"])

    @field_validator("cashier_discount_pct")
    @classmethod
    def _pct(cls, value: Decimal) -> Decimal:
        if not Decimal(0) <= value <= Decimal(100):
            raise ValueError("must be a percentage from 0 to 100")
        return value


def default_controller_db() -> str:
    return str(Path(platformdirs.user_data_dir("kiosk")) / "controller.db")


class ControllerConfig(Section):
    # A file path (SQLite) or a database URL such as postgresql://user@host/db
    database: str = Field(default_factory=default_controller_db)
    lead_time_days: DecimalValue = Decimal(3)  # order to delivery
    safety_days: DecimalValue = Decimal(2)  # extra cover against demand swings
    review_days: DecimalValue = Decimal(7)  # how long an order should last
    history_days: Whole = Field(28, ge=1, le=365)  # demand is averaged over this window
    resync_after_s: Seconds = Field(2.0, gt=0, le=600)  # a gap older than this asks to resend
    # Events dated more than this ahead of the controller's clock are dead-lettered
    future_tolerance_s: Seconds = Field(300.0, ge=0, le=86_400)
    # The web view (kiosk.mqtt.web) for managers and attendants, on the shop LAN. Off
    # unless a port is given (8080 is the usual choice); HTTPS when both files are given.
    web_port: Whole | None = Field(None, ge=1, le=65535)
    web_host: str = "0.0.0.0"  # every interface of the controller's machine
    web_certfile: Path | None = None  # PEM certificate (chain) of the site: HTTPS
    web_keyfile: Path | None = None  # its private key
    # Where `kiosk controller offer-update` keeps the offered bundle (default: beside a
    # SQLite database, else /var/lib/kiosk/updates), served to kiosks at /updates/.
    updates_dir: Path | None = None
    web_session_hours: Seconds = Field(12.0, gt=0, le=24 * 30)  # a login lasts this long idle
    web_lockout_attempts: Whole = Field(5, ge=1, le=100)  # failed logins before a lockout
    web_lockout_minutes: Seconds = Field(15.0, gt=0, le=24 * 60)
    stale_after_s: Seconds = Field(120.0, gt=0, le=86_400)  # no status for this long: red

    @field_validator("lead_time_days", "safety_days", "review_days")
    @classmethod
    def _not_negative(cls, value: Decimal) -> Decimal:
        if value < 0:
            raise ValueError("must be zero or more days")
        return value

    def updates_folder(self) -> Path:
        if self.updates_dir is not None:
            return self.updates_dir
        if "://" in self.database:
            return Path("/var/lib/kiosk/updates")
        return Path(self.database).parent / "updates"

    @model_validator(mode="after")
    def _web_tls_pair(self) -> ControllerConfig:
        if (self.web_certfile is None) != (self.web_keyfile is None):
            raise ValueError("web_certfile and web_keyfile go together (HTTPS needs both)")
        return self


class PaymentConfig(Section):
    """The card terminal. "manual": staff type the terminal's approval code (a staffed
    till's stand-alone terminal). "zvt": the kiosk drives the terminal over ZVT, by TCP
    (host, port) or a serial line (serial = "/dev/ttyUSB0")."""

    kind: Literal["manual", "zvt"] = "manual"
    host: str | None = None
    port: Whole = Field(20007, ge=1, le=65535)
    serial: str | None = None
    baudrate: Whole = Field(9600, gt=0, le=4_000_000)
    password: str = Field("000000", pattern=r"^[0-9]{6}$")  # the terminal's ECR password
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")  # default: [money] currency
    currency_code: Whole | None = Field(None, ge=1, le=999)  # ISO 4217 number, if not known here
    connect_timeout_s: Seconds = Field(5.0, gt=0, le=60)
    ack_timeout_s: Seconds = Field(5.0, gt=0, le=60)  # the terminal acknowledges each command
    # Silence from the terminal for this long during a payment: the kiosk aborts it.
    payment_timeout_s: Seconds = Field(120.0, ge=5, le=600)
    terminal_prints: bool = False  # the terminal prints its own receipts, not the kiosk
    print_merchant_receipt: bool = False  # a staffed till keeps the merchant copy

    @model_validator(mode="after")
    def _connection_is_complete(self) -> PaymentConfig:
        if self.kind == "zvt" and not (self.host or self.serial):
            raise ValueError('kind = "zvt" needs host (TCP, port 20007) or serial (a device)')
        if self.host and self.serial:
            raise ValueError("give host or serial, not both")
        return self


def _catalog_language(value: str) -> str:
    from kiosk import i18n  # noqa: PLC0415

    if value not in i18n.catalog_languages():
        known = ", ".join(i18n.catalog_languages())
        raise ValueError(f"no catalog for language {value!r} (have {known})")
    return value


class UiConfig(Section):
    fullscreen: bool = True
    high_contrast: bool = False
    # The shop's language: receipts, labels, reports, and the screen between customers.
    language: str = "en"
    # The screen languages a customer can switch to on the attract screen (a button each;
    # empty: every language with a catalog). The shop's language is always offered.
    languages: list[str] = Field(default_factory=list, max_length=12)
    strings: Path | None = None  # a TOML file of the shop's own wording (kiosk/strings.py)

    @field_validator("language")
    @classmethod
    def _has_catalog(cls, value: str) -> str:
        return _catalog_language(value)

    @field_validator("languages")
    @classmethod
    def _have_catalogs(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_catalog_language(language) for language in value))

    @property
    def screen_languages(self) -> list[str]:
        """The attract screen's choices: the shop's language first."""
        from kiosk import i18n  # noqa: PLC0415

        chosen = self.languages or list(i18n.catalog_languages())
        return [self.language, *(lang for lang in chosen if lang != self.language)]


class Config(Section):
    device: DeviceConfig = Field(default_factory=DeviceConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    scanner: ScannerConfig = Field(default_factory=ScannerConfig)
    printer: PrinterConfig = Field(default_factory=PrinterConfig)
    drawer: DrawerConfig = Field(default_factory=DrawerConfig)
    money: MoneyConfig = Field(default_factory=MoneyConfig)
    barcodes: BarcodeConfig = Field(default_factory=BarcodeConfig)
    staff: StaffConfig = Field(default_factory=StaffConfig)
    checkout: CheckoutConfig = Field(default_factory=CheckoutConfig)
    controller: ControllerConfig = Field(default_factory=ControllerConfig)
    ui: UiConfig = Field(default_factory=UiConfig)
    payment: PaymentConfig = Field(default_factory=PaymentConfig)
    update: UpdateConfig = Field(default_factory=UpdateConfig)  # signed A/B updates

    source: Path | None = Field(None, exclude=True)

    @property
    def topic_root(self) -> str:
        return self.mqtt.root or f"shop/{self.device.store}"

    def with_ledger_path(self, path: Path) -> Config:
        return self.model_copy(update={"ledger": self.ledger.model_copy(update={"path": path})})

    def to_display(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets masked."""
        return _mask(self.model_dump(mode="json"))


def _mask(data: Any) -> Any:
    if isinstance(data, dict):
        return {
            key: (MASK if key in SECRET_KEYS and value else _mask(value))
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_mask(item) for item in data]
    return data


def _format_error(source: str, error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    reason = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        reason = "unknown key"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{source}: {key}: {reason}{suffix}"


def parse(text: str, source: str = "<config>") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid TOML: nested too deeply") from None
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
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
    config = parse(text, str(path))
    return config.model_copy(update={"source": path})


def load(explicit: Path | None = None) -> Config:
    """--config, else $KIOSK_CONFIG, else /etc/kiosk/kiosk.toml if present, else defaults."""
    if explicit is not None:
        return load_file(explicit)
    if os.environ.get(ENV_VAR):
        return load_file(Path(os.environ[ENV_VAR]))
    if SYSTEM_CONFIG.exists():
        return load_file(SYSTEM_CONFIG)
    return Config()
