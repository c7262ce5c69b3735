"""Building the clients and the state store from the configuration (one place, so tests can swap)."""

from __future__ import annotations

import logging

from connector.retry import RetryPolicy

from jobs.config import AppConfig
from jobs.logs import register_secrets

log = logging.getLogger(__name__)


def retry_policy(config: AppConfig) -> RetryPolicy:
    r = config.retry
    return RetryPolicy(max_attempts=r.max_attempts, base_wait_s=r.base_wait_s, max_wait_s=r.max_wait_s,
                       total_s=r.total_s)


def _warn_tls(system: str, verify: bool) -> None:
    if not verify:
        log.warning("%s: TLS certificate verification is OFF (verify_tls = false); use only for test servers",
                    system)


def webitel_client(config: AppConfig, **kw):
    from connector.webitel.client import WebitelClient

    register_secrets(config.secrets())
    _warn_tls("webitel", config.webitel.verify_tls)
    return WebitelClient(config.webitel, retry=retry_policy(config), **kw)


def creatio_client(config: AppConfig, **kw):
    from connector.creatio.client import CreatioClient

    register_secrets(config.secrets())
    _warn_tls("creatio", config.creatio.verify_tls)
    return CreatioClient(config.creatio, retry=retry_policy(config), **kw)


def state_store(config: AppConfig):
    from jobs.state import StateStore

    return StateStore.open(config.state.url)
