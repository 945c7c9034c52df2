"""Message rendering: real RFC 822 bytes for a spec, so real stages get real input.

Twins the mail the system carried in 2004-2007: campus mail (courses, labs,
seminars, meetings) from legitimate MTAs and the users, and the spam of the
era (stock pump-and-dump, pharmacy, mortgage, replica watches, with "hash
buster" runs of long dictionary words). ``render(spec, population, rng)``
returns the message a client sends after DATA: a sender-side ``Received``
header (inbound), From, To, Subject, Date (from the simulated time), Message-ID,
MIME-Version, a mailer header, Content-Type, and a body that is plain text,
multipart/alternative with HTML (most spam, some ham), or multipart/mixed with
a small base64 attachment (some ham, and all large ham). Lines end in CRLF, as
on the wire. The length is ``spec.size_bytes`` exactly whenever the size is at
least the headers plus a minimal body (sizes >= ``MIN_RENDER_BYTES`` always
are); the ground truth (``is_spam``, ``aim``) never enters the message.

Speed: the text, HTML and base64 corpora are built once (first use) from the
word lists below with a fixed arithmetic walk; rendering slices and joins them
(no per-byte Python work) and draws one small batch of uniforms from *rng*.

Time zero of the simulation is Monday 2007-02-05 00:00 EST (``SIM_EPOCH_UNIX``),
a mid-semester week before the 2007 US daylight-saving change.

Raises ``ValueError`` for a size below 1 byte or a spec without recipients.
"""

from __future__ import annotations

import base64
import re
import time
from bisect import bisect_left
from functools import lru_cache

import numpy as np

from twin.traffic.population import Population
from twin.traffic.workload import FIRST_NAMES, MessageSpec

SIM_EPOCH_UNIX = 1_170_651_600  # 2007-02-05 00:00:00 -0500 (a Monday)
LOCAL_UTC_OFFSET_MIN = -300  # EST
MIN_RENDER_BYTES = 800  # TrafficSettings.min_size_bytes default
_CRLF = "\r\n"
_NOT_AS_IS = re.compile(r"\r(?:[^\n]|\n\.)")
"""What keeps text from going in SMTP DATA as it is: a CR before anything but
an LF, or a line after a CRLF starting with a dot (``twin.stages.smtp``'s)."""
_NOT_AS_IS_DATA = re.compile(_NOT_AS_IS.pattern.encode("ascii"))
"""``_NOT_AS_IS`` for bytes."""

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
    "Dec",
)  # fmt: skip
# Sender time zones of legitimate correspondents (minutes east of UTC).
_LEGIT_ZONES = (-300, -300, -300, -360, -420, -480, -240, 0, 60, 60, 120, 330, 480,
                540, -300, -300)  # fmt: skip

# --- word lists -------------------------------------------------------------

