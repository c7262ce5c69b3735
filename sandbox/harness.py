"""Both sandbox servers together, for the demo, the end-to-end tests and the benchmarks.

``start_sandbox(300)`` generates data, starts a Webitel and a Creatio server on free loopback
ports and returns a ``Sandbox`` whose ``config()`` is a ready connector configuration pointing
at them.
"""

from __future__ import annotations

import time
from typing import Any

from sandbox.faults import Faults
from sandbox.seed import generate
from sandbox.seed.types import SeedData
from sandbox.server import SandboxServer

# Keyword arguments of ``start_sandbox`` that belong to the data generator; the rest go to Sandbox.
_GENERATE_ARGS = {"domain", "account_name", "with_account", "match_share", "unrelated_contacts",
                  "licenses", "grants_per_user"}


class Sandbox:
    """A Webitel and a Creatio sandbox server over one data set.

    Args:
        data: The data both apps load.
        creatio_model: Name of the sandbox Creatio model, ``"default"`` or ``"wsysaccount"``
            (``sandbox.creatio.schema.MODELS``); it should be the one the data was generated
            with (rows of the other model's objects are not loaded).
        faults_webitel: Faults injected by the Webitel server.
        faults_creatio: Faults injected by the Creatio server.
        creatio_options: Extra keyword arguments of ``CreatioApp``.
        webitel_options: Extra keyword arguments of ``WebitelApp``.
        host: Interface both servers bind to.
        webitel_port: Port of the Webitel server (0: a free one).
        creatio_port: Port of the Creatio server (0: a free one).

    Attributes:
        webitel, creatio: The two servers (their ``stats`` and ``faults`` are the handles tests use).
        webitel_app, creatio_app: The apps, for direct inspection of their state.
        data: The data set.
    """

    def __init__(self, data: SeedData, *, creatio_model: str = "default",
                 faults_webitel: Faults | None = None, faults_creatio: Faults | None = None,
                 creatio_options: dict | None = None, webitel_options: dict | None = None,
                 host: str = "127.0.0.1", webitel_port: int = 0, creatio_port: int = 0) -> None:
        # Imported here so that importing this module (for ``to_toml``, say) neither loads both
        # apps nor fails while one of them is unavailable.
        from sandbox.creatio.app import CreatioApp
        from sandbox.webitel.app import WebitelApp

        self.data = data
        self.creatio_model = creatio_model
        creatio_kwargs = dict(creatio_options or {})
        creatio_kwargs.setdefault("creatio_model", creatio_model)
        self.webitel_app = WebitelApp(data, **(webitel_options or {}))
        self.creatio_app = CreatioApp(data, **creatio_kwargs)
        self.webitel = SandboxServer(self.webitel_app, faults=faults_webitel, host=host, port=webitel_port)
        self.creatio = SandboxServer(self.creatio_app, faults=faults_creatio, host=host, port=creatio_port)

    @property
    def webitel_url(self) -> str:
        """The Webitel API base, ``/api`` included (for requests made by hand)."""
        return self.webitel.url + "/api"

    @property
    def webitel_server_url(self) -> str:
        """The Webitel server's address as people write it: no ``/api`` (what ``config`` writes)."""
        return self.webitel.url

    @property
    def creatio_url(self) -> str:
        """The Creatio site root (OData lives under ``/0/odata``, or ``/odata`` when the app was
        given that ``odata_path``)."""
        return self.creatio.url

    def start(self) -> "Sandbox":
        """Start both servers; if the second fails to bind, the first is stopped again."""
        self.webitel.start()
        try:
            self.creatio.start()
        except BaseException:
            self.webitel.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both servers and release their ports."""
        try:
            self.creatio.stop()
        finally:
            self.webitel.stop()

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def config(self, *, auth: str = "forms", state_url: str | None = None) -> dict:
        """A connector configuration pointing at both servers.

        The addresses are the plain server addresses an administrator writes (no ``/api``, no
        OData path): the connector finds the rest. No ``[creatio.objects]`` either: on the
        ``wsysaccount`` model the administrator discovers the profile (``check``).

        Args:
            auth: ``"forms"`` (user name and password) or ``"oauth"`` (client credentials, with
                the sandbox itself as identity service).
            state_url: State store URL; the ``state`` table is left out when not given.
        """
        creds = self.data.credentials
        if auth == "forms":
            creatio = {"url": self.creatio_url, "auth": "forms", "username": creds.creatio_username,
                       "password": creds.creatio_password}
        elif auth == "oauth":
            creatio = {"url": self.creatio_url, "auth": "oauth", "identity_url": self.creatio_url,
                       "client_id": creds.creatio_client_id, "client_secret": creds.creatio_client_secret}
        else:
            raise ValueError(f"auth must be 'forms' or 'oauth', not {auth!r}")
        config: dict = {
            "webitel": {"url": self.webitel_server_url, "token": creds.webitel_token, "verify_tls": True},
            "creatio": creatio,
            "sync": {"account_name": self.data.notes.get("account_name") or self.data.domain},
        }
        if state_url is not None:
            config["state"] = {"url": state_url}
        return config

    def config_toml(self, **kw: Any) -> str:
        """``config(**kw)`` rendered as TOML text, with a comment header saying where it points."""
        header = [
            "# webitel-creatio-sync configuration for the local sandbox.",
            f"# Webitel sandbox: {self.webitel_server_url}   Creatio sandbox: {self.creatio_url}",
            "# The credentials below are the sandbox's own fixed test values, not real secrets.",
            "",
        ]
        return "\n".join(header) + to_toml(self.config(**kw))


def to_toml(config: dict) -> str:
    """Render a mapping of tables (one level of nesting, scalar values) as TOML."""
    lines: list[str] = []
    for table, values in config.items():
        if lines:
            lines.append("")
        lines.append(f"[{_key(table)}]")
        for key, value in values.items():
            if value is not None:
                lines.append(f"{_key(key)} = {_value(value)}")
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def start_sandbox(users: int = 300, *, seed: int = 0, now_ms: int | None = None,
                  creatio_model: str = "default", **kw: Any) -> Sandbox:
    """Generate data and start both servers.

    Args:
        users: Number of Webitel users to generate.
        seed: Seed of the data generator.
        now_ms: The "current" time of the data. When given, the Webitel app's clock is frozen at
            it too (unless ``webitel_options`` sets ``now_ms``), so licence expiry is
            reproducible; otherwise both use the wall clock.
        creatio_model: The sandbox Creatio model, ``"default"`` or ``"wsysaccount"``, used by
            both the data generator and the Creatio server.
        **kw: ``generate`` options (``domain``, ``account_name``, ``with_account``,
            ``match_share``, ``unrelated_contacts``, ``licenses``, ``grants_per_user``) and any
            other ``Sandbox`` argument.

    Returns:
        The started sandbox; stop it with ``stop()`` or use it as a context manager.

    Raises:
        ValueError: an unknown ``creatio_model``.
    """
    gen_kw = {k: kw.pop(k) for k in list(kw) if k in _GENERATE_ARGS}
    fixed = now_ms is not None
    now = now_ms if fixed else int(time.time() * 1000)
    data = generate(users, seed=seed, now_ms=now, creatio_model=creatio_model, **gen_kw)
    if fixed:
        webitel_options = dict(kw.pop("webitel_options", None) or {})
        webitel_options.setdefault("now_ms", lambda: now)
        kw["webitel_options"] = webitel_options
    return Sandbox(data, creatio_model=creatio_model, **kw).start()
