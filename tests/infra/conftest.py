"""The CDK app, synthesized once per test session (a synth costs seconds), offline, with the stub bundle: the
template is the deployable one apart from asset hashes, without a minute of pip per bundle."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
CDK_ENV = {
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "CDK_DISABLE_CLI_TELEMETRY": "true",
    "CDK_DISABLE_VERSION_CHECK": "true",
}
# jsii reads these when its Node process starts, at the first aws_cdk import: before it.
os.environ.update(CDK_ENV)
sys.path.insert(0, str(INFRA_DIR))  # as `python infra/app.py` has it: the app's package sits next to the script

from aws_cdk import App, Stack  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from quotaflow_infra.build import build_app  # noqa: E402
from quotaflow_infra.functions import FUNCTIONS, FunctionSpec, wire_all  # noqa: E402
from quotaflow_infra.settings import BundleMode, ContextKey  # noqa: E402

STUB = {ContextKey.BUNDLING.value: BundleMode.STUB.value}


@dataclass
class Synth:
    """One synthesized app: its template, the cloud assembly directory, and the synth error if validation failed."""

    app: App
    stack: Stack
    outdir: Path
    template: Template
    error: str | None

    @property
    def template_file(self) -> Path:
        return self.outdir / f"{self.stack.artifact_id}.template.json"

    def validation_report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads((self.outdir / "validation-report.json").read_text())
        return report

    def resources(self, resource_type: str) -> dict[str, Any]:
        return dict(self.template.find_resources(resource_type))


def synthesize(outdir: Path, context: dict[str, str], functions: tuple[FunctionSpec, ...]) -> Synth:
    app, stack = build_app(context, functions, outdir=str(outdir))
    error = None
    try:
        app.synth()  # runs the AwsSolutions checks registered by build_app; raises on any unacknowledged finding
    except RuntimeError as failure:
        error = str(failure)
    # The template is written before the validation plugins run, so it exists either way.
    template = Template.from_json(json.loads((outdir / f"{stack.artifact_id}.template.json").read_text()))
    return Synth(app, stack, outdir, template, error)


@pytest.fixture(scope="session")
def wired(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Every registry entry enabled, including the planned ones: their wiring is checked before their handlers exist."""
    return synthesize(tmp_path_factory.mktemp("cdk-wired"), STUB, wire_all(FUNCTIONS))


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The protected stage, with the one function that exists: only stage-dependent settings are checked on it."""
    api_only = tuple(spec for spec in FUNCTIONS if spec.name == "Api")
    return synthesize(tmp_path_factory.mktemp("cdk-prod"), {**STUB, ContextKey.STAGE.value: "prod"}, api_only)
