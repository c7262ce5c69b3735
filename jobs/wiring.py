"""Building the clients and the state store from the configuration (one place, so tests can swap)."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

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


ODATA_ROOT_KEY = "creatio.odata_root"


@contextmanager
def remembered_odata_root(store, creatio) -> Iterator[None]:
    """With ``odata_path = "auto"``, the root found once is kept in the state store: later runs
    take it from there instead of asking the site again (one request less per run)."""
    known = store.get_value(ODATA_ROOT_KEY) if hasattr(creatio, "use_odata_root") else None
    if known and not creatio.odata_root_known:
        creatio.use_odata_root(known)
    try:
        yield
    finally:
        if hasattr(creatio, "odata_root_known") and creatio.odata_root_known and \
                config_is_auto(creatio) and creatio.odata_path != known:
            store.set_value(ODATA_ROOT_KEY, creatio.odata_path, now=datetime.now(timezone.utc))


def config_is_auto(creatio) -> bool:
    return getattr(getattr(creatio, "settings", None), "odata_path", "") == "auto"
