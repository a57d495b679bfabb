"""Offline checks on the synthesized template: cdk-nag's AwsSolutions pack and cfn-lint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import Validations
from aws_cdk import aws_sqs as sqs

from quotaflow_infra.build import build_app
from quotaflow_infra.stack import STUB_BUNDLE_WARNING
from tests.infra.conftest import STUB, Synth

pytestmark = pytest.mark.infra

# W3005 flags a DependsOn that a GetAtt already implies. CDK adds such DependsOn on purpose (a function waits for
# its role's policy, not only the role), so the warning is noise on every CDK template; nothing else is ignored.
CFN_LINT_IGNORED = "W3005"
ACKNOWLEDGMENT_REASON_CHARS_MIN = 40


def acknowledgments(synth: Synth) -> dict[str, dict[str, str]]:
    """Every acknowledgment in the app, by construct path: {rule id: reason}."""
    found: dict[str, dict[str, str]] = {}
    for construct in synth.stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                found.setdefault(construct.node.path, {}).update(entry.data)
    return found


def test_aws_solutions_checks_find_nothing_unacknowledged(wired: Synth) -> None:
    reports = wired.validation_report()["pluginReports"]
    findings = [
        (violation["ruleName"], [each["constructPath"] for each in violation["violatingConstructs"]])
        for report in reports
        for violation in report["violations"]
        if violation["ruleName"] != f"Annotation::{STUB_BUNDLE_WARNING}"
    ]
    assert findings == []
    assert [report["pluginName"] for report in reports if report["conclusion"] != "success"] == []
    assert wired.error is None


def test_the_checks_do_stop_a_synth_with_a_finding(tmp_path: Path) -> None:
    # Given the app as build_app makes it, plus a queue that accepts unencrypted transport
    app, stack = build_app(STUB, functions=(), outdir=str(tmp_path))
    sqs.Queue(stack, "Careless", enforce_ssl=False)
    # When it is synthesized, then AwsSolutions refuses it
    with pytest.raises(RuntimeError, match="AwsSolutions-SQS4"):
        app.synth()


def test_every_acknowledgment_gives_its_reason(wired: Synth) -> None:
    found = acknowledgments(wired)
    assert found, "the stack acknowledges findings; none recorded means the acknowledgments are not being read"
    for path, rules in found.items():
        for rule, reason in rules.items():
            assert rule.removeprefix("Annotation::").startswith("AwsSolutions-"), (path, rule)
            assert len(reason) >= ACKNOWLEDGMENT_REASON_CHARS_MIN, (path, rule, reason)


def test_cfn_lint_passes(wired: Synth) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), "--ignore-checks", CFN_LINT_IGNORED, "--", str(wired.template_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
