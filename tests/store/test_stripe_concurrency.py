"""A Stripe event delivered several times at once, on DynamoDB Local: its credit pack is granted once."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from quotaflow.services import stripe_events
from quotaflow.services.stripe_config import CreditPack, StripeConfig
from quotaflow.store.table import Store
from tests.conftest import Clock
from tests.store.helpers import PAYGO, Tenant

pytestmark = pytest.mark.integration
EVENT = json.loads(
    (Path(__file__).resolve().parents[2] / "events/stripe/checkout.session.completed.paid.json").read_text()
)
CONFIG = StripeConfig(
    api_key="sk_unused",
    webhook_secrets=["whsec_unused"],
    credit_packs={"price_1SXtokens100kPackA": CreditPack(meter="tokens", amount=100_000)},
)


def test_concurrent_deliveries_of_one_event_grant_once(ddb_store: Store, clock: Clock) -> None:
    setup = Tenant(ddb_store, clock)
    setup.subscribe("user_42", PAYGO)
    containers = [Tenant(ddb_store, clock) for _ in range(8)]

    def deliver(index: int) -> str:
        return stripe_events.apply(containers[index].scope, CONFIG, EVENT, lambda session: [])

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(deliver, range(8)))
    assert setup.counter("user_42", "tokens")["credits"] == 100_000
    assert sum(outcome.startswith("granted 1") for outcome in outcomes) == 1, outcomes
    setup.assert_verified()
