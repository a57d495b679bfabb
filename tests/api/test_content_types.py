"""Bodies are JSON in UTF-8: any other Content-Type is 415, a header that is no media type 400, both in the API's
error shape, on every route that takes a body, through API Gateway v2 events and through `quotaflow serve`.
Found by schemathesis's coverage phase: `multipart/form-data` without a boundary was a 500 in the function."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from quotaflow.handlers import media_type
from quotaflow.local.server import build_server
from tests.api.conftest import Api

pytestmark = pytest.mark.unit

EVENT = {"user_id": "u1", "lines": [{"meter": "tokens", "amount": 1}]}
# (method, path, a valid body): every kind of route that takes a body
BODY_ROUTES = [
    ("POST", "/v1/events", EVENT),
    ("POST", "/v1/reservations", {"user_id": "u1", "lines": [{"meter": "tokens", "amount": 1}]}),
    ("PUT", "/v1/users/u1/subscription", {"plan_id": "plan_paygo"}),
    ("PUT", "/v1/plans/plan_x", {"name": "X", "limits": {}}),
    ("POST", "/v1/users/u1/can-use", {"meter": "tokens", "amount": 1}),
]
UNSUPPORTED = [
    "multipart/form-data",  # no boundary: the framework raised a bare ValueError, a 500
    "multipart/form-data; boundary=----x",
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/xml",
    "application/octet-stream",
    "application/merge-patch+json",
    "application/json; charset=iso-8859-1",
    "application/json; charset=utf-16",
]
MALFORMED = ["json", "application/", "/json", "application/json; charset", "application json", 'a/b; c="open']
ACCEPTED = [
    "application/json",
    "Application/JSON",
    "application/json; charset=utf-8",
    'application/json;charset="UTF-8"',
]


def ledger_size(qf: Api) -> int:
    return len(qf("GET", "/v1/users/u1/ledger", query="limit=200").body["entries"])


def assert_error_shape(body: object, status: int, code: str) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert body["error"]["code"] == code, (status, body)
    assert body["error"]["details"]["field"] == "Content-Type", body
    assert isinstance(body["error"]["message"], str)


@pytest.mark.parametrize(("method", "path", "body"), BODY_ROUTES)
@pytest.mark.parametrize("content_type", UNSUPPORTED)
def test_a_content_type_the_api_does_not_take_is_415(
    qf: Api, method: str, path: str, body: object, content_type: str
) -> None:
    before = ledger_size(qf)
    refused = qf(method, path, body, headers={"Content-Type": content_type})
    assert refused.status == 415, refused.body
    assert_error_shape(refused.body, 415, "unsupported_media_type")
    assert ledger_size(qf) == before


@pytest.mark.parametrize("content_type", MALFORMED)
def test_a_content_type_that_is_no_media_type_is_400(qf: Api, content_type: str) -> None:
    refused = qf("POST", "/v1/events", EVENT, headers={"Content-Type": content_type})
    assert refused.status == 400, refused.body
    assert_error_shape(refused.body, 400, "invalid_request")


def test_a_body_without_a_content_type_is_415(qf: Api) -> None:
    from quotaflow.handlers import api
    from quotaflow.local.events import LocalContext, http_event

    event = http_event(
        "POST", "/v1/events", headers={"Authorization": f"Bearer {qf.key}"}, body=json.dumps(EVENT).encode()
    )
    response = api.handler(event, LocalContext())
    assert response["statusCode"] == 415
    assert_error_shape(json.loads(response["body"]), 415, "unsupported_media_type")


def test_a_binary_upload_is_415_not_a_decoding_error(qf: Api) -> None:
    """API Gateway base64-encodes a body that is not UTF-8 text, such as a file in a multipart form."""
    from quotaflow.handlers import api
    from quotaflow.local.events import LocalContext, http_event

    headers = {"Authorization": f"Bearer {qf.key}", "Content-Type": "multipart/form-data; boundary=x"}
    body = b"--x\r\nContent-Disposition: form-data; name=f\r\n\r\n\xff\xfe\x00\r\n--x--\r\n"
    event = http_event("POST", "/v1/events", headers=headers, body=body)
    assert event["isBase64Encoded"] is True
    response = api.handler(event, LocalContext())
    assert response["statusCode"] == 415, response
    assert_error_shape(json.loads(response["body"]), 415, "unsupported_media_type")
    unauthenticated = api.handler(
        http_event("POST", "/v1/events", headers={**headers, "Authorization": ""}, body=body), LocalContext()
    )
    assert unauthenticated["statusCode"] == 401


@pytest.mark.parametrize("content_type", ACCEPTED)
def test_json_in_utf8_is_taken_however_it_is_spelled(qf: Api, content_type: str) -> None:
    assert qf("POST", "/v1/events", EVENT, headers={"Content-Type": content_type}).status == 201


def test_the_key_is_checked_before_the_content_type(qf: Api) -> None:
    headers = {"Content-Type": "multipart/form-data"}
    assert qf("POST", "/v1/events", EVENT, key="qf_sk_not_a_key", headers=headers).status == 401
    assert qf("POST", "/v1/events", EVENT, key="", headers=headers).status == 401


def test_a_415_is_final_under_its_idempotency_key(qf: Api) -> None:
    form = {"Content-Type": "text/plain", "Idempotency-Key": "ct-1"}
    first = qf("POST", "/v1/events", EVENT, headers=form)
    assert first.status == 415
    again = qf("POST", "/v1/events", EVENT, headers={"Idempotency-Key": "ct-1"})
    assert (again.status, again.body) == (415, first.body)


def test_routes_without_a_body_ignore_the_content_type_of_none(qf: Api) -> None:
    assert qf("GET", "/v1/users/u1/usage", headers={"Content-Type": "multipart/form-data"}).status == 200


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("application/json", ("application/json", {})),
        (' Application/JSON ; Charset="UTF-8" ; q=1', ("application/json", {"charset": "UTF-8", "q": "1"})),
        ('text/plain; name="a \\"b\\""', ("text/plain", {"name": 'a "b"'})),
        ("multipart/form-data", ("multipart/form-data", {})),
        ("application/json;;", ("application/json", {})),
    ],
)
def test_media_types_parse_by_rfc_9110(header: str, parsed: tuple[str, dict[str, str]]) -> None:
    assert media_type.parse(header) == parsed


@pytest.mark.parametrize("header", [*MALFORMED, "", "x" * 2000 + "/json", "application/json; charset=utf-8 extra"])
def test_malformed_media_types_do_not_parse(header: str) -> None:
    assert media_type.parse(header) is None


@pytest.fixture(scope="module")
def served() -> Iterator[httpx.Client]:
    server = build_server(port=0, admin_key="qf_admin_media_key_0123456789")
    server.start_in_thread()
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    secret = httpx.post(f"{server.url}/v1/admin/tenants", json={"tenant_id": "acme"}, headers=admin).json()
    client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret['secret_key']}"}, timeout=30)
    yield client
    client.close()
    server.close()


@pytest.mark.parametrize(("method", "path", "body"), BODY_ROUTES)
@pytest.mark.parametrize(
    ("content_type", "status", "code"),
    [
        ("multipart/form-data", 415, "unsupported_media_type"),
        ("application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ("text/plain; charset=utf-8", 415, "unsupported_media_type"),
        ("application/json; charset=latin1", 415, "unsupported_media_type"),
        ("not a media type", 400, "invalid_request"),
    ],
)
def test_serve_answers_content_types_in_the_api_error_shape(
    served: httpx.Client, method: str, path: str, body: object, content_type: str, status: int, code: str
) -> None:
    client = served
    response = client.request(method, path, content=json.dumps(body), headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert_error_shape(response.json(), status, code)
