"""`quotaflow accounts`: organizations and teams that hold shared pools, and their members' usage."""

from __future__ import annotations

import argparse

from quotaflow.cli.output import Subparsers, print_json
from quotaflow.cli.remote import connect, connection_flags, usage_table


def _put(args: argparse.Namespace) -> int:
    with connect(args) as qf:
        account = qf.put_account(
            args.account_id,
            args.name or args.account_id,
            args.plan,
            parent_id=args.parent,
            stripe_customer_id=args.stripe_customer,
            pool_shards=args.pool_shards,
        )
    if args.json:
        print_json(account)
        return 0
    parent = f" under {account.parent_id}" if account.parent_id else ""
    shards = f", its pool in {account.pool_shards} shards" if account.pool_shards > 1 else ""
    print(f"account {account.account_id} ({account.name}) on plan {account.plan_id}{parent}{shards}")
    return 0


def _show(args: argparse.Namespace) -> int:
    with connect(args) as qf:
        account = qf.get_account(args.account_id)
        usage = qf.account_usage(args.account_id)
    if args.json:
        print_json({"account": account.model_dump(mode="json"), "usage": usage.model_dump(mode="json")})
        return 0
    parent = f", under {account.parent_id}" if account.parent_id else ""
    print(f"account {account.account_id} ({account.name}), plan {account.plan_id}{parent}")
    print(usage_table(usage))
    return 0


def _join(args: argparse.Namespace) -> int:
    with connect(args) as qf:
        current = qf.get_subscription(args.user_id)
        joined = qf.upsert_subscription(
            args.user_id,
            current.plan_id,
            custom_limits=current.custom_limits,
            stripe_customer_id=current.stripe_customer_id,
            account_id=args.account_id,
        )
    if args.json:
        print_json(joined)
        return 0
    where = f"a member of {joined.account_id}" if joined.account_id else "in no account"
    print(f"user {joined.user_id} is now {where} (its own plan {joined.plan_id} stays its per-member cap)")
    return 0


def add_commands(commands: Subparsers) -> None:
    flags = connection_flags(admin=False)
    accounts = commands.add_parser(
        "accounts",
        help="organizations and teams with shared pools",
        description="Accounts hold shared pools above their members (at most 3 levels: org > team > sub-team).",
    )
    account_commands = accounts.add_subparsers(dest="accounts_command", required=True, metavar="COMMAND")
    put = account_commands.add_parser(
        "put", parents=[flags], help="create or change an account", description="Create or replace an account."
    )
    put.add_argument("account_id", metavar="ACCOUNT")
    put.add_argument("--plan", required=True, help="the pool's plan")
    put.add_argument("--name", help="display name (default: the account id)")
    put.add_argument("--parent", metavar="ACCOUNT", help="the account above it (default: none, a root)")
    put.add_argument("--stripe-customer", metavar="CUS_ID", help="bill the pool's usage to this Stripe customer")
    put.add_argument(
        "--pool-shards",
        type=int,
        metavar="N",
        help="split each pool counter into N shard items for many concurrent members (default: kept; new: 1)",
    )
    put.set_defaults(run=_put)
    show = account_commands.add_parser(
        "show", parents=[flags], help="show an account and its pool", description="An account and its counters."
    )
    show.add_argument("account_id", metavar="ACCOUNT")
    show.set_defaults(run=_show)
    join = account_commands.add_parser(
        "join",
        parents=[flags],
        help="make a subscribed user a member of an account",
        description="Make a user a member of ACCOUNT (or, without ACCOUNT, of no account), keeping its plan. New "
        "writes go to the new account's pools; what was used stays where it was recorded.",
    )
    join.add_argument("user_id", metavar="USER")
    join.add_argument("account_id", metavar="ACCOUNT", nargs="?")
    join.set_defaults(run=_join)
