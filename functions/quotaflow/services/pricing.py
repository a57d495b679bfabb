"""Model prices per tenant, quotes, and turning `from_model` usage lines into amounts of cents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from quotaflow.ledger.amounts import Line
from quotaflow.ledger.errors import Conflict, InvalidRequest, NotFound
from quotaflow.ledger.model import Model
from quotaflow.ledger.periods import iso
from quotaflow.ledger.prices import UNIT_SCALE, Price, PriceBody, TokenCounts, cost
from quotaflow.services.scope import Scope
from quotaflow.store import keys
from quotaflow.store.table import Item, TransactionCancelled

PRICES_PAGES_MAX = 10
HISTORY_PAGE_MAX = 100


class PricedLine(Model):
    """A usage line: an amount, or token counts of a model to convert with the model's current price."""

    meter: str
    amount: int | None = None
    from_model: dict[str, Any] | None = None


class QuoteLineView(Model):
    model: str
    tokens: int
    cost_cents: int
    price_version: int


class QuoteView(QuoteLineView):
    lines: list[QuoteLineView] | None = None


class PriceHistoryView(Model):
    price: Price
    history: list[Price]


def _price_from(item: Item) -> Price:
    return Price.model_validate(item["price"])


def put_price(scope: Scope, model: str, body: PriceBody) -> Price:
    """A new version of the model's price; the versions before it stay readable."""
    return store_price(scope, model, body)[0]


def store_price(scope: Scope, model: str, body: PriceBody) -> tuple[Price, bool]:
    """The model's price as `body` says, and whether that made a new version (the same price again does not)."""
    current = scope.store.get(keys.price(scope.tenant_id, model))
    if (
        current
        and PriceBody.model_validate({field: current["price"].get(field) for field in PriceBody.model_fields}) == body
    ):
        return _price_from(current), False
    version = current["price"]["version"] + 1 if current else 1
    price = Price(model=model, version=version, updated_at=iso(scope.now), **body.model_dump())
    tx = scope.store.transaction()
    stored = {"price": price.model_dump(mode="json")}
    if current:
        tx.put(
            "price",
            {**keys.price(scope.tenant_id, model), **stored},
            condition="price.version = :v",
            values={":v": current["price"]["version"]},
        )
    else:
        tx.put("price", {**keys.price(scope.tenant_id, model), **stored}, condition="attribute_not_exists(pk)")
    tx.put(
        "history",
        {**keys.price_version(scope.tenant_id, model, version), **stored},
        condition="attribute_not_exists(pk)",
    )
    try:
        scope.store.transact(tx)
    except TransactionCancelled:
        raise Conflict(f"the price of {model} changed concurrently; retry", model=model) from None
    return price, True


def get_price(scope: Scope, model: str) -> Price:
    item = scope.store.get(keys.price(scope.tenant_id, model))
    if item is None:
        raise NotFound(f"no price for model {model!r}", model=model)
    return _price_from(item)


def price_history(scope: Scope, model: str) -> PriceHistoryView:
    price = get_price(scope, model)
    pk = keys.price_version(scope.tenant_id, model, 0)["pk"]
    page = scope.store.query(pk, "V#", limit=HISTORY_PAGE_MAX, newest_first=True)
    return PriceHistoryView(price=price, history=[_price_from(item) for item in page.items])


def list_prices(scope: Scope) -> list[Price]:
    pk, prefix = keys.prices_prefix(scope.tenant_id)
    return [_price_from(item) for item in scope.store.query_all(pk, prefix, pages_max=PRICES_PAGES_MAX)]


def quote_one(scope: Scope, model: str, tokens: TokenCounts) -> QuoteLineView:
    price = get_price(scope, model)
    return QuoteLineView(
        model=model, tokens=tokens.total_tokens, cost_cents=cost(price, tokens), price_version=price.version
    )


def quote(scope: Scope, runs: Sequence[tuple[str, TokenCounts]]) -> QuoteView:
    """One model's quote, or the sum over several (an agent run calling several models)."""
    lines = [quote_one(scope, model, tokens) for model, tokens in runs]
    if len(lines) == 1:
        return QuoteView(**lines[0].model_dump())
    return QuoteView(
        model="*",
        tokens=sum(x.tokens for x in lines),
        cost_cents=sum(x.cost_cents for x in lines),
        price_version=0,
        lines=lines,
    )


def resolve_lines(scope: Scope, lines: Sequence[PricedLine]) -> tuple[list[Line], dict[str, Any]]:
    """Amounts for every line, converting `from_model` lines with the model's current price. The second value
    records, per priced meter, the model, price version and token counts (kept in the ledger entries)."""
    resolved: list[Line] = []
    pricing: dict[str, Any] = {}
    for index, line in enumerate(lines):
        if line.from_model is None:
            resolved.append(Line(meter=line.meter, amount=line.amount or 0))
            continue
        scale = UNIT_SCALE.get(line.meter)
        if scale is None:
            raise InvalidRequest(
                f"from_model lines price into {sorted(UNIT_SCALE)}, not {line.meter!r}", field=f"lines[{index}].meter"
            )
        model = line.from_model["model"]
        tokens = TokenCounts.model_validate({k: v for k, v in line.from_model.items() if k != "model"})
        price = get_price(scope, model)
        resolved.append(Line(meter=line.meter, amount=cost(price, tokens, scale)))
        pricing[line.meter] = {"model": model, "price_version": price.version, **tokens.model_dump()}
    return resolved, pricing
