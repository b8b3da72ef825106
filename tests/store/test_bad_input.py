"""Bad input is refused with a clear error before anything is stored."""

from __future__ import annotations

import pytest

from ledger.application import Ledger
from ledger.domain.values import InvalidInput

CASES = [
    ({"qty": "-1"}, "qty must be greater than zero, got -1"),
    ({"qty": "0"}, "qty must be greater than zero, got 0"),
    ({"qty": "abc"}, "qty must be a decimal number, got 'abc'"),
    ({"qty": "NaN"}, "qty must be a finite number, got 'NaN'"),
    ({"qty": "Infinity"}, "qty must be a finite number"),
    ({"symbol": ""}, "symbol must not be empty"),
    ({"symbol": "   "}, "symbol must not be empty"),
    ({"symbol": "AA PL"}, "symbol 'AA PL' is malformed"),
    ({"symbol": "123"}, "symbol '123' is malformed"),
    ({"side": "hold"}, "side 'hold' is not one of: buy, sell"),
    ({"price": "inf"}, "price must be a finite number, got 'inf'"),
    ({"price": "-3"}, "price must be greater than zero, got -3"),
    ({"price": None}, "the paper broker fills at the given price: pass --price"),
    ({"qty": 0.1}, "qty must be given as a decimal string, not a float"),
    ({"order_type": "limit"}, "a limit order needs a limit price"),
    ({"order_type": "stop"}, "order type 'stop' is not one of: market, limit"),
]


@pytest.mark.parametrize(("change", "message"), CASES)
def test_refused_with_message_and_store_unchanged(
    ledger: Ledger, change: dict[str, object], message: str
) -> None:
    ledger.trade(side="buy", symbol="AAPL", qty="1", price="10")
    before = ledger.last_notification_id()
    fields: dict[str, object] = {"side": "buy", "symbol": "AAPL", "qty": "1", "price": "10"}
    fields.update(change)
    with pytest.raises(InvalidInput) as refused:
        ledger.trade(**fields)  # type: ignore[arg-type]
    assert message in str(refused.value)
    assert ledger.last_notification_id() == before


def test_symbol_is_stored_upper_case(ledger: Ledger) -> None:
    order = ledger.trade(side="BUY", symbol=" brk.b ", qty="0.5", price="400")
    assert (order.symbol, order.side) == ("BRK.B", "buy")
