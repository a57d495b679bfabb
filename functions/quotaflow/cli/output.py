"""How commands print: aligned tables for people, JSON (`--json`) for scripts."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

Subparsers = Any  # what add_subparsers returns (argparse._SubParsersAction, a private class)


class CommandFailed(Exception):
    """A command cannot run as asked (bad input, missing key): printed as one line, exit status 2."""


def print_json(value: BaseModel | dict[str, Any] | list[Any], *, indent: int | None = 2) -> None:
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    print(json.dumps(data, indent=indent, ensure_ascii=False))


def cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell; numbers aligned right."""
    texts = [[cell(value) for value in row] for row in rows]
    widths = [max([len(name), *(len(row[i]) for row in texts)]) for i, name in enumerate(columns)]
    numeric = [bool(rows) and all(isinstance(row[i], int) for row in rows) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        padded = [v.rjust(w) if right else v.ljust(w) for v, w, right in zip(values, widths, numeric, strict=True)]
        return "  ".join(padded).rstrip()

    return "\n".join([line([name.upper() for name in columns]), *(line(row) for row in texts)])


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def paragraphs(*texts: str, width: int = 78) -> str:
    """Help text for a RawDescriptionHelpFormatter parser, wrapped by hand."""
    return "\n\n".join(textwrap.fill(text, width) for text in texts)