_HAM_SUBJECTS = (
    "ECE 341 lab 4 grading", "Re: homework 5 question", "Seminar: low-power VLSI "
    "design, Thursday 4pm", "faculty meeting moved to EB 210", "Re: thesis draft "
    "chapter 3", "PhD qualifying exam schedule", "Re: FPGA board checkout",
    "TA office hours this week", "Re: conference travel reimbursement",
    "Colloquium: wireless sensor networks", "ECE 202 midterm solutions posted",
    "Re: Re: simulation results", "lab safety training reminder", "Re: paper "
    "review for ICASSP", "group meeting tomorrow at 10", "Re: NSF proposal budget",
    "server downtime Saturday 6am", "Re: question about project 2", "Fwd: call "
    "for papers", "student design competition", "Re: recommendation letter",
    "course evaluations due Friday", "Re: cluster account request",
    "Re: lunch on Wednesday?", "graduate seminar sign-up sheet",
    "Re: oscilloscope in lab B", "printer on 3rd floor is fixed", "Re: grades",
)  # fmt: skip
_SPAM_SUBJECTS = (
    "Stock Alert: CDGT set to EXPLODE", "Hot pick: this stock could triple",
    "re: your mortgage application", "Refinance today at 3.25%",
    "V1AGRA 80% off", "Cheap meds online - no prescription",
    "Rolex replica - look like a millionaire", "Re: your order",
    "Fw: watches for less", "Lowest rates in 45 years", "Get approved in minutes",
    "You have been pre-approved", "Save on Cialis now", "Xanax, Valium, Soma",
    "INVESTOR ALERT: strong buy", "Breaking news: CDGT signs deal",
    "best prices on Swiss watches", "Your credit doesn't matter",
    "hi", "important notice", "re:", "Enlarge your portfolio",
)  # fmt: skip
_HAM_PHRASES = (
    "Hi all,", "Thanks for the quick reply.", "The lab report for experiment 4 is "
    "due next Monday at 5pm.", "Please bring your laptops to the meeting.",
    "The seminar will be held in the Engineering Building, room 210.",
    "I have attached the slides from today's lecture.", "Let me know if you "
    "have any questions about the homework.", "The simulation results look "
    "reasonable but the noise floor is higher than expected.", "Can we meet on "
    "Thursday afternoon to discuss the thesis draft?", "Office hours are "
    "cancelled this week because of the conference.", "The FPGA boards are in "
    "the cabinet in lab B; sign them out with the TA.", "Grades for the midterm "
    "have been posted on the course web page.", "Our speaker will talk about "
    "low-power circuit design for wireless sensor nodes.", "Refreshments will "
    "be served at 3:45 before the talk.", "I ran the SPICE model again with the "
    "new parameters.", "The deadline for the NSF proposal is the 15th.",
    "Please review the attached budget and send comments by Friday.",
    "The department server will be down for maintenance on Saturday morning.",
    "Remember to back up your home directory before the upgrade.", "Best "
    "regards,", "Thanks,", "See you tomorrow.", "The oscilloscope in lab B is "
    "back from calibration.", "Problem 3 asks for the transfer function, not "
    "the impulse response.", "I think the bug is in the clock divider.",
    "We need two more volunteers for the open house.", "The reading group "
    "meets every other Tuesday.", "Could you forward me the reviewer comments?",
    "The camera-ready version is due next week.", "Students should submit "
    "their code through the course account.", "Cheers,",
)  # fmt: skip
_SPAM_PHRASES = (
    "This stock is set to EXPLODE!", "CDGT Current price: $0.42 Target: $2.50",
    "Strong Buy recommendation from our analysts.", "Watch this one trade "
    "Monday!", "Get in before the news breaks.", "Huge PR campaign under way.",
    "Buy V1AGRA, C1AL1S and more at 80% off.", "No prescription needed, "
    "discreet overnight shipping.", "Our online pharmacy has the lowest "
    "prices.", "Refinance your mortgage today at 3.25% fixed.", "Bad credit? "
    "No problem - you are pre-approved.", "Lenders compete for your loan.",
    "Rolex, Omega, Cartier replica watches from $199.", "Look like a million "
    "bucks for a fraction of the price.", "Swiss movement, sapphire crystal, "
    "free shipping.", "Click here to claim your offer.", "This is a limited time "
    "offer.", "To be removed from our list reply with REMOVE in the subject.",
    "This message is not spam, you signed up to receive it.", "Act now!",
    "Dear friend,", "Dear homeowner,", "Satisfaction guaranteed!",
)  # fmt: skip
# Hash busters: long lowercase dictionary words (SpamAssassin LONGWORDS bait).
_LONG_WORDS = (
    "parthenogenesis", "irreconcilable", "mischievously", "counterbalance",
    "photosynthesis", "indefatigable", "tranquillity", "extravagantly",
    "hydroelectric", "misunderstanding", "archaeological", "thermodynamics",
    "quintessential", "circumference", "interrogative", "labyrinthine",
    "bewilderment", "unquestionable", "metamorphosis", "kaleidoscopic",
)  # fmt: skip
_SPAM_URL_HOSTS = (
    "rxdeals-online.biz", "best-meds-now.info", "lowrate-refi.com",
    "swisswatch-replica.net", "cdgt-investor.info", "pharma-direct.ru",
)  # fmt: skip
# Legitimate mail names mailers whose message layout the renderer does not
# pretend to copy: SpamAssassin's FORGED_MUA_OUTLOOK / FORGED_MUA_MOZILLA rules
# check a claimed Outlook or Mozilla against its Message-ID and MIME layout,
# and would (rightly) call our rendering of those a forgery.
_HAM_MAILERS = (
    "User-Agent: Mutt/1.4.2.2i", "User-Agent: Mutt/1.5.13 (2006-08-11)",
    "User-Agent: Pine 4.64", "User-Agent: Alpine 0.82 (LRH 700 2007-03-13)",
    "X-Mailer: Apple Mail (2.752.3)", "User-Agent: SquirrelMail/1.4.8",
    "User-Agent: KMail/1.9.5", "X-Mailer: Evolution 2.8.2.1",
)  # fmt: skip
_SPAM_MAILERS = (
    "X-Mailer: Microsoft Outlook Express 6.00.2900.2180",
    "X-Mailer: The Bat! (v3.0.1.33) Professional",
    "X-Mailer: Microsoft Office Outlook, Build 11.0.5510",
    "X-Mailer: QUALCOMM Windows Eudora Version 6.1.0.6",
)  # fmt: skip
_ATTACHMENTS = (
    ("application/pdf", "slides.pdf"), ("application/pdf", "paper-draft.pdf"),
    ("application/msword", "minutes.doc"), ("application/vnd.ms-excel",
    "budget.xls"), ("application/vnd.ms-powerpoint", "talk.ppt"),
    ("application/pdf", "lab4-handout.pdf"), ("application/zip", "code.zip"),
)  # fmt: skip
_LINE_WIDTH = 72


