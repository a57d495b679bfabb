"""Accounts through the SDK and the CLI against a real `quotaflow serve`: a team pool with two seats, one refusal
of each kind, the effective remaining, pool credits."""

from __future__ import annotations

import pytest

from quotaflow.cli.main import main
from quotaflow.local.server import LocalServer
from quotaflow.sdk import Client, InsufficientQuota, NotFound, TenantCreated

pytestmark = pytest.mark.unit


@pytest.fixture
def team(qf: Client) -> Client:
    qf.put_plan("plan_seat", "Seat", {"tokens": {"label": "Tokens", "quota": 500_000, "period": "month"}})
    qf.put_plan("plan_team", "Team", {"tokens": {"label": "Tokens", "quota": 800_000, "period": "month"}})
    qf.put_account("acme", "Acme", "plan_team")
    for user in ("alice", "bob"):
        qf.upsert_subscription(user, "plan_seat", account_id="acme")
    return qf


def test_a_team_pool_with_two_seats_and_one_refusal_of_each_kind(team: Client) -> None:
    with pytest.raises(InsufficientQuota) as seat:
        team.reserve("alice", {"tokens": 500_001})
    assert (seat.value.scope, seat.value.account_id) == ("user", None)
    team.track("alice", {"tokens": 500_000})
    with pytest.raises(InsufficientQuota) as pool:
        team.reserve("bob", {"tokens": 300_001})  # bob's seat has room; the team has 300,000 left
    assert (pool.value.scope, pool.value.account_id, pool.value.available) == ("account", "acme", 300_000)
    usage = team.usage("bob")
    assert usage.accounts[0].account_id == "acme" and usage.accounts[0].counter("tokens").remaining == 300_000
    assert usage.effective["tokens"].model_dump() == {"remaining": 300_000, "limited_by": "account:acme"}
    assert not team.can_use("bob", "tokens", 300_001).allowed
    team.grant_account_credits("acme", "tokens", 100_000)
    assert team.can_use("bob", "tokens", 300_001).allowed
    assert team.account_usage("acme").counter("tokens").remaining == 400_000
    assert team.account_ledger("acme", limit=3).entries[0].kind == "grant"
    assert team.get_subscription("bob").account_id == "acme"
    assert team.verify().ok


def test_unknown_accounts_and_bad_trees_are_refused(team: Client) -> None:
    with pytest.raises(NotFound):
        team.upsert_subscription("carol", "plan_seat", account_id="nowhere")
    with pytest.raises(NotFound):
        team.get_account("nowhere")
    team.put_account("research", "Research", "plan_team", parent_id="acme")
    with pytest.raises(Exception, match="below itself"):
        team.put_account("acme", "Acme", "plan_team", parent_id="research")
    assert team.get_account("research").parent_id == "acme"


def test_the_cli_puts_shows_and_joins(
    server: LocalServer, tenant: TenantCreated, team: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--url", server.url, "--api-key", tenant.secret_key]
    put = ["accounts", "put", "design", "--plan", "plan_team", "--name", "Design", "--parent", "acme"]
    assert main([*put, *flags]) == 0
    assert "account design (Design) on plan plan_team under acme" in capsys.readouterr().out
    assert main(["accounts", "join", "bob", "design", *flags]) == 0
    assert "user bob is now a member of design" in capsys.readouterr().out
    team.track("bob", {"tokens": 1234})
    assert main(["accounts", "show", "design", *flags]) == 0
    out = capsys.readouterr().out
    assert "account design (Design), plan plan_team, under acme" in out and "1234" in out


def test_pool_shards_through_the_sdk_and_the_cli(
    server: LocalServer, tenant: TenantCreated, team: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    assert team.get_account("acme").pool_shards == 1
    assert team.put_account("acme", "Acme", "plan_team", pool_shards=4).pool_shards == 4
    team.track("alice", {"tokens": 1000})
    assert team.account_usage("acme").counter("tokens").used == 1000
    flags = ["--url", server.url, "--api-key", tenant.secret_key]
    assert main(["accounts", "put", "acme", "--plan", "plan_team", "--pool-shards", "8", *flags]) == 0
    assert "its pool in 8 shards" in capsys.readouterr().out
    assert main(["accounts", "put", "acme", "--plan", "plan_team", "--pool-shards", "2", *flags]) != 0
    assert team.get_account("acme").pool_shards == 8
    assert team.verify().ok
