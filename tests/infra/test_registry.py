"""The function registry, the bundler and the settings, without synthesizing anything."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from aws_cdk import App, DockerImage

from quotaflow_infra.build import SOURCE_ROOT
from quotaflow_infra.bundling import PIP_PLATFORM, PipBundling, bundle_fingerprint, lambda_python_version
from quotaflow_infra.functions import FUNCTIONS, Bundle, MissingHandlerModule, select_functions
from quotaflow_infra.settings import BundleMode, SettingsError, StackSettings

pytestmark = pytest.mark.infra


def test_a_handler_module_and_its_registry_line_go_live_together() -> None:
    for spec in FUNCTIONS:
        exists = (SOURCE_ROOT / spec.module_file).is_file()
        assert spec.enabled == exists, (
            f"{spec.name}: {spec.module_file} {'exists' if exists else 'is missing'}, "
            f"so set enabled={exists} in infra/quotaflow_infra/functions.py"
        )


def test_an_enabled_entry_without_its_module_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MissingHandlerModule, match="Api"):
        select_functions(FUNCTIONS, tmp_path)


def fake_project(root: Path) -> Path:
    (root / "functions" / "quotaflow").mkdir(parents=True)
    (root / "functions" / "quotaflow" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text("[project]\nname = 'quotaflow'\n")
    (root / "README.md").write_text("quotaflow\n")
    return root


class FakePip:
    """Stands in for pip: builds a wheel file on `pip wheel`, leaves a console script on `pip install`."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, command: Sequence[str]) -> None:
        self.commands.append(list(command))
        if "wheel" in command:
            wheel_dir = Path(command[command.index("--wheel-dir") + 1])
            wheel_dir.mkdir(parents=True, exist_ok=True)
            (wheel_dir / "quotaflow-0.1.0-py3-none-any.whl").write_text("")
        else:
            target = Path(command[command.index("--target") + 1])
            (target / "bin").mkdir(parents=True)
            (target / "quotaflow").mkdir()


def test_pip_bundling_installs_arm64_wheels_for_the_lambda_python_without_docker(tmp_path: Path) -> None:
    # Given a project and a bundler whose pip is recorded
    project, output = fake_project(tmp_path / "project"), tmp_path / "asset"
    output.mkdir()
    pip = FakePip()
    # When CDK asks it to bundle
    bundled = PipBundling(project, Bundle.SERVER, run=pip).try_bundle(str(output), image=DockerImage("unused"))
    # Then it did so itself (CDK does not fall back to Docker), from a copy of the project
    assert bundled is True
    build, install = pip.commands
    built_from = Path(build[-1])
    assert built_from != project
    assert not built_from.exists(), "the copy is a temporary directory, gone after the build"
    # with binary wheels for Lambda's platform and Python only, the server extra, nothing compiled for this Python
    for flag, value in [
        ("--platform", PIP_PLATFORM),
        ("--python-version", lambda_python_version()),
        ("--implementation", "cp"),
        ("--target", str(output)),
    ]:
        assert install[install.index(flag) + 1] == value
    assert {"--only-binary=:all:", "--no-compile"} <= set(install)
    assert install[-1].startswith("quotaflow[server] @ file://")
    # and without the console scripts pip leaves behind
    assert sorted(path.name for path in output.iterdir()) == ["quotaflow"]


def test_a_bundle_is_rebuilt_exactly_when_an_input_changes(tmp_path: Path) -> None:
    project = fake_project(tmp_path)
    source = project / "functions"
    first = bundle_fingerprint(project, source, Bundle.SERVER)
    (source / "quotaflow" / "__pycache__").mkdir()
    (source / "quotaflow" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert bundle_fingerprint(project, source, Bundle.SERVER) == first, "bytecode is not an input"
    assert bundle_fingerprint(project, source, Bundle.STRIPE) != first
    (project / "pyproject.toml").write_text("[project]\nname = 'quotaflow'\ndependencies = ['pydantic>=2.9']\n")
    second = bundle_fingerprint(project, source, Bundle.SERVER)
    assert second != first
    (source / "quotaflow" / "new.py").write_text("")
    assert bundle_fingerprint(project, source, Bundle.SERVER) != second


def settings_from(**context: str) -> StackSettings:
    return StackSettings.from_context(App(context=context).node)


def test_settings_default_to_a_dev_stage() -> None:
    settings = settings_from()
    assert (settings.stage, settings.table_name, settings.log_retention_days) == ("dev", "quotaflow-dev", 30)
    assert settings.bundling is BundleMode.PIP
    assert not settings.protected


def test_the_prod_stage_is_protected_and_keeps_logs_longer() -> None:
    settings = settings_from(stage="prod")
    assert settings.protected
    assert (settings.table_name, settings.log_retention_days) == ("quotaflow-prod", 365)
    assert settings_from(stage="prod", log_retention_days="731").log_retention_days == 731


@pytest.mark.parametrize(
    "context",
    [
        {"stage": "Prod"},
        {"stage": "a"},
        {"stage": "dev_1"},
        {"table_name": "no spaces"},
        {"log_retention_days": "31"},
        {"log_retention_days": "thirty"},
        {"bundling": "docker"},
    ],
)
def test_bad_context_fails_the_synth_before_anything_is_built(context: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        settings_from(**context)
