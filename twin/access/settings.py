"""Limits and login throttling shared by the IMAP and POP3 sessions.

Defaults follow the seed daemons:

- ``max_command_bytes`` 65536: a command line plus its literals; larger gets
  BAD / -ERR (Cyrus caps literals in the same spirit; 64 KiB is the brief's
  configured maximum, ample for LOGIN, SEARCH and COPY).
- ``failed_login_pause_s`` 3.0: Cyrus imapd.conf ``failedloginpause: 3`` and UW
  imapd's ``sleep (3)`` after a bad password.
- ``max_login_failures`` 3: UW imapd's ``LOGTRY`` -- after three failures the
  session says BYE and the connection is closed.
- ``max_pause_s`` 15.0: the real socket server never sleeps longer than this
  for one failure (assumption; the pause grows by ``failed_login_pause_s`` per
  failure).
- ``autologout_s`` 1800: RFC 3501 section 5.4, at least 30 minutes idle;
  RFC 1939 section 3, POP3 at least 10 minutes (600).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AccessSettings:
    """Limits of one IMAP or POP3 service; all sizes in bytes, times in seconds."""

    max_command_bytes: int = 65536
    max_line_bytes: int = 8192
    failed_login_pause_s: float = 3.0
    max_pause_s: float = 15.0
    max_login_failures: int = 3
    imap_autologout_s: float = 1800.0
    pop3_autologout_s: float = 600.0

    def __post_init__(self) -> None:
        if not 1024 <= self.max_command_bytes <= 1 << 30:
            raise ValueError(
                f"max_command_bytes={self.max_command_bytes} must be 1024..2**30"
            )
        if not 512 <= self.max_line_bytes <= self.max_command_bytes:
            raise ValueError(
                f"max_line_bytes={self.max_line_bytes} must be 512..max_command_bytes"
            )
        if self.failed_login_pause_s < 0 or self.max_pause_s < 0:
            raise ValueError(
                f"login pauses must be >= 0 s, got {self.failed_login_pause_s} and "
                f"{self.max_pause_s}"
            )
        if self.max_login_failures < 1:
            raise ValueError(
                f"max_login_failures={self.max_login_failures} must be >= 1"
            )

    def pause_after(self, failures: int) -> float:
        """Seconds to hold the reply after the *failures*-th bad login (capped)."""
        return min(self.failed_login_pause_s * failures, self.max_pause_s)
