"""Commands that talk to a running quotaflow over HTTP through the SDK: tenants, keys, usage, verify."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

from quotaflow.cli.output import CommandFailed, Subparsers, plural, print_json, table
from quotaflow.sdk import Client, models

URL_DEFAULT = "http://127.0.0.1:8080"  # where `quotaflow serve` listens
STEP_PAGES_MAX = 100  # 10,000 steps shown at most


def connection_flags(*, admin: bool) -> argparse.ArgumentParser:
    """--url, --api-key and --json, shared by every command that calls the API."""
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("connection")
    group.add_argument(
        "--url", help=f"the API's base URL (default: $QUOTAFLOW_URL, else {URL_DEFAULT}, where `quotaflow serve` runs)"
    )
    key_source = "$QUOTAFLOW_ADMIN_KEY, else $QUOTAFLOW_API_KEY" if admin else "$QUOTAFLOW_API_KEY"
    kind = "the deployment's admin key" if admin else "a tenant's secret key"
    group.add_argument("--api-key", metavar="KEY", help=f"{kind} (default: {key_source})")
    flags.add_argument("--json", action="store_true", help="print the API's answer as JSON, for scripts")
    return flags


def connect(args: argparse.Namespace, *, admin: bool = False, timeout_seconds: float | None = None) -> Client:
    url = args.url or os.environ.get("QUOTAFLOW_URL") or URL_DEFAULT
    env_key = (os.environ.get("QUOTAFLOW_ADMIN_KEY") if admin else None) or os.environ.get("QUOTAFLOW_API_KEY")
    key = args.api_key or env_key
    if not key:
        source = "QUOTAFLOW_ADMIN_KEY" if admin else "QUOTAFLOW_API_KEY"
        raise CommandFailed(f"no API key: pass --api-key or set {source}")
    if timeout_seconds is None:
        return Client(api_key=key, base_url=url)
    return Client(api_key=key, base_url=url, timeout_seconds=timeout_seconds)


# --- tenants and keys (admin key) -----------------------------------------------------------------------


def _tenants_create(args: argparse.Namespace) -> int:
    with connect(args, admin=True) as qf:
        created = qf.create_tenant(args.tenant_id)
    if args.json:
        print_json(created)
        return 0
    print(f"tenant {created.tenant_id} created. Its keys are shown only now; store them:")
    print(table(["key", "value"], [["secret", created.secret_key], ["publishable", created.publishable_key]]))
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    with connect(args, admin=True) as qf:
        created = qf.create_key(args.tenant_id, args.kind)
    if args.json:
        print_json(created)
        return 0
    print(f"{args.kind} key {created.key_id} created for tenant {args.tenant_id}. Shown only now; store it:")
    print(f"  {created.key}")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    with connect(args, admin=True) as qf:
        qf.revoke_key(args.tenant_id, args.key_id)
    if args.json:
        print_json({"revoked": args.key_id})
    else:
        print(f"key {args.key_id} of tenant {args.tenant_id} revoked: it is refused (401) from now on")
    return 0


def add_admin_commands(commands: Subparsers) -> None:
    flags = connection_flags(admin=True)
    tenants = commands.add_parser("tenants", help="manage tenants (admin key)", description="Manage tenants.")
    tenant_commands = tenants.add_subparsers(dest="tenants_command", required=True, metavar="COMMAND")
    create = tenant_commands.add_parser(
        "create",
        parents=[flags],
        help="create a tenant and print its first keys",
        description="Create a tenant (your app). Prints its secret and publishable keys, shown only once.",
    )
    create.add_argument("tenant_id", metavar="TENANT_ID", help="1-128 characters from A-Z a-z 0-9 _ . : @ -")
    create.set_defaults(run=_tenants_create)

    keys = commands.add_parser("keys", help="create or revoke a tenant's keys (admin key)", description="API keys.")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    key_create = key_commands.add_parser(
        "create", parents=[flags], help="create a key", description="Create another key for a tenant; shown once."
    )
    key_create.add_argument("tenant_id", metavar="TENANT_ID")
    key_create.add_argument(
        "--kind", choices=["secret", "publishable"], default="secret", help="(default: %(default)s)"
    )
    key_create.set_defaults(run=_keys_create)
    revoke = key_commands.add_parser(
        "revoke", parents=[flags], help="revoke a key", description="Revoke a key: it is refused at once."
    )
    revoke.add_argument("tenant_id", metavar="TENANT_ID")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key_id printed when the key was created")
    revoke.set_defaults(run=_keys_revoke)


# --- usage and verify (secret key) ----------------------------------------------------------------------


def usage_table(usage: models.Usage | models.AccountUsage) -> str:
    columns = ["meter", "label", "period", "resets", "enforcement", "quota", "credits", "used", "reserved", "remaining"]
    rows = [
        [c.meter, c.label, c.period, c.period_end, c.enforcement, c.quota, c.credits, c.used, c.reserved, c.remaining]
        for c in usage.counters
    ]
    return table(columns, rows)


def _usage(args: argparse.Namespace) -> int:
    with connect(args) as qf:
        usage = qf.usage(args.user_id)
    if args.json:
        print_json(usage)
        return 0
    print(f"user {usage.user_id}, plan {usage.plan_id}")
    print(usage_table(usage))
    return 0


def _verify(args: argparse.Namespace) -> int:
    with connect(args) as qf:
        result = qf.verify(args.user_id)
    if args.json:
        print_json(result)
        return 0 if result.ok else 1
    scope = f"user {args.user_id}" if args.user_id else "the whole tenant"
    checked = plural(result.checked, "counter")
    if result.ok:
        print(f"ok: {checked} of {scope} checked; every counter reconciles to the ledger")
        return 0
    print(f"NOT OK: {checked} of {scope} checked, {plural(len(result.problems), 'problem')}")
    rows = [[p.user_id, p.meter, p.period_start, p.message] for p in result.problems]
    print(table(["user", "meter", "period start", "problem"], rows))
    return 1


def _lines_text(lines: list[models.Line]) -> str:
    return ", ".join(f"{line.meter} {line.amount}" for line in lines) or "-"


def _reservation(args: argparse.Namespace) -> int:
    with connect(args) as qf:
        info = qf.get_reservation(args.reservation_id)
        steps = list(_all_steps(qf, args.reservation_id))
    if args.json:
        print_json({"reservation": info.model_dump(mode="json"), "steps": [s.model_dump(mode="json") for s in steps]})
        return 0
    print(f"reservation {info.reservation_id} of user {info.user_id}: {info.status}, expires {info.expires_at}")
    holds = [_lines_text(info.lines), _lines_text(info.drawn), _lines_text(info.held)]
    print(table(["held in all", "drawn", "left of the hold"], [holds]))
    rows = [[s.at, _lines_text(s.lines), _lines_text(s.overage), s.properties] for s in steps]
    print(f"{plural(len(steps), 'step')}:")
    print(table(["at", "drawn", "overage", "properties"], rows))
    return 0


def _all_steps(qf: Client, reservation_id: str) -> Iterator[models.Step]:
    cursor: str | None = None
    for _ in range(STEP_PAGES_MAX):
        page = qf.get_steps(reservation_id, cursor=cursor)
        yield from page.steps
        cursor = page.next_cursor
        if cursor is None:
            return


def add_tenant_commands(commands: Subparsers) -> None:
    flags = connection_flags(admin=False)
    usage = commands.add_parser(
        "usage",
        parents=[flags],
        help="show a user's balance per meter",
        description="Show a user's counters: quota, credits, used, reserved and remaining per meter.",
    )
    usage.add_argument("user_id", metavar="USER")
    usage.set_defaults(run=_usage)
    verify = commands.add_parser(
        "verify",
        parents=[flags],
        help="check that counters reconcile to the ledger",
        description="Sum the ledger per (user, meter, period) and compare it with the counters, for one user "
        "or, without USER, for the whole tenant (one request; the server does the work). Exit status 1 if "
        "anything disagrees.",
    )
    verify.add_argument("user_id", metavar="USER", nargs="?", help="one user (default: every user of the tenant)")
    verify.set_defaults(run=_verify)
    reservation = commands.add_parser(
        "reservation",
        parents=[flags],
        help="show a reservation and the steps drawn on it",
        description="Show a reservation: its status and deadline, what it held, drew and has left, and each "
        "step drawn on it (an agent run's draws, with their properties).",
    )
    reservation.add_argument("reservation_id", metavar="RESERVATION_ID")
    reservation.set_defaults(run=_reservation)
