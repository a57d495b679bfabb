"""Amounts, meters and ids: the vocabulary every layer shares."""

from __future__ import annotations

from typing import Annotated, Protocol, TypeVar

from pydantic import ConfigDict, Field, StringConstraints, field_validator

from quotaflow.ledger.model import Model

MAX_AMOUNT = 2**53 - 1  # the largest integer a JSON number carries exactly
LINES_MAX = 20
METER_PATTERN = r"^[a-z][a-z0-9_.]{0,63}$"
ID_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"

Amount = Annotated[int, Field(strict=True, ge=0, le=MAX_AMOUNT)]
MeterKey = Annotated[str, StringConstraints(pattern=METER_PATTERN)]
EntityId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


class Line(Model):
    """An amount on one meter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    meter: MeterKey
    amount: Amount


class HasMeter(Protocol):
    @property
    def meter(self) -> str: ...


Metered = TypeVar("Metered", bound=HasMeter)


def unique_meters(lines: list[Metered]) -> list[Metered]:
    """Each meter at most once in one request."""
    seen: set[str] = set()
    for line in lines:
        if line.meter in seen:
            raise ValueError(f"meter {line.meter!r} appears more than once")
        seen.add(line.meter)
    return lines


class Lines(Model):
    """1..LINES_MAX lines, each meter at most once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lines: list[Line] = Field(min_length=1, max_length=LINES_MAX)

    _unique = field_validator("lines")(unique_meters)


def div_ceil(numerator: int, denominator: int) -> int:
    """Integer division rounding up, for non-negative numerators and positive denominators."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    return -(-numerator // denominator)
