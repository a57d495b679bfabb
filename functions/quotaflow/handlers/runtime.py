"""What each function holds across invocations of one container: settings, the store, caches, a clock.
Built once from the environment on the first invocation (never at import), or bound by tests and `serve`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from quotaflow.config import Settings
from quotaflow.services.scope import ContainerCache
from quotaflow.services.tenants import KeyCache
from quotaflow.store.connect import connect, events_client, read_admin_key, secret_box
from quotaflow.store.secret_box import SecretBox
from quotaflow.store.table import Store

if TYPE_CHECKING:
    from quotaflow.store.lake import LakeWriter
    from quotaflow.store.lake_query import Lake


@dataclass
class Runtime:
    store: Store
    settings: Settings
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    cache: ContainerCache = field(default_factory=ContainerCache)
    key_cache: KeyCache = field(default_factory=KeyCache)
    _secret_box: SecretBox | None = None

    _events: Any = None
    _lake: Any = None

    def lake(self) -> Lake | None:
        """The usage lake's reader, built on the first analytics request (never at cold start)."""
        if self._lake is None:
            from quotaflow.store.lake_query import open_lake

            self._lake = open_lake(self.settings)
        return cast("Lake | None", self._lake)

    _lake_writer: Any = None

    def lake_writer(self) -> LakeWriter | None:
        """Where ledger entries go for the usage lake: Firehose in AWS, a local directory under `serve`."""
        if self._lake_writer is None:
            from quotaflow.store.lake import open_writer

            self._lake_writer = open_writer(self.settings)
        return cast("LakeWriter | None", self._lake_writer)

    def publish(self, detail: dict[str, Any], tenant_id: str) -> None:
        """Put an alert on the stack's EventBridge bus (QUOTAFLOW_ALERT_BUS); nowhere when none is configured."""
        if not self.settings.alert_bus:
            return
        if self._events is None:
            self._events = events_client(self.settings)
        self._events.put_events(
            Entries=[
                {
                    "EventBusName": self.settings.alert_bus,
                    "Source": "quotaflow",
                    "DetailType": detail["type"],
                    "Detail": json.dumps(detail),
                    "Resources": [f"tenant/{tenant_id}"],
                }
            ]
        )

    @property
    def secret_box(self) -> SecretBox:
        if self._secret_box is None:
            self._secret_box = secret_box(self.settings)
        return self._secret_box


_runtime: Runtime | None = None


def bind(bound: Runtime) -> None:
    """Point every function of this process at a store (tests, `quotaflow serve`)."""
    global _runtime
    _runtime = bound


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        settings = read_admin_key(Settings.from_env())
        _runtime = Runtime(store=connect(settings), settings=settings)
    return _runtime
