"""`npx cdk synth` as a user runs it: the pinned CLI from infra/node_modules, cdk.json's app, no network."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from quotaflow_infra.build import SOURCE_ROOT, STACK_ID
from quotaflow_infra.functions import FUNCTIONS, select_functions
from tests.infra.conftest import CDK_ENV, INFRA_DIR, REPO_ROOT, STUB

pytestmark = pytest.mark.infra

CLI_SYNTH_TIMEOUT_S = 120
NO_NETWORK = ["unshare", "--net", "--map-root-user"]


def without_network() -> list[str]:
    """A prefix that runs a command in a network namespace with no interfaces, where the kernel lets an
    unprivileged user make one (proof that nothing reaches out); elsewhere the CLI's own switches
    (--no-notices, CDK_DISABLE_VERSION_CHECK, CDK_DISABLE_CLI_TELEMETRY) are what keep it offline."""
    if shutil.which(NO_NETWORK[0]) is None:
        return []
    probe = subprocess.run([*NO_NETWORK, "true"], capture_output=True, check=False)
    return NO_NETWORK if probe.returncode == 0 else []


def test_npx_cdk_synth_works_offline_and_ships_only_existing_handlers(tmp_path: Path) -> None:
    assert (INFRA_DIR / "node_modules" / ".bin" / "cdk").exists(), "install the CLI first: npm ci --prefix infra"
    context = [arg for key, value in STUB.items() for arg in ("--context", f"{key}={value}")]
    command = ["npx", "--prefix", "infra", "--no-install", "cdk", "synth", "--no-notices", "--quiet", *context]
    result = subprocess.run(
        [*without_network(), *command, "--output", str(tmp_path)],
        cwd=REPO_ROOT,
        env={**os.environ, **CDK_ENV},
        capture_output=True,
        text=True,
        timeout=CLI_SYNTH_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    template = json.loads((tmp_path / f"{STACK_ID}.template.json").read_text())
    handlers = {
        resource["Properties"]["Handler"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    assert handlers == {spec.handler for spec in select_functions(FUNCTIONS, SOURCE_ROOT)}
    assert "quotaflow.handlers.api.handler" in handlers
