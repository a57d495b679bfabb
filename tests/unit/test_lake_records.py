"""Ledger entry items as lake records: the flat columns, the model an entry is counted under, its properties."""

from __future__ import annotations

from typing import Any

import pytest

from quotaflow.handlers.lake_writer import lake_records
from quotaflow.store.lake import record_from_item
from quotaflow.store.table import to_item

pytestmark = pytest.mark.unit

ENTRY = {
    "pk": "T#acme#U#u1",
    "sk": "L#0001",
    "entry_id": "0001",
    "at": "2026-11-27T10:00:00Z",
    "kind": "event",
    "meter": "tokens",
    "period_key": "none",
    "du": 40,
    "dr": 0,
    "dc": 0,
    "dq": 0,
    "ref": "evt_1",
}
PRICED = {"cents": {"model": "gpt-4o", "price_version": 3, "input_tokens": 10, "output_tokens": 5}}


def record(**changes: Any) -> dict[str, Any]:
    found = record_from_item({**ENTRY, **changes})
    assert found is not None
    return found


def test_an_entry_becomes_one_flat_record_partitioned_by_tenant_and_day() -> None:
    assert record() == {
        "tenant_id": "acme",
        "day": "2026-11-27",
        "entry_id": "0001",
        "occurred_at": "2026-11-27T10:00:00Z",
        "user_id": "u1",
        "account_id": None,
        "meter": "tokens",
        "kind": "event",
        "period_key": "none",
        "delta_used": 40,
        "delta_reserved": 0,
        "delta_credits": 0,
        "delta_quota": 0,
        "ref": "evt_1",
        "model": None,
        "properties": {},
    }


def test_the_model_is_the_property_else_the_priced_line_of_the_write() -> None:
    assert record(properties={"model": "claude", "pricing": PRICED})["model"] == "claude"
    assert record(meter="cents", properties={"pricing": PRICED})["model"] == "gpt-4o"
    # the tokens entry of a write whose cents line was priced for one model
    assert record(properties={"pricing": PRICED})["model"] == "gpt-4o"
    two_models = {**PRICED, "millicents": {"model": "o3", "price_version": 1}}
    assert record(properties={"pricing": two_models})["model"] is None


def test_scalar_properties_are_kept_as_text_and_nested_ones_left_out() -> None:
    properties = {"feature": "chat", "step": 3, "cached": True, "nothing": None, "pricing": PRICED}
    assert record(properties=properties)["properties"] == {"feature": "chat", "step": "3", "cached": "true"}


def test_only_ledger_entry_inserts_reach_the_lake() -> None:
    counter = {**ENTRY, "sk": "S#CTR#tokens"}
    stream = [
        {"eventName": "INSERT", "dynamodb": {"NewImage": to_item(ENTRY), "SequenceNumber": "1"}},
        {"eventName": "MODIFY", "dynamodb": {"NewImage": to_item(counter), "SequenceNumber": "2"}},
        {"eventName": "INSERT", "dynamodb": {"NewImage": to_item(counter), "SequenceNumber": "3"}},
        {"eventName": "REMOVE", "dynamodb": {"OldImage": to_item(ENTRY), "SequenceNumber": "4"}},
    ]
    found, sequence_numbers = lake_records(stream)
    assert [r["entry_id"] for r in found] == ["0001"]
    assert sequence_numbers == ["1"]
    assert record_from_item(counter) is None


def test_an_entry_on_a_pool_shard_is_the_accounts() -> None:
    """A sharded pool keeps shard k's entries in `T#<tenant>#A#<account>#<k>`: the lake counts them for the account."""
    for partition in ("T#acme#A#team", "T#acme#A#team#3"):
        found = record(pk=partition)
        assert (found["tenant_id"], found["account_id"]) == ("acme", "team")
