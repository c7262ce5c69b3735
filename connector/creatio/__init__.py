"""The Creatio client: auth, OData reads and writes, ``$batch``, ``$metadata``, typed records.

Import from the modules (``connector.creatio.client``, ``.records``...): importing the package
loads nothing, so pure code may use ``values`` and ``objects`` without the HTTP stack.
"""
