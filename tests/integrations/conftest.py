from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sdk.support import qf, server, tenant  # noqa: F401 - fixtures
from tests.support.provider_stubs import ProviderStub


@pytest.fixture
def provider() -> Iterator[ProviderStub]:
    stub = ProviderStub()
    yield stub
    stub.close()
