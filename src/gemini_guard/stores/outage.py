"""`Outage`: what a store does while its Redis does not answer, written once.

A Redis that refuses or times out is either an error (`on_outage=fail`: `StoreError`,
nothing goes on unshared) or a pause (`degrade`, the default): the store goes on with
what it has locally (a local ledger, local breakers, no cache), says so once, leaves
Redis alone for `retry_after` seconds of its own clock, asks again after that, and
says once that Redis answers again. A frozen Redis so costs one call its timeouts,
not every call.

The policy keeps the state and writes the texts; each store says them its own way (a
quota event, a log line, the cache's `StoreError`), since its callers listen there.
Times are whatever the store's clock gives (a limiter's wall time, a breaker's
monotonic time): `Outage` only compares them.
"""

from __future__ import annotations

import threading

from gemini_guard.errors import StoreError
from gemini_guard.stores.url import RETRY_AFTER, OnOutage

__all__ = ["Outage"]


class Outage:
    """Whether a store asks its Redis now, and what it says when that changes.

    `what` names the store in messages ("the Redis cache at redis://h:6379/0");
    `meanwhile` says what callers get during the pause ("breakers are local to this
    process"); `resumed` what comes back with Redis.
    """

    def __init__(
        self,
        what: str,
        *,
        policy: OnOutage = "degrade",
        retry_after: float = RETRY_AFTER,
        meanwhile: str,
        resumed: str = "",
    ) -> None:
        self.what = what
        self.policy: OnOutage = policy
        self.retry_after = retry_after
        self._meanwhile = meanwhile
        self._resumed = resumed
        self._until: float | None = None  # the store's time to ask Redis again
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        """True from a failure to reach Redis until it answers again."""
        return self._until is not None

    @property
    def until(self) -> float | None:
        """When Redis is asked again (on the store's clock); None while it answers."""
        return self._until

    def skipping(self, now: float) -> bool:
        """Leave Redis alone at `now`? (True within `retry_after` of its last failure.)"""
        until = self._until
        return until is not None and now < until

    def failed(self, exc: Exception, now: float) -> str | None:
        """Redis did not answer at `now`: raise (policy "fail"), or pause asking it.

        The one warning to give when this failure starts the outage; None when the
        outage was already known (another thread, or a retry after the pause, saw it).
        """
        if self.policy == "fail":
            raise StoreError(f"{self.what} is unreachable: {exc}") from exc
        with self._lock:
            first = self._until is None
            self._until = now + self.retry_after
        if not first:
            return None
        return (
            f"{self.what} does not answer ({exc}); it is not asked again for "
            f"{self.retry_after:g} s: {self._meanwhile} until it answers"
        )

    def answered(self) -> str | None:
        """Redis answered: the one line to give when that ends an outage, else None."""
        if self._until is None:  # the usual case, without taking the lock
            return None
        with self._lock:
            if self._until is None:
                return None
            self._until = None
        return f"{self.what} answers again" + (f": {self._resumed}" if self._resumed else "")

    def skipped(self) -> str:
        """What a store says of a call it did not send to Redis during the pause."""
        return f"{self.what} is not asked for {self.retry_after:g} s after failing to answer"
