"""Reservation ids that carry the hold they were made with, so that any container can end a reservation in one
transaction, without reading it first.

    rsv_<nonce>.<created>.<ttl>.<meter>:<amount>[-<meter>:<amount>]...@<user_id>

`nonce` is 16 hex digits (64 random bits: ids stay unique however many holds a user makes in one second);
`created` (epoch seconds), `ttl` (seconds) and every amount are base 36 in lowercase. Each separator is a
character that cannot occur where it stands: no `.` in hex or base 36, no `:`, `-` or `@` in a meter key or a
base-36 number; the user id comes last, so it needs no escaping. Only the canonical spelling decodes (what
`with_hold` would write for what it decodes to), so one hold has exactly one id.

An id obeys the API's id rule (at most 128 characters of `A-Z a-z 0-9 _ . : @ -`); a hold that does not fit
(long user ids, many lines or long meter names) gets a plain `rsv_<24 hex>` id and is read before it ends.
What an id says is never trusted: it is an assumption that the ending transaction's conditions check against
the stored reservation, so a forged or altered id can only be refused or rebuilt from the item as it stands."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from quotaflow.ledger.amounts import ID_PATTERN, LINES_MAX, MAX_AMOUNT, Line
from quotaflow.ledger.reservations import TTL_SECONDS_MAX, Reservation

RESERVATION_ID_LENGTH_MAX = 128  # the API's id rule
NONCE_BYTES = 8
PREFIX = "rsv_"
CREATED_DIGITS_MAX = 7  # base-36 epoch seconds: enough until the year 4453
TTL_DIGITS_MAX = 4  # base 36: TTL_SECONDS_MAX is "1uo0"
AMOUNT_DIGITS_MAX = 11  # base 36: MAX_AMOUNT is "2gosa7pa2gv"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_WITH_HOLD = re.compile(
    rf"{PREFIX}([0-9a-f]{{{2 * NONCE_BYTES}}})\.([0-9a-z]{{1,{CREATED_DIGITS_MAX}}})\.([0-9a-z]{{1,{TTL_DIGITS_MAX}}})"
    r"\.([a-z0-9_.:-]+)@(.+)"
)
_AMOUNT = re.compile(rf"[0-9a-z]{{1,{AMOUNT_DIGITS_MAX}}}")


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = _DIGITS[digit] + digits
        if number == 0:
            return digits


def with_hold(nonce_hex: str, user_id: str, lines: list[Line], created_at: datetime, ttl_seconds: int) -> str | None:
    """The id of a reservation of `lines` for `user_id` made at `created_at` (to the second, as stored) for
    `ttl_seconds`; None when it would be longer than an id may be."""
    if len(nonce_hex) != 2 * NONCE_BYTES:
        raise ValueError(f"a nonce is {2 * NONCE_BYTES} hex digits")
    created = _base36(int(created_at.timestamp()))
    held = "-".join(f"{line.meter}:{_base36(line.amount)}" for line in lines)
    reservation_id = f"{PREFIX}{nonce_hex}.{created}.{_base36(ttl_seconds)}.{held}@{user_id}"
    return reservation_id if len(reservation_id) <= RESERVATION_ID_LENGTH_MAX else None


def as_created(reservation_id: str) -> Reservation | None:
    """The pending reservation an id says was made (`held_on` left empty: the id does not say which levels it
    holds on), or None when the id carries no hold or is not one `with_hold` writes."""
    match = _WITH_HOLD.fullmatch(reservation_id)
    if match is None or not re.fullmatch(ID_PATTERN, match[5]):
        return None
    nonce, created, ttl, held, user_id = match.groups()
    try:
        lines = [_line(text) for text in held.split("-")]
        created_at = datetime.fromtimestamp(int(created, 36), UTC)
    except (ValueError, ValidationError, OverflowError, OSError):
        return None
    ttl_seconds = int(ttl, 36)
    if not (
        1 <= ttl_seconds <= TTL_SECONDS_MAX
        and len(lines) <= LINES_MAX
        and len({line.meter for line in lines}) == len(lines)
        and with_hold(nonce, user_id, lines, created_at, ttl_seconds) == reservation_id
    ):
        return None
    return Reservation(
        reservation_id=reservation_id,
        user_id=user_id,
        lines=tuple(lines),
        status="pending",
        created_at=created_at,
        expires_at=created_at + timedelta(seconds=ttl_seconds),
        held=tuple(lines),
    )


def _line(text: str) -> Line:
    meter, _, amount = text.partition(":")
    if not _AMOUNT.fullmatch(amount) or int(amount, 36) > MAX_AMOUNT:
        raise ValueError(f"not an amount: {amount!r}")
    return Line(meter=meter, amount=int(amount, 36))
