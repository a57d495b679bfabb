"""Drop-in metering for the provider clients an app already has:

    from quotaflow.integrations import meter
    client = meter(OpenAI(), qf, user_id="u1", meters={"tokens": "tokens", "cents": "cents"})

The result has the provider client's own interface and returns its own objects. Each call reserves its worst case
(prompt estimate + output cap), calls the provider only if the hold succeeded (`InsufficientQuota` otherwise), commits
what the provider reports, releases on a provider error; a stream closed early or broken commits what it produced,
marked estimated. No provider package is imported until a client of it is wrapped."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from quotaflow.integrations.backlog import Backlog
from quotaflow.integrations.core import OUTPUT_TOKENS_DEFAULT, AsyncMeter, Meter, OnUnavailable, Settings
from quotaflow.sdk.async_client import AsyncClient
from quotaflow.sdk.client import Client

METER_ROLES = frozenset({"tokens", "cents"})
DEFAULT_METERS = {"tokens": "tokens"}

__all__ = ["Backlog", "meter"]


def meter(
    client: Any,
    qf: Client | AsyncClient,
    *,
    user_id: str,
    meters: Mapping[str, str] | None = None,
    on_unavailable: OnUnavailable = "block",
    output_tokens_default: int = OUTPUT_TOKENS_DEFAULT,
    count_tokens: Callable[[str], int] | None = None,
    backlog: Backlog | None = None,
) -> Any:
    """Wrap an `openai.OpenAI`/`AsyncOpenAI`, `anthropic.Anthropic`/`AsyncAnthropic`, `google.genai.Client` or a boto3
    `bedrock-runtime` client. `meters`: `"tokens"` names the meter charged the call's total tokens, `"cents"` the
    meter charged its price (`from_model`: the server prices it); default `{"tokens": "tokens"}`.

    `on_unavailable`: when quotaflow cannot be reached, `"block"` raises and the provider is not called; `"allow"`
    makes the call and records its usage later, with the same Idempotency-Key, from `backlog` (a bounded queue; one
    is made per wrapped client unless given). `count_tokens` counts a prompt's tokens (a tokenizer); without it the
    prompt is estimated at one token per 3 bytes of its JSON."""
    settings = settings_for(qf, user_id, meters, on_unavailable, output_tokens_default, count_tokens, backlog)
    return _wrap(client, qf, settings)


def settings_for(
    qf: Client | AsyncClient,
    user_id: str,
    meters: Mapping[str, str] | None,
    on_unavailable: OnUnavailable,
    output_tokens_default: int,
    count_tokens: Callable[[str], int] | None,
    backlog: Backlog | None,
) -> Settings:
    """The checked settings of one wrapped client (or of the LiteLLM callback)."""
    roles = dict(DEFAULT_METERS if meters is None else meters)
    if not roles or not set(roles) <= METER_ROLES:
        raise ValueError(f"meters maps some of {sorted(METER_ROLES)} to meter names, not {roles!r}")
    if on_unavailable not in ("block", "allow"):
        raise ValueError(f"on_unavailable is 'block' or 'allow', not {on_unavailable!r}")
    return Settings(
        user_id=user_id,
        tokens_meter=roles.get("tokens"),
        cents_meter=roles.get("cents"),
        on_unavailable=on_unavailable,
        output_tokens_default=output_tokens_default,
        count_tokens=count_tokens,
        backlog=backlog if backlog is not None else Backlog(qf.connection),
    )


def _wrap(client: Any, qf: Client | AsyncClient, settings: Settings) -> Any:
    module = type(client).__module__
    is_async = type(client).__name__.startswith("Async")
    if module.startswith("openai"):
        from quotaflow.integrations import openai

        return openai.wrap(client, _async_meter(qf, settings) if is_async else _meter(qf, settings))
    if module.startswith("anthropic"):
        from quotaflow.integrations import anthropic

        return anthropic.wrap(client, _async_meter(qf, settings) if is_async else _meter(qf, settings))
    if module.startswith("google.genai"):
        from quotaflow.integrations import google

        return google.wrap(client, _meter(qf, settings), _async_meter(qf, settings))
    if _is_bedrock_runtime(client):
        from quotaflow.integrations import bedrock

        return bedrock.wrap(client, _meter(qf, settings))
    raise TypeError(f"no quotaflow integration for {type(client).__module__}.{type(client).__name__}")


def _is_bedrock_runtime(client: Any) -> bool:
    service_model = getattr(getattr(client, "meta", None), "service_model", None)
    return getattr(service_model, "service_name", None) == "bedrock-runtime"


def _meter(qf: Client | AsyncClient, settings: Settings) -> Meter:
    if isinstance(qf, Client):
        return Meter(qf, settings)
    return Meter(Client(qf.connection.api_key, qf.connection.base_url, retry=qf.retry), settings)


def _async_meter(qf: Client | AsyncClient, settings: Settings) -> AsyncMeter:
    if isinstance(qf, AsyncClient):
        return AsyncMeter(qf, settings)
    return AsyncMeter(AsyncClient(qf.connection.api_key, qf.connection.base_url, retry=qf.retry), settings)
