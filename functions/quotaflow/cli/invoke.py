"""`quotaflow invoke FUNCTION EVENT.json ...`: run a Lambda handler on sample events, in this process, on an
embedded DynamoDB (like `sam local invoke`, without containers).

`${NAME}` in an event is filled from `--var NAME=VALUE`, from `ADMIN_KEY` (the run's admin key), and from the
top-level string fields of earlier responses in the same run (`secret_key` -> `${SECRET_KEY}`), so a sequence
such as admin-create-tenant.json, put-plan.json, reserve.json runs as is. A new function joins `FUNCTIONS`."""

from __future__ import annotations

import argparse
import importlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from quotaflow.cli.extras import LOCAL_MODULES, require
from quotaflow.cli.output import CommandFailed, Subparsers, paragraphs, print_json

if TYPE_CHECKING:
    from quotaflow.config import Settings
    from quotaflow.store.table import Store

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
EVENTS_PER_RUN_MAX = 100


@dataclass(frozen=True)
class LambdaFunction:
    handler: str  # "module:attribute", imported only when invoked
    summary: str
    bind: Callable[[Store, Settings], None]  # point the function at the run's table and settings


def _bind_api(store: Store, settings: Settings) -> None:
    from quotaflow.handlers import runtime as function_runtime

    function_runtime.bind(function_runtime.Runtime(store=store, settings=settings))


FUNCTIONS: dict[str, LambdaFunction] = {
    "api": LambdaFunction("quotaflow.handlers.api:handler", "the HTTP API (API Gateway v2 events)", _bind_api),
    "stripe-webhook": LambdaFunction(
        "quotaflow.handlers.stripe_webhook:handler",
        "Stripe webhooks (API Gateway v2 events, Stripe-Signature)",
        _bind_api,
    ),
    "sweeper": LambdaFunction("quotaflow.handlers.sweeper:handler", "expiry sweep (EventBridge schedule)", _bind_api),
    "reaper": LambdaFunction("quotaflow.handlers.reaper:handler", "TTL reaper (DynamoDB stream batches)", _bind_api),
    "notifier": LambdaFunction(
        "quotaflow.handlers.notifier:handler",
        "alerts (DynamoDB stream batches, or a schedule for redelivery)",
        _bind_api,
    ),
    "billing-export": LambdaFunction(
        "quotaflow.handlers.billing_export:handler", "usage to Stripe meter events (EventBridge schedule)", _bind_api
    ),
}


def fill(text: str, values: dict[str, str], source: str) -> str:
    """Replace every ${NAME}; a name without a value is an error that says how to give one."""
    missing = sorted({name for name in PLACEHOLDER.findall(text) if name not in values})
    if missing:
        needed = ", ".join("${" + name + "}" for name in missing)
        raise CommandFailed(f"{source} needs {needed}: pass --var NAME=VALUE, or invoke an event that returns it first")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def captured(response: dict[str, Any]) -> dict[str, str]:
    """The response body's top-level string fields, as placeholder values for the events after it."""
    try:
        body = json.loads(response.get("body") or "null")
    except ValueError:
        return {}
    if not isinstance(body, dict):
        return {}
    return {name.upper(): value for name, value in body.items() if isinstance(value, str)}


def parse_vars(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not PLACEHOLDER.fullmatch("${" + name + "}"):
            raise CommandFailed(f"--var {pair!r}: expected NAME=VALUE with NAME in A-Z 0-9 _")
        values[name] = value
    return values


@contextmanager
def embedded_table(settings: Settings) -> Iterator[Store]:
    from quotaflow.local.workers import start_embedded_dynamodb
    from quotaflow.store.table import Store

    client, stop = start_embedded_dynamodb(settings.region)
    try:
        store = Store(client, settings.table_name)
        store.create_table()
        yield store
    finally:
        stop()


def load_handler(function: LambdaFunction) -> Handler:
    module_name, _, attribute = function.handler.partition(":")
    return cast(Handler, getattr(importlib.import_module(module_name), attribute))


def _print_response(source: str, response: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(response, indent=None)
        return
    if "statusCode" not in response:  # not an HTTP function: its return value is the result
        print(f"== {source}")
        print_json(response)
        return
    print(f"== {source}  [{response.get('statusCode')}]")
    for name, value in (response.get("headers") or {}).items():
        print(f"{name}: {value}")
    body = response.get("body")
    try:
        print(json.dumps(json.loads(body), indent=2, ensure_ascii=False) if body else "(no body)")
    except ValueError:
        print(body)


def _invoke(args: argparse.Namespace) -> int:
    require("invoke", LOCAL_MODULES)
    from quotaflow.local.events import LocalContext
    from quotaflow.local.server import serve_settings

    if len(args.events) > EVENTS_PER_RUN_MAX:
        raise CommandFailed(f"at most {EVENTS_PER_RUN_MAX} events per run")
    settings = serve_settings()  # what the functions read from the environment, as under `serve`
    assert settings.admin_key is not None
    values = {"ADMIN_KEY": settings.admin_key, **parse_vars(args.var)}
    function = FUNCTIONS[args.function]
    with embedded_table(settings) as store:
        function.bind(store, settings)
        handler = load_handler(function)
        for path in map(Path, args.events):
            try:
                text = path.read_text()
            except OSError as error:
                raise CommandFailed(f"{path}: {error.strerror}") from None
            event = json.loads(fill(text, values, str(path)))
            response = handler(event, LocalContext(function_name=f"quotaflow-{args.function}"))
            _print_response(str(path), response, args.json)
            values.update(captured(response))
    return 0


def add_command(commands: Subparsers) -> None:
    listing = "\n".join(f"  {name:<8} {f.summary} -> {f.handler.replace(':', '.')}" for name, f in FUNCTIONS.items())
    invoke = commands.add_parser(
        "invoke",
        help="run a Lambda handler on sample events, locally",
        description=paragraphs(
            "Run FUNCTION's handler on each EVENT file in turn, in this process, on an embedded DynamoDB that "
            "lives for this run, and print each response.",
            "${NAME} in an event comes from --var NAME=VALUE, from ADMIN_KEY (this run's admin key: "
            "$QUOTAFLOW_ADMIN_KEY or a new one), or from a top-level string field of an earlier response "
            "(secret_key -> ${SECRET_KEY}).",
        )
        + "\n\nfunctions:\n"
        + listing,
        epilog="example: quotaflow invoke api events/api/admin-create-tenant.json events/api/put-plan.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    invoke.add_argument("function", metavar="FUNCTION", choices=sorted(FUNCTIONS), help="one of: %(choices)s")
    invoke.add_argument("events", metavar="EVENT", nargs="+", help="a JSON event file, e.g. from events/api/")
    invoke.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="fill ${NAME} in events")
    invoke.add_argument("--json", action="store_true", help="print each response as one JSON line")
    invoke.set_defaults(run=_invoke)
