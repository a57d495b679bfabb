"""LiteLLM: a `CustomLogger` for the LiteLLM proxy that reserves in its pre-call hook and commits or releases from
its success and failure events, so apps behind LiteLLM get the same atomic reserve -> call -> commit.

    # proxy config.yaml:  litellm_settings: {callbacks: ["my_module.quotaflow_callback"]}
    quotaflow_callback = QuotaflowCallback(AsyncClient(), meters={"tokens": "tokens", "cents": "cents"})

The user is the request's `user` (OpenAI's end-user field), else the key's end user or user id. A refused hold raises
`InsufficientQuota` from the pre-call hook: the proxy rejects the request before any provider sees it. LiteLLM's
responses carry OpenAI-shaped usage (`prompt_tokens_details.cached_tokens` and `.cache_write_tokens` for every
provider), read with `from_openai`. Importing this module imports litellm; nothing else in quotaflow does."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from quotaflow.integrations import settings_for
from quotaflow.integrations.core import OUTPUT_TOKENS_DEFAULT, AsyncMeter, Hold, OnUnavailable
from quotaflow.sdk.async_client import AsyncClient
from quotaflow.sdk.providers import from_openai

HOLDS_MAX = 10_000  # calls in flight at once; past it the oldest hold is left to expire (its TTL refunds it)
PROMPT_KEYS = ("messages", "input", "tools")


class QuotaflowCallback(CustomLogger):
    def __init__(
        self,
        qf: AsyncClient,
        *,
        meters: Mapping[str, str] | None = None,
        on_unavailable: OnUnavailable = "block",
        output_tokens_default: int = OUTPUT_TOKENS_DEFAULT,
        count_tokens: Callable[[str], int] | None = None,
    ) -> None:
        super().__init__()
        self.qf = qf
        self.settings = settings_for(qf, "-", meters, on_unavailable, output_tokens_default, count_tokens, None)
        self.holds: dict[str, tuple[AsyncMeter, Hold]] = {}

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any]:
        user_id = data.get("user") or getattr(user_api_key_dict, "end_user_id", None)
        user_id = user_id or getattr(user_api_key_dict, "user_id", None)
        if not user_id:
            raise ValueError("quotaflow: the request names no user (`user`) and its key has none")
        meter = AsyncMeter(self.qf, dataclasses.replace(self.settings, user_id=str(user_id)))
        cap = data.get("max_completion_tokens") or data.get("max_tokens")
        prompt = {key: data[key] for key in PROMPT_KEYS if key in data}
        request = meter.settings.request(str(data["model"]), prompt, cap if isinstance(cap, int) else None)
        hold = await meter.hold(request)
        call_id = str(data.setdefault("litellm_call_id", str(uuid.uuid4())))
        if len(self.holds) >= HOLDS_MAX:
            self.holds.pop(next(iter(self.holds)))
        self.holds[call_id] = (meter, hold)
        return data

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        call_id = str(kwargs.get("litellm_call_id"))
        held = self.holds.get(call_id)
        if held is None:
            return  # not a call this callback held (another route, or no pre-call hook)
        meter, hold = held
        usage, estimated = hold.reported_usage(response_obj, lambda r: from_openai(r.usage, hold.request.model))
        try:
            await meter.commit(hold, usage, estimated)
        finally:
            self.holds.pop(call_id, None)  # held until settled: `holds` lists the calls still in flight

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        call_id = str(kwargs.get("litellm_call_id"))
        held = self.holds.get(call_id)
        if held is not None:
            try:
                await held[0].release(held[1])
            finally:
                self.holds.pop(call_id, None)
