"""`quotaflow prices import FILE --markup 40`: a LiteLLM model cost map (the full public map is over a megabyte) sent
in chunks under the API's 64 KiB body limit, each its own idempotent request.

Each entry is cut down to its token prices before sending, and the prices travel as the JSON text they were written
in: the file is read with `Decimal` for numbers and written back digit for digit, never through a float."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from quotaflow.cli.output import CommandFailed, Subparsers, plural, print_json, table
from quotaflow.cli.remote import connect, connection_flags
from quotaflow.ledger.price_catalog import CATALOG_FIELDS, IMPORT_MODELS_MAX
from quotaflow.ledger.prices import MARKUP_PERCENT_MAX

BODY_BYTES_MAX = 64 * 1024
CHUNK_BYTES_MAX = BODY_BYTES_MAX - 4 * 1024  # headroom below the limit
CATALOG_BYTES_MAX = 64 * 1024 * 1024  # a file past this is no cost map
CHUNK_TIMEOUT_SECONDS = 60.0  # a chunk is up to IMPORT_MODELS_MAX price writes
PRICE_FIELDS = frozenset(CATALOG_FIELDS.values())


def read_catalog(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8") if path.stat().st_size <= CATALOG_BYTES_MAX else None
    except OSError as error:
        raise CommandFailed(f"cannot read {path}: {error.strerror}") from None
    if text is None:
        raise CommandFailed(f"{path} is larger than {CATALOG_BYTES_MAX} bytes")

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a price")

    try:
        catalog = json.loads(text, parse_float=Decimal, parse_constant=refuse_constant)
    except ValueError as error:
        raise CommandFailed(f"{path} is not JSON: {error}") from None
    except RecursionError:
        raise CommandFailed(f"{path} nests too deeply to be a cost map") from None
    if not isinstance(catalog, dict):
        raise CommandFailed(f"{path} is not a cost map (a JSON object of models)")
    return catalog


def exact_json(value: Any) -> str:
    """JSON text for what `read_catalog` returns; a Decimal is written as its own digits."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{exact_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(exact_json(v) for v in value) + "]"
    return json.dumps(value)


def price_entry(entry: Any) -> Any:
    """The entry's token prices only (the server skips an entry without them and says why)."""
    if not isinstance(entry, Mapping):
        return entry
    return {name: value for name, value in entry.items() if name in PRICE_FIELDS}


def chunks(catalog: Mapping[str, Any]) -> Iterator[bytes]:
    """JSON objects of whole entries, each under CHUNK_BYTES_MAX and IMPORT_MODELS_MAX entries."""
    parts: list[str] = []
    size = 2
    for model, entry in catalog.items():
        part = f"{json.dumps(model)}:{exact_json(price_entry(entry))}"
        if len(part.encode()) + 2 > CHUNK_BYTES_MAX:
            raise CommandFailed(f"the entry of {model!r} alone is larger than a request may be")
        if parts and (size + len(part.encode()) + 1 > CHUNK_BYTES_MAX or len(parts) == IMPORT_MODELS_MAX):
            yield ("{" + ",".join(parts) + "}").encode()
            parts, size = [], 2
        parts.append(part)
        size += len(part.encode()) + 1
    if parts:
        yield ("{" + ",".join(parts) + "}").encode()


def _import(args: argparse.Namespace) -> int:
    if not 0 <= args.markup <= MARKUP_PERCENT_MAX:
        raise CommandFailed(f"--markup is a percent from 0 to {MARKUP_PERCENT_MAX}")
    catalog = read_catalog(Path(args.file))
    bodies = list(chunks(catalog))
    imported = unchanged = 0
    skipped: list[dict[str, str]] = []
    with connect(args, timeout_seconds=CHUNK_TIMEOUT_SECONDS) as qf:
        for number, body in enumerate(bodies, start=1):
            # the key names the chunk's content: re-running the same import replays instead of re-applying
            key = "prices-import:" + hashlib.sha256(body + f"|{args.markup}".encode()).hexdigest()
            result = qf.import_prices(body, markup_percent=args.markup, idempotency_key=key)
            imported, unchanged = imported + result.imported, unchanged + result.unchanged
            skipped.extend(result.skipped)
            print(
                f"chunk {number}/{len(bodies)}: {result.imported} imported, {result.unchanged} unchanged, "
                f"{len(result.skipped)} skipped",
                file=sys.stderr,
            )
    totals = {"imported": imported, "unchanged": unchanged, "skipped": skipped}
    if args.json:
        print_json(totals)
        return 0
    print(f"{plural(imported, 'price')} imported, {unchanged} unchanged, {len(skipped)} skipped")
    if skipped:
        print(table(["model", "reason"], [[s["model"], s["reason"]] for s in skipped]))
    return 0


def add_commands(commands: Subparsers) -> None:
    prices = commands.add_parser("prices", help="model prices", description="Manage the tenant's model prices.")
    price_commands = prices.add_subparsers(dest="prices_command", required=True, metavar="COMMAND")
    command = price_commands.add_parser(
        "import",
        parents=[connection_flags(admin=False)],
        help="import a LiteLLM model cost map",
        description="Import model prices from a file in the LiteLLM model cost map format (USD per token), exactly "
        "(no float rounding), at a markup. Sent in chunks under the API's body limit, each an idempotent request; "
        "an unchanged price is not a new version, so importing the same file again changes nothing.",
    )
    command.add_argument("file", metavar="FILE", help="the cost map (model_prices_and_context_window.json)")
    command.add_argument("--markup", type=int, default=0, metavar="PERCENT", help="markup in percent (default 0)")
    command.set_defaults(run=_import)
