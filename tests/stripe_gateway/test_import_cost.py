"""Importing the package must not import the SDK: the functions that never call Stripe should not pay for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_the_package_leaves_stripe_and_its_http_stack_unimported() -> None:
    loaded = run(
        "import sys, quotaflow.stripe_gateway\n"
        "print(sorted(m for m in ('stripe', 'requests', 'httpx', 'urllib3') if m in sys.modules))"
    )

    assert loaded == "[]"


def test_building_a_gateway_imports_stripe() -> None:
    loaded = run(
        "import sys\n"
        "from quotaflow.stripe_gateway import StripeGateway\n"
        "StripeGateway('sk_test_x', api_base='http://127.0.0.1:9')\n"
        "print('stripe' in sys.modules)"
    )

    assert loaded == "True"


def test_verifying_a_webhook_imports_stripe_only_when_called() -> None:
    loaded = run(
        "import sys\n"
        "from quotaflow.stripe_gateway import WebhookSignatureInvalid, verify_webhook\n"
        "before = 'stripe' in sys.modules\n"
        "try:\n"
        "    verify_webhook(b'{}', 't=1,v1=00', ['whsec_x'], now_epoch_s=1)\n"
        "except WebhookSignatureInvalid:\n"
        "    pass\n"
        "print(before, 'stripe' in sys.modules)"
    )

    assert loaded == "False True"


def test_preload_imports_stripe_up_front() -> None:
    loaded = run("import sys\nfrom quotaflow.stripe_gateway import preload\npreload()\nprint('stripe' in sys.modules)")

    assert loaded == "True"
