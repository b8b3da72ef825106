"""Value types checked at the boundary, before anything is stored.

Quantities, prices and money are `Decimal` from input to storage: a float would
silently turn 0.1 shares into 0.1000000000000000055511151231257827.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

# Alpaca spells US equities upper-case, with '.' for share classes (BRK.B) and
# '/' for crypto pairs (BTC/USD).
SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{0,9}([./][A-Z0-9]{1,10})?$")


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    OPG = "opg"
    CLS = "cls"
    IOC = "ioc"
    FOK = "fok"


class Purpose(StrEnum):
    DECISION = "decision"
    COMPENSATION = "compensation"
    EXTERNAL = "external"


class InvalidInput(ValueError):
    """Input refused at the boundary; the message says what and how to fix it."""


def to_decimal(value: Any, field: str = "value") -> Decimal:
    """Exact conversion; floats are refused because their decimal expansion is not the input."""
    if isinstance(value, bool | float):
        raise InvalidInput(f"{field} must be given as a decimal string, not a float ({value!r})")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise InvalidInput(f"{field} must be a decimal number, got {value!r}") from None
    else:
        raise InvalidInput(f"{field} must be a decimal number, got {value!r}")
    if not result.is_finite():
        raise InvalidInput(f"{field} must be a finite number, got {value!r}")
    return result


# Alpaca takes quantities to 9 decimal places, and nothing real trades a billion shares or
# dollars in one order: anything beyond is a typo (1e9 for 1.9) or a unit mix-up.
MAX_PLACES = 9
MAX_AMOUNT = Decimal(1_000_000_000)


def check_amount(number: Decimal, field: str, given: Any) -> Decimal:
    """A positive amount within what a broker can take, or one line saying why not."""
    if number <= 0:
        raise InvalidInput(f"{field} must be greater than zero, got {given}")
    if number > MAX_AMOUNT:
        raise InvalidInput(f"{field} must be at most {MAX_AMOUNT}, got {given}")
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_PLACES:
        raise InvalidInput(f"{field} must have at most {MAX_PLACES} decimal places, got {given}")
    return number


def _positive(field: str) -> Any:
    def check(value: Any) -> Decimal:
        return check_amount(to_decimal(value, field), field, value)

    return BeforeValidator(check)


def normalise_symbol(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("symbol must not be empty")
    symbol = value.strip().upper()
    if not SYMBOL_PATTERN.match(symbol):
        raise InvalidInput(
            f"symbol {value!r} is malformed: expected letters and digits as Alpaca spells them "
            "(for example AAPL, BRK.B, BTC/USD)"
        )
    return symbol


def parse_symbols(text: str | None) -> tuple[str, ...]:
    """Comma-separated symbols, each normalised and kept once, in the order given."""
    if not text:
        return ()
    return tuple(dict.fromkeys(normalise_symbol(part) for part in text.split(",") if part.strip()))


Symbol = Annotated[str, BeforeValidator(normalise_symbol)]
Quantity = Annotated[Decimal, _positive("qty")]
Price = Annotated[Decimal, _positive("price")]
Notional = Annotated[Decimal, _positive("notional")]


def _enum(enum: type[StrEnum], field: str) -> Any:
    def check(value: Any) -> StrEnum:
        try:
            return enum(str(value).strip().lower())
        except ValueError:
            allowed = ", ".join(member.value for member in enum)
            raise InvalidInput(f"{field} {value!r} is not one of: {allowed}") from None

    return BeforeValidator(check)


class OrderIntent(BaseModel):
    """One trade as a caller asks for it: validated before any event exists."""

    model_config = ConfigDict(frozen=True)

    symbol: Symbol
    side: Annotated[Side, _enum(Side, "side")]
    qty: Quantity | None = None
    notional: Notional | None = None
    order_type: Annotated[OrderType, _enum(OrderType, "order type")] = OrderType.MARKET
    time_in_force: Annotated[TimeInForce, _enum(TimeInForce, "time in force")] = TimeInForce.DAY
    limit_price: Price | None = None
    extended_hours: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> OrderIntent:
        if (self.qty is None) == (self.notional is None):
            raise InvalidInput("an order needs exactly one of qty or notional")
        if self.order_type is OrderType.LIMIT and self.limit_price is None:
            raise InvalidInput("a limit order needs a limit price")
        if self.order_type is OrderType.MARKET and self.limit_price is not None:
            raise InvalidInput("a market order takes no limit price")
        if self.extended_hours and (
            self.order_type is not OrderType.LIMIT or self.time_in_force is not TimeInForce.DAY
        ):
            raise InvalidInput("extended-hours orders must be limit orders with time in force day")
        return self

    def as_event_fields(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "side": self.side.value,
            "qty": self.qty,
            "notional": self.notional,
            "order_type": self.order_type.value,
            "time_in_force": self.time_in_force.value,
            "limit_price": self.limit_price,
            "extended_hours": self.extended_hours,
        }


# What an order asks a broker for: the fields `OrderIntent`, an `Order`, the router's
# ticket and a broker's own order all have under these names.
ORDER_TERMS = (
    "symbol",
    "side",
    "qty",
    "notional",
    "order_type",
    "time_in_force",
    "limit_price",
    "extended_hours",
)


def order_terms(source: Any) -> dict[str, Any]:
    """The terms of an order, read from anything that has them, in `ORDER_TERMS` order."""
    return {name: getattr(source, name) for name in ORDER_TERMS}


def validate(model: type[BaseModel], **fields: Any) -> Any:
    """Build a model, turning pydantic's error list into one actionable line."""
    try:
        return model(**fields)
    except ValidationError as error:
        first = error.errors()[0]
        cause = first.get("ctx", {}).get("error")
        if isinstance(cause, InvalidInput):
            raise cause from None
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise InvalidInput(f"{where}: {first.get('msg')}") from None


def parse_price(value: Any, field: str = "price") -> Decimal:
    return check_amount(to_decimal(value, field), field, value)
