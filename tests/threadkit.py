"""What tests of reads with pages asked ahead share."""

from __future__ import annotations

import threading


def settle() -> None:
    """Wait for the pages asked ahead that were still in flight when a read ended."""
    for thread in threading.enumerate():
        if thread.name.startswith("wcsync-pages"):
            thread.join(5)
