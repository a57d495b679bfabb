"""A loopback server speaking the wire protocols of four model providers, for their real SDK clients:

- OpenAI: `POST /v1/chat/completions` and `POST /v1/responses`, JSON or SSE (`stream: true`; chat sends its usage
  chunk only when asked with `stream_options.include_usage`), then `data: [DONE]`.
- Anthropic: `POST /v1/messages`, JSON or SSE events `message_start` ... `content_block_delta` ... `message_delta`
  (usage) ... `message_stop`.
- Gemini: `POST /v1/models/{model}:generateContent` (or `/v1beta/...`) and `:streamGenerateContent?alt=sse` (SSE of
  responses).
- Bedrock: `POST /model/{modelId}/converse` (JSON) and `/converse-stream` (AWS's binary event-stream framing:
  prelude with total and header lengths and its CRC32, string headers, JSON payload, message CRC32).

Streams go out with chunked transfer encoding, one event per chunk; `break_streams_after` ends a stream after that
many events by closing the connection without the final chunk (a broken stream, as a dropped connection looks).
Every request is recorded in `seen`; `fail_with` answers the next requests with a provider error instead."""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

WORDS = ["Metering ", "is ", "one ", "line ", "now."]  # the text every stub answers, streamed word by word
TEXT = "".join(WORDS)
OPENAI_CHAT_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 200, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 100},
}
OPENAI_RESPONSES_USAGE = {
    "input_tokens": 900,
    "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 0},
    "output_tokens": 250,
    "output_tokens_details": {"reasoning_tokens": 50},
    "total_tokens": 1150,
}
ANTHROPIC_START_USAGE = {
    "input_tokens": 40,
    "cache_creation_input_tokens": 3000,
    "cache_read_input_tokens": 500,
    "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    "output_tokens": 1,
}
ANTHROPIC_FINAL_OUTPUT_TOKENS = 420
GEMINI_USAGE = {"promptTokenCount": 700, "candidatesTokenCount": 90, "thoughtsTokenCount": 30, "totalTokenCount": 820}
BEDROCK_USAGE = {
    "inputTokens": 600,
    "outputTokens": 80,
    "totalTokens": 1180,
    "cacheReadInputTokens": 300,
    "cacheWriteInputTokens": 200,
    "cacheDetails": [{"ttl": "1h", "inputTokens": 150}, {"ttl": "5m", "inputTokens": 50}],
}


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    body: dict[str, Any]


@dataclass(frozen=True)
class ProviderError:
    status: int
    body: dict[str, Any]


@dataclass
class ProviderStub:
    seen: list[SeenRequest] = field(default_factory=list)
    errors: list[ProviderError] = field(default_factory=list)
    break_streams_after: int | None = None

    def __post_init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 64
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_with(self, status: int, body: dict[str, Any]) -> None:
        self.errors.append(ProviderError(status, body))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- what each provider answers ---------------------------------------------------------------------------


def openai_chat(body: dict[str, Any]) -> dict[str, Any] | Iterator[bytes]:
    base = {"id": "chatcmpl-1", "created": 1764547200, "model": body["model"]}
    if not body.get("stream"):
        message = {"role": "assistant", "content": TEXT}
        return {
            **base,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": OPENAI_CHAT_USAGE,
        }

    def events() -> Iterator[bytes]:
        for n, word in enumerate(WORDS):
            finish = "stop" if n == len(WORDS) - 1 else None
            choice = {"index": 0, "delta": {"content": word}, "finish_reason": finish}
            yield _sse({**base, "object": "chat.completion.chunk", "choices": [choice]})
        if (body.get("stream_options") or {}).get("include_usage"):
            yield _sse({**base, "object": "chat.completion.chunk", "choices": [], "usage": OPENAI_CHAT_USAGE})
        yield b"data: [DONE]\n\n"

    return events()


def openai_responses(body: dict[str, Any]) -> dict[str, Any] | Iterator[bytes]:
    message = {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": TEXT, "annotations": []}],
    }
    response = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1764547200,
        "model": body["model"],
        "status": "completed",
        "output": [message],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": OPENAI_RESPONSES_USAGE,
    }
    if not body.get("stream"):
        return response

    def events() -> Iterator[bytes]:
        created = {**response, "status": "in_progress", "output": [], "usage": None}
        yield _sse({"type": "response.created", "sequence_number": 0, "response": created})
        for n, word in enumerate(WORDS, start=1):
            delta = {"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": word, "logprobs": []}
            yield _sse({"type": "response.output_text.delta", "sequence_number": n, **delta})
        yield _sse({"type": "response.completed", "sequence_number": len(WORDS) + 1, "response": response})

    return events()


