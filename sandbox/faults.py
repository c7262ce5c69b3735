"""Seeded, reproducible fault injection for the sandbox servers.

``Faults`` describes what to inject; ``FaultInjector`` turns it into one decision per request
from a single ``random.Random(faults.seed)`` under a lock, so a run with the same seed and the
same request order sees the same faults. The server asks the injector before the app sees the
request; the injector also counts what it decided, so tests check the decisions rather than
wall-clock timings.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email.utils import formatdate

# Statuses a faulted request may get instead of the app's answer: the ones a gateway or an
# overloaded backend actually returns, which a client must treat as transient.
ERROR_STATUSES = (500, 502, 503)

# Decision kinds, also the keys of ``FaultInjector.counts``.
PASS = "pass"
ERROR = "error"
THROTTLE = "429"
DROP = "drop"
LATENCY = "latency"


@dataclass(frozen=True)
class Faults:
    """What a server injects. All shares are probabilities in [0, 1] per request.

    Attributes:
        seed: Seed of the decision generator; the same seed gives the same decision sequence.
        error_rate: Share of requests answered 500, 502 or 503 before reaching the app.
        rate_429: Share of requests answered 429 with a ``Retry-After`` header.
        retry_after_s: The delay announced in ``Retry-After``. Sent as delay-seconds: a whole
            number as an integer (``"2"``), a fraction as a decimal string (``"0.05"``). The
            decimal form is a sandbox liberty so that tests do not sleep whole seconds; clients
            should parse the header as a float.
        retry_after_http_date: Send ``Retry-After`` as an HTTP-date (now + ``retry_after_s``,
            rounded up to whole seconds, the resolution of the format) instead.
        latency_ms: Delay added before every request is answered, excluded paths included:
            it models the distance to the server, which does not depend on the route.
        drop_rate: Share of requests whose connection is closed without any response.
        exclude_paths: Path prefixes never faulted (e.g. the login endpoints).
        only_methods: When set, only requests with these methods are faulted.
    """

    seed: int = 0
    error_rate: float = 0.0
    rate_429: float = 0.0
    retry_after_s: float = 0.05
    retry_after_http_date: bool = False
    latency_ms: float = 0.0
    drop_rate: float = 0.0
    exclude_paths: tuple[str, ...] = ()
    only_methods: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("error_rate", "rate_429", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.error_rate + self.rate_429 + self.drop_rate > 1.0:
            raise ValueError("error_rate + rate_429 + drop_rate must not exceed 1")
        if self.retry_after_s < 0 or self.latency_ms < 0:
            raise ValueError("retry_after_s and latency_ms must not be negative")

    def applies_to(self, method: str, path: str) -> bool:
        """Whether a request may be faulted at all (latency aside)."""
        if any(path.startswith(prefix) for prefix in self.exclude_paths):
            return False
        if self.only_methods and method.upper() not in {m.upper() for m in self.only_methods}:
            return False
        return True

    def retry_after_value(self, now: float | None = None) -> str:
        """The ``Retry-After`` header value, in the form chosen by ``retry_after_http_date``."""
        if self.retry_after_http_date:
            when = (time.time() if now is None else now) + math.ceil(self.retry_after_s)
            return formatdate(when, usegmt=True)
        if float(self.retry_after_s).is_integer():
            return str(int(self.retry_after_s))
        return repr(float(self.retry_after_s))


@dataclass(frozen=True)
class Decision:
    """What to do with one request: ``kind`` is PASS, ERROR, THROTTLE or DROP."""

    kind: str = PASS
    status: int = 0
    latency_s: float = 0.0


class FaultInjector:
    """Draws one decision per request from ``Faults``; thread-safe and seeded.

    Attributes:
        faults: The current settings.
        counts: How many requests got each decision kind, plus ``latency`` for delayed ones.
    """

    def __init__(self, faults: Faults | None = None) -> None:
        self._lock = threading.Lock()
        self.faults = faults or Faults()
        self._rng = random.Random(self.faults.seed)
        self.counts: Counter[str] = Counter()

    def replace(self, faults: Faults) -> None:
        """Switch to new settings; the generator restarts from the new seed, counts are kept."""
        with self._lock:
            self.faults = faults
            self._rng = random.Random(faults.seed)

    def decide(self, method: str, path: str) -> Decision:
        """The decision for one request.

        Exactly one random number is drawn per faultable request (plus one to pick the error
        status), so the decision sequence depends only on the seed and the request order.
        """
        with self._lock:
            faults = self.faults
            latency_s = faults.latency_ms / 1000.0
            if latency_s > 0:
                self.counts[LATENCY] += 1
            if not faults.applies_to(method, path):
                self.counts[PASS] += 1
                return Decision(PASS, 0, latency_s)
            roll = self._rng.random()
            if roll < faults.drop_rate:
                kind, status = DROP, 0
            elif roll < faults.drop_rate + faults.error_rate:
                kind, status = ERROR, self._rng.choice(ERROR_STATUSES)
            elif roll < faults.drop_rate + faults.error_rate + faults.rate_429:
                kind, status = THROTTLE, 429
            else:
                kind, status = PASS, 0
            self.counts[kind] += 1
            return Decision(kind, status, latency_s)

    def snapshot(self) -> dict[str, int]:
        """A copy of the decision counters."""
        with self._lock:
            return dict(self.counts)
