"""The browser assets the API function serves: the embeddable usage widget and the operator dashboard.

Static files shipped as package data next to this module (pyproject: `[tool.setuptools.package-data]`). Each is
read once per container, on first request, and kept with its ETag; nothing is read at import time."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

CONTENT_TYPES = {
    "widget.js": "text/javascript; charset=utf-8",
    "dashboard.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}


@dataclass(frozen=True)
class Asset:
    name: str
    body: str
    content_type: str
    etag: str  # a strong validator: the body's hash, so a deploy that changes the file changes it


_loaded: dict[str, Asset] = {}


def asset(name: str) -> Asset:
    """One of the files in CONTENT_TYPES (a KeyError for any other name: only these are ever served)."""
    content_type = CONTENT_TYPES[name]
    cached = _loaded.get(name)
    if cached is None:
        body = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
        digest = hashlib.sha256(body.encode()).hexdigest()[:32]
        cached = Asset(name=name, body=body, content_type=content_type, etag=f'"{digest}"')
        _loaded[name] = cached
    return cached
