"""The Creatio client: auth, OData reads and writes, ``$batch``, ``$metadata``, typed records."""

from .batch import BatchOp, BatchResult
from .client import CreatioClient

__all__ = ["BatchOp", "BatchResult", "CreatioClient"]
