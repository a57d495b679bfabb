"""`quotaflow prices import FILE --markup N` against a real `quotaflow serve`: a cost map larger than the API's body
limit goes in chunks, each under it, its float-trap prices exact, and a second run changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quotaflow.cli.main import main
from quotaflow.cli.prices import BODY_BYTES_MAX, chunks, read_catalog
from quotaflow.local.server import LocalServer
from quotaflow.sdk import Client, TenantCreated

pytestmark = pytest.mark.unit
MODELS = 60
# prices whose USD -> cents-per-million conversion a float gets wrong (1.5e-07 * 100 * 10^6 = 14.999999999999998)
TRAP_PRICES = ["1.5e-07", "2.5e-06", "1.2e-07", "5.7e-07", "7.5e-08"]


def write_cost_map(path: Path) -> None:
    """Entries padded with the non-price fields the public map carries, so the file is several request bodies long."""
    entries = [
        f'"model-{n:04d}": {{"max_tokens": 128000, "input_cost_per_token": {TRAP_PRICES[n % len(TRAP_PRICES)]}, '
        f'"output_cost_per_token": 6e-07, "litellm_provider": "openai", "mode": "chat", '
        f'"supported_regions": {json.dumps(["region-" + str(r) for r in range(12)])}, '
        f'"source": "https://example.com/pricing/{"x" * 900}"}}'
        for n in range(MODELS)
    ]
    path.write_text("{" + ",\n".join(entries) + "}")


@pytest.fixture
def cost_map(tmp_path: Path) -> Path:
    path = tmp_path / "model_prices_and_context_window.json"
    write_cost_map(path)
    assert path.stat().st_size > BODY_BYTES_MAX
    return path


def test_chunks_stay_under_the_body_limit_and_keep_every_digit(cost_map: Path) -> None:
    bodies = list(chunks(read_catalog(cost_map)))
    assert len(bodies) >= 2
    assert all(len(body) < BODY_BYTES_MAX for body in bodies)
    models = [model for body in bodies for model in json.loads(body)]
    assert models == [f"model-{n:04d}" for n in range(MODELS)]
    assert b"1.5E-7" in bodies[0] and b"max_tokens" not in bodies[0]


def test_import_sends_the_map_in_chunks_with_progress_and_is_idempotent(
    server: LocalServer,
    tenant: TenantCreated,
    qf: Client,
    cost_map: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags = ["--url", server.url, "--api-key", tenant.secret_key]
    assert main(["prices", "import", str(cost_map), "--markup", "40", *flags]) == 0
    captured = capsys.readouterr()
    progress = [line for line in captured.err.splitlines() if line.startswith("chunk ")]
    assert len(progress) >= 2 and progress[-1].startswith(f"chunk {len(progress)}/{len(progress)}:")
    assert captured.out.startswith(f"{MODELS} prices imported, 0 unchanged, 0 skipped")

    prices = {price.model: price for price in qf.list_prices()}
    assert len(prices) == MODELS
    expected_cents = {"1.5e-07": 15, "2.5e-06": 250, "1.2e-07": 12, "5.7e-07": 57}
    for n in range(MODELS):
        price = prices[f"model-{n:04d}"]
        trap = TRAP_PRICES[n % len(TRAP_PRICES)]
        if trap == "7.5e-08":
            assert (price.input_per_million_cents, price.input_per_million_millicents) == (None, 7500)
        else:
            assert price.input_per_million_cents == expected_cents[trap]
        assert (price.output_per_million_cents, price.markup_percent, price.version) == (60, 40, 1)

    assert main(["prices", "import", str(cost_map), "--markup", "40", "--json", *flags]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again == {"imported": MODELS, "unchanged": 0, "skipped": []}  # replayed: the same keys, the same answers
    assert main(["prices", "import", str(cost_map), "--markup", "41", "--json", *flags]) == 0
    assert json.loads(capsys.readouterr().out)["imported"] == MODELS


def test_a_file_that_is_no_cost_map_fails_before_any_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "prices.json"
    path.write_text('{"m": {"input_cost_per_token": NaN}}')
    assert main(["prices", "import", str(path), "--url", "http://127.0.0.1:9", "--api-key", "qf_sk_x"]) == 2
    assert "not JSON" in capsys.readouterr().err
