"""Receiving one uploaded image into a file, as it streams in, without ever holding it whole in memory.

Two ways to send it: a ``multipart/form-data`` form whose field ``file`` holds the image (what browsers
and ``curl -F file=@photo.jpg`` send), or the image itself as the request body (``curl --data-binary
@photo.jpg -H 'Content-Type: image/jpeg'``). The size limit is enforced while the bytes arrive: a
declared ``Content-Length`` over it is refused before anything is read, and a body that turns out too
long is cut off at the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from starlette.requests import Request

from .rejection import Rejected

__all__ = ["FIELD", "MULTIPART_SLACK", "Upload", "UploadError", "receive_upload"]

#: Name of the multipart form field that carries the image.
FIELD = "file"

#: Bytes a multipart body may carry beyond the image itself (boundaries, part headers, small fields).
MULTIPART_SLACK = 64 * 1024


class UploadError(Rejected):
    """An upload refused: ``status`` is the HTTP status (400 or 413), the message says why and what to do."""


@dataclass(frozen=True)
class Upload:
    """An image received into ``path``; ``filename`` is the client's name for it (may be empty)."""

    path: Path
    filename: str
    size: int


def _too_large(limit: int) -> UploadError:
    return UploadError(
        413, f"the upload is larger than the server's limit of {limit:,} bytes ({limit / (1 << 20):.3g} MB)"
    )


def _safe_name(raw: str) -> str:
    """The last path component of a client's file name, printable ASCII-safe for a header."""
    name = re.split(r"[\\/]", raw)[-1].strip()
    return "".join(ch for ch in name if ch.isprintable() and ch not in '"\r\n')[:200]


class _Sink:
    """Writes the image bytes to a file, counting them against the limit."""

    def __init__(self, handle: BinaryIO, limit: int) -> None:
        self.handle = handle
        self.limit = limit
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise _too_large(self.limit)
        self.handle.write(data)


class _FormReader:
    """Feeds a multipart body to ``python_multipart`` and sends the ``file`` field's bytes to a sink."""

    def __init__(self, boundary: bytes, sink: _Sink) -> None:
        from python_multipart.multipart import MultipartParser

        self.sink = sink
        self.found = 0
        self.filename = ""
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._in_file = False
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def _part_begin(self) -> None:
        self._headers = {}
        self._in_file = False

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.strip().lower()] = self._header_value.strip()
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name", b"").decode("latin-1") != FIELD:
            return  # other fields are allowed and ignored
        self.found += 1
        if self.found > 1:
            raise UploadError(400, f"the form has more than one '{FIELD}' field: send one image per request")
        self._in_file = True
        self.filename = _safe_name(options.get(b"filename", b"").decode("utf-8", "replace"))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.sink.write(data[start:end])

    def _part_end(self) -> None:
        self._in_file = False

    def feed(self, chunk: bytes) -> None:
        from python_multipart.exceptions import FormParserError

        try:
            self.parser.write(chunk)
        except FormParserError as exc:
            raise UploadError(400, f"malformed multipart/form-data body ({exc})") from exc

    def finish(self) -> None:
        from python_multipart.exceptions import FormParserError

        try:
            self.parser.finalize()
        except FormParserError as exc:
            raise UploadError(400, f"malformed multipart/form-data body ({exc})") from exc


def _boundary(content_type: str) -> bytes:
    from python_multipart.multipart import parse_options_header

    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary", b"")
    if not boundary:
        raise UploadError(400, "multipart/form-data without a boundary: let your HTTP client build the form")
    return boundary


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise UploadError(400, f"invalid Content-Length header {raw!r}") from None


async def receive_upload(request: Request, path: Path, max_bytes: int) -> Upload:
    """Stream the request's image into ``path`` (created), enforcing ``max_bytes`` on the image.

    Args:
        request: a ``multipart/form-data`` request with the field ``file``, or any other content type
            whose body is the image itself.
        path: where to write the image bytes.
        max_bytes: largest image accepted; a multipart body may exceed it by :data:`MULTIPART_SLACK`.

    Raises:
        UploadError: 413 when too large; 400 for an empty upload, a form without the ``file`` field,
            or a malformed form.
    """
    content_type = request.headers.get("content-type", "")
    multipart = content_type.lower().startswith("multipart/form-data")
    body_limit = max_bytes + MULTIPART_SLACK if multipart else max_bytes
    declared = _declared_length(request)
    if declared is not None and declared > body_limit:
        raise _too_large(max_bytes)

    received = 0
    with path.open("wb") as handle:
        sink = _Sink(handle, max_bytes)
        form = _FormReader(_boundary(content_type), sink) if multipart else None
        async for chunk in request.stream():
            received += len(chunk)
            if received > body_limit:
                raise _too_large(max_bytes)
            if form is None:
                sink.write(chunk)
            else:
                form.feed(chunk)
        if form is not None:
            form.finish()

    if form is not None and form.found == 0:
        raise UploadError(
            400,
            f"the form has no '{FIELD}' field: send the image as {FIELD}=@photo.jpg (multipart/form-data)",
        )
    if sink.size == 0:
        raise UploadError(400, "the upload is empty: send an image file")
    return Upload(path, form.filename if form is not None else "", sink.size)
