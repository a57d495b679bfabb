"""`quotaflow export`: run the billing export now, against a table directly (DynamoDB Local or AWS), with
progress on stderr. `--dry-run` reports what would be sent without calling Stripe."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from quotaflow.cli.extras import SERVER_MODULES, require
from quotaflow.cli.output import CommandFailed, Subparsers, print_json


def _export(args: argparse.Namespace) -> int:
    require("export", SERVER_MODULES)
    from quotaflow.config import Settings
    from quotaflow.ledger.periods import parse_iso
    from quotaflow.services import billing_fanout
    from quotaflow.store.connect import connect, secret_box
    from quotaflow.stripe_gateway import StripeGateway

    settings = Settings.from_env()
    settings = settings.model_copy(
        update={
            "table_name": args.table or settings.table_name,
            "dynamodb_endpoint": args.dynamodb_endpoint or settings.dynamodb_endpoint,
        }
    )
    try:
        now = parse_iso(args.now) if args.now else datetime.now(UTC)
    except ValueError as bad:
        raise CommandFailed(f"--now: {bad}") from None
    report = billing_fanout.export(
        connect(settings),
        secret_box(settings),
        now,
        lambda api_key: StripeGateway(api_key, api_base=settings.stripe_api_base),
        dry_run=args.dry_run,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    if args.json:
        print_json(report.model_dump())
    else:
        verb = "would send" if report.dry_run else "sent"
        print(
            f"{report.tenants} tenants, {report.pairs} customer+meter pairs, {report.counters_checked} counters "
            f"checked: {verb} "
            f"{report.events_sent} meter events worth {report.value_sent}; {len(report.skipped)} skipped, "
            f"{len(report.failed)} failed"
        )
        for failure in report.failed:
            print(f"  failed: {failure.tenant_id}/{failure.user_id} {failure.meter}: {failure.error}")
    return 1 if report.failed else 0


def add_command(commands: Subparsers) -> None:
    export = commands.add_parser(
        "export",
        help="push post-paid usage to Stripe now (or --dry-run to see what would go)",
        description="Run the billing export against a table (QUOTAFLOW_TABLE / --table; QUOTAFLOW_DYNAMODB_ENDPOINT "
        "/ --dynamodb-endpoint, else AWS with your credentials). Progress goes to stderr.",
    )
    export.add_argument("--dry-run", action="store_true", help="report what would be sent; send nothing")
    export.add_argument("--now", metavar="ISO", help="run as if the clock read this time (default: now)")
    export.add_argument("--table", help="table name (default: QUOTAFLOW_TABLE or quotaflow)")
    export.add_argument("--dynamodb-endpoint", metavar="URL", help="DynamoDB endpoint (DynamoDB Local)")
    export.add_argument("--json", action="store_true", help="print the whole report as JSON")
    export.set_defaults(run=_export)
