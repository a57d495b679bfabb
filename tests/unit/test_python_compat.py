"""The tests run on CPython 3.11; the stack deploys python3.14. Standard-library modules removed between the two
(PEP 594's dead batteries in 3.13; distutils, imp, asynchat, asyncore and smtpd in 3.12) would import here and fail
only in AWS, so the functions' code must import none of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "functions" / "quotaflow"
REMOVED_AFTER_3_11 = frozenset(
    {
        *("asynchat", "asyncore", "distutils", "imp", "smtpd"),  # 3.12
        *("aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "lib2to3", "mailcap", "msilib", "nis"),
        *("nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib"),  # 3.13
    }
)


def imported_modules(source: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_functions_import_no_module_the_lambda_python_lacks() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 40
    offending = {
        str(path.relative_to(PACKAGE)): sorted(imported_modules(path) & REMOVED_AFTER_3_11) for path in sources
    }
    assert {path: names for path, names in offending.items() if names} == {}
