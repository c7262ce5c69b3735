"""Sandbox Creatio: forms login, OAuth client credentials and OData 4 over in-memory tables."""

from sandbox.creatio.app import CreatioApp

__all__ = ["CreatioApp"]
