"""`quotaflow serve` under many connections at once, and under requests it does not route, through real sockets:
every client gets an HTTP answer in the API's error shape, never a reset, an HTML page or a 5xx."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from tests.support.ddb_local import DynamoDBLocal
from tests.support.serve_process import ServeProcess

SIMULTANEOUS_CONNECTIONS = 256
ANSWER_SECONDS_MAX = 120  # a bound on waiting for each answer, not a speed check
ACCEPTABLE = {200, 429, 503}  # answered, throttled or unavailable (with Retry-After): never a reset


def exchange(url: str, raw_request: bytes) -> bytes:
    """Send one raw request on a new connection and read until the server closes it."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=ANSWER_SECONDS_MAX) as connection:
        connection.sendall(raw_request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


def status_and_body(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def all_at_once(url: str, count: int) -> list[str]:
    """`count` clients connect at the same moment and each sends one request; each one's status line or error."""
    start = threading.Barrier(count)
    request = b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"

    def one(_: int) -> str:
        start.wait()
        try:
            answer = exchange(url, request)
        except OSError as error:
            return repr(error)
        return answer.split(b"\r\n", 1)[0].decode("latin-1")

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def assert_every_client_answered(lines: list[str]) -> None:
    failures = [line for line in lines if not line.startswith("HTTP/1.1 ") or int(line.split()[1]) not in ACCEPTABLE]
    assert not failures, f"{len(failures)} of {len(lines)} clients got no acceptable answer: {sorted(set(failures))}"


@pytest.fixture(scope="module")
def embedded() -> Iterator[ServeProcess]:
    with ServeProcess("--no-timers") as serve:
        yield serve


@pytest.mark.unit
def test_embedded_serve_answers_256_clients_that_connect_at_once(embedded: ServeProcess) -> None:
    assert_every_client_answered(all_at_once(embedded.url, SIMULTANEOUS_CONNECTIONS))


@pytest.mark.integration
def test_serve_workers_on_dynamodb_local_answer_256_clients_that_connect_at_once(ddb_local: DynamoDBLocal) -> None:
    credentials = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}
    args = ("--no-timers", "--dynamodb-endpoint", ddb_local.endpoint, "--table", "serve-connections", "--workers", "2")
    with ServeProcess(*args, env=credentials) as serve:
        assert_every_client_answered(all_at_once(serve.url, SIMULTANEOUS_CONNECTIONS))


UNROUTED = [
    ("HEAD", "/v1/health"),
    ("HEAD", "/v1/nothing-here"),
    ("TRACE", "/v1/health"),
    ("CONNECT", "example.com:443"),
    ("PROPFIND", "/v1/plans"),
    ("PATCH", "/v1/plans/plan_paygo"),
    ("DELETE", "/v1/health"),
    ("GET", "/nothing"),
]


@pytest.mark.unit
@pytest.mark.parametrize(("method", "target"), UNROUTED)
def test_a_request_serve_does_not_route_is_a_json_404_never_html_or_5xx(
    embedded: ServeProcess, method: str, target: str
) -> None:
    raw = f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
    status, headers, body = status_and_body(exchange(embedded.url, raw))
    assert status in (404, 405), (status, body)
    assert headers["content-type"] == "application/json"
    if method == "HEAD":
        assert body == b"" and int(headers["content-length"]) > 0, "HEAD: the headers of the answer, no body"
        return
    assert json.loads(body)["error"]["code"] in ("not_found", "method_not_allowed")


MALFORMED = [
    b"GET /v1/health HTTP/2.0\r\nHost: localhost\r\n\r\n",  # a version http.server answers 505
    b"NONSENSE\r\n\r\n",
    b"GET /v1/health HTTP/1.1\r\nContent-Length: many\r\n\r\n",
    b"POST /v1/events HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    b"POST /v1/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",  # a request line past http.server's limit: 414
]


@pytest.mark.unit
@pytest.mark.parametrize(
    "raw", MALFORMED, ids=["http2", "no-target", "bad-length", "negative-length", "chunked", "long"]
)
def test_a_malformed_request_is_a_4xx_in_the_api_error_shape(embedded: ServeProcess, raw: bytes) -> None:
    status, headers, body = status_and_body(exchange(embedded.url, raw))
    assert 400 <= status < 500, (status, body)
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "invalid_request"
