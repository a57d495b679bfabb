"""Reservation ids that carry their hold: within the API's id rule, one spelling per hold, a plain id when the
hold does not fit, and nothing decoded from a string that `with_hold` would not write."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quotaflow.ledger.amounts import ID_PATTERN, LINES_MAX, MAX_AMOUNT, Line
from quotaflow.ledger.reservation_ids import RESERVATION_ID_LENGTH_MAX, as_created, with_hold
from quotaflow.ledger.reservations import TTL_SECONDS_DEFAULT, TTL_SECONDS_MAX

pytestmark = pytest.mark.unit

NONCE = "0123456789abcdef"
MADE_AT = datetime(2026, 11, 27, 10, 0, 7, 250_000, tzinfo=UTC)  # stored to the second: 10:00:07


def lines(**amounts: int) -> list[Line]:
    return [Line(meter=meter, amount=amount) for meter, amount in amounts.items()]


def test_an_id_says_who_holds_what_until_when() -> None:
    rid = with_hold(NONCE, "user@example.com", lines(tokens=4000, requests=1), MADE_AT, 900)
    assert rid == "rsv_0123456789abcdef.tp5ns7.p0.tokens:334-requests:1@user@example.com"
    made = as_created(rid)
    assert made is not None
    assert (made.user_id, list(made.held), list(made.lines), made.status) == (
        "user@example.com",
        lines(tokens=4000, requests=1),
        lines(tokens=4000, requests=1),
        "pending",
    )
    assert made.created_at == MADE_AT.replace(microsecond=0)
    assert made.expires_at == made.created_at + timedelta(seconds=900)
    assert (made.drawn, made.version, made.held_on) == ((), 0, {})


users = st.text(alphabet="ABCXYZabcxyz0189_.:@-", min_size=1, max_size=128)
meter_keys = st.from_regex(r"[a-z][a-z0-9_.]{0,63}", fullmatch=True)
holds = st.lists(
    st.builds(Line, meter=meter_keys, amount=st.integers(min_value=0, max_value=MAX_AMOUNT)),
    min_size=1,
    max_size=LINES_MAX,
    unique_by=lambda line: line.meter,
)
moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(user=users, held=holds, made_at=moments, ttl=st.integers(min_value=1, max_value=TTL_SECONDS_MAX))
def test_an_id_is_within_the_id_rule_and_decodes_to_exactly_its_hold(
    user: str, held: list[Line], made_at: datetime, ttl: int
) -> None:
    rid = with_hold(NONCE, user, held, made_at, ttl)
    if rid is None:
        return  # does not fit: the reservation gets a plain id
    assert len(rid) <= RESERVATION_ID_LENGTH_MAX and re.fullmatch(ID_PATTERN, rid)
    made = as_created(rid)
    assert made is not None
    assert (made.user_id, list(made.held), made.created_at) == (user, held, made_at.replace(microsecond=0))
    assert made.expires_at - made.created_at == timedelta(seconds=ttl)


def test_a_hold_that_does_not_fit_gets_no_id_with_hold() -> None:
    one_line = lines(tokens=4000)
    longest = 128 - len(with_hold(NONCE, "", one_line, MADE_AT, TTL_SECONDS_DEFAULT) or "")
    assert longest == 86  # with one `tokens` line, any user id up to 86 characters fits
    assert with_hold(NONCE, "u" * longest, one_line, MADE_AT, TTL_SECONDS_DEFAULT) is not None
    assert with_hold(NONCE, "u" * (longest + 1), one_line, MADE_AT, TTL_SECONDS_DEFAULT) is None
    many = [Line(meter=f"meter_{index}", amount=1) for index in range(LINES_MAX)]
    assert with_hold(NONCE, "u1", many, MADE_AT, TTL_SECONDS_DEFAULT) is None


@pytest.mark.parametrize(
    ("meters", "user_id_length_max"),
    [(("tokens",), 86), (("tokens", "requests"), 75), (("tokens", "requests", "cents"), 66)],
)
def test_common_holds_fit_with_common_user_ids(meters: tuple[str, ...], user_id_length_max: int) -> None:
    """The figures the README gives: a UUID user id (36 characters) fits with three lines to spare."""
    held = [Line(meter=meter, amount=amount) for meter, amount in zip(meters, (4000, 1, 250), strict=False)]
    fits = [n for n in range(1, 129) if with_hold(NONCE, "u" * n, held, MADE_AT, TTL_SECONDS_DEFAULT) is not None]
    assert max(fits) == user_id_length_max


VALID = "rsv_0123456789abcdef.tp5ns7.p0.tokens:334-requests:1@u1"


@pytest.mark.parametrize(
    "rid",
    [
        "rsv_0123456789abcdef0123456789",  # a plain id: no hold in it
        VALID.replace("tokens:334", "tokens:0334"),  # leading zero: not the one spelling
        VALID.replace("tokens:334", "tokens:3_34"),  # Python's int() would take it
        VALID.replace("tokens:334", "tokens:33A"),
        VALID.replace(".p0.", ".P0."),
        VALID.replace(".p0.", ".0."),  # no ttl
        VALID.replace(".p0.", ".1uo1."),  # ttl beyond a day
        VALID.replace("requests:1", "tokens:1"),  # a meter twice
        VALID.replace("requests:1", "Requests:1"),
        VALID.replace("requests:1", "requests"),
        VALID.replace("requests:1", "requests:2gosa7pa2gw"),  # above 2^53 - 1
        VALID.replace("@u1", "@"),
        VALID.replace("@u1", "@u 1"),
        VALID.replace("@u1", "@" + "u" * 120),  # longer than an id may be
        VALID.replace("0123456789abcdef", "0123456789ABCDEF"),
        VALID.replace("0123456789abcdef", "0123456789abcde"),
        VALID.replace(".tp5ns7.", ".zzzzzzzz."),
        "-".join([VALID.split("@")[0]] + [f"m{index}:1" for index in range(LINES_MAX)]) + "@u1",  # 21 lines
    ],
)
def test_only_what_with_hold_writes_decodes(rid: str) -> None:
    assert as_created(VALID) is not None
    assert as_created(rid) is None
