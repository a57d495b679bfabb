"""Building the CDK app: the one place that picks the functions, reads the context and registers cdk-nag, shared by
`infra/app.py` (what `cdk synth` and `cdk deploy` run) and the infra tests."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from quotaflow_infra.bundling import BundleCodes
from quotaflow_infra.functions import FUNCTIONS, FunctionSpec, select_functions
from quotaflow_infra.settings import StackSettings
from quotaflow_infra.stack import QuotaflowStack

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOT = PROJECT_ROOT / "functions"
CDK_JSON = PROJECT_ROOT / "cdk.json"
STACK_ID = "QuotaflowStack"


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's context (feature flags, defaults). The CLI passes it to the app itself; reading it here too makes
    `python infra/app.py` synthesize the same template as `cdk synth` (CLI context still wins over it)."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text()).get("context", {})
    return context


def build_app(
    context: Mapping[str, Any] | None = None,
    functions: Sequence[FunctionSpec] | None = None,
    outdir: str | None = None,
) -> tuple[App, QuotaflowStack]:
    """The app with its one stack and the AwsSolutions checks, which fail `app.synth()` on any finding not
    acknowledged in the code. `functions` defaults to the registry's enabled entries, checked against the sources."""
    app = App(context={**cdk_json_context(), **(context or {})}, outdir=outdir)
    settings = StackSettings.from_context(app.node)
    specs = select_functions(FUNCTIONS, SOURCE_ROOT) if functions is None else tuple(functions)
    codes = BundleCodes(settings.bundling, PROJECT_ROOT, SOURCE_ROOT)
    stack = QuotaflowStack(app, STACK_ID, settings=settings, functions=specs, codes=codes)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app, stack