def _walk(seed: int):
    """A fixed arithmetic sequence (64-bit LCG) for building the corpora."""
    state = seed
    while True:
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        yield state >> 33


def _wrap(words: list[str]) -> list[str]:
    lines = []
    line = ""
    for word in words:
        if line and len(line) + 1 + len(word) > _LINE_WIDTH:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def _text_corpus(phrases: tuple[str, ...], size: int, seed: int, spam: bool) -> str:
    walk = _walk(seed)
    lines: list[str] = []
    total = 0
    while total < size:
        paragraph_words: list[str] = []
        for _ in range(2 + next(walk) % 4):
            paragraph_words += phrases[next(walk) % len(phrases)].split()
        if spam and next(walk) % 3 == 0:
            paragraph_words += [
                _LONG_WORDS[next(walk) % len(_LONG_WORDS)] for _ in range(8)
            ]
        if spam and next(walk) % 2 == 0:
            host = _SPAM_URL_HOSTS[next(walk) % len(_SPAM_URL_HOSTS)]
            paragraph_words.append(f"http://www.{host}/?id={next(walk) % 100000}")
        paragraph = _wrap(paragraph_words) + [""]
        lines += paragraph
        total += sum(len(line) + 2 for line in paragraph)
    return _CRLF.join(lines) + _CRLF


def _html_corpus(phrases: tuple[str, ...], size: int, seed: int, spam: bool) -> str:
    """HTML lines; tags only at line starts and ends, so a cut is recoverable."""
    walk = _walk(seed)
    colours = ("#ff0000", "#0000ff", "#008000", "#000000", "#cc00cc")
    lines: list[str] = []
    total = 0
    while total < size:
        words: list[str] = []
        for _ in range(1 + next(walk) % 3):
            words += phrases[next(walk) % len(phrases)].split()
        if spam and next(walk) % 3 == 0:
            words += [_LONG_WORDS[next(walk) % len(_LONG_WORDS)] for _ in range(6)]
        block = [f'<p><font face="Arial" color="{colours[next(walk) % 5]}">']
        block += _wrap(words)
        block.append("</font></p>")
        if spam and next(walk) % 2 == 0:
            host = _SPAM_URL_HOSTS[next(walk) % len(_SPAM_URL_HOSTS)]
            block.append(f'<a href="http://www.{host}/">Click here</a><br>')
        lines += block
        total += sum(len(line) + 2 for line in block)
    return _CRLF.join(lines) + _CRLF


