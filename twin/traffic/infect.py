"""Viral mail for the workload: a message with a zipped EICAR test file attached.

``infect(message)`` turns a rendered message (CRLF lines) into a
multipart/mixed one: its original body becomes the first part and a zip
archive holding the EICAR anti-virus test file (FACTS.md "ClamAV") the
second, base64-encoded as worms of the era sent themselves. The zip is built
with fixed timestamps, so the same message infects to the same bytes.
"""

from __future__ import annotations

import base64
import io
import zipfile

# the 68-byte EICAR test string (FACTS.md "ClamAV")
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
_BOUNDARY = b"----=_twin_attachment_7f3a"
_ZIP_TIME = (2007, 2, 5, 0, 0, 0)


def _archive(name: str = "document.pif") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, EICAR)
    return buffer.getvalue()


_ATTACHMENT = base64.encodebytes(_archive()).replace(b"\n", b"\r\n")


def infect(message: bytes) -> bytes:
    """*message* with a zipped EICAR attachment; ValueError if it has no body."""
    head, separator, body = message.partition(b"\r\n\r\n")
    if not separator:
        raise ValueError("message has no header/body separator (a blank line)")
    headers: list[bytes] = []
    moved: list[bytes] = []  # the body's own MIME headers, with continuations
    into_moved = False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            (moved if into_moved else headers).append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        into_moved = name in (b"content-type", b"content-transfer-encoding")
        (moved if into_moved else headers).append(line)
    if not any(line.lower().startswith(b"mime-version:") for line in headers):
        headers.append(b"MIME-Version: 1.0")
    headers.append(b'Content-Type: multipart/mixed; boundary="' + _BOUNDARY + b'"')
    first = moved or [b"Content-Type: text/plain; charset=us-ascii"]
    return b"\r\n".join(
        [
            *headers,
            b"",
            b"This is a multi-part message in MIME format.",
            b"--" + _BOUNDARY,
            *first,
            b"",
            body.rstrip(b"\r\n"),
            b"--" + _BOUNDARY,
            b'Content-Type: application/zip; name="document.zip"',
            b"Content-Transfer-Encoding: base64",
            b'Content-Disposition: attachment; filename="document.zip"',
            b"",
            _ATTACHMENT.rstrip(b"\r\n"),
            b"--" + _BOUNDARY + b"--",
            b"",
        ]
    )
