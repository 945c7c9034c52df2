"""Taking mail and zip archives apart: decoders, defensive MIME, bounded zip."""

import base64
import binascii
import io
import quopri
import zipfile

from twin.stages.antivirus.mime import (
    decode_base64,
    decode_uu,
    is_zip,
    looks_like_mail,
    mail_parts,
    split_headers,
    zip_members,
)

PAYLOAD = bytes(range(256)) * 3


def _uu(data: bytes, name: str = "f.bin") -> bytes:
    lines = [b"begin 644 " + name.encode()]
    for i in range(0, len(data), 45):
        lines.append(binascii.b2a_uu(data[i:i + 45]).rstrip(b"\n"))
    lines += [b"`", b"end", b""]
    return b"\n".join(lines)


def test_decoders_are_lenient():
    assert decode_base64(base64.encodebytes(PAYLOAD)) == PAYLOAD
    broken = base64.b64encode(b"hello world!")[:-1]  # lost its last character
    assert decode_base64(broken).startswith(b"hello world")
    assert decode_uu(b"preamble\n" + _uu(PAYLOAD)) == PAYLOAD
    assert decode_uu(b"no uuencoded block here") == b""


def test_split_headers_unfolds_and_drops_comments_from_names():
    headers, body = split_headers(
        b"From x@y  Mon Jan 1 00:00:00 2007\nSubject: a\n b\n"
        b"Content-Type(meow): text/plain\n\nbody\n")
    assert headers == {b"subject": [b"a b"], b"content-type": [b"text/plain"]}
    assert body == b"body\n"
    assert split_headers(b"just text\n\nmore") == ({}, b"just text\n\nmore")


def _multipart(boundary_header: bytes, parts: list[bytes], boundary: bytes) -> bytes:
    out = [b"From: a@example.com", b"MIME-Version: 1.0", boundary_header, b""]
    for part in parts:
        out += [b"--" + boundary, part]
    out += [b"--" + boundary + b"--", b""]
    return b"\r\n".join(out)


def test_multipart_parts_are_decoded_with_exact_counts():
    b64 = base64.encodebytes(PAYLOAD)
    qp = quopri.encodestring(b"caf\xe9 = ok\n")
    message = _multipart(b'Content-Type: multipart/mixed; boundary="BB"', [
        b"Content-Type: text/plain\r\n\r\nhello",
        b"Content-Type: application/octet-stream; name=p.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64,
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + qp,
        b"Content-Type: text/plain\r\n\r\n" + _uu(b"uu data"),
    ], b"BB")
    parsed = mail_parts(message, max_depth=8)
    assert [(p.name, p.encoding) for p in parsed.parts] == [
        ("/1", "identity"), ("p.bin", "base64"), ("/3", "quoted-printable"),
        ("/4", "uuencode")]
    assert parsed.parts[0].data == b"hello\r\n"
    assert parsed.parts[1].data == PAYLOAD
    assert parsed.parts[2].data.startswith(b"caf\xe9 = ok")
    assert parsed.parts[3].data == b"uu data"
    assert parsed.entities == 5
    assert parsed.decoded_bytes == sum(p.encoded_bytes for p in parsed.parts[1:])


def test_nested_multipart_and_message_rfc822_and_depth_bound():
    inner = _multipart(b"Content-Type: multipart/alternative; boundary=IN",
                       [b"\r\ninner text"], b"IN")
    outer = _multipart(b"Content-Type: multipart/mixed; boundary=OUT", [
        b"Content-Type: message/rfc822\r\n\r\n" + inner], b"OUT")
    parsed = mail_parts(outer, max_depth=8)
    assert [p.data for p in parsed.parts] == [b"inner text\r\n"]
    assert parsed.entities == 4 and not parsed.depth_exceeded
    shallow = mail_parts(outer, max_depth=2)
    assert shallow.parts == [] and shallow.depth_exceeded


def test_every_named_boundary_splits_the_body():
    """Contradictory headers cannot hide a part (ClamAV's clam.mail-*.eml cases)."""
    hidden = base64.encodebytes(b"HIDDEN PAYLOAD")
    body = (b"--X\r\nContent-Type: text/plain\r\n\r\ndecoy\r\n--X--\r\n"
            b"--Y\r\nContent-Transfer-Encoding: base64\r\n\r\n" + hidden + b"--Y--\r\n")
    for headers in (b"Content-Type: multipart/mixed; boundary=X; boundary=Y",
                    b"Content-Type: multipart/mixed; boundary=X\r\n"
                    b"Content-Type: multipart/mixed; boundary=Y",
                    b"Content-Disposition: attachment; boundary*=utf-8''X\r\n"
                    b"Content-Type: multipart/mixed; boundary=\"Y\""):
        parsed = mail_parts(b"Subject: t\r\n" + headers + b"\r\n\r\n" + body, 8)
        assert b"HIDDEN PAYLOAD" in [p.data for p in parsed.parts], headers


def test_looks_like_mail():
    assert looks_like_mail(b"From someone@example.com Mon Jan 1\n")
    assert looks_like_mail(b"Received: from x\n")
    assert looks_like_mail(b"Content-Type(c): text/plain\n")
    assert not looks_like_mail(b"MZ\x90\x00")
    assert not looks_like_mail(b"Hello: world")


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_members_are_bounded():
    data = _zip({"a.txt": b"a" * 100, "b.txt": b"b" * 5000, "c.txt": b"c"})
    assert is_zip(data) and not is_zip(b"PK\x05\x06")
    unpacked = zip_members(data, max_files=10, max_file_size_bytes=10_000)
    assert [n for n, _ in unpacked.members] == ["a.txt", "b.txt", "c.txt"]
    assert unpacked.inflated_bytes == 5101 and unpacked.skipped == []
    small = zip_members(data, max_files=10, max_file_size_bytes=1000)
    assert [n for n, _ in small.members] == ["a.txt", "c.txt"]
    assert small.skipped == ["b.txt: 5000 bytes over 1000"]
    few = zip_members(data, max_files=1, max_file_size_bytes=10_000)
    assert [n for n, _ in few.members] == ["a.txt"]
    assert few.skipped == ["b.txt: over 1 files"]
    broken = zip_members(b"PK\x03\x04garbage", 10, 10_000)
    assert broken.members == [] and broken.skipped[0].startswith("archive:")
