"""Just enough HTTP/1.1 on anyio byte streams to serve the ``openai`` SDK's HTTP client.

Supported: a request line, headers, ``Content-Length`` request bodies, keep-alive (several
requests on one connection), responses with ``Content-Length``, and chunked responses for
server-sent events. Chunked transfer encoding is used for streams (rather than "the body ends
when the connection closes") because it lets the client tell a complete stream from a cut
one: a connection closed before the terminating zero-length chunk is a protocol error on the
client side, which is exactly what a broken stream looks like in production.

Not supported, because the SDK never sends them: chunked request bodies, ``Expect:
100-continue``, pipelining beyond what falls out of reading one request at a time, TLS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.buffered import BufferedByteStream

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from anyio.abc import ByteStream

__all__ = [
    "CONNECTION_ERRORS",
    "BadRequest",
    "HttpConnection",
    "HttpRequest",
]

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    anyio.IncompleteRead,
    OSError,
)
"""What a peer that goes away in the middle of an exchange makes a stream raise."""


class BadRequest(Exception):
    """The bytes on the connection are not an HTTP/1.1 request this server can read.

    Attributes:
        status: The HTTP status to answer with before closing the connection.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request as read from the wire.

    Attributes:
        method: The request method, upper case (``"POST"``).
        target: The request target as sent, query string included.
        version: ``"HTTP/1.1"`` or ``"HTTP/1.0"``.
        headers: Header fields in the order received; names lower-cased.
        body: The request body (empty when there is none).
    """

    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.partition("?")[0]

    def header(self, name: str) -> str | None:
        """The value of a header (repeated fields joined with ``", "``), or None."""
        values = [v for k, v in self.headers if k == name.lower()]
        return ", ".join(values) if values else None

    @property
    def keep_alive(self) -> bool:
        """Whether the client wants the connection kept open after this request."""
        tokens = {t.strip().lower() for t in (self.header("connection") or "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            ValueError: The body is not JSON (``json.JSONDecodeError`` or a bad encoding).
        """
        return json.loads(self.body.decode("utf-8"))


class HttpConnection:
    """The server side of one HTTP/1.1 connection: read requests, write responses.

    Args:
        stream: The connected byte stream (a TCP socket stream).
    """

    def __init__(self, stream: ByteStream) -> None:
        self._stream = BufferedByteStream(stream)

    async def read_request(self) -> HttpRequest | None:
        """Read the next request; None when the client closed the connection between requests.

        Raises:
            BadRequest: The request cannot be read; answer ``err.status`` and close.
            anyio.IncompleteRead: The client went away in the middle of a request.
        """
        try:
            head = await self._stream.receive_until(b"\r\n\r\n", MAX_HEAD_BYTES)
        except anyio.IncompleteRead:
            if not self._stream.buffer:
                return None  # a clean close between two requests is how keep-alive ends
            raise
        except anyio.DelimiterNotFound:
            raise BadRequest("request head too large", 431) from None
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, version = _parse_request_line(request_line)
        headers = tuple(_parse_header(line) for line in header_lines)
        if any(k == "transfer-encoding" for k, _ in headers):
            raise BadRequest("chunked request bodies are not supported", 501)
        length = _content_length(headers)
        body = await self._stream.receive_exactly(length) if length else b""
        return HttpRequest(method, target, version, headers, body)

    async def send_response(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        keep_alive: bool = True,
    ) -> None:
        """Send a complete response with a ``Content-Length`` body."""
        fields = {"content-type": content_type, "content-length": str(len(body)), **(headers or {})}
        await self._stream.send(_head(status, fields, keep_alive) + body)

    async def send_head(
        self,
        status: int,
        *,
        content_type: str,
        headers: Mapping[str, str] | None = None,
        content_length: int | None = None,
        keep_alive: bool = True,
    ) -> None:
        """Send only the status line and headers; the body follows with `send_raw`.

        Without ``content_length`` the body is chunked: send it with `send_chunk` and
        finish it with `end_chunks`.
        """
        fields = {"content-type": content_type, **(headers or {})}
        if content_length is None:
            fields["transfer-encoding"] = "chunked"
        else:
            fields["content-length"] = str(content_length)
        await self._stream.send(_head(status, fields, keep_alive))

    async def send_chunk(self, data: bytes) -> None:
        """Send one chunk of a chunked body (empty data is skipped: it would end the body)."""
        if data:
            await self._stream.send(b"%x\r\n%b\r\n" % (len(data), data))

    async def end_chunks(self) -> None:
        """Send the zero-length chunk that ends a chunked body."""
        await self._stream.send(b"0\r\n\r\n")

    async def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (e.g. part of a ``Content-Length`` body)."""
        await self._stream.send(data)

    async def aclose(self) -> None:
        """Close the connection."""
        await self._stream.aclose()


def _parse_request_line(line: str) -> tuple[str, str, str]:
    parts = line.split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(f"malformed request line {line[:100]!r}")
    return parts[0].upper(), parts[1], parts[2]


def _parse_header(line: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    if not sep or not name or name != name.strip():
        raise BadRequest(f"malformed header line {line[:100]!r}")
    return name.lower(), value.strip()


def _content_length(headers: Iterable[tuple[str, str]]) -> int:
    values = {v for k, v in headers if k == "content-length"}
    if not values:
        return 0
    if len(values) > 1 or not next(iter(values)).isdigit():
        raise BadRequest("invalid Content-Length")
    length = int(next(iter(values)))
    if length > MAX_BODY_BYTES:
        raise BadRequest("request body too large", 413)
    return length


def _head(status: int, fields: Mapping[str, str], keep_alive: bool) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in fields.items()]
    lines.append(f"connection: {'keep-alive' if keep_alive else 'close'}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
