"""Mail access: IMAP4rev1 and POP3 servers over the mail stores.

The seed system had two access stacks, both twinned here for real:

- 2004: UW IMAP and QPopper over mbox spools (``mboxstore``): every open parses
  the whole file, every checkpoint or expunge rewrites it, and QPopper copies the
  whole drop aside at login.
- 2007: Cyrus IMAP and POP3 over maildir (``cyrusstore``): a per-mailbox index of
  fixed records and a header cache, kept current at delivery, so opening a
  mailbox and fetching headers reads the index, not the messages.

``imap.ImapSession`` and ``pop3.Pop3Session`` are protocol sessions fed bytes;
each command's ``Work`` is kept so the simulator can charge it in-process.
``server`` puts the same sessions on real sockets (``twin serve imap|pop3``).
Modules here import only the standard library, numpy and ``twin.stages.*`` /
``twin.access.*``.
"""
