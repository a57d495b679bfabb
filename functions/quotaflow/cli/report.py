"""`quotaflow report`: usage per time window and group from the lake (POST /v1/analytics/usage), as a table or CSV."""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import UTC, datetime, timedelta

from quotaflow.cli.output import CommandFailed, Subparsers, paragraphs, print_json, table
from quotaflow.cli.remote import connect, connection_flags

RANGE_DAYS_DEFAULT = 30
DESCRIPTION = paragraphs(
    "Sum one meter's usage per hour, day or month, grouped by model, user, account, kind or any event property "
    "(property:<name>, up to 3 keys), from the usage lake: DuckDB under `quotaflow serve`, Athena in AWS.",
    "Example: quotaflow report --meter tokens --group-by model --window day --csv",
)


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _filter(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"filters are KEY=VALUE, e.g. user=u1 or property:feature=chat: {text!r}")
    return key, value


def _report(args: argparse.Namespace) -> int:
    end = args.to or datetime.now(UTC)
    start = args.start or end - timedelta(days=RANGE_DAYS_DEFAULT)
    with connect(args) as qf:
        report = qf.usage_report(
            args.meter,
            start,
            end,
            window=args.window,
            group_by=args.group_by,
            filters=dict(args.filter),
            limit=args.limit,
        )
    if report.status == "running":
        raise CommandFailed(f"the query is still running on Athena: GET /v1/analytics/queries/{report.query_id}")
    if args.json:
        print_json(report)
        return 0
    columns = ["window_start", *args.group_by, "used", "events"]
    rows = [[row.get(column) for column in columns] for row in report.rows]
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if value is None else value for value in row] for row in rows])
        return 0
    print(table(columns, rows))
    return 0


def add_command(commands: Subparsers) -> None:
    report = commands.add_parser(
        "report",
        parents=[connection_flags(admin=False)],
        help="usage per window and group (model, user, property:...), from the lake",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("--meter", required=True, help="the meter to sum, e.g. tokens")
    report.add_argument("--window", choices=["hour", "day", "month"], default="day", help="default: %(default)s")
    report.add_argument(
        "--group-by",
        action="append",
        default=[],
        metavar="KEY",
        help="model, user, account, kind or property:<name>; repeat for up to 3 keys",
    )
    report.add_argument(
        "--filter", action="append", default=[], type=_filter, metavar="KEY=VALUE", help="e.g. user=u1; repeatable"
    )
    report.add_argument("--from", dest="start", type=_moment, help=f"default: {RANGE_DAYS_DEFAULT} days before --to")
    report.add_argument("--to", type=_moment, help="default: now")
    report.add_argument("--limit", type=int, help="at most this many rows (server default 1000)")
    report.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    report.set_defaults(run=_report)
