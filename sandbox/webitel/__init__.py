"""The sandbox Webitel API: users, licences and the customer licence key, served by ``WebitelApp``."""

from sandbox.webitel.app import WebitelApp
from sandbox.webitel.certificate import CertificateError, make_certificate, read_certificate

__all__ = ["WebitelApp", "CertificateError", "make_certificate", "read_certificate"]
