"""Sandbox Creatio: forms login, OAuth client credentials and OData 4 over in-memory tables.

``CreatioApp`` is loaded on first use, so that importing ``sandbox.creatio.schema`` (the seed
generator does) does not load the whole app.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CreatioApp"]


def __getattr__(name: str) -> Any:
    if name == "CreatioApp":
        from sandbox.creatio.app import CreatioApp

        return CreatioApp
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
