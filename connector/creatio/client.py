"""The Creatio client: OData 4 reads and writes, ``$batch`` and ``$metadata``.

Every method is a thin call to ``HttpClient.request`` (one request path: auth, re-login, retries,
status mapping). Routes given for the counters keep the entity name but never a record id, e.g.
``/0/odata/Contact`` and ``/0/odata/Contact({id})``.

The OData 4 root is ``settings.odata_path``; with ``"auto"`` (the default) the client finds it on the
site the first time it needs it (``/0/odata`` on .NET Framework sites, ``/odata`` on .NET 8 ones,
reference section 2.1) and keeps it for its lifetime.

Paging (reference creatio-api.md section 2.4, open question 4): ``$top``/``$skip`` with a stable
``$orderby`` that always ends on ``Id``; an ``@odata.nextLink`` is followed when the server sends
one. A read ends: the pages its ``$count`` allows (or ``max_pages`` without a count) bound it, a
page of rows all read before stops it, and a row read twice is passed on once. Once the first page
has counted the rows, the ``$skip`` pages they need are asked ``max_concurrency`` at a time
(``connector.pool.Prefetch``) and read in order by the same rules; a nextLink is followed one page
at a time.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from contextlib import ExitStack
from functools import partial
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import urljoin, urlsplit

import requests

from ..errors import ApiError, AuthError, BadRequest, BadResponse, NotFound, PermissionDenied
from ..http import HttpClient, RequestCounter, json_body
from ..pool import Prefetch, ordered
from ..retry import RetryPolicy
from ..settings import ODATA_AUTO, CreatioSettings
from . import metadata as metadata_module
from .auth import LOGIN_PATH, TOKEN_PATH, make_auth
from .objects import ObjectModel
from .batch import BatchOp, BatchResult, run_batch
from .error_body import parse_error
from .odata import Guid, check_column, chunk_any_of, encoded_length

log = logging.getLogger(__name__)

ACCEPT_JSON = {"Accept": "application/json"}
ENTITY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ORDER_TERM_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_/]*)(?: (asc|desc))?")
# Room kept in the URL for the largest $skip a lookup may reach.
SKIP_PLACEHOLDER = "9" * 10
# Where a site's OData 4 service may live, in the order tried (reference creatio-api.md 2.1).
# Decision: .NET Framework's /0/odata first: most sites the reference describes run on it, and a
# .NET 8 site answers it with a plain 404 (or a login redirect), which costs one request.
ODATA_ROOTS = ("/0/odata", "/odata")


def _is_routing_miss(error: NotFound) -> bool:
    # A 404 for an entity set no controller serves, or an IIS page: the entity is wrong, not the record.
    return "No HTTP resource" in error.message or error.message.startswith("HTML page")


class CreatioClient:
    """Creatio over OData 4.

    Args:
        settings: the ``[creatio]`` settings.
        retry: the retry bounds (default ``RetryPolicy()``).
        session: a ready ``requests.Session`` (proxies, adapters), or None.
        sleep: the back-off sleep, injected so tests do not wait.
        clock: monotonic seconds for the OAuth token lifetime.
    """

    def __init__(self, settings: CreatioSettings, *, retry: RetryPolicy | None = None,
                 session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._odata_path: str | None = None if settings.odata_path == ODATA_AUTO else settings.odata_path
        self._odata_lock = threading.Lock()
        self.http = HttpClient(system="creatio", base_url=settings.url, timeout_s=settings.timeout_s,
                               verify=settings.verify, retry=retry or RetryPolicy(), parse_error=parse_error,
                               auth=make_auth(settings, clock=clock), session=session, sleep=sleep,
                               max_response_bytes=settings.max_response_mb * 2**20,
                               max_concurrency=settings.max_concurrency)

    @property
    def counter(self) -> RequestCounter:
        """Requests sent so far, by method, route and status."""
        return self.http.counter

    def login(self) -> None:
        """Log in (or fetch a token) now; requests otherwise log in on first use."""
        self.http.login()

    @property
    def odata_path(self) -> str:
        """The OData 4 root, e.g. ``/0/odata``: as configured, or found on the site once."""
        if self._odata_path is None:
            with self._odata_lock:
                if self._odata_path is None:
                    self._odata_path = self._find_odata_root()
        return self._odata_path

    @property
    def odata_root_known(self) -> bool:
        """Whether the OData root is known without asking the site (configured, found or given)."""
        return self._odata_path is not None

    def use_odata_root(self, path: str) -> None:
        """Take ``path`` as the OData root found earlier (remembered by the caller), if none is known."""
        with self._odata_lock:
            if self._odata_path is None and path in ODATA_ROOTS:
                self._odata_path = path

    def _find_odata_root(self) -> str:
        """The first of ``ODATA_ROOTS`` whose service document answers.

        The service document (``GET <root>/``, the list of entity sets) is asked rather than
        ``$metadata``: it says the same thing ("an OData 4 service lives here") in a fraction of
        the size (a large site's ``$metadata`` takes tens of MB).

        Raises:
            AuthError: the login itself was refused (it is not tried twice: repeated bad logins
                lock the user, reference section 5), or every root refused the credentials.
            ConnectorError: the site is unreachable or keeps failing (as for any request).
            BadResponse: no root answered with a service document.
        """
        # Decision: the service document, not $metadata (see above); one GET per root tried.
        tried: list[str] = []
        refused: ApiError | None = None
        for root in ODATA_ROOTS:
            path = root + "/"
            try:
                response = self.http.request("GET", path, route=path, headers=ACCEPT_JSON)
            except (AuthError, PermissionDenied) as exc:
                if exc.path in (LOGIN_PATH, TOKEN_PATH):
                    raise
                # Inferred: a .NET 8 site may refuse an unknown /0/ path like a protected one.
                refused = refused or exc
                tried.append(f"{root}: {exc.status}")
                continue
            except (NotFound, BadRequest) as exc:  # no such route (404, 405...): not here
                tried.append(f"{root}: {exc.status}")
                continue
            except BadResponse as exc:
                if exc.status is None or not 300 <= exc.status < 400:
                    raise  # an answer too large or cut: a problem of the site, not of the path
                # Inferred: a site without OData there redirects to its login or an error page.
                tried.append(f"{root}: redirected")
                continue
            try:
                payload = json_body(response, system="creatio")
            except BadResponse:
                payload = None  # a page served for any path (an SPA shell): not here
            if isinstance(payload, dict) and isinstance(payload.get("value"), list):
                if root != ODATA_ROOTS[0]:
                    log.info("creatio: the OData 4 service of %s is at %s", self.settings.url, root)
                return root
            tried.append(f"{root}: not a service document")
        if refused is not None:
            raise refused
        raise BadResponse(
            f"no OData 4 service found at {self.settings.url} ({'; '.join(tried)}); check [creatio] url, "
            'or set odata_path = "/0/odata" (or "/odata")', system="creatio", method="GET")

    def _collection(self, entity: str) -> str:
        if not ENTITY_RE.fullmatch(entity):
            raise ValueError(f"invalid entity name {entity!r}")
        return f"{self.odata_path}/{entity}"

    def _record(self, entity: str, id: str) -> tuple[str, str]:
        """(path, route) of one record."""
        base = self._collection(entity)
        return f"{base}({Guid(id)})", f"{base}({{id}})"

    def _query(self, select: list[str], filter: str | None, orderby: str, top: int,
               skip: int) -> list[tuple[str, str]]:
        columns = [check_column(name) for name in select]
        if "Id" not in columns:
            columns.insert(0, "Id")  # paging checks and every record need the Id
        params = [("$filter", filter)] if filter else []
        params += [("$select", ",".join(columns)), ("$orderby", _stable_order(orderby)), ("$top", str(top))]
        if skip:
            params.append(("$skip", str(skip)))
        else:
            # The first page says how many rows match, so a short page is never taken for the end.
            params.append(("$count", "true"))
        return params

    def iter_rows(self, entity: str, *, select: list[str], filter: str | None = None, orderby: str = "Id",
                  page_size: int | None = None) -> Iterator[Any]:
        """Every row of ``entity`` matching ``filter``, fetched lazily page by page.

        A read knows when it is complete: the first page asks for ``$count``, and a page shorter
        than ``$top`` ends the read only once that many rows have come. A site may answer fewer
        rows than asked without a nextLink (a row limit lowered below ``page_size``, or read
        rights that hide rows), and rows taken for absent would be planned as deleted. Without a
        count in the answer, the read goes on until an empty page (or the last nextLink).

        A read also knows when it must stop: with a count, after the pages the count allows at
        the page size the server showed on the first page (and two more, for rows added while
        reading); without one, after ``settings.max_pages``. A row whose ``Id`` came before (an
        insert during the read shifts later pages by one) is dropped with a warning; a page of
        nothing but such rows means the server ignores paging.

        Rows are yielded as the server sent them: a row that is not an object is the caller's
        to refuse (``records.Row`` raises ``RecordError`` for it).

        Pages asked ahead: once the count says how many rows remain, and as long as each page
        comes full (the page size the first page showed), the ``$skip`` pages the count still
        needs are asked ``settings.max_concurrency`` at a time and read in order. The pages read
        and the rules they are read by are those of a read one page at a time: a page that comes
        short drops the pages asked ahead of it (at most ``max_concurrency - 1`` requests wasted)
        and the read goes on from the rows it really has; a nextLink ends asking ahead for the
        rest of the read. Without a count, pages are asked one at a time.

        Args:
            entity: the entity set, e.g. ``Contact``.
            select: the columns to read (``Id`` is added when missing).
            filter: a ``$filter`` built with ``connector.creatio.odata``.
            orderby: the sort order; ``Id`` is appended when absent so pages are stable.
            page_size: rows per request (default ``settings.page_size``).

        Raises:
            BadResponse: the answer has no ``value`` list, a page repeats (a server ignoring
                ``$skip`` would otherwise loop forever), a nextLink repeats, the pages go past the
                limit, or the rows end before the count said.
        """
        with ExitStack() as stack:  # the pages asked ahead; those not read yet are dropped at the end
            yield from self._read_rows(entity, select, filter, orderby, page_size, stack)

    def _read_rows(self, entity: str, select: list[str], filter: str | None, orderby: str,
                   page_size: int | None, stack: ExitStack) -> Iterator[Any]:
        """``iter_rows`` itself; ``stack`` closes the pages asked ahead when the read ends."""
        path = self._collection(entity)
        top = page_size or self.settings.page_size
        skip = 0
        url: str = path
        params: list[tuple[str, str]] | None = self._query(select, filter, orderby, top, skip)
        seen_links: set[str] = set()
        # Decision: the Ids read so far, to drop rows read twice: about 100 bytes a row, 100 MB
        # for a million; whole tables are read only when that costs fewer requests than lookups.
        seen_ids: set[str] = set()
        total: int | None = None  # rows matching, as the first page counted them
        max_pages = self.settings.max_pages
        in_request = 0  # rows since the last $skip request (a nextLink chain counts as one)
        pages = 0
        step = top  # the rows of a full page, as the first page showed them
        workers = self.settings.max_concurrency
        ahead: Prefetch[int, requests.Response] | None = None

        def fetch(at: int) -> requests.Response:
            params = self._query(select, filter, orderby, top, at)
            return self.http.request("GET", path, route=path, params=params, headers=ACCEPT_JSON)

        while True:
            pages += 1
            if pages > max_pages:
                limit = (f"the {total} rows counted allow {max_pages}" if total is not None
                         else f"max_pages is {max_pages}")
                raise BadResponse(f"{self.settings.url} kept sending pages: paging stopped after "
                                  f"{max_pages} pages ({limit})",
                                  system="creatio", method="GET", path=path)
            # A page asked ahead is taken only for the $skip this read asks next; else it is sent now.
            response = ahead.take(skip) if ahead is not None and params is not None else None
            if response is None:
                response = self.http.request("GET", url, route=path, params=params, headers=ACCEPT_JSON)
            payload = json_body(response, system="creatio")
            rows = payload.get("value") if isinstance(payload, dict) else None
            if not isinstance(rows, list):
                raise BadResponse("collection answer without a value list", system="creatio", method="GET",
                                  path=path, status=response.status_code)
            if pages == 1:
                count = payload.get("@odata.count")
                total = count if isinstance(count, int) and not isinstance(count, bool) else None
                if total is not None:
                    # Decision: the count allows its rows at the page size the server keeps to (a
                    # site limit may be below $top), and two more pages: for rows added during the
                    # read and for the empty page that ends it.
                    shown = max(1, min(len(rows), top)) if len(rows) < total else top
                    max_pages = min(max_pages, math.ceil(total / shown) + 2) if total else 2
                    step = shown
            fresh, repeated = self._new_rows(rows, seen_ids)
            if rows and repeated == len(rows):
                first = rows[0].get("Id")
                raise BadResponse(f"the server repeated a page (first Id {first}); paging stopped",
                                  system="creatio", method="GET", path=path, status=response.status_code)
            if repeated:
                # Decision: a row read twice (an insert during the read shifts the later pages by
                # one) is passed on once, with a warning; the first copy is as current as the second.
                log.warning("creatio GET %s: %d rows of page %d came before; each is read once",
                            path, repeated, pages)
            in_request += len(rows)
            yield from fresh
            link = payload.get("@odata.nextLink")
            if isinstance(link, str) and link:
                if ahead is not None:
                    ahead.close()  # the server pages by its links: one page at a time from here
                url, params = self._next_link(response, link, path), None
                if url in seen_links:
                    raise BadResponse("the server repeated a nextLink; paging stopped", system="creatio",
                                      method="GET", path=path)
                seen_links.add(url)
                continue
            read = skip + in_request
            if total is not None and read >= total:
                return
            if total is None and (in_request == 0 or seen_links):
                return  # no count to go by: an empty page, or the end of the server's own links
            if in_request == 0:
                raise BadResponse(
                    f"the read ended after {read} of {total} rows; it cannot be shown complete, "
                    "so nothing is planned from it",
                    system="creatio",
                    method="GET",
                    path=path,
                    status=response.status_code,
                )
            full, skip, in_request = in_request == step, read, 0
            url, params = path, self._query(select, filter, orderby, top, skip)
            if (full and total is not None and not seen_links and workers > 1
                    and not (ahead and ahead.active)):
                # Decision: the pages the count still needs at the page size shown, a few at a time,
                # but never a page past max_pages; read in order, so every rule above still holds.
                planned = min(math.ceil((total - skip) / step), max_pages - pages)
                if planned > 1:
                    keys = range(skip, skip + planned * step, step)
                    ahead = stack.enter_context(Prefetch(keys, fetch, workers, name="wcsync-pages"))

    @staticmethod
    def _new_rows(rows: list[Any], seen: set[str]) -> tuple[list[Any], int]:
        """(the rows whose Id has not come before, how many had)."""
        fresh, repeated = [], 0
        for row in rows:
            key = row.get("Id") if isinstance(row, dict) else None
            if isinstance(key, str):
                key = key.lower()
                if key in seen:
                    repeated += 1
                    continue
                seen.add(key)
            fresh.append(row)
        return fresh, repeated

    def _next_link(self, response: requests.Response, link: str, path: str) -> str:
        url = urljoin(response.url or self.http.url(path), link)
        # The auth headers go wherever the link points: only ever to our own site.
        if urlsplit(url)[:2] != urlsplit(self.http.base_url)[:2]:
            raise BadResponse("nextLink points to another site", system="creatio", method="GET", path=path)
        return url

    def list_rows(self, entity: str, **options: Any) -> list[dict[str, Any]]:
        """``list(iter_rows(entity, **options))``."""
        return list(self.iter_rows(entity, **options))

    def count(self, entity: str, filter: str | None = None) -> int:
        """How many rows of ``entity`` match ``filter`` (``$count=true&$top=0``)."""
        path = self._collection(entity)
        params = ([("$filter", filter)] if filter else []) + [("$count", "true"), ("$top", "0")]
        response = self.http.request("GET", path, route=path, params=params, headers=ACCEPT_JSON)
        payload = json_body(response, system="creatio")
        total = payload.get("@odata.count") if isinstance(payload, dict) else None
        if isinstance(total, bool) or not isinstance(total, int):
            raise BadResponse(
                "count answer without @odata.count",
                system="creatio",
                method="GET",
                path=path,
                status=response.status_code,
            )
        return total

    def get(self, entity: str, id: str, select: list[str] | None = None) -> dict[str, Any] | None:
        """One record, or None when it does not exist."""
        path, route = self._record(entity, id)
        params = [("$select", ",".join(check_column(name) for name in select))] if select else None
        try:
            response = self.http.request("GET", path, route=route, params=params, headers=ACCEPT_JSON)
        except NotFound as exc:
            if _is_routing_miss(exc):
                raise
            return None
        payload = json_body(response, system="creatio")
        if not isinstance(payload, dict):
            raise BadResponse("record answer is not an object", system="creatio", method="GET", path=path)
        return payload

    def update(self, entity: str, id: str, changes: dict[str, Any]) -> None:
        """Change some columns of one record (PATCH); nothing is sent when ``changes`` is empty."""
        if not changes:
            return
        path, route = self._record(entity, id)
        self.http.request("PATCH", path, route=route, json=changes, headers=ACCEPT_JSON)

    def delete(self, entity: str, id: str) -> None:
        """Delete one record; a record that is already gone is not an error."""
        path, route = self._record(entity, id)
        try:
            self.http.request("DELETE", path, route=route, headers=ACCEPT_JSON)
        except NotFound as exc:
            if _is_routing_miss(exc):
                raise

    def batch(self, ops: list[BatchOp], *, continue_on_error: bool = True) -> list[BatchResult]:
        """Run ``ops`` through ``$batch`` in chunks of ``settings.batch_size``; one result per op."""
        return run_batch(
            self.http,
            self.odata_path,
            ops,
            chunk_size=self.settings.batch_size,
            continue_on_error=continue_on_error,
        )

    def site_metadata(self) -> metadata_module.SiteMetadata:
        """Every entity set with its columns, their types and lookup targets, from ``$metadata``."""
        path = f"{self.odata_path}/$metadata"
        response = self.http.request("GET", path, route=path, headers={"Accept": "application/xml"})
        return metadata_module.read_metadata(response.content)

    def metadata(self) -> dict[str, set[str]]:
        """Entity set → column names, from ``$metadata``."""
        return self.site_metadata().names()

    def missing_columns(self, model: ObjectModel) -> list[str]:
        """Entities and ``Entity.Column`` names of the object model the site lacks."""
        return metadata_module.missing_columns(self.metadata(), model)

    def iter_by_values(
        self,
        entity: str,
        column: str,
        values: Iterable[Any],
        *,
        select: list[str],
        extra_filter: str | None = None,
        orderby: str = "Id",
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Rows whose ``column`` equals any of ``values``, in as few requests as the URL allows.

        The values are split with ``chunk_any_of`` so that every URL stays within
        ``settings.max_url_length`` (IIS refuses long query strings). Wrap GUID values in
        ``odata.Guid``; a plain ``str`` is compared as text. The chunks are read
        ``settings.max_concurrency`` at a time and their rows passed on in the chunks' order.

        Raises:
            ValueError: one value alone does not fit in a URL.
        """
        values = list(values)
        if not values:
            return
        top = page_size or self.settings.page_size
        prefix = f"({extra_filter}) and " if extra_filter else ""
        # The URL without the filter value, with the largest $skip paging could reach.
        params = self._query(select, "", orderby, top, int(SKIP_PLACEHOLDER))
        params.insert(0, ("$filter", ""))
        bare = requests.Request("GET", self.http.url(self._collection(entity)), params=params).prepare().url
        budget = self.settings.max_url_length - len(bare or "") - encoded_length(prefix)
        reads = [partial(self.list_rows, entity, select=select, filter=prefix + chunk, orderby=orderby,
                         page_size=top) for chunk in chunk_any_of(column, values, max_chars=budget)]
        for rows in ordered(reads, self.settings.max_concurrency, name="wcsync-lookups"):
            yield from rows


def _stable_order(orderby: str) -> str:
    """``orderby`` checked term by term, with ``Id`` appended unless it is already a sort key."""
    terms = [term.strip() for term in orderby.split(",")]
    keys = []
    for term in terms:
        match = ORDER_TERM_RE.fullmatch(term)
        if not match:
            raise ValueError(f"invalid $orderby term {term!r}")
        keys.append(match.group(1))
    return ",".join(terms) if "Id" in keys else ",".join([*terms, "Id"])
