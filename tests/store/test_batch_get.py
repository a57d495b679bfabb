"""`Store.batch_get`: up to 100 keys in one BatchGetItem, strongly consistent, missing items left out; more keys
are refused before any call (moto and DynamoDB Local)."""

from __future__ import annotations

import pytest

from quotaflow.store.table import BATCH_GET_KEYS_MAX, Store
from tests.conftest import dynamodb_calls


def test_a_batch_read_returns_the_items_that_exist_in_one_call(store: Store) -> None:
    for index in range(0, BATCH_GET_KEYS_MAX, 2):
        store.put({"pk": f"T#b#U#u{index}", "sk": "S#CTR#tokens", "used": index})
    wanted = [{"pk": f"T#b#U#u{index}", "sk": "S#CTR#tokens"} for index in range(BATCH_GET_KEYS_MAX)]
    calls = dynamodb_calls(store)
    found = store.batch_get(wanted)
    assert calls == ["BatchGetItem"]
    assert sorted(item["used"] for item in found) == list(range(0, BATCH_GET_KEYS_MAX, 2))
    store.update(wanted[0], "SET used = :used", values={":used": 7})
    assert [item["used"] for item in store.batch_get(wanted[:1])] == [7], "read after the write"


def test_more_keys_than_one_call_takes_are_refused_before_any_call(store: Store) -> None:
    calls = dynamodb_calls(store)
    with pytest.raises(ValueError, match="at most 100"):
        store.batch_get([{"pk": f"T#b#U#u{index}", "sk": "S#SUB"} for index in range(BATCH_GET_KEYS_MAX + 1)])
    assert store.batch_get([]) == [] and calls == []
