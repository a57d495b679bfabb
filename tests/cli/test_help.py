"""`--help` works on every command and subcommand, and they are all there."""

from __future__ import annotations

import argparse

import pytest

from quotaflow.cli.main import main, parser

pytestmark = pytest.mark.unit


def command_paths(command: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for action in command._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += command_paths(sub, (*prefix, name))
    return paths


COMMANDS = command_paths(parser())


def test_every_command_of_the_issue_exists() -> None:
    leaves = {" ".join(path) for path in COMMANDS}
    expected = {"serve", "demo", "invoke", "tenants create", "keys create", "keys revoke", "plans apply", "usage"}
    assert expected | {"verify"} <= leaves


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "quotaflow")
def test_help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*path, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: quotaflow {' '.join(path)}".rstrip())
    assert len(out.splitlines()) > 3


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2 and "COMMAND" in capsys.readouterr().err
