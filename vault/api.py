"""Shared pieces of the JSON API: strict body parsing, base64url fields, role checks.

Every route declares its body model and who may call it with ``@endpoint``; the OpenAPI
document and the authorization tests are both built from those declarations.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ParamSpec, TypeVar

from flask import request
from flask.json.provider import DefaultJSONProvider
from flask_login import current_user
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, WithJsonSchema
from werkzeug.exceptions import BadRequest
from werkzeug.routing import BaseConverter, Map
from werkzeug.routing import Rule as WerkzeugRule

from vault.accounts.models import Role, User
from vault.errors import Forbidden, InvalidRequest, Unauthorized
from vault.protocol.encoding import EncodingError, b64decode
from vault.security import JSON

P = ParamSpec("P")
R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)

ANONYMOUS = "anonymous"
ANY_ROLE = frozenset(Role)

# The largest integer the API takes anywhere (paths, queries, JSON bodies): 2^53 - 1, the
# largest a JavaScript client holds exactly, and well inside the database's signed 64 bits.
MAX_INT = 2**53 - 1
# Deepest JSON nesting a body may have; real bodies stay far below it.
MAX_JSON_DEPTH = 32
_DIGITS = re.compile(r"[0-9]{1,16}")


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("expected a base64url string")
    try:
        return b64decode(value)
    except EncodingError as exc:
        raise ValueError(str(exc)) from exc


def _b64_chars(length: int) -> int:
    """How many base64url characters (no padding) encode ``length`` bytes."""
    return (4 * length + 2) // 3


def b64_exact(length: int) -> Any:
    """A base64url field that must decode to exactly ``length`` bytes."""

    def check(value: Any) -> bytes:
        data = _b64(value)
        if len(data) != length:
            raise ValueError(f"must decode to {length} bytes, got {len(data)}")
        return data

    return Annotated[
        bytes,
        BeforeValidator(check),
        WithJsonSchema(
            {
                "type": "string",
                "contentEncoding": "base64url",
                "description": f"{length} bytes",
                "minLength": _b64_chars(length),
                "maxLength": _b64_chars(length),
            }
        ),
    ]


def b64_max(length: int) -> Any:
    """A base64url field of at most ``length`` decoded bytes."""

    def check(value: Any) -> bytes:
        data = _b64(value)
        if len(data) > length:
            raise ValueError(f"must decode to at most {length} bytes")
        return data

    return Annotated[
        bytes,
        BeforeValidator(check),
        WithJsonSchema(
            {
                "type": "string",
                "contentEncoding": "base64url",
                "description": f"≤ {length} bytes",
                "maxLength": _b64_chars(length),
            }
        ),
    ]


class Body(BaseModel):
    """Base of every request body: unknown fields are refused, types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _has_nul(data: Any) -> bool:
    """Whether any string in decoded JSON (keys too) contains U+0000."""
    if isinstance(data, str):
        return "\x00" in data
    if isinstance(data, list):
        return any(_has_nul(item) for item in data)
    if isinstance(data, dict):
        return any("\x00" in key or _has_nul(value) for key, value in data.items())
    return False


def parse_body(model: type[M]) -> M:
    """Parse the JSON body into ``model`` or raise a 400 naming the first problem."""
    if not request.is_json:
        raise InvalidRequest("send a JSON body with Content-Type: application/json")
    try:
        data = parse_json(request.get_data(cache=True))
    except JsonLimitError as exc:
        raise InvalidRequest(str(exc), code=exc.code) from exc
    except ValueError as exc:
        raise InvalidRequest("the body is not valid JSON", code="malformed_json") from exc
    if data is None:  # the literal null: no body to read, as before the bounded parser
        raise InvalidRequest("the body is not valid JSON", code="malformed_json")
    if _has_nul(data):  # PostgreSQL text refuses it: a 500 at the first query before
        raise InvalidRequest("text in the body cannot contain NUL (U+0000)", code="invalid_field")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidRequest(f"{where}: {first['msg']}", code="invalid_field") from exc


