"""Where mailtwin keeps derived files that only save time (never results).

The compiled SpamAssassin rule set is the one such file today: building it
takes seconds, loading it a fraction of that. The folder is
``$MAILTWIN_CACHE`` when set (empty: no cache), else
``$XDG_CACHE_HOME/mailtwin``, else ``~/.cache/mailtwin``. Nothing in it changes
what a run computes: a file there is named by a digest of everything it was
built from, and a damaged or foreign one is rebuilt.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path | None:
    """The cache folder, or None when caching is switched off."""
    chosen = os.environ.get("MAILTWIN_CACHE")
    if chosen is not None:
        return Path(chosen).expanduser() if chosen else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "mailtwin"
