"""Request bodies on the web listener (issue 15 item 7): limits before parsing, the CSRF token
before the body.

- :class:`BodyLimit` (ASGI middleware around the whole app) holds every request body to a
  limit *per route*: ``web.max_form_bytes`` unless the route raised it with
  :func:`allow_body` before reading. The declared ``Content-Length`` is checked when the
  application first asks for the body, before any of it is read; a body without one (chunked)
  is counted as it arrives. Beyond the limit: ``413`` (RFC 9110 §15.5.14), nothing parsed.
- :func:`leading_field` reads only the start of a form, up to its CSRF token: every form of
  the gateway puts the token first (browsers send fields in tree order, HTML §4.10.21.4); a
  token after a file, or beyond the first 4 KiB, is not looked for. So the session and the
  token are checked before the rest of the body (files included) is read, let alone parsed or
  spooled to disk. It returns a request that reads the body again from its start, for the
  handler's ``await request.form()``.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import Request

from gateway.web.asgi import ASGIApp, Message, Receive, Scope, Send

LIMIT_KEY = "gateway.body_limit"
FIRST_FIELDS_MAX = 4096  # bytes of body read, at most, to find the CSRF token


def allow_body(request: Request, limit: int) -> None:
    """This route's body limit (call before the body is read)."""
    request.scope[LIMIT_KEY] = limit


def body_limit(request: Request, default: int) -> int:
    return int(request.scope.get(LIMIT_KEY, default))


def declared_too_large(request: Request, limit: int) -> bool:
    """Whether the declared length is over ``limit`` (or absent for a body sent in chunks)."""
    length = request.headers.get("content-length")
    if length is None:
        return "transfer-encoding" in request.headers
    return not length.isdigit() or int(length) > limit


class BodyLimit:
    """ASGI middleware: request bodies within the route's limit (see the module text)."""

    def __init__(self, app: ASGIApp, *, default: int) -> None:
        self.app = app
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen = 0
        checked = False
        default = self.default

        async def limited() -> Message:
            nonlocal seen, checked
            limit = int(scope.get(LIMIT_KEY, default))
            if not checked:
                checked = True
                if declared_too_large(Request(scope), limit):
                    raise HTTPException(413, "Request body too large")
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, "Request body too large")
            return message

        await self.app(scope, limited, send)


def _urlencoded_fields(data: bytes, complete: bool) -> tuple[list[tuple[str, str]], bool]:
    """The complete ``name=value`` pairs at the start of ``data``; whether no more can come."""
    pairs = data.split(b"&")
    if not complete:
        pairs.pop()  # may be cut short
    fields = []
    for pair in pairs:
        key, _, value = pair.partition(b"=")
        fields.append((unquote_plus(key.decode("latin-1")), unquote_plus(value.decode("latin-1"))))
    return fields, complete


class _Parts:
    """Callbacks of python-multipart's streaming parser: the text parts before the first file."""

    def __init__(self) -> None:
        self.fields: list[tuple[str, str]] = []
        self.file_seen = False
        self._headers: dict[bytes, bytes] = {}
        self._field = bytearray()
        self._header = bytearray()
        self._value = bytearray()

    def on_part_begin(self) -> None:
        self._headers = {}
        self._value = bytearray()

    def on_header_field(self, buf: bytes, start: int, end: int) -> None:
        self._field += buf[start:end]

    def on_header_value(self, buf: bytes, start: int, end: int) -> None:
        self._header += buf[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._header)
        self._field.clear()
        self._header.clear()

    def on_headers_finished(self) -> None:
        if b"filename" in self._params():
            self.file_seen = True

    def on_part_data(self, buf: bytes, start: int, end: int) -> None:
        if len(self._value) < FIRST_FIELDS_MAX:
            self._value += buf[start:end]

    def on_part_end(self) -> None:
        if not self.file_seen:
            name = self._params().get(b"name", b"").decode("latin-1")
            self.fields.append((name, bytes(self._value).decode("utf-8", "replace")))

    def _params(self) -> dict[bytes, bytes]:
        return parse_options_header(self._headers.get(b"content-disposition", b""))[1]


def _multipart_fields(data: bytes, boundary: bytes, complete: bool) -> tuple[list[tuple[str, str]], bool]:
    parts = _Parts()
    names = ("on_part_begin", "on_header_field", "on_header_value", "on_header_end", "on_headers_finished",
             "on_part_data", "on_part_end")
    parser = MultipartParser(boundary, {name: getattr(parts, name) for name in names})  # type: ignore[arg-type]
    try:
        parser.write(data)
    except Exception:  # malformed: no (more) fields to find
        return parts.fields, True
    return parts.fields, complete or parts.file_seen


def _leading_fields(content_type: str, data: bytes, complete: bool) -> tuple[list[tuple[str, str]], bool]:
    """The text fields at the start of a form body; whether no more will be found."""
    media, params = parse_options_header(content_type)
    if media == b"application/x-www-form-urlencoded":
        return _urlencoded_fields(data, complete)
    if media == b"multipart/form-data" and params.get(b"boundary"):
        return _multipart_fields(data, params[b"boundary"], complete)
    return [], True


async def leading_field(request: Request, name: str) -> tuple[str | None, Request]:
    """The value of field ``name`` if it comes before any file and within the first
    :data:`FIRST_FIELDS_MAX` bytes of the form (None otherwise), reading no further than that;
    and a request over the same connection that reads the body from its start again (those
    bytes, then the rest as it comes)."""
    receive = request.receive
    data = bytearray()
    more = True
    content_type = request.headers.get("content-type", "")
    value: str | None = None
    while True:
        fields, finished = _leading_fields(content_type, bytes(data), not more)
        value = next((v for k, v in fields if k == name), None)
        if value is not None or finished or not more or len(data) >= FIRST_FIELDS_MAX:
            break
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            more = False
            break
        data += message.get("body", b"")
        more = bool(message.get("more_body", False))
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": bytes(data), "more_body": more}
        return await receive()

    return value, Request(request.scope, replay)