HTML = "text/html"
OCTETS = "application/octet-stream"
EVENT_STREAM = "text/event-stream"


class Out(BaseModel):
    """Base of every response model: the document lists exactly the fields a route answers."""

    model_config = ConfigDict(extra="forbid")


# Output fields: base64url without padding, and UTC timestamps in ISO 8601.
B64 = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "contentEncoding": "base64url", "pattern": "^[A-Za-z0-9_-]*$"}
    ),
]
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class Query(BaseModel):
    """Base of a route's query parameters: one field a parameter, none required unless said."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Reply:
    """One successful answer of a route: its status, media type and, for JSON, its model."""

    status: int
    model: type[BaseModel] | None = None
    media_type: str | None = JSON
    description: str = "success"
    headers: Mapping[str, str] = field(default_factory=dict)


def ok(model: type[BaseModel], status: int = 200, description: str = "success") -> Reply:
    """A JSON answer of ``model``."""
    return Reply(status, model, JSON, description)


NO_CONTENT = Reply(204, None, None, "done; no body")


@dataclass(frozen=True)
class Header:
    """A request header a route reads, with the JSON schema of its value."""

    name: str
    description: str
    schema: Mapping[str, Any]


class JsonLimitError(ValueError):
    """Valid JSON that breaks a parser bound (nesting depth, integer range)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


# Strings (with their escapes) are skipped so brackets inside them are not counted.
_JSON_TOKENS = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')


def _check_depth(text: str) -> None:
    depth = 0
    for match in _JSON_TOKENS.finditer(text):
        found = match.group()
        if found in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise JsonLimitError(
                    f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "json_too_complex"
                )
        elif found in "]}":
            depth -= 1


def _json_int(text: str) -> int:
    # Checked on the digits before int() builds a huge number (CVE-2020-10735 style cost).
    if len(text.lstrip("-")) > 16 or abs(int(text)) > MAX_INT:
        raise JsonLimitError(f"a JSON integer is outside ±{MAX_INT}", "invalid_field")
    return int(text)


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def parse_json(data: bytes | str) -> Any:
    """Decode a JSON body: depth ≤ MAX_JSON_DEPTH, integers within ±MAX_INT, no NaN/Infinity."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    _check_depth(text)
    return json.loads(text, parse_int=_json_int, parse_constant=_no_constant)


class JsonProvider(DefaultJSONProvider):
    """Flask's JSON provider with bounded decoding: every ``request.get_json`` goes through it."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Decode with the parser bounds of ``parse_json``."""
        return parse_json(s)


@dataclass(frozen=True)
class EndpointSpec:
    """What the OpenAPI document and the authorization tests need to know about a route."""

    summary: str
    roles: frozenset[Role] | str
    body: type[BaseModel] | None
    # The Content-Type a state-changing request must carry, body or not (vault/security.py).
    media_type: str = JSON
    replies: tuple[Reply, ...] = ()
    query: type[BaseModel] | None = None
    headers: tuple[Header, ...] = ()


