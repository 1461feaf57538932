"""`redis://host:port/db`: the ledger in Redis, shared by every host of a deployment.

Each reservation is one round trip: a Lua script (a package resource, loaded once
and called by EVALSHA) reads the window and books the slot atomically. The keys of
one (project, model) share a hash tag, `gg:{project:model}:...`, so the script's
keys live on one Redis Cluster node. Every key has a TTL: a ledger nobody uses
disappears once its last slot has left the window.

When Redis cannot be reached, the store either fails (`on_outage="fail"`: a
StoreError, nothing is sent unpaced) or degrades (`"degrade"`, the default): it
paces with a local in-memory ledger, emits StoreDegraded, and tries Redis again
every `retry_after` seconds, emitting StoreRecovered when it answers. The local
ledger does not see other hosts' requests, so a degraded fleet may overshoot.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gemini_guard.errors import ConfigError, StoreError
from gemini_guard.pacific import day_start
from gemini_guard.quota.events import StoreDegraded, StoreRecovered
from gemini_guard.quota.ledger import MAX_FLIGHT, Budget, Granted, Refused, day_index
from gemini_guard.quota.stores.base import KeyUsage, QuotaKey, Reservation, usage_of_book
from gemini_guard.quota.stores.memory import MemoryStore

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["RedisStore"]

_T = TypeVar("_T")
Outage = Literal["degrade", "fail"]


@dataclass(frozen=True, slots=True)
class _Script:
    name: str
    source: str
    sha: str

    @classmethod
    def load(cls, name: str) -> _Script:
        source = (
            resources.files("gemini_guard.quota.stores")
            .joinpath(f"lua/{name}.lua")
            .read_text("utf-8")
        )
        return cls(name, source, hashlib.sha1(source.encode()).hexdigest())


def _import_redis() -> Any:
    try:
        import redis
        import redis.asyncio
    except ImportError as exc:
        raise ConfigError(
            "a redis:// store needs the redis client: pip install 'gemini-guard[redis]'"
        ) from exc
    return redis


def _num(value: int | float | None) -> str:
    return "-1" if value is None else repr(value)


_pack_acquire = struct.Struct("<13d").pack


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStore:
    """Ledgers in Redis; see the module docstring for keys, scripts and outages."""

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str = "gg",
        on_outage: Outage = "degrade",
        retry_after: float = 5.0,
        socket_timeout: float = 2.0,
        on_event: Callable[[object], None] | None = None,
    ) -> None:
        if on_outage not in ("degrade", "fail"):
            raise ConfigError(f"on_outage={on_outage!r}: use 'degrade' or 'fail'")
        if any(ch in prefix for ch in "{}"):
            raise ConfigError(f"prefix={prefix!r} must not contain braces (hash tags)")
        self._redis_module = _import_redis()
        self._url = url
        self._prefix = prefix
        self._on_outage: Outage = on_outage
        self._retry_after = retry_after
        self._socket_timeout = socket_timeout
        self._on_event = on_event
        # One quick retry: a pooled connection may be stale after a Redis restart;
        # more would only delay noticing that Redis is down.
        self._client: redis.Redis = self._redis_module.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=self._redis_module.retry.Retry(self._redis_module.backoff.NoBackoff(), 1),
        )
        self._aclients: dict[asyncio.AbstractEventLoop, redis.asyncio.Redis] = {}
        self._acquire = _Script.load("acquire")
        self._settle = _Script.load("settle")
        self._confirm = _Script.load("confirm")
        self._fallback = MemoryStore()
        self._key_names: dict[QuotaKey, tuple[str, str, str, str]] = {}
        # [start, end) of the Pacific day last seen, its ordinal, the end of the next.
        self._day_cache: tuple[float, float, int, float] = (0.0, 0.0, 0, 0.0)
        self._degraded_until: float | None = None  # wall time to try Redis again

    @classmethod
    def from_url(cls, url: str, *, on_event: Callable[[object], None] | None = None) -> RedisStore:
        """A store from `redis://[user:password@]host:port/db[?on_outage=fail&prefix=gg]`."""
        parts = urlsplit(url)
        options = dict(parse_qsl(parts.query))
        ours: dict[str, Any] = {}
        for name in ("on_outage", "prefix"):
            if name in options:
                ours[name] = options.pop(name)
        for name in ("retry_after", "socket_timeout"):
            if name in options:
                try:
                    ours[name] = float(options.pop(name))
                except ValueError:
                    raise ConfigError(
                        f"store URL option {name} must be a number of seconds"
                    ) from None
        rest = urlunsplit(parts._replace(query=urlencode(options)))
        return cls(rest, on_event=on_event, **ours)

    @property
    def url(self) -> str:
        """The URL without credentials."""
        parts = urlsplit(self._url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc, query=""))

    @property
    def degraded(self) -> bool:
        return self._degraded_until is not None

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, on_outage={self._on_outage!r})"

    def close(self) -> None:
        self._client.close()
        for loop, client in list(self._aclients.items()):
            if not loop.is_closed() and loop.is_running():
                loop.create_task(client.aclose())
        self._aclients.clear()

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._aclients.pop(loop, None)
        if client is not None:
            await client.aclose()
        self.close()

    # -- keys -----------------------------------------------------------------------

    def _keys(self, key: QuotaKey) -> tuple[str, str, str, str]:
        """The ledger's keys: slots, meta, days, flight; one hash tag for all four."""
        names = self._key_names.get(key)
        if names is not None:
            return names
        if any(ch in key.project for ch in "{}"):
            raise ConfigError(f"project {key.project!r} must not contain braces")
        tag = f"{self._prefix}:{{{key.project}:{key.model}}}"
        names = f"{tag}:slots", f"{tag}:meta", f"{tag}:days", f"{tag}:flight"
        if len(self._key_names) < 10_000:  # a cache, bounded
            self._key_names[key] = names
        return names

    # -- outage handling ------------------------------------------------------------

    def _use_fallback(self, now: float) -> bool:
        return self._degraded_until is not None and now < self._degraded_until

    def _failed(self, exc: Exception, now: float) -> None:
        """Redis is unreachable: raise, or switch to the local ledger."""
        if self._on_outage == "fail":
            raise StoreError(f"Redis at {self.url} is unreachable: {exc}") from exc
        first = self._degraded_until is None
        self._degraded_until = now + self._retry_after
        if first and self._on_event is not None:
            self._on_event(StoreDegraded(store=self.url, error=str(exc), at=now))

    def _answered(self, now: float) -> None:
        if self._degraded_until is not None:
            self._degraded_until = None
            if self._on_event is not None:
                self._on_event(StoreRecovered(store=self.url, at=now))

    def _call(self, now: float, action: Callable[[], _T], local: Callable[[], _T]) -> _T:
        if self._use_fallback(now):
            return local()
        errors = self._redis_module.exceptions
        try:
            result = action()
        except (errors.ConnectionError, errors.TimeoutError, OSError) as exc:
            self._failed(exc, now)
            return local()
        except errors.RedisError as exc:
            raise StoreError(f"Redis at {self.url} failed: {exc}") from exc
        self._answered(now)
        return result

    async def _acall(
        self, now: float, action: Callable[[], Awaitable[_T]], local: Callable[[], _T]
    ) -> _T:
        if self._use_fallback(now):
            return local()
        errors = self._redis_module.exceptions
        try:
            result = await action()
        except (errors.ConnectionError, errors.TimeoutError, OSError) as exc:
            self._failed(exc, now)
            return local()
        except errors.RedisError as exc:
            raise StoreError(f"Redis at {self.url} failed: {exc}") from exc
        self._answered(now)
        return result

    def _aclient(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            for old in [old for old in self._aclients if old.is_closed()]:
                del self._aclients[old]
            module = self._redis_module
            client = module.asyncio.Redis.from_url(
                self._url,
                socket_timeout=self._socket_timeout,
                socket_connect_timeout=self._socket_timeout,
                retry=module.asyncio.retry.Retry(module.backoff.NoBackoff(), 1),
            )
            self._aclients[loop] = client
        return client

    # -- scripts --------------------------------------------------------------------

    def _evalsha(self, script: _Script, keys: tuple[str, ...], args: Sequence[str | bytes]) -> Any:
        try:
            return self._client.evalsha(script.sha, len(keys), *keys, *args)
        except self._redis_module.exceptions.NoScriptError:
            # A restarted or flushed Redis forgot the script: load it and go on.
            self._client.script_load(script.source)
            return self._client.evalsha(script.sha, len(keys), *keys, *args)

    async def _aevalsha(
        self, script: _Script, keys: tuple[str, ...], args: Sequence[str | bytes]
    ) -> Any:
        client = self._aclient()
        try:
            return await client.evalsha(script.sha, len(keys), *keys, *args)
        except self._redis_module.exceptions.NoScriptError:
            await client.script_load(script.source)
            return await client.evalsha(script.sha, len(keys), *keys, *args)

    def _acquire_args(
        self,
        *,
        slot_id: str,
        budget: Budget,
        tokens: int,
        now: float,
        allowance: float,
        deadline: float | None,
    ) -> tuple[bytes, str, str, str]:
        """The script's arguments (see acquire.lua): its numbers packed as doubles,
        which the script reads in one call where parsing text costs it a microsecond
        a number; then the slot id, the flight info of a slot booked now (formatting
        a number costs the script more than Python) and today's ordinal as text."""
        if "|" in slot_id or " " in slot_id:
            raise ValueError(f"slot id {slot_id!r} must not contain '|' or spaces")
        day_start_at, today_end, today, tomorrow_end = self._day_cache
        if not day_start_at <= now < today_end:
            today, today_end = day_index(now)
            tomorrow_end = day_index(today_end)[1]
            self._day_cache = (day_start(now), today_end, today, tomorrow_end)
        requests, tokens_limit = budget.requests, budget.tokens
        day_requests, day_tokens = budget.day_requests, budget.day_tokens
        return (
            _pack_acquire(
                now,
                budget.period,
                -1 if requests is None else requests,
                -1 if tokens_limit is None else tokens_limit,
                tokens,
                allowance,
                -1 if deadline is None else deadline,
                today,
                today_end,
                tomorrow_end,
                -1 if day_requests is None else day_requests,
                -1 if day_tokens is None else day_tokens,
                MAX_FLIGHT,
            ),
            slot_id,
            f"{now + allowance + MAX_FLIGHT!r} {now!r}",
            str(today),
        )

    @staticmethod
    def _acquired(raw: Any, slot_id: str, now: float) -> Granted | Refused:
        if type(raw) is int:  # the usual answer: booked to start now, on this day
            return Granted(now, slot_id, raw)
        status, at, rest = [*_text(raw).split(" ", 2), ""][:3]
        if status == "ok":
            return Granted(float(at), slot_id, int(rest))
        return Refused(status, float(at), rest)

    # -- the store protocol ---------------------------------------------------------

    def acquire(
        self,
        key: QuotaKey,
        *,
        slot_id: str,
        budget: Budget,
        tokens: int,
        now: float,
        allowance: float,
        deadline: float | None,
    ) -> Granted | Refused:
        keys = self._keys(key)
        args = self._acquire_args(
            slot_id=slot_id,
            budget=budget,
            tokens=tokens,
            now=now,
            allowance=allowance,
            deadline=deadline,
        )
        return self._call(
            now,
            lambda: self._acquired(self._evalsha(self._acquire, keys, args), slot_id, now),
            lambda: self._local_acquire(key, slot_id, budget, tokens, now, allowance, deadline),
        )

    async def aacquire(
        self,
        key: QuotaKey,
        *,
        slot_id: str,
        budget: Budget,
        tokens: int,
        now: float,
        allowance: float,
        deadline: float | None,
    ) -> Granted | Refused:
        keys = self._keys(key)
        args = self._acquire_args(
            slot_id=slot_id,
            budget=budget,
            tokens=tokens,
            now=now,
            allowance=allowance,
            deadline=deadline,
        )

        async def action() -> Granted | Refused:
            return self._acquired(await self._aevalsha(self._acquire, keys, args), slot_id, now)

        return await self._acall(
            now,
            action,
            lambda: self._local_acquire(key, slot_id, budget, tokens, now, allowance, deadline),
        )

    def _local_acquire(
        self,
        key: QuotaKey,
        slot_id: str,
        budget: Budget,
        tokens: int,
        now: float,
        allowance: float,
        deadline: float | None,
    ) -> Granted | Refused:
        result = self._fallback.acquire(
            key,
            slot_id=slot_id,
            budget=budget,
            tokens=tokens,
            now=now,
            allowance=allowance,
            deadline=deadline,
        )
        if isinstance(result, Granted):
            return Granted(result.start, slot_id, result.day, "fallback")
        return result

    @staticmethod
    def _confirm_args(
        reservation: Reservation, *, now: float, budget: Budget, allowance: float
    ) -> list[str]:
        return [
            reservation.slot_id,
            str(reservation.tokens),
            repr(now),
            repr(budget.period),
            _num(budget.requests),
            _num(budget.tokens),
            repr(allowance),
            repr(MAX_FLIGHT),
        ]

    def confirm(
        self, reservation: Reservation, *, now: float, budget: Budget, allowance: float
    ) -> float:
        def local() -> float:
            return self._fallback.confirm(reservation, now=now, budget=budget, allowance=allowance)

        if reservation.origin == "fallback":
            return local()
        keys = self._keys(reservation.key)
        args = self._confirm_args(reservation, now=now, budget=budget, allowance=allowance)
        return self._call(
            now, lambda: float(_text(self._evalsha(self._confirm, keys, args))), local
        )

    async def aconfirm(
        self, reservation: Reservation, *, now: float, budget: Budget, allowance: float
    ) -> float:
        def local() -> float:
            return self._fallback.confirm(reservation, now=now, budget=budget, allowance=allowance)

        if reservation.origin == "fallback":
            return local()
        keys = self._keys(reservation.key)
        args = self._confirm_args(reservation, now=now, budget=budget, allowance=allowance)

        async def action() -> float:
            return float(_text(await self._aevalsha(self._confirm, keys, args)))

        return await self._acall(now, action, local)

    def _settle_args(
        self, reservation: Reservation, *, sent: bool, end: float, tokens: int
    ) -> list[str]:
        return [
            reservation.slot_id,
            str(reservation.tokens),
            "1" if sent else "0",
            repr(end),
            str(tokens),
            str(reservation.day),
            "60.0",
            repr(end),
        ]

    def settle(self, reservation: Reservation, *, sent: bool, end: float, tokens: int) -> None:
        def local() -> None:
            self._fallback.settle(reservation, sent=sent, end=end, tokens=tokens)

        if reservation.origin == "fallback":
            local()
            return
        keys = self._keys(reservation.key)
        args = self._settle_args(reservation, sent=sent, end=end, tokens=tokens)
        self._call(end, lambda: self._evalsha(self._settle, keys, args), local)

    async def asettle(
        self, reservation: Reservation, *, sent: bool, end: float, tokens: int
    ) -> None:
        def local() -> None:
            self._fallback.settle(reservation, sent=sent, end=end, tokens=tokens)

        if reservation.origin == "fallback":
            local()
            return
        keys = self._keys(reservation.key)
        args = self._settle_args(reservation, sent=sent, end=end, tokens=tokens)

        async def action() -> None:
            await self._aevalsha(self._settle, keys, args)

        await self._acall(end, action, local)

    def mark_day_spent(self, key: QuotaKey, *, day: int) -> None:
        self._fallback.mark_day_spent(key, day=day)
        days = self._keys(key)[2]
        try:
            self._client.hset(days, f"{day}:x", 1)
            self._client.expire(days, 3 * 86_400, gt=True)
        except self._redis_module.exceptions.RedisError as exc:
            if self._on_outage == "fail":
                raise StoreError(f"Redis at {self.url} failed: {exc}") from exc

    async def amark_day_spent(self, key: QuotaKey, *, day: int) -> None:
        self._fallback.mark_day_spent(key, day=day)
        days = self._keys(key)[2]
        client = self._aclient()
        try:
            await client.hset(days, f"{day}:x", "1")
            await client.expire(days, 3 * 86_400)
        except self._redis_module.exceptions.RedisError as exc:
            if self._on_outage == "fail":
                raise StoreError(f"Redis at {self.url} failed: {exc}") from exc

    def usage(self, key: QuotaKey, *, now: float, period: float = 60.0) -> KeyUsage:
        slots, _meta, days, _flight = self._keys(key)
        today = day_index(now)[0]
        try:
            with self._client.pipeline(transaction=False) as pipe:
                pipe.zrange(slots, 0, -1, withscores=True)
                pipe.hmget(days, [f"{today}:r", f"{today}:t", f"{today}:x"])
                members, counts = pipe.execute()
        except self._redis_module.exceptions.RedisError as exc:
            raise StoreError(f"Redis at {self.url} failed: {exc}") from exc
        ends = [float(score) for _, score in members]
        tokens_of = [int(_text(member).rsplit("|", 1)[1]) for member, _ in members]
        day_counts = [int(value) if value is not None else 0 for value in counts]
        return usage_of_book(key, ends, tokens_of, day_counts, now=now, period=period)

    def ledgers(self) -> list[QuotaKey]:
        found: set[QuotaKey] = set()
        try:
            for suffix in ("slots", "days"):
                for raw in self._client.scan_iter(match=f"{self._prefix}:{{*}}:{suffix}"):
                    name = _text(raw)
                    inner = name[name.index("{") + 1 : name.rindex("}")]
                    project, _, model = inner.rpartition(":")
                    found.add(QuotaKey(project, model))
        except self._redis_module.exceptions.RedisError as exc:
            raise StoreError(f"Redis at {self.url} failed: {exc}") from exc
        return sorted(found)