def _base64_corpus(size: int) -> str:
    raw = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    walk = _walk(20070205)
    while len(raw) < size * 3 // 4 + 64:
        raw += next(walk).to_bytes(4, "little")
    del raw[len(raw) // 57 * 57 :]  # whole 76-character lines only
    encoded = base64.encodebytes(bytes(raw)).decode("ascii")  # 76-char lines
    return encoded.replace("\n", _CRLF)


class _Corpus:
    """Precomputed text blocks and the line starts to slice them at."""

    __slots__ = ("text", "data", "starts", "dotted", "plain", "crs")

    def __init__(self, text: str) -> None:
        self.text = text
        self.data = text.encode("ascii")
        starts = [0]
        find = text.find
        position = find(_CRLF)
        while position >= 0 and position + 2 < len(text):
            starts.append(position + 2)
            position = find(_CRLF, position + 2)
        self.starts = starts
        # what a slice needs to tell whether it goes in DATA as it is
        # (``cut``): the line starts with a dot; whether every CR and LF is
        # in a CRLF pair and the text ends with one
        self.dotted = [p for p in starts if text.startswith(".", p)]
        crlf = text.count(_CRLF)
        self.plain = (text.count("\r") == crlf == text.count("\n")
                      and text.endswith(_CRLF))
        # where the CRs are: a slice's count of them by bisection
        crs = []
        position = find("\r")
        while position >= 0:
            crs.append(position)
            position = find("\r", position + 1)
        self.crs = crs

    def slice(self, length: int, u: float) -> str:
        """*length* characters starting at a line start picked by *u*, ending in
        CRLF (a partial last line is closed with one)."""
        return self.cut(length, u)[0]

    def cut(self, length: int, u: float) -> tuple[str, bool]:
        """``slice(length, u)`` and whether, after a CRLF, it goes in SMTP DATA
        as it is (``twin.stages.smtp.goes_as_is``: CRLF line ends only, no
        line starting with a dot), told from the corpus's line starts rather
        than by a search of the slice."""
        source, first, last, tail, clean, _ = self.cut_data(length, u)
        return (source[first:last] + tail).decode("ascii"), clean

    def cut_data(self, length: int, u: float) -> tuple[bytes, int, int, bytes,
                                                     bool, int]:
        """``cut(length, u)`` as bytes, in pieces: its body is
        ``source[first:last]`` (the corpus's own bytes, where it fits in
        them, so a view of them copies nothing), then *tail*; whether it is
        clean; the number of CRs in it (by bisection, where it needs no
        search)."""
        if length < 2:
            return b"", 0, 0, b"\r\n"[:length], length == 0, length
        source = self.data
        period = len(source)
        starts = self.starts
        start = starts[min(int(u * len(starts)), len(starts) - 1)]
        body_end = start + length - 2
        if body_end > period:  # a slice past the end: the text again after it
            source = source * (body_end // period + 1)
        # the text ends in a CRLF, so its copies line up: a count before a
        # place in them is the copies' before it and the rest's
        crs = _before(self.crs, body_end, period) - _before(self.crs, start, period)
        clean = True
        if self.plain:
            dotted = self.dotted
            clean = not dotted or (_before(dotted, start, period)
                                   == _before(dotted, body_end, period))
        tail = b"\r\n"
        if body_end > start and source[body_end - 1] == 13:  # ends in a CR:
            body_end -= 1  # the CR becomes a dot
            tail = b".\r\n"
            crs -= 1
            if body_end == start or source[body_end - 1] == 10:
                clean = False  # the dot starts the last line
        if not self.plain:
            clean = _NOT_AS_IS_DATA.search(
                b"\r\n" + source[start:body_end] + tail) is None
        return source, start, body_end, tail, clean, crs + 1


def _before(places: list[int], place: int, period: int) -> int:
    """How many of *places* (sorted, in a text of *period* characters) come
    before *place* in the text repeated."""
    return place // period * len(places) + bisect_left(places, place % period)


@lru_cache(maxsize=1)
def _corpora() -> dict[str, _Corpus]:
    return {
        "ham": _Corpus(_text_corpus(_HAM_PHRASES, 96_000, 1, spam=False)),
        "spam": _Corpus(_text_corpus(_SPAM_PHRASES, 96_000, 2, spam=True)),
        "ham_html": _Corpus(_html_corpus(_HAM_PHRASES, 64_000, 3, spam=False)),
        "spam_html": _Corpus(_html_corpus(_SPAM_PHRASES, 96_000, 4, spam=True)),
        "base64": _Corpus(_base64_corpus(64_000)),
    }


def _close_cut_tag(html: bytes, first: int, last: int,
                   tail: bytes) -> tuple[int, bytes]:
    """Blank out a tag cut in half on the last line of an HTML slice
    (``html[first:last] + tail``, as ``_Corpus.cut_data`` gives it): the
    slice's new *last* and *tail*."""
    size = last - first + len(tail)
    # the last line's start in the slice (1 where no CRLF is before it)
    found = html.rfind(b"\r\n", first, last)
    line = (found - first if found >= 0 else -1) + 2
    lt = html.rfind(b"<", first + line, last) if first + line <= last else -1
    if lt >= 0 and html.find(b">", lt, last) < 0:
        lt -= first
        return first + lt, b" " * (size - 2 - lt) + b"\r\n"
    return last, tail


def format_date(sim_s: float, offset_min: int) -> str:
    """RFC 2822 date of simulated time *sim_s* in zone *offset_min* (east of UTC)."""
    t = time.gmtime(int(SIM_EPOCH_UNIX + sim_s) + offset_min * 60)
    sign = "-" if offset_min < 0 else "+"
    hours, minutes = divmod(abs(offset_min), 60)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{hours:02d}{minutes:02d}"
    )


def _display_name(address: str) -> str:
    local = address.split("@", 1)[0]
    if "." in local:
        return " ".join(part.capitalize() for part in local.split(".")[:2])
    return ""


def render(
    spec: MessageSpec, population: Population, rng: np.random.Generator
) -> bytes:
    """The message of *spec* as the client sends it after DATA (CRLF lines)."""
    return render_sent(spec, population, rng)[0]


def render_sent(
    spec: MessageSpec, population: Population, rng: np.random.Generator
) -> tuple[bytes, bool]:
    """``render``'s message and whether it goes in DATA as it is
    (``twin.stages.smtp.goes_as_is``), told from the pieces it is made of
    without a search of the message (0.64 s a GB, ~9 % of the front's time
    in the mail week)."""
    message, clean, _ = rendered(spec, population, rng)
    return message, clean


def _joined(pieces: list) -> bytes:
    """The pieces ``rendered`` makes, in one copy: str, bytes, or (source,
    first, last) for ``source[first:last]`` (a view of a corpus: no copy)."""
    return b"".join([
        piece.encode("ascii") if type(piece) is str
        else piece if type(piece) is bytes
        else memoryview(piece[0])[piece[1]:piece[2]]
        for piece in pieces
    ])


def rendered(
    spec: MessageSpec, population: Population, rng: np.random.Generator
) -> tuple[bytes, bool, int]:
    """``render_sent``'s message and flag, and the number of CRs in the
    message, counted from its pieces rather than by a pass over it (which
    took ~1 s of the front's CPU in the mail week): a message that goes as
    it is reaches a maildir with its CRs stripped
    (``SmtpServer.transact``'s *crs*)."""
    if spec.size_bytes < 1:
        raise ValueError(f"size_bytes(={spec.size_bytes}) must be >= 1")
    if not spec.recipients:
        raise ValueError(f"message {spec.msg_id} has no recipients")
    u = rng.random(13).tolist()
    corpora = _corpora()
    spam = spec.is_spam
    sender = spec.sender
    sender_domain = sender.rsplit("@", 1)[-1]
    token = f"{int(u[0] * 0xFFFFFFFF):08X}"
    arrival = spec.arrival_s

    # Date as the sender's clock shows it.
    if spam:
        zone = _LEGIT_ZONES[int(u[1] * len(_LEGIT_ZONES))]
        if u[2] < 0.08:  # a bot clock hours ahead (DATE_IN_FUTURE_03_06 bait)
            composed = arrival + 3 * 3600 + u[3] * 3 * 3600
        elif u[2] < 0.16:  # hours behind
            composed = arrival - 3 * 3600 - u[3] * 6 * 3600
        else:
            composed = arrival - u[3] * 30
    elif spec.kind == "outbound":
        zone = LOCAL_UTC_OFFSET_MIN
        composed = arrival - u[3] * 5
    else:
        zone = _LEGIT_ZONES[int(u[1] * len(_LEGIT_ZONES))]
        composed = arrival - 2 - u[3] * 120
    date = format_date(composed, zone)

    headers = []
    if spec.kind != "outbound":
        # The hop before the sending MTA: a workstation on the sender's LAN,
        # or a forged one for spam.
        if spam:
            hop_ip = (
                f"{20 + int(u[4] * 200)}.{int(u[5] * 256)}.{int(u[6] * 256)}."
                f"{1 + int(u[12] * 254)}"
            )
        else:
            hop_ip = f"192.168.{int(u[4] * 254) + 1}.{int(u[5] * 254) + 1}"
        headers.append(
            f"Received: from {'localhost' if spam else 'ws' + token[:3].lower()} "
            f"([{hop_ip}])\r\n\tby {spec.helo} "
            f"{'with SMTP' if spam else '(Postfix) with ESMTP'} id {token}\r\n"
            f"\tfor <{spec.recipients[0]}>; {date}"
        )
    display = _display_name(sender)
    if not display and spam:
        display = FIRST_NAMES[int(u[7] * len(FIRST_NAMES))].capitalize()
    headers.append(f'From: "{display}" <{sender}>' if display else f"From: {sender}")
    recipients = spec.recipients
    if spam and len(recipients) > 3:
        headers.append("To: undisclosed-recipients:;")
    else:
        # At most three shown; the rest were blind copies (keeps the header
        # short enough for the smallest sizes).
        headers.append("To: " + ", ".join(recipients[:3]))
    subjects = _SPAM_SUBJECTS if spam else _HAM_SUBJECTS
    headers.append("Subject: " + subjects[int(u[8] * len(subjects))])
    headers.append("Date: " + date)
    headers.append(
        f"Message-ID: <{int(SIM_EPOCH_UNIX + composed)}.{spec.msg_id}.{token}"
        f"@{sender_domain}>"
    )
    headers.append("MIME-Version: 1.0")
    mailers = _SPAM_MAILERS if spam else _HAM_MAILERS
    headers.append(mailers[int(u[9] * len(mailers))])
    head = _CRLF.join(headers) + _CRLF
    # the templates below hold CRLF line ends only and no line with a dot
    # first; the slices tell their own
    clean = _NOT_AS_IS.search(head) is None

    text_corpus = corpora["spam" if spam else "ham"]
    size = spec.size_bytes
    structure_u = u[10]
    offset_u = u[11]
    boundary = f"----=_NextPart_000_{token}"
    # Structure: spam mostly HTML alternatives; ham plain, some alternative,
    # some (and all large) with an attachment.
    if spam:
        structure = "alternative" if structure_u < 0.6 else "plain"
    elif size > 64_000 or structure_u < 0.1:
        structure = "mixed"
    elif structure_u < 0.3:
        structure = "alternative"
    else:
        structure = "plain"

    if structure == "alternative":
        html_corpus = corpora["spam_html" if spam else "ham_html"]
        top = (
            f'Content-Type: multipart/alternative;\r\n\tboundary="{boundary}"\r\n\r\n'
            f"This is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n"
            'Content-Type: text/plain; charset="us-ascii"\r\n'
            "Content-Transfer-Encoding: 7bit\r\n\r\n"
        )
        middle = (
            f"\r\n--{boundary}\r\n"
            'Content-Type: text/html; charset="us-ascii"\r\n'
            "Content-Transfer-Encoding: 7bit\r\n\r\n<html><body>\r\n"
        )
        bottom = f"</body></html>\r\n\r\n--{boundary}--\r\n"
        room = size - len(head) - len(top) - len(middle) - len(bottom)
        if room >= 200:
            text_len = room * 2 // 5
            html, first, last, html_tail, html_clean, html_crs = (
                html_corpus.cut_data(room - text_len, offset_u))
            # (spaces for a tag: as clean, as many CRs)
            last, html_tail = _close_cut_tag(html, first, last, html_tail)
            text, t_first, t_last, text_tail, text_clean, text_crs = (
                text_corpus.cut_data(text_len, 1.0 - offset_u))
            pieces = [head + top, (text, t_first, t_last), text_tail, middle,
                      (html, first, last), html_tail, bottom]
            return _joined(pieces), (clean and html_clean and text_clean), (
                head.count("\r") + top.count("\r") + text_crs
                + middle.count("\r") + html_crs + bottom.count("\r"))
        structure = "plain"
    if structure == "mixed":
        content_type, filename = _ATTACHMENTS[int(structure_u * 70) % len(_ATTACHMENTS)]
        top = (
            f'Content-Type: multipart/mixed;\r\n\tboundary="{boundary}"\r\n\r\n'
            f"This is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n"
            'Content-Type: text/plain; charset="us-ascii"\r\n'
            "Content-Transfer-Encoding: 7bit\r\n\r\n"
        )
        middle = (
            f"\r\n--{boundary}\r\n"
            f'Content-Type: {content_type}; name="{filename}"\r\n'
            "Content-Transfer-Encoding: base64\r\n"
            f'Content-Disposition: attachment; filename="{filename}"\r\n\r\n'
        )
        # The attachment's last CRLF is the one before the closing delimiter.
        bottom = f"--{boundary}--\r\n"
        room = size - len(head) - len(top) - len(middle) - len(bottom)
        if room >= 400:
            text_len = min(max(room // 10, 200), 3000)
            attachment_len = room - text_len
            # Whole 78-byte lines (76 base64 characters + CRLF), then a last
            # line of a multiple of 4 characters; what is left goes to the text.
            lines, rest = divmod(attachment_len, 78)
            last = (rest - 2) // 4 * 4 if rest >= 6 else 0
            base64_corpus = corpora["base64"]
            pieces = []
            attached = attachment_crs = 0  # the attachment's length, CRs
            attachment_clean = True
            if lines:
                source, first, end, a_tail, attachment_clean, attachment_crs = (
                    base64_corpus.cut_data(lines * 78, 0.0))
                pieces += [(source, first, end), a_tail]
                attached = lines * 78
            if last:
                tail = base64_corpus.text[:last] + _CRLF
                pieces.append(tail)
                attached += len(tail)
                attachment_crs += tail.count("\r")
                attachment_clean = attachment_clean and (
                    _NOT_AS_IS.search(_CRLF + tail) is None)
            text, t_first, t_last, text_tail, text_clean, text_crs = (
                text_corpus.cut_data(room - attached, offset_u))
            pieces = [head + top, (text, t_first, t_last), text_tail, middle,
                      *pieces, bottom]
            return _joined(pieces), clean and attachment_clean and text_clean, (
                head.count("\r") + top.count("\r") + text_crs
                + middle.count("\r") + attachment_crs + bottom.count("\r"))
    top = (
        'Content-Type: text/plain; charset="us-ascii"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
    )
    room = max(size - len(head) - len(top), 2)
    text, first, last, tail, text_clean, text_crs = text_corpus.cut_data(
        room, offset_u)
    return _joined([head + top, (text, first, last), tail]), clean and text_clean, (
        head.count("\r") + top.count("\r") + text_crs)
