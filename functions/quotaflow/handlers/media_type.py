"""What a request body may be: JSON in UTF-8, said so by `Content-Type: application/json`.

A header that is not a media type at all (RFC 9110 §8.3: `type/subtype *(; name=value)`) is 400
`invalid_request`; a well-formed type the API does not take (forms, multipart with or without its boundary,
XML, text, a missing header) is 415 `unsupported_media_type`; so is `application/json` with a charset other
than UTF-8, since bodies are only ever read as UTF-8 (RFC 8259 §8.1). Other parameters are ignored."""

from __future__ import annotations

import re

from quotaflow.ledger import errors

ACCEPTED_MEDIA_TYPE = "application/json"
ACCEPTED_CHARSET = "utf-8"
CONTENT_TYPE_LENGTH_MAX = 1024  # a longer header is refused unread: no real client sends one
_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*"'
_MEDIA_TYPE = re.compile(
    rf"[ \t]*({_TCHARS})/({_TCHARS})((?:[ \t]*;[ \t]*(?:{_TCHARS}=(?:{_TCHARS}|{_QUOTED}))?)*)[ \t]*"
)
_PARAMETER = re.compile(rf"({_TCHARS})=({_TCHARS}|{_QUOTED})")


class UnsupportedMediaType(errors.QuotaflowError):
    code = "unsupported_media_type"


def parse(header: str) -> tuple[str, dict[str, str]] | None:
    """`(type/subtype, {name: value})`, both lowercased except values; None when the header is malformed."""
    if len(header) > CONTENT_TYPE_LENGTH_MAX:
        return None
    matched = _MEDIA_TYPE.fullmatch(header)
    if matched is None:
        return None
    parameters = {name.lower(): _unquote(value) for name, value in _PARAMETER.findall(matched.group(3))}
    return f"{matched.group(1)}/{matched.group(2)}".lower(), parameters


def check_json(header: str | None) -> None:
    """Raise unless a body described by this Content-Type header is one the API reads."""
    if header is None or not header.strip():
        raise _unsupported(f"send the body with Content-Type: {ACCEPTED_MEDIA_TYPE}")
    parsed = parse(header)
    if parsed is None:
        raise errors.InvalidRequest("Content-Type is not a media type (type/subtype; name=value)", field="Content-Type")
    media_type, parameters = parsed
    if media_type != ACCEPTED_MEDIA_TYPE:
        raise _unsupported(f"{media_type} is not accepted: send {ACCEPTED_MEDIA_TYPE}")
    charset = parameters.get("charset", ACCEPTED_CHARSET).lower()
    if charset != ACCEPTED_CHARSET:
        raise _unsupported(f"charset {charset} is not accepted: bodies are UTF-8")


def _unsupported(message: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(message, field="Content-Type", accepted=ACCEPTED_MEDIA_TYPE)


def _unquote(value: str) -> str:
    if not value.startswith('"'):
        return value
    return re.sub(r"\\(.)", r"\1", value[1:-1])
