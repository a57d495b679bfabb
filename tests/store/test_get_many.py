"""`Store.get_many`: up to 100 keys in one BatchGetItem, strongly consistent, in the order asked (None for a
missing item); more keys are refused before any call (moto and DynamoDB Local)."""

from __future__ import annotations

from typing import Any

import pytest

from quotaflow.ledger.errors import Throttled
from quotaflow.store import table
from quotaflow.store.table import BATCH_GET_ATTEMPTS_MAX, BATCH_GET_KEYS_MAX, Store
from tests.conftest import dynamodb_calls


def test_a_batch_read_returns_the_items_that_exist_in_one_call(store: Store) -> None:
    for index in range(0, BATCH_GET_KEYS_MAX, 2):
        store.put({"pk": f"T#b#U#u{index}", "sk": "S#CTR#tokens", "used": index})
    wanted = [{"pk": f"T#b#U#u{index}", "sk": "S#CTR#tokens"} for index in range(BATCH_GET_KEYS_MAX)]
    calls = dynamodb_calls(store)
    found = store.get_many(wanted)
    assert calls == ["BatchGetItem"]
    assert [None if item is None else item["used"] for item in found] == [
        index if index % 2 == 0 else None for index in range(BATCH_GET_KEYS_MAX)
    ]
    store.update(wanted[0], "SET used = :used", values={":used": 7})
    assert [item["used"] for item in store.get_many(wanted[:1]) if item is not None] == [7], "read after the write"


def test_more_keys_than_one_call_takes_are_refused_before_any_call(store: Store) -> None:
    calls = dynamodb_calls(store)
    with pytest.raises(ValueError, match="at most 100"):
        store.get_many([{"pk": f"T#b#U#u{index}", "sk": "S#SUB"} for index in range(BATCH_GET_KEYS_MAX + 1)])
    assert store.get_many([]) == [] and calls == []


class LeavesKeysUnprocessed:
    """The real client, except that BatchGetItem answers for one key a round and hands the rest back unprocessed,
    as DynamoDB does under throttling (which neither moto nor DynamoDB Local does on demand)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        ((table, request),) = RequestItems.items()
        first, rest = request["Keys"][:1], request["Keys"][1:]
        answer = self._client.batch_get_item(RequestItems={table: {**request, "Keys": first}})
        if rest:
            answer["UnprocessedKeys"] = {table: {**request, "Keys": rest}}
        return answer


def test_keys_left_unprocessed_are_asked_again_until_the_last_round_reads_them(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = [{"pk": f"T#b#U#u{index}", "sk": "S#CTR#tokens"} for index in range(BATCH_GET_ATTEMPTS_MAX)]
    for index, key in enumerate(wanted):
        store.put({**key, "used": index})
    monkeypatch.setattr(table, "BATCH_GET_BACKOFF_BASE_S", 0.0)
    throttled = Store(LeavesKeysUnprocessed(store.client), store.table_name)
    found = throttled.get_many(wanted)  # the last key comes back in the last round allowed
    assert [item["used"] for item in found if item is not None] == list(range(BATCH_GET_ATTEMPTS_MAX))
    with pytest.raises(Throttled):
        throttled.get_many([*wanted, {"pk": "T#b#U#late", "sk": "S#CTR#tokens"}])  # one round too many
