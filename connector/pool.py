"""Requests in parallel, within bounds: how many of one client's requests may be in flight, and
threads to run a caller's tasks on.

Two parts, each testable alone:

- ``Limiter``: the in-flight bound of one ``HttpClient`` (``max_concurrency``), adapted to what
  the server says (AIMD: halved on 429 or 503, grown back one step per answer that is not, with
  a server's ``Retry-After`` holding every new request back). Every attempt of every request
  takes a slot, so the bound holds whatever threads a caller starts.
- ``Pool``: threads that run a caller's tasks, each in a copy of the caller's context (the run
  id the log lines carry follows the task), and ``ordered``, which runs tasks a few at a time and
  hands their results back in the tasks' order.
- ``Prefetch``: a read's next requests sent before the answer to the one before has come (the
  following pages), a few at a time, their answers handed out in order.

Callers start as many threads as the setting allows and leave the pacing to the limiter: a
thread waiting for a slot costs nothing, a slot left idle costs a round trip.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Callable, Generic, Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")
K = TypeVar("K")
log = logging.getLogger(__name__)

# Answers that say "too much, slow down": 429 always; 503 is what an overloaded IIS, a gateway or
# a load balancer answers (Creatio's cloud and Webitel's nginx both do).
THROTTLE_STATUSES = frozenset({429, 503})
# Decision: a server's Retry-After holds the other requests back at most this long (``HttpClient``
# passes its retry policy's ``max_wait_s``, 30 s by default); a server asking for an hour is
# answered by the retry policy giving up, not by every thread sleeping an hour.
MAX_PAUSE_S = 30.0
# Decision: ``ordered`` hands twice as many tasks to its threads as run at once: enough that a
# slow task at the head does not leave the other threads idle, few enough to bound what is held.
AHEAD = 2


class Limiter:
    """How many requests of one client may be in flight at once (AIMD).

    The limit starts at ``ceiling``. An answer of 429 or 503 halves it (never below 1) and holds
    every new request back for the ``Retry-After`` the server gave; any other answer grows it by
    one, up to ``ceiling`` again. A failed connection or another 5xx changes nothing: it says
    nothing about load. Only an answer to a request sent under the current limit halves it: four
    requests in flight refused together are one signal, not four (TCP's one decrease a window),
    so one burst of 429s does not drive the limit to 1.

    The thread that got the 429 waits out the ``Retry-After`` in its retry loop
    (``connector.retry``), so the hold applies to the other threads only; it is waited once,
    with the injected ``sleep``, so tests never wait.

    Args:
        ceiling: the most requests in flight (``max_concurrency``).
        sleep: how a held-back request waits for the end of a ``Retry-After``.
        clock: monotonic seconds.
        max_pause_s: the longest hold a ``Retry-After`` may impose on other requests.
        name: the system, for the log line a decrease writes.
    """

    def __init__(self, ceiling: int, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, max_pause_s: float = MAX_PAUSE_S,
                 name: str = "") -> None:
        if ceiling < 1:
            raise ValueError("ceiling must be 1 or more")
        self.ceiling = ceiling
        self.name = name
        self._sleep = sleep
        self._clock = clock
        self._max_pause_s = max_pause_s
        self._cond = threading.Condition()
        self._limit = ceiling
        self._in_flight = 0
        self._epoch = 0  # counts the decreases; a request remembers the one it was sent under
        self._resume_at = 0.0
        self._own = threading.local()  # the hold this thread waits out in its own retry loop
        self.decreases = 0
        self.peak = 0  # the most requests in flight at once, for tests and figures

    @property
    def limit(self) -> int:
        with self._cond:
            return self._limit

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    def acquire(self) -> int:
        """Wait for a slot (and for the end of another thread's ``Retry-After``); return the
        limit's epoch, which ``release`` needs."""
        with self._cond:
            pause = self._resume_at - self._clock()
            exempt = getattr(self._own, "until", 0.0) >= self._resume_at
        if pause > 0 and not exempt:
            self._sleep(min(pause, self._max_pause_s))
        with self._cond:
            while self._in_flight >= self._limit:
                self._cond.wait()
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)
            return self._epoch

    def release(self, epoch: int, status: int | None = None, retry_after: float | None = None) -> None:
        """Give the slot back, with what the server answered (``status`` None: no answer)."""
        with self._cond:
            self._in_flight -= 1
            if status in THROTTLE_STATUSES:
                if epoch == self._epoch:
                    self._limit = max(1, self._limit // 2)
                    self._epoch += 1
                    self.decreases += 1
                    log.info("%s answered %d: %d request(s) at once for now, one more per answer",
                             self.name or "the server", status, self._limit)
                if retry_after:
                    self._resume_at = max(self._resume_at,
                                          self._clock() + min(retry_after, self._max_pause_s))
                    self._own.until = self._resume_at
            elif status is not None and status < 500 and self._limit < self.ceiling:
                # Decision: one step per answer, not per round of answers as in TCP: the refusals
                # these servers send pass within seconds (a Retry-After, a busy IIS queue), and a
                # limit that took a round trip per step would keep a large import slow long after.
                self._limit += 1
            self._cond.notify_all()


class Pool:
    """Threads for a caller's tasks; with ``workers`` 1, a task runs in the caller's thread.

    Each task runs in a copy of the submitting thread's context (``contextvars``): the run id and
    job the log lines carry (``jobs.logs.bind_run``) follow the task onto its thread.

    Use as a context manager: leaving it waits for every task submitted; leaving it on an error
    waits for the tasks running and drops the ones not started; leaving it on an interrupt (a
    second Ctrl-C, ``KeyboardInterrupt``) or a closed generator waits for nothing.

    Decision: daemon threads of our own rather than ``ThreadPoolExecutor``, whose threads the
    interpreter joins at exit: a second Ctrl-C must end the process at once, not after the
    requests in flight have run out their retries.
    """

    def __init__(self, workers: int, *, name: str = "wcsync") -> None:
        self.workers = max(1, workers)
        self.name = name
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def submit(self, fn: Callable[..., T], *args: object) -> Future[T]:
        """Start ``fn(*args)``; inline (done when this returns) without threads."""
        future: Future[T] = Future()
        if self.workers == 1:
            try:
                future.set_result(fn(*args))
            except Exception as exc:  # handed to whoever asks the future, as a thread's would be
                future.set_exception(exc)
            return future
        if len(self._threads) < self.workers:
            thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()
        self._tasks.put((future, contextvars.copy_context(), fn, args))
        return future

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            future, context, fn, args = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = context.run(fn, *args)
            except BaseException as exc:  # the caller's to raise, from future.result()
                future.set_exception(exc)
            else:
                future.set_result(result)

    def close(self, *, wait: bool = True, cancel: bool = False) -> None:
        """End the threads once the tasks submitted are done (with ``cancel``, the ones not
        started are dropped); ``wait`` for them."""
        if cancel:
            while True:
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    break
                if task is not None:
                    task[0].cancel()
        for _ in self._threads:
            self._tasks.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
        self._threads = []

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.close(wait=issubclass(exc_type, Exception), cancel=True)


def max_concurrency(client) -> int:
    """A client's ``max_concurrency`` setting (1 for a client without one)."""
    return int(getattr(getattr(client, "settings", None), "max_concurrency", 1) or 1)


def ordered(tasks: Iterable[Callable[[], T]], workers: int, *, name: str = "wcsync") -> Iterator[T]:
    """The result of each task, in the tasks' order, ``workers`` of them running at a time.

    Twice ``workers`` tasks are handed to the threads ahead of the consumer, so a thread whose
    task finished takes the next one while the consumer still waits for an earlier, slower one;
    at most that many results are ever held, so a consumer that keeps less than it reads (a
    lookup turned into typed records) never holds every chunk at once. A task that raises ends
    the iteration there, after the tasks running finished; so does a consumer that stops reading
    (closing the generator).
    """
    if workers <= 1:
        for task in tasks:
            yield task()
        return
    window: deque[Future[T]] = deque()
    queue = iter(tasks)
    with Pool(workers, name=name) as pool:
        for task in queue:
            window.append(pool.submit(task))
            if len(window) >= AHEAD * workers:
                break
        while window:
            result = window.popleft().result()
            following = next(queue, None)
            if following is not None:
                window.append(pool.submit(following))
            yield result


class Prefetch(Generic[K, T]):
    """A read's next fetches sent ahead of their turn, ``workers`` in flight, handed out in order.

    For a read whose following requests can be guessed before the answer to the one before has
    come (the next pages): ``keys`` is the plan, ``fetch(key)`` one request. ``take(key)`` returns
    the answer of ``key`` when it is the next one planned. Otherwise the plan was wrong: the
    fetches sent ahead are dropped, and ``take`` returns None (as it does once the plan is used
    up), so that the caller sends ``key`` itself. A fetch that failed raises its error from
    ``take`` of its own key, never earlier: a page the read never reaches cannot fail it.

    The window is refilled when the next answer is asked for, not when one is handed out: a read
    that ends at an answer (the last page) has sent at most ``workers - 1`` fetches past it.

    Decision: not ``ordered``, which submits the following task before it hands a result out,
    twice ``workers`` ahead: a read that stops at an answer it could not foresee would waste up to
    ``2 * workers - 1`` requests instead of ``workers - 1``.

    Use as a context manager (or call ``close``): leaving drops the fetches not started; leaving
    on an error waits for the fetches running (as ``ordered`` does), leaving otherwise (the read
    ended, or its consumer stopped) waits for none: a fetch past the end is not worth a wait.

    Args:
        keys: the fetches planned, in order (a ``range`` is fine: it is read lazily).
        fetch: one request; it must not return None.
        workers: fetches in flight at once (2 or more to be of any use).
        name: the threads' name.
    """

    def __init__(self, keys: Sequence[K], fetch: Callable[[K], T], workers: int, *,
                 name: str = "wcsync-pages") -> None:
        self._keys = keys
        self._fetch = fetch
        self.workers = max(1, workers)
        self._planned = 0  # fetches of ``keys`` submitted so far
        self._window: deque[tuple[K, Future[T]]] = deque()
        self._pool = Pool(self.workers, name=name)
        self._closed = False

    @property
    def active(self) -> bool:
        """Whether a fetch is still planned (the plan is neither used up nor dropped)."""
        return bool(self._window) or self._planned < len(self._keys)

    def take(self, key: K) -> T | None:
        """The answer of ``key`` if it is the next fetch planned, else None (and the plan is dropped).

        Raises:
            Exception: whatever the fetch of ``key`` raised.
        """
        if self._window:
            head = self._window[0][0]
        elif self._planned < len(self._keys):
            head = self._keys[self._planned]
        else:
            return None
        if head != key:
            self.close()
            return None
        while len(self._window) < self.workers and self._planned < len(self._keys):
            following = self._keys[self._planned]
            self._planned += 1
            self._window.append((following, self._pool.submit(self._fetch, following)))
        return self._window.popleft()[1].result()

    def close(self, *, wait: bool = False) -> None:
        """Drop what was planned: the fetches not started are never sent; ``wait`` for the others."""
        if self._closed:
            # Decision: once only. A second ``Pool.close`` would drain the end markers its threads
            # have not taken yet, and leave them waiting for tasks forever.
            return
        self._closed = True
        self._planned = len(self._keys)
        for _, future in self._window:
            future.cancel()
        self._window.clear()
        self._pool.close(wait=wait, cancel=True)

    def __enter__(self) -> "Prefetch[K, T]":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(wait=exc_type is not None and issubclass(exc_type, Exception))
