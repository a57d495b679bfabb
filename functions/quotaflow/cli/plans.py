"""`quotaflow plans apply plans.yaml`: plans as code. Shows what would change against the server, then PUTs only
the plans that differ, so applying the same file twice changes nothing (plan versions stay put).

The file:

    plans:
      plan_paygo:
        name: Pay as you go
        limits:
          tokens: {label: Tokens, quota: 0, period: none, enforcement: hard}
        features: {gpt-4o: true, max_context_tokens: 128000}
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from quotaflow.cli.output import CommandFailed, Subparsers, paragraphs, print_json
from quotaflow.cli.remote import connect, connection_flags
from quotaflow.sdk import Client, models

PLANS_PER_FILE_MAX = 200
Action = Literal["create", "update", "unchanged"]
ABSENT: Any = object()


@dataclass(frozen=True)
class Change:
    path: str  # "limits.tokens.quota"
    before: Any  # ABSENT when the field is new
    after: Any  # ABSENT when the field goes away

    def describe(self) -> str:
        if self.before is ABSENT:
            return f"{self.path}: {_show(self.after)}"
        return f"{self.path}: {_show(self.before)} -> {_show(self.after)}"

    def as_json(self) -> dict[str, Any]:
        values = {"before": self.before, "after": self.after}
        return {"path": self.path, **{name: v for name, v in values.items() if v is not ABSENT}}


@dataclass(frozen=True)
class PlanDiff:
    plan_id: str
    action: Action
    changes: list[Change] = field(default_factory=list)


def _show(value: Any) -> str:
    return "(absent)" if value is ABSENT else json.dumps(value)


def load_plans(path: Path) -> dict[str, models.PlanSpec]:
    """The file's plans, validated as `PUT /v1/plans/{plan_id}` bodies (server defaults filled in)."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise CommandFailed(f"{path}: {error}") from None
    plans = document.get("plans") if isinstance(document, dict) else None
    if not isinstance(plans, dict) or not plans:
        raise CommandFailed(f"{path}: expected `plans:` mapping each plan_id to its name and limits")
    if len(plans) > PLANS_PER_FILE_MAX:
        raise CommandFailed(f"{path}: {len(plans)} plans; at most {PLANS_PER_FILE_MAX} per file")
    specs: dict[str, models.PlanSpec] = {}
    for plan_id, body in plans.items():
        try:
            specs[str(plan_id)] = models.PlanSpec.model_validate(body)
        except ValidationError as error:
            raise CommandFailed(f"{path}: plan {plan_id}: {error}") from None
    return specs


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted paths to their leaves: {"limits": {"tokens": {"quota": 5}}} -> limits.tokens.quota."""
    if not isinstance(value, dict):
        return {prefix: value}
    leaves: dict[str, Any] = {}
    for name, inner in value.items():
        leaves.update(flatten(inner, f"{prefix}.{name}" if prefix else str(name)))
    return leaves


def plan_changes(before: models.PlanSpec | None, after: models.PlanSpec) -> list[Change]:
    old = flatten(before.model_dump(mode="json")) if before is not None else {}
    new = flatten(after.model_dump(mode="json"))
    paths = sorted(set(old) | set(new))
    changes = [Change(path, old.get(path, ABSENT), new.get(path, ABSENT)) for path in paths]
    return [change for change in changes if change.before != change.after]


def diff_plans(current: dict[str, models.PlanSpec], desired: dict[str, models.PlanSpec]) -> list[PlanDiff]:
    diffs: list[PlanDiff] = []
    for plan_id, spec in desired.items():
        changes = plan_changes(current.get(plan_id), spec)
        action: Action = "create" if plan_id not in current else ("update" if changes else "unchanged")
        diffs.append(PlanDiff(plan_id, action, changes))
    return diffs


def apply_plans(qf: Client, desired: dict[str, models.PlanSpec], *, dry_run: bool) -> tuple[list[PlanDiff], list[str]]:
    """The diff per plan in the file, and the plans only the server has (left as they are)."""
    current = {plan.plan_id: plan.spec() for plan in qf.list_plans()}
    diffs = diff_plans(current, desired)
    for diff in diffs:
        if diff.action != "unchanged" and not dry_run:
            spec = desired[diff.plan_id]
            qf.put_plan(
                diff.plan_id,
                spec.name,
                spec.limits,
                stripe=spec.stripe,
                features=spec.features,
                period_anchoring=spec.period_anchoring,
            )
    return diffs, sorted(set(current) - set(desired))


MARKS: dict[Action, str] = {"create": "+", "update": "~", "unchanged": "="}
DONE: dict[Action, tuple[str, str]] = {  # (applied, dry run)
    "create": ("created", "to create"),
    "update": ("updated", "to update"),
    "unchanged": ("unchanged", "unchanged"),
}


def _print_diff(diffs: list[PlanDiff], server_only: list[str], path: Path, dry_run: bool) -> None:
    for diff in diffs:
        print(f"{MARKS[diff.action]} {diff.plan_id}" + (" (unchanged)" if diff.action == "unchanged" else ""))
        for change in diff.changes:
            print(f"    {change.describe()}")
    for plan_id in server_only:
        print(f"? {plan_id} (on the server, not in {path.name}: left as it is)")
    counts = [f"{sum(d.action == action for d in diffs)} {DONE[action][dry_run]}" for action in MARKS]
    print(("dry run, nothing changed: " if dry_run else "plans: ") + ", ".join(counts))


def _apply(args: argparse.Namespace) -> int:
    desired = load_plans(Path(args.file))
    with connect(args) as qf:
        diffs, server_only = apply_plans(qf, desired, dry_run=args.dry_run)
    if args.json:
        plans = [{"plan_id": d.plan_id, "action": d.action, "changes": [c.as_json() for c in d.changes]} for d in diffs]
        print_json({"dry_run": args.dry_run, "plans": plans, "server_only": server_only})
    else:
        _print_diff(diffs, server_only, Path(args.file), args.dry_run)
    return 0


def add_commands(commands: Subparsers) -> None:
    plans = commands.add_parser(
        "plans", help="plans as code", description="Keep plans in a file under version control."
    )
    plan_commands = plans.add_subparsers(dest="plans_command", required=True, metavar="COMMAND")
    apply = plan_commands.add_parser(
        "apply",
        parents=[connection_flags(admin=False)],
        help="make the server's plans match a YAML file, showing the diff",
        description=paragraphs(
            "Compare each plan in FILE with the server's and PUT only those that differ; applying the same file "
            "again changes nothing. Plans on the server but not in the file are listed and left alone."
        ),
        epilog="FILE format:\n  plans:\n    plan_paygo:\n      name: Pay as you go\n      limits:\n"
        "        tokens: {label: Tokens, quota: 0, period: none, enforcement: hard}\n"
        "      features: {gpt-4o: true, max_context_tokens: 128000}\n"
        "period: day|week|month|none (default month); enforcement: hard|soft|none (default hard)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    apply.add_argument("file", metavar="FILE", help="YAML (or JSON) file with a `plans:` mapping")
    apply.add_argument("--dry-run", action="store_true", help="show the diff, change nothing")
    apply.set_defaults(run=_apply)
