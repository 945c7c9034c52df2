"""Mailbox and user names: the only way a client string becomes a path.

Twins the name checks of UW IMAP's ``mailboxfile()`` and Cyrus's
``mboxname_policycheck()``: a client-supplied name is split on the hierarchy
delimiter ``/`` and every component must be a plain, printable ASCII word --
no empty parts, no ``.``/``..``, no leading ``.`` or ``~``, no NUL or control
characters, no wildcard ``%``/``*``, no backslash. ``INBOX`` is matched without
regard to case and has no children. A rejected name raises ``NameError_``
(the protocol turns it into NO); nothing here touches the file system, and the
stores additionally check that the resolved path stays under the user's root.

LIST patterns are matched against names the store enumerated, never used as
paths: ``*`` matches anything, ``%`` anything but the delimiter.
"""

from __future__ import annotations

import re

DELIMITER = "/"
"""Hierarchy delimiter of both stores (UW IMAP's, and Cyrus with unixhierarchysep)."""

MAX_NAME_CHARS = 255
"""Longest mailbox name accepted (one component of a path on most file systems)."""

MAX_USER_CHARS = 64

_USER = re.compile(r"[a-z0-9_][a-z0-9_.+-]{0,63}\Z")
_COMPONENT_BAD = re.compile(r"[\x00-\x1f\x7f-\uffff%*\\\"]")


class MailboxNameError(ValueError):
    """A client-supplied mailbox name that no store may use."""


def check_user(user: str) -> str:
    """Return *user* lower-cased, or raise MailboxNameError for unsafe names."""
    folded = user.lower()
    if not _USER.match(folded) or ".." in folded:
        raise MailboxNameError(f"user name {user!r} is not a plain login name")
    return folded


def split_name(name: str, *, forbidden: str = "") -> tuple[str, ...]:
    """Split a mailbox *name* into checked components; ``("INBOX",)`` for INBOX.

    *forbidden* lists extra characters a store cannot hold in a component
    (maildir++ uses ``.`` as its own separator).
    """
    if not name or len(name) > MAX_NAME_CHARS:
        raise MailboxNameError(
            f"mailbox name must be 1..{MAX_NAME_CHARS} characters, got {len(name)}"
        )
    if name.upper() == "INBOX":
        return ("INBOX",)
    parts = tuple(name.split(DELIMITER))
    if parts[0].upper() == "INBOX":
        raise MailboxNameError("INBOX has no child mailboxes here")
    for part in parts:
        if not part or part in (".", ".."):
            raise MailboxNameError(f"mailbox name {name!r} has an empty or dot part")
        if part[0] in ".~" or _COMPONENT_BAD.search(part):
            raise MailboxNameError(f"mailbox name {name!r} has a forbidden character")
        if part.endswith(".lock"):
            raise MailboxNameError(f"mailbox name {name!r} ends like a lock file")
        for char in forbidden:
            if char in part:
                raise MailboxNameError(
                    f"mailbox name {name!r} may not contain {char!r}"
                )
    return parts


def list_matcher(reference: str, pattern: str) -> re.Pattern[str]:
    """Compile a LIST *reference* + *pattern* into a regex over mailbox names.

    A leading ``INBOX`` in the pattern matches without regard to case, like the
    name itself; the rest is case-sensitive.
    """
    full = reference + pattern
    if full[:5].upper() == "INBOX":
        full = "INBOX" + full[5:]
    out = []
    for char in full:
        if char == "*":
            out.append(".*")
        elif char == "%":
            out.append("[^/]*")
        else:
            out.append(re.escape(char))
    return re.compile("".join(out) + r"\Z", re.DOTALL)
