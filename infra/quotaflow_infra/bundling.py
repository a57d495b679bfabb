"""Function code and dependencies, packaged without Docker.

`pip` mode (the default, what `cdk deploy` ships): CDK local bundling (`ILocalBundling`) builds the quotaflow
wheel, then `pip install`s `quotaflow[<extra>]` into the asset directory for the Lambda platform —
`--platform manylinux2014_aarch64 --only-binary=:all:` for the runtime's CPython — so compiled wheels
(pydantic-core) match arm64 Lambda whatever machine synthesizes. It needs PyPI, takes 5-15 s per bundle here,
and is cached in `cdk.out` under a hash of what goes in (sources, pyproject.toml, extra, platform, Python
version): a second synth with nothing changed does no pip work.
Why not a prebuilt asset directory: it would add a build step that can go stale against the sources and that
every deploy must remember; local bundling keeps `cdk deploy` one command and rebuilds exactly when an input changes.

`stub` mode (tests, `-c bundling=stub`): the quotaflow sources alone, no dependencies. The template is the same
apart from asset hashes; the code would not import in Lambda, so the app flags the stack as not deployable."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from quotaflow_infra.functions import Bundle
from quotaflow_infra.settings import BundleMode

LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
LAMBDA_ARCHITECTURE = lambda_.Architecture.ARM_64
PIP_PLATFORM = "manylinux2014_aarch64"  # glibc 2.17 wheels for arm64; Amazon Linux 2023 runs them
PACKAGE_NAME = "quotaflow"
# Not shipped: build leftovers, bytecode of the synthesizing interpreter (useless to another Python version).
SOURCE_EXCLUDES = ("*.egg-info", "__pycache__", "*.pyc")
# What `pip wheel` needs to build quotaflow: pyproject.toml names README.md as the long description.
WHEEL_INPUTS = ("pyproject.toml", "README.md", "functions")
# Installed by pip but useless in Lambda: console scripts whose shebang points at the build machine's Python.
BUNDLE_PRUNE_DIRS = ("bin",)

Runner = Callable[[Sequence[str]], None]


def lambda_python_version() -> str:
    """'3.14' for python3.14: pip's --python-version follows the runtime, so the two cannot drift apart."""
    return LAMBDA_RUNTIME.name.removeprefix("python")


def run_checked(command: Sequence[str]) -> None:
    subprocess.run(command, check=True)  # noqa: S603 (argument list built here, no shell)


@jsii.implements(ILocalBundling)
class PipBundling:
    """Builds one bundle: the quotaflow wheel plus `quotaflow[<extra>]`'s dependencies for one platform and
    CPython version — the Lambda runtime's unless told otherwise (the tests build for the machine they run on,
    with the same code, and run each function from its bundle)."""

    def __init__(
        self,
        project_root: Path,
        extra: Bundle,
        run: Runner = run_checked,
        *,
        pip_platform: str = PIP_PLATFORM,
        python_version: str | None = None,
    ) -> None:
        self.project_root = project_root
        self.extra = extra
        self.run = run
        self.pip_platform = pip_platform
        self.python_version = python_version or lambda_python_version()

    def build_command(self, project_copy: Path, wheel_dir: Path) -> list[str]:
        return [*self._pip(), "wheel", "--no-deps", "--wheel-dir", str(wheel_dir), str(project_copy)]

    def install_command(self, wheel: Path, output_dir: str) -> list[str]:
        target = ["--target", output_dir, "--platform", self.pip_platform, "--implementation", "cp"]
        python = ["--python-version", self.python_version, "--only-binary=:all:", "--no-compile"]
        return [*self._pip(), "install", *target, *python, f"{PACKAGE_NAME}[{self.extra}] @ {wheel.as_uri()}"]

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: Any) -> bool:
        # `image` is unused: this never falls back to Docker. A failure raises, and the synth stops with it.
        self.build(output_dir)
        return True

    def build(self, output_dir: str) -> None:
        with TemporaryDirectory(prefix="quotaflow-wheel-") as tmp:
            # setuptools builds in the tree it is given (build/, *.egg-info): give it a copy, so a synth never
            # writes into the repo and a stale build/lib can never put a deleted module back into a bundle.
            project_copy, wheel_dir = Path(tmp, "project"), Path(tmp, "wheels")
            copy_wheel_inputs(self.project_root, project_copy)
            self.run(self.build_command(project_copy, wheel_dir))
            wheels = sorted(wheel_dir.glob(f"{PACKAGE_NAME}-*.whl"))
            if len(wheels) != 1:
                raise RuntimeError(f"expected one {PACKAGE_NAME} wheel in {wheel_dir}, found {wheels}")
            self.run(self.install_command(wheels[0], output_dir))
        for name in BUNDLE_PRUNE_DIRS:
            shutil.rmtree(Path(output_dir) / name, ignore_errors=True)

    @staticmethod
    def _pip() -> list[str]:
        return [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]


def copy_wheel_inputs(project_root: Path, destination: Path) -> None:
    ignore = shutil.ignore_patterns(*SOURCE_EXCLUDES)
    for name in WHEEL_INPUTS:
        source = project_root / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        else:
            destination.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def _source_files(package_dir: Path) -> Iterator[Path]:
    for path in sorted(package_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield path


def bundle_fingerprint(project_root: Path, source_root: Path, extra: Bundle) -> str:
    """Everything that decides a bundle's content. Dependency ranges resolve at bundle time, so pin them
    (pyproject.toml) for byte-identical rebuilds; this hash changes whenever a range does."""
    digest = hashlib.sha256()
    for part in (extra.value, PIP_PLATFORM, lambda_python_version()):
        digest.update(part.encode() + b"\0")
    for path in [project_root / "pyproject.toml", *_source_files(source_root / PACKAGE_NAME)]:
        digest.update(str(path.relative_to(project_root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class BundleCodes:
    """One `lambda_.Code` per bundle, created on first use and shared: functions with the same bundle share one
    asset (one build, one upload), and a bundle no enabled function uses is never built."""

    def __init__(self, mode: BundleMode, project_root: Path, source_root: Path) -> None:
        self.mode = mode
        self.project_root = project_root
        self.source_root = source_root
        self._codes: dict[Bundle, lambda_.Code] = {}

    def code(self, bundle: Bundle) -> lambda_.Code:
        if bundle not in self._codes:
            self._codes[bundle] = self._make(bundle)
        return self._codes[bundle]

    def _make(self, bundle: Bundle) -> lambda_.Code:
        if self.mode is BundleMode.STUB:
            return lambda_.Code.from_asset(str(self.source_root), exclude=list(SOURCE_EXCLUDES))
        return lambda_.Code.from_asset(
            str(self.source_root),
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=bundle_fingerprint(self.project_root, self.source_root, bundle),
            bundling=BundlingOptions(image=LAMBDA_RUNTIME.bundling_image, local=PipBundling(self.project_root, bundle)),
        )
