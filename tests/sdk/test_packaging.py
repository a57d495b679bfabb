"""The base install (httpx + pydantic) is enough for the SDK: nothing in it imports the server's dependencies."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.unit

BLOCK_SERVER_DEPENDENCIES = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = {"boto3", "botocore", "aws_lambda_powertools", "stripe", "moto"}
    BLOCKED |= {"openai", "anthropic", "google", "mistralai"}  # the provider SDKs: extras of their own

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    """
)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_SERVER_DEPENDENCIES + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_sdk_imports_and_works_without_the_server_dependencies() -> None:
    done = run_python(
        """
        import boto3  # proves the blocker works
        """
    )
    assert done.returncode != 0 and "No module named 'boto3'" in done.stderr
    done = run_python(
        """
        import sys
        from quotaflow import AsyncClient, Client, InsufficientQuota
        from quotaflow.sdk import Usage, calls, transport

        qf = Client(api_key="qf_sk_test", base_url="http://127.0.0.1:9")
        request = transport.build_request(qf.connection, calls.reserve("u1", {"tokens": 5}, 60), "key-1")
        assert request.headers["idempotency-key"] == "key-1"
        assert AsyncClient(api_key="qf_sk_test", base_url="http://127.0.0.1:9").connection.api_key == "qf_sk_test"
        assert InsufficientQuota("tokens", 5, 1).available == 1
        from quotaflow.sdk import ModelUsage, from_anthropic, from_gemini, from_mistral, from_openai
        assert from_openai({"prompt_tokens": 3, "completion_tokens": 2}, "gpt-4o") == ModelUsage("gpt-4o", 3, 2)
        assert all(callable(adapter) for adapter in (from_anthropic, from_gemini, from_mistral))
        loaded = sorted(m for m in ("boto3", "botocore", "aws_lambda_powertools", "moto") if m in sys.modules)
        print("loaded:", loaded)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout


def test_importing_the_package_does_not_load_the_sdk() -> None:
    """The Lambda functions import `quotaflow` too: httpx stays out of their cold start."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, quotaflow; print('httpx' in sys.modules, quotaflow.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.startswith("False "), done.stderr


def test_the_integrations_import_without_any_provider_package() -> None:
    """`quotaflow[openai]` and the other extras are needed only for the client being wrapped."""
    done = run_python(
        """
        import sys
        from quotaflow import Client
        from quotaflow.integrations import Backlog, meter

        qf = Client(api_key="qf_sk_test", base_url="http://127.0.0.1:9")
        try:
            meter(object(), qf, user_id="u1")
        except TypeError as refused:
            print("refused:", refused)
        providers = ("openai", "anthropic", "google", "boto3", "botocore")
        print("loaded:", sorted(m for m in providers if m in sys.modules))
        """
    )
    assert done.returncode == 0, done.stderr
    assert "refused: no quotaflow integration for builtins.object" in done.stdout
    assert "loaded: []" in done.stdout


def test_the_api_function_does_not_import_the_integrations() -> None:
    """The API function's cold start stays as it was: neither the integrations nor a provider SDK load with it."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, quotaflow.handlers.api; "
            "print(sorted(m for m in ('quotaflow.integrations', 'openai', 'anthropic', 'google.genai', 'httpx')"
            " if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