def endpoint(
    summary: str,
    *,
    roles: frozenset[Role] | set[Role] | str = ANY_ROLE,
    body: type[BaseModel] | None = None,
    media_type: str = JSON,
    replies: Sequence[Reply] | Reply = (),
    query: type[BaseModel] | None = None,
    headers: Sequence[Header] = (),
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare a route's summary, body, answers, parameters and allowed roles; enforce the roles."""
    allowed: frozenset[Role] | str = roles if isinstance(roles, str) else frozenset(roles)
    answers = (replies,) if isinstance(replies, Reply) else tuple(replies)
    spec = EndpointSpec(summary, allowed, body, media_type, answers, query, tuple(headers))

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            if allowed != ANONYMOUS:
                if not current_user.is_authenticated:
                    raise Unauthorized("sign in first")
                assert isinstance(allowed, frozenset)
                if current_user.role not in allowed:
                    raise Forbidden("your role may not do this")
            return view(*args, **kwargs)

        wrapped.haven_endpoint = spec  # type: ignore[attr-defined]
        return wrapped

    return decorate


def me() -> User:
    """The signed-in account (only inside an endpoint that requires one)."""
    user = current_user._get_current_object()
    assert isinstance(user, User)
    return user


def parse_int(raw: str, what: str, *, minimum: int = 0, maximum: int = MAX_INT) -> int:
    """ASCII digits only, within bounds; the one integer parser for paths and queries."""
    if not _DIGITS.fullmatch(raw):
        raise ValueError(f"{what} must be a whole number written in ASCII digits")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ValueError(f"{what} must be within {minimum}..{maximum}")
    return value


def query_int(
    name: str,
    *,
    minimum: int = 0,
    maximum: int = MAX_INT,
    default: int | None = None,
    code: str = "invalid_request",
) -> int:
    """An integer query parameter within bounds (``default`` when absent), or a 400 naming it."""
    raw = request.args.get(name)
    if raw is None:
        if default is None:
            raise InvalidRequest(f"query parameter {name!r} is required", code=code)
        return default
    try:
        return parse_int(raw, f"query parameter {name!r}", minimum=minimum, maximum=maximum)
    except ValueError as exc:
        raise InvalidRequest(str(exc), code=code) from exc


def optional_query_int(
    name: str, *, minimum: int = 0, maximum: int = MAX_INT, code: str = "invalid_request"
) -> int | None:
    """Like ``query_int``, but None when the parameter is absent."""
    if name not in request.args:
        return None
    return query_int(name, minimum=minimum, maximum=maximum, code=code)


def parse_query(model: type[M]) -> M:
    """The route's declared query parameters as ``model`` (others ignored), or a 400 naming one."""
    given = {name: request.args[name] for name in model.model_fields if name in request.args}
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidRequest(f"query parameter {where!r}: {first['msg']}") from exc


class PathIntOutOfRange(BadRequest):
    """A path integer in ASCII digits but out of range (rendered as ``invalid_request``)."""

    name = "Invalid Request"


class Rule(WerkzeugRule):
    """Every route's URL rule: its URL-building functions are compiled when first used.

    Werkzeug writes and compiles two Python functions per rule (for ``url_for``) as the
    rule is added. An app here has about 140 rules and builds no URL from them, and that
    compiling was most of ``create_app``'s time (about 80 % of it under a profile), paid
    again by every app the tests build. Matching is unchanged: the rule is parsed as before;
    only the builders wait until a URL is first built from the rule.
    """

    def _compile_builder(self, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
        compiled: Callable[..., tuple[str, str]] | None = None

        def build(rule: WerkzeugRule, /, **values: Any) -> tuple[str, str]:
            nonlocal compiled
            if compiled is None:
                compiled = WerkzeugRule._compile_builder(rule, append_unknown)
            return compiled(rule, **values)

        return build


class IntConverter(BaseConverter):
    """``<int:...>`` for every route: ASCII digits only, 0..MAX_INT unless ``min``/``max`` say."""

    # werkzeug's own converter uses \d, which matches every Unicode decimal digit (U+0661...).
    regex = r"[0-9]+"
    weight = 50
    part_isolating = True

    def __init__(self, url_map: Map, min: int = 0, max: int = MAX_INT) -> None:
        super().__init__(url_map)
        self.minimum = min
        self.maximum = max

    def to_python(self, value: str) -> int:
        """Parse the segment or refuse it with a 400."""
        try:
            return parse_int(value, "path segment", minimum=self.minimum, maximum=self.maximum)
        except ValueError as exc:
            raise PathIntOutOfRange(str(exc)) from exc

    def to_url(self, value: Any) -> str:
        """Write the integer in ASCII digits."""
        return str(int(value))
