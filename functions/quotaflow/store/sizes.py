"""Item sizes as DynamoDB bills them (its documented rule), for choices that must not cost write units:
attribute name bytes + value bytes; a number is about one byte per two significant digits plus one; lists and
maps add 3 bytes plus one per element."""

from __future__ import annotations

import base64
import math
from typing import Any

from quotaflow.store.table import Item, to_item

KB = 1024  # a write unit covers up to this much of an item


def number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def value_size(value: dict[str, Any]) -> int:
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        return number_size(raw)
    if kind == "B":
        return len(base64.b64decode(raw)) if isinstance(raw, str) else len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(element) for element in raw)
    if kind == "M":
        return 3 + sum(len(name.encode()) + 1 + value_size(element) for name, element in raw.items())
    if kind == "SS":
        return sum(len(element.encode()) for element in raw)
    if kind == "NS":
        return sum(number_size(element) for element in raw)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    """The size of an item in DynamoDB's wire form (attribute values)."""
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def started_kilobytes(item: Item) -> int:
    """How many write units' worth of bytes an item (in Python form) takes: what each write of it costs."""
    return max(1, math.ceil(item_size(to_item(item)) / KB))
