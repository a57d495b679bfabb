"""The bench's raw floor (tests/bench/harness.py): a captured reserve+commit replayed for another user under fresh
ids. A reservation id names its user, so each replay must still get an id of its own."""

from __future__ import annotations

import json

import pytest

from tests.bench.harness import RawCycle

pytestmark = pytest.mark.unit
CAPTURED_ID = "rsv_0123456789abcdef.tp5ns0.8c.tokens:334@template-user"


def test_each_replay_for_another_user_gets_a_fresh_reservation_id() -> None:
    reserve = {
        "TransactItems": [{"Put": {"Item": {"pk": {"S": f"T#t#R#{CAPTURED_ID}"}, "user": {"S": "template-user"}}}}]
    }
    commit = {"TransactItems": [{"Update": {"Key": {"pk": {"S": f"T#t#R#{CAPTURED_ID}"}}}}]}
    raw = RawCycle(template=json.dumps([reserve, commit]), user_id="template-user", id_tokens=[CAPTURED_ID])
    keys = set()
    for _ in range(3):
        replayed_reserve, replayed_commit = raw.instance("bench-user-7")
        put = replayed_reserve["TransactItems"][0]["Put"]["Item"]
        assert put["user"] == {"S": "bench-user-7"}
        assert replayed_commit["TransactItems"][0]["Update"]["Key"]["pk"] == put["pk"], "commit ends what was reserved"
        keys.add(put["pk"]["S"])
    assert len(keys) == 3 and not any(CAPTURED_ID.split("@")[0] in key for key in keys)
