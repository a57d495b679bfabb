"""A fresh Stripe stub per test, on loopback, with a clock the test sets; a gateway pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from quotaflow.stripe_gateway import StripeGateway
from tests.support.stripe_stub import StripeStub, stripe_stub

NOW_EPOCH_S = 1_795_168_800  # 2026-11-20T10:00:00Z, the time the samples were "sent"


@pytest.fixture
def stub() -> Iterator[StripeStub]:
    with stripe_stub(now_epoch_s=NOW_EPOCH_S) as running:
        yield running


@pytest.fixture
def gateway(stub: StripeStub) -> StripeGateway:
    return StripeGateway(stub.api_key, api_base=stub.url, timeout_seconds=2.0)
