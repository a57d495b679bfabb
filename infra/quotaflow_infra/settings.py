"""Deployment settings, read once from CDK context (`cdk.json` or `-c key=value`) and validated before any
resource exists: a typo in a stage name must fail the synth, not create a second table."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aws_cdk.aws_logs import RetentionDays
from constructs import Node

STAGE_PATTERN = re.compile(r"[a-z][a-z0-9-]{1,15}")
STAGE_DEFAULT = "dev"
# Stages whose data outlives the stack: table deletion protection, RETAIN on everything stateful.
PROTECTED_STAGES = frozenset({"prod"})
# DynamoDB's own rule for table names.
TABLE_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{3,255}")
# Retention periods CloudWatch Logs accepts (the ones worth choosing), by days as `-c log_retention_days=N` gives them.
LOG_RETENTION: dict[int, RetentionDays] = {
    7: RetentionDays.ONE_WEEK,
    14: RetentionDays.TWO_WEEKS,
    30: RetentionDays.ONE_MONTH,
    60: RetentionDays.TWO_MONTHS,
    90: RetentionDays.THREE_MONTHS,
    180: RetentionDays.SIX_MONTHS,
    365: RetentionDays.ONE_YEAR,
    731: RetentionDays.TWO_YEARS,
    1827: RetentionDays.FIVE_YEARS,
    3653: RetentionDays.TEN_YEARS,
}
LOG_RETENTION_DAYS_DEFAULT = 30
LOG_RETENTION_DAYS_PROTECTED_DEFAULT = 365


class BundleMode(StrEnum):
    """How function code is packaged. `pip` is the deployable bundle; `stub` ships the quotaflow sources alone
    (no dependencies, never deployable) so tests and quick synths do not pip-install for a minute each."""

    PIP = "pip"
    STUB = "stub"


class ContextKey(StrEnum):
    STAGE = "stage"
    TABLE_NAME = "table_name"
    LOG_RETENTION_DAYS = "log_retention_days"
    BUNDLING = "bundling"


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class StackSettings:
    stage: str = STAGE_DEFAULT
    table_name: str = f"quotaflow-{STAGE_DEFAULT}"
    log_retention_days: int = LOG_RETENTION_DAYS_DEFAULT
    bundling: BundleMode = BundleMode.PIP

    def __post_init__(self) -> None:
        if not STAGE_PATTERN.fullmatch(self.stage):
            raise SettingsError(f"stage {self.stage!r} must match {STAGE_PATTERN.pattern}")
        if not TABLE_NAME_PATTERN.fullmatch(self.table_name):
            raise SettingsError(f"table_name {self.table_name!r} must match {TABLE_NAME_PATTERN.pattern}")
        if self.log_retention_days not in LOG_RETENTION:
            raise SettingsError(f"log_retention_days {self.log_retention_days} must be one of {sorted(LOG_RETENTION)}")

    @property
    def protected(self) -> bool:
        return self.stage in PROTECTED_STAGES

    @property
    def prefix(self) -> str:
        """Account-wide names (log groups, alarms, the key alias) carry the stage: stages may share an account."""
        return f"quotaflow-{self.stage}"

    @classmethod
    def from_context(cls, node: Node) -> StackSettings:
        stage = _text(node.try_get_context(ContextKey.STAGE)) or STAGE_DEFAULT
        retention_default = (
            LOG_RETENTION_DAYS_PROTECTED_DEFAULT if stage in PROTECTED_STAGES else LOG_RETENTION_DAYS_DEFAULT
        )
        retention = _text(node.try_get_context(ContextKey.LOG_RETENTION_DAYS))
        bundling = _text(node.try_get_context(ContextKey.BUNDLING)) or BundleMode.PIP
        if bundling not in set(BundleMode):
            raise SettingsError(f"bundling {bundling!r} must be one of {[mode.value for mode in BundleMode]}")
        if retention and not retention.isdigit():
            raise SettingsError(f"log_retention_days {retention!r} must be a whole number of days")
        return cls(
            stage=stage,
            table_name=_text(node.try_get_context(ContextKey.TABLE_NAME)) or f"quotaflow-{stage}",
            log_retention_days=int(retention) if retention else retention_default,
            bundling=BundleMode(bundling),
        )


def _text(value: Any) -> str:
    """Context from `-c key=value` arrives as a string, from cdk.json as any JSON value."""
    return "" if value is None else str(value).strip()
