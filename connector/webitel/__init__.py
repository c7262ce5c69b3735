"""Client for the Webitel REST API (``webitel.go`` users and licences, under ``/api``)."""

from .client import WebitelClient
from .models import Customer, License, LicenseGrant, LicenseHolder, WebitelUser

__all__ = ["WebitelClient", "Customer", "License", "LicenseGrant", "LicenseHolder", "WebitelUser"]
