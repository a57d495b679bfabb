"""`quotaflow`: run the API locally, invoke its handlers, and manage a running deployment."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from quotaflow.cli import accounts, export, invoke, plans, prices, remote, report
from quotaflow.cli.extras import LOCAL_MODULES, SERVER_MODULES, require
from quotaflow.cli.output import CommandFailed, Subparsers
from quotaflow.sdk.errors import QuotaflowError

DESCRIPTION = """quotaflow: usage metering and credits for AI apps.

Run the same Lambda handlers that AWS runs, on your machine:
  quotaflow serve            HTTP API on http://127.0.0.1:8080, embedded DynamoDB (in memory)
  quotaflow demo             the seed scenario, step by step, against an embedded server
  quotaflow invoke api EVENT run a handler on a sample event (events/api/*.json)

Manage a running deployment (--url / $QUOTAFLOW_URL, --api-key / $QUOTAFLOW_API_KEY):
  quotaflow tenants create TENANT_ID      quotaflow keys create|revoke ...     (admin key)
  quotaflow plans apply plans.yaml        quotaflow usage USER                 quotaflow verify [USER]
  quotaflow accounts put|show|join ...    quotaflow reservation RSV_ID         quotaflow prices import FILE
  quotaflow report --meter tokens --group-by model --window day [--csv]      (usage from the lake)

Every command has --help; commands that call the API print tables, or JSON with --json.
"""


def _serve(args: argparse.Namespace) -> int:
    endpoint = args.dynamodb_endpoint or os.environ.get("QUOTAFLOW_DYNAMODB_ENDPOINT")
    require("serve", SERVER_MODULES if endpoint else LOCAL_MODULES)
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "quotaflow")
    from quotaflow.local.server import JOBS, build_server

    server = build_server(
        host=args.host,
        port=args.port,
        dynamodb_endpoint=args.dynamodb_endpoint,
        table_name=args.table,
        workers=args.workers,
        timers=not args.no_timers,
        log_format=args.log_format,
        lake_dir=args.lake_dir,
    )
    # A process manager, a container runtime or Ctrl-C: stop accepting, drain, end workers and timers, exit 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda _signal, _frame: server.stop())
    backend = server.dynamodb_endpoint or "embedded DynamoDB (moto, in memory: data is gone when this stops)"
    print(f"quotaflow serving on {server.url}  (DynamoDB: {backend})", flush=True)
    if not ({"QUOTAFLOW_ADMIN_KEY", "QUOTAFLOW_ADMIN_KEY_SECRET_ARN"} & set(os.environ)):
        print(f"admin key (set QUOTAFLOW_ADMIN_KEY to choose one): {server.admin_key}", flush=True)
    print(
        f"try: curl -s -X POST {server.url}/v1/admin/tenants -H 'Authorization: Bearer {server.admin_key}' "
        f"-H 'Content-Type: application/json' -d '{{\"tenant_id\": \"acme\"}}'",
        flush=True,
    )
    if not args.no_timers:
        print(
            "scheduled functions on timers: " + ", ".join(JOBS) + " (run one now: POST /_local/run/{job})", flush=True
        )
    try:
        server.serve_forever()
    finally:
        server.close()
    print("quotaflow stopped" + (": its workers kept dying" if server.failed else ""), flush=True)
    return 1 if server.failed else 0


def _demo(args: argparse.Namespace) -> int:
    require("demo", LOCAL_MODULES)
    from quotaflow.cli.demo import run_demo

    return run_demo()


def _add_serve(commands: Subparsers) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the HTTP API locally",
        description="Serve the API function over HTTP. Each request becomes an API "
        "Gateway v2 event for the same handler that runs in Lambda, with the settings the functions read "
        "(QUOTAFLOW_* variables; see the README's Settings) and these flags on top. SIGTERM or SIGINT drains the "
        "requests in flight, stops the workers and timers, and exits 0. Needs: pip install 'quotaflow[local]'.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default: %(default)s)")
    serve.add_argument(
        "--dynamodb-endpoint",
        metavar="URL",
        help="use this DynamoDB (DynamoDB Local, or AWS) instead of the embedded in-memory one "
        "(default: $QUOTAFLOW_DYNAMODB_ENDPOINT)",
    )
    serve.add_argument("--table", help="table name; created if missing (default: $QUOTAFLOW_TABLE, else quotaflow)")
    serve.add_argument(
        "--workers",
        type=int,
        default=4,
        help="worker processes with --dynamodb-endpoint (default: %(default)s); embedded mode always uses one",
    )
    serve.add_argument(
        "--no-timers",
        action="store_true",
        help="do not run the scheduled functions (sweeper) on timers; POST /_local/run/{job} still runs them",
    )
    serve.add_argument(
        "--lake-dir",
        metavar="DIR",
        help="write the usage lake (NDJSON, tenant_id=/day= folders) here and keep it (default: "
        "$QUOTAFLOW_LAKE_DIR, else a temporary directory removed on exit)",
    )
    serve.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text: one line per request and per scheduled run that did something; json: the functions' "
        "structured logs and metrics, as in Lambda (default: %(default)s)",
    )
    serve.set_defaults(run=_serve)


def _add_demo(commands: Subparsers) -> None:
    demo = commands.add_parser(
        "demo",
        help="walk through the seed scenario against an embedded server",
        description="Create a tenant and plan_paygo, give a user 100,000 tokens, reserve "
        "4,000, commit 800, and show the balance, can-use and the ledger (through the Python SDK).",
    )
    demo.set_defaults(run=_demo)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="quotaflow", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(commands)
    _add_demo(commands)
    invoke.add_command(commands)
    remote.add_admin_commands(commands)
    plans.add_commands(commands)
    prices.add_commands(commands)
    remote.add_tenant_commands(commands)
    accounts.add_commands(commands)
    export.add_command(commands)
    report.add_command(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except CommandFailed as failed:
        print(f"quotaflow {args.command}: {failed}", file=sys.stderr)
        return 2
    except QuotaflowError as error:
        print(f"quotaflow {args.command}: {error}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
