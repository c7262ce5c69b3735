"""Client for the Webitel REST API (``webitel.go`` users and licences, under ``/api``).

Import from the modules (``connector.webitel.client``, ``.models``): importing the package loads
nothing.
"""