def anthropic_messages(body: dict[str, Any]) -> dict[str, Any] | Iterator[bytes]:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"]}
    if not body.get("stream"):
        usage = {**ANTHROPIC_START_USAGE, "output_tokens": ANTHROPIC_FINAL_OUTPUT_TOKENS}
        content = [{"type": "text", "text": TEXT}]
        return {**message, "content": content, "stop_reason": "end_turn", "stop_sequence": None, "usage": usage}

    def events() -> Iterator[bytes]:
        start = {**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": ANTHROPIC_START_USAGE}
        yield _sse({"type": "message_start", "message": start}, "message_start")
        block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        yield _sse(block, "content_block_start")
        for word in WORDS:
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}
            yield _sse(delta, "content_block_delta")
        yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        final = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": ANTHROPIC_FINAL_OUTPUT_TOKENS},
        }
        yield _sse(final, "message_delta")
        yield _sse({"type": "message_stop"}, "message_stop")

    return events()


def gemini(path: str, body: dict[str, Any]) -> dict[str, Any] | Iterator[bytes]:
    def response(text: str, finished: bool, usage: dict[str, Any]) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
        if finished:
            candidate["finishReason"] = "STOP"
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-2.5-flash"}

    if ":streamGenerateContent" not in path:
        return response(TEXT, True, GEMINI_USAGE)

    def events() -> Iterator[bytes]:
        for n, word in enumerate(WORDS):
            last = n == len(WORDS) - 1
            usage = GEMINI_USAGE if last else {"promptTokenCount": GEMINI_USAGE["promptTokenCount"]}
            yield _sse(response(word, last, usage))

    return events()


def bedrock(path: str, body: dict[str, Any]) -> dict[str, Any] | Iterator[bytes]:
    if path.endswith("/converse"):
        message = {"role": "assistant", "content": [{"text": TEXT}]}
        return {
            "output": {"message": message},
            "stopReason": "end_turn",
            "usage": BEDROCK_USAGE,
            "metrics": {"latencyMs": 5},
        }

    def events() -> Iterator[bytes]:
        yield event_frame("messageStart", {"role": "assistant"})
        for word in WORDS:
            yield event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": word}})
        yield event_frame("contentBlockStop", {"contentBlockIndex": 0})
        yield event_frame("messageStop", {"stopReason": "end_turn"})
        yield event_frame("metadata", {"usage": BEDROCK_USAGE, "metrics": {"latencyMs": 5}})

    return events()


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """One message of AWS's event-stream encoding (application/vnd.amazon.eventstream)."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    encoded_headers = b"".join(
        len(name).to_bytes(1, "big") + name.encode() + b"\x07" + len(value).to_bytes(2, "big") + value.encode()
        for name, value in headers.items()
    )
    body = json.dumps(payload).encode()
    total_length = 4 + 4 + 4 + len(encoded_headers) + len(body) + 4
    prelude = total_length.to_bytes(4, "big") + len(encoded_headers).to_bytes(4, "big")
    message = prelude + zlib.crc32(prelude).to_bytes(4, "big") + encoded_headers + body
    return message + zlib.crc32(message).to_bytes(4, "big")


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def answer(path: str, body: dict[str, Any]) -> tuple[dict[str, Any] | Iterator[bytes], str]:
    """The answer to a request, and the content type of a streamed one."""
    if path == "/v1/chat/completions":
        return openai_chat(body), "text/event-stream"
    if path == "/v1/responses":
        return openai_responses(body), "text/event-stream"
    if path == "/v1/messages":
        return anthropic_messages(body), "text/event-stream"
    if path.startswith(("/v1/models/", "/v1beta/models/")):
        return gemini(path, body), "text/event-stream"
    if path.startswith("/model/"):
        return bedrock(path, body), "application/vnd.amazon.eventstream"
    raise LookupError(path)


def _handler(stub: ProviderStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = unquote(urlsplit(self.path).path)
            body = json.loads(raw) if raw else {}
            stub.seen.append(SeenRequest("POST", path, body))
            if stub.errors:
                error = stub.errors.pop(0)
                self._json(error.status, error.body)
                return
            try:
                result, stream_type = answer(path, body)
            except LookupError:
                self._json(404, {"error": {"message": f"no route {path}"}})
                return
            if isinstance(result, dict):
                self._json(200, result)
            else:
                self._stream(result, stream_type)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, events: Iterator[bytes], content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for n, event in enumerate(events):
                if stub.break_streams_after is not None and n >= stub.break_streams_after:
                    self.wfile.flush()
                    self.close_connection = True  # no final chunk: the client sees the body cut off
                    return
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
