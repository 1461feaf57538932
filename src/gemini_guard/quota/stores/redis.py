"""`redis://host:port/db`: the ledger in Redis, shared by every host of a deployment.

Each reservation is one round trip: a Lua script (a package resource, loaded once
and called by EVALSHA) reads the window and books the slot atomically. A ledger is
two keys, `gg:{project:model}:slots` and `:meta` (see lua/acquire.lua for what they
hold); they share a hash tag, so every script's keys live on one Redis Cluster
node. Both have a TTL: a ledger nobody uses disappears once its last slot has left
the window and the Pacific day of its last booking is over.

When Redis cannot be reached, the store either fails (`on_outage="fail"`: a
StoreError, nothing is sent unpaced) or degrades (`"degrade"`, the default): it
paces with a local in-memory ledger, emits StoreDegraded, and tries Redis again
every `retry_after` seconds, emitting StoreRecovered when it answers. The local
ledger does not see other hosts' requests, so a degraded fleet may overshoot (the
pause is `stores.outage.Outage`, timed by the limiter's wall clock). The connection
pool is the process's one for this URL (`stores.backend`), shared with the breakers,
the levels and the cache on the same Redis.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from gemini_guard.errors import ConfigError, StoreError
from gemini_guard.pacific import day_start
from gemini_guard.quota.events import StoreDegraded, StoreRecovered
from gemini_guard.quota.ledger import MAX_FLIGHT, NO_LIMITS, Budget, Granted, Refused, day_index
from gemini_guard.quota.stores.base import KeyUsage, QuotaKey, Reservation, usage_of_book
from gemini_guard.quota.stores.memory import MemoryStore
from gemini_guard.stores.backend import RedisBackend
from gemini_guard.stores.outage import Outage
from gemini_guard.stores.url import (
    CONNECT_TIMEOUT,
    RETRY_AFTER,
    SOCKET_TIMEOUT,
    OnOutage,
    StoreUrl,
    parse_store_url,
    with_options,
)

__all__ = ["RedisStore"]


@dataclass(frozen=True, slots=True)
class _Script:
    name: str
    source: str
    digest: bytes  # its SHA1 in hex, as EVALSHA takes it

    @classmethod
    def load(cls, name: str) -> _Script:
        # Redis has no shared script library before functions (7.0): the steps the
        # scripts share are written once, in window.lua, and put in front of each.
        folder = resources.files("gemini_guard.quota.stores").joinpath("lua")
        source = "\n".join(
            folder.joinpath(f"{part}.lua").read_text("utf-8") for part in ("window", name)
        )
        return cls(name, source, hashlib.sha1(source.encode()).hexdigest().encode())


# The scripts' numbers travel as little-endian doubles followed by the slot's member
# as text: one argument, read by one struct.unpack, where each extra argument costs
# the client about half a microsecond to encode and each number parsed from text
# costs the script more than a double read in C.
_pack_acquire = struct.Struct("<13d").pack
_pack_confirm = struct.Struct("<7d").pack
_pack_settle = struct.Struct("<7d").pack
_pack_spent = struct.Struct("<2d").pack
_pack_answered = struct.Struct("<3d").pack  # period, max flight, how many slots
_pack_answered_slot = struct.Struct("<7d").pack
_unpack_day = struct.Struct("<3d").unpack  # a day's requests, tokens, spent flag


_new_tuple = tuple.__new__
_DOWN = object()  # what `_run` answers when the local ledger must answer instead


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStore:
    """Ledgers in Redis; see the module docstring for keys, scripts and outages."""

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str = "gg",
        on_outage: OnOutage = "degrade",
        retry_after: float = RETRY_AFTER,
        socket_timeout: float = SOCKET_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        on_event: Callable[[object], None] | None = None,
    ) -> None:
        options = with_options(
            url,
            prefix=prefix,
            on_outage=on_outage,
            retry_after=retry_after,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
        )
        parsed = parse_store_url(options)
        self._backend = backend = RedisBackend(parsed)
        self._no_script = backend.no_script
        self._unreachable = backend.unreachable
        self._redis_error = backend.error
        self._prefix = parsed.prefix
        self._on_event = on_event
        self._client = backend.client
        self._execute: Any = self._client.execute_command  # untyped in redis-py
        self._outage = Outage(
            f"Redis at {parsed.shown}",
            policy=parsed.on_outage,
            retry_after=parsed.retry_after,
            meanwhile="requests are paced by a ledger local to this process",
        )
        self._acquire = _Script.load("acquire")
        self._settle = _Script.load("settle")
        self._confirm = _Script.load("confirm")
        self._spent = _Script.load("spent")
        self._answered_script = _Script.load("answered")
        self._fallback = MemoryStore()
        self._key_names: dict[QuotaKey, tuple[bytes, bytes]] = {}
        # [start, end) of the Pacific day last seen, its ordinal, the end of the next.
        self._day_cache: tuple[float, float, int, float] = (0.0, 0.0, 0, 0.0)

    @classmethod
    def from_url(
        cls, url: str | StoreUrl, *, on_event: Callable[[object], None] | None = None
    ) -> RedisStore:
        """A store from `redis://[user:password@]host:port/db[?on_outage=fail&prefix=gg]`."""
        parsed = url if isinstance(url, StoreUrl) else parse_store_url(url)
        return cls(
            parsed.client_url,
            prefix=parsed.prefix,
            on_outage=parsed.on_outage,
            retry_after=parsed.retry_after,
            socket_timeout=parsed.socket_timeout,
            connect_timeout=parsed.connect_timeout,
            on_event=on_event,
        )

    @property
    def url(self) -> str:
        """The URL without credentials."""
        return self._backend.shown

    @property
    def degraded(self) -> bool:
        return self._outage.down

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, on_outage={self._outage.policy!r})"

    def close(self) -> None:
        self._backend.close()

    async def aclose(self) -> None:
        await self._backend.aclose()

    # -- keys -----------------------------------------------------------------------

    def _keys(self, key: QuotaKey) -> tuple[bytes, bytes]:
        """The ledger's keys, slots and meta, with one hash tag (encoded once)."""
        names = self._key_names.get(key)
        if names is not None:
            return names
        if any(ch in key.project for ch in "{}"):
            raise ConfigError(f"project {key.project!r} must not contain braces")
        tag = f"{self._prefix}:{{{key.project}:{key.model}}}"
        names = f"{tag}:slots".encode(), f"{tag}:meta".encode()
        if len(self._key_names) < 10_000:  # a cache, bounded
            self._key_names[key] = names
        return names

    # -- outage handling (see stores.outage) ------------------------------------------

    def _failed(self, exc: Exception, now: float) -> None:
        """Redis is unreachable: raise, or switch to the local ledger."""
        if self._outage.failed(exc, now) is not None and self._on_event is not None:
            self._on_event(StoreDegraded(store=self.url, error=str(exc), at=now))

    def _answered(self, now: float) -> None:
        if self._outage.answered() is not None and self._on_event is not None:
            self._on_event(StoreRecovered(store=self.url, at=now))

    def _aclient(self) -> Any:
        return self._backend.async_client()

    # -- scripts --------------------------------------------------------------------

    def _run(self, now: float, script: _Script, keys: tuple[bytes, bytes], blob: bytes) -> Any:
        """One EVALSHA; `_DOWN` when Redis is unreachable and the local ledger must answer.

        The hot path of every store call, so written out rather than through closures;
        `execute_command` skips redis-py's `evalsha` wrapper, and the arguments go as
        bytes, which the client passes through without encoding them again.
        """
        if self._outage.skipping(now):
            return _DOWN
        execute = self._execute
        try:
            try:
                raw = execute("EVALSHA", script.digest, b"2", *keys, blob)
            except self._no_script:
                # A restarted or flushed Redis forgot the script: load it and go on.
                self._client.script_load(script.source)
                raw = execute("EVALSHA", script.digest, b"2", *keys, blob)
        except self._unreachable as exc:
            self._failed(exc, now)
            return _DOWN
        except self._redis_error as exc:
            raise StoreError(f"Redis at {self.url} failed: {exc}") from exc
        if self._outage.down:
            self._answered(now)
        return raw

    async def _arun(
        self, now: float, script: _Script, keys: tuple[bytes, bytes], blob: bytes
    ) -> Any:
        if self._outage.skipping(now):
            return _DOWN
        try:
            client = self._aclient()
            execute: Any = client.execute_command
            try:
                raw = await execute("EVALSHA", script.digest, b"2", *keys, blob)
            except self._no_script:
                await client.script_load(script.source)
                raw = await execute("EVALSHA", script.digest, b"2", *keys, blob)
        except self._unreachable as exc:
            self._failed(exc, now)
            return _DOWN
        except self._redis_error as exc:
            raise StoreError(f"Redis at {self.url} failed: {exc}") from exc
        if self._outage.down:
            self._answered(now)
        return raw

    def _acquire_blob(
        self,
        *,
        slot_id: str,
        budget: Budget,
        tokens: int,
        now: float,
        allowance: float,
        deadline: float | None,
    ) -> bytes:
        """acquire.lua's argument: its numbers, then the slot's member."""
        if "|" in slot_id or slot_id[:1] == "~":
            raise ValueError(f"slot id {slot_id!r} must not contain '|' nor start with '~'")
        day_start_at, today_end, today, tomorrow_end = self._day_cache
        if not day_start_at <= now < today_end:
            today, today_end, tomorrow_end = self._days_of(now)
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
            )
            + f"{slot_id}|{tokens}".encode()
        )

    def _days_of(self, now: float) -> tuple[int, float, float]:
        """(today's ordinal, its end, tomorrow's end) at `now`, cached for the day."""
        day_start_at, today_end, today, tomorrow_end = self._day_cache
        if not day_start_at <= now < today_end:
            today, today_end = day_index(now)
            tomorrow_end = day_index(today_end)[1]
            self._day_cache = (day_start(now), today_end, today, tomorrow_end)
        return today, today_end, tomorrow_end

    @staticmethod
    def _acquired(raw: Any, slot_id: str, now: float) -> Granted | Refused:
        if type(raw) is int:  # the usual answer: booked to start now, on this day
            return _new_tuple(Granted, (now, slot_id, raw, "primary"))
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
        blob = self._acquire_blob(
            slot_id=slot_id,
            budget=budget,
            tokens=tokens,
            now=now,
            allowance=allowance,
            deadline=deadline,
        )
        raw = self._run(now, self._acquire, self._key_names.get(key) or self._keys(key), blob)
        if raw is _DOWN:
            return self._local_acquire(key, slot_id, budget, tokens, now, allowance, deadline)
        return self._acquired(raw, slot_id, now)

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
        blob = self._acquire_blob(
            slot_id=slot_id,
            budget=budget,
            tokens=tokens,
            now=now,
            allowance=allowance,
            deadline=deadline,
        )
        raw = await self._arun(now, self._acquire, self._keys(key), blob)
        if raw is _DOWN:
            return self._local_acquire(key, slot_id, budget, tokens, now, allowance, deadline)
        return self._acquired(raw, slot_id, now)

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
    def _confirm_blob(
        reservation: Reservation, *, now: float, budget: Budget, allowance: float
    ) -> bytes:
        requests, tokens_limit = budget.requests, budget.tokens
        return (
            _pack_confirm(
                reservation.tokens,
                now,
                budget.period,
                -1 if requests is None else requests,
                -1 if tokens_limit is None else tokens_limit,
                allowance,
                MAX_FLIGHT,
            )
            + f"{reservation.slot_id}|{reservation.tokens}".encode()
        )

    def confirm(
        self, reservation: Reservation, *, now: float, budget: Budget, allowance: float
    ) -> float:
        if reservation.origin != "fallback":
            blob = self._confirm_blob(reservation, now=now, budget=budget, allowance=allowance)
            raw = self._run(now, self._confirm, self._keys(reservation.key), blob)
            if raw is not _DOWN:
                return float(_text(raw))
        return self._fallback.confirm(reservation, now=now, budget=budget, allowance=allowance)

    async def aconfirm(
        self, reservation: Reservation, *, now: float, budget: Budget, allowance: float
    ) -> float:
        if reservation.origin != "fallback":
            blob = self._confirm_blob(reservation, now=now, budget=budget, allowance=allowance)
            raw = await self._arun(now, self._confirm, self._keys(reservation.key), blob)
            if raw is not _DOWN:
                return float(_text(raw))
        return self._fallback.confirm(reservation, now=now, budget=budget, allowance=allowance)

    @staticmethod
    def _settle_blob(reservation: Reservation, *, sent: bool, end: float, tokens: int) -> bytes:
        booked = f"{reservation.slot_id}|{reservation.tokens}".encode()
        counted = f"{reservation.slot_id}|{tokens}".encode()
        # The period only sizes the TTLs here; the limiter's windows are a minute.
        head = _pack_settle(
            reservation.tokens,
            1.0 if sent else 0.0,
            end,
            tokens,
            reservation.day,
            60.0,
            len(booked),
        )
        return head + booked + counted

    def settle(self, reservation: Reservation, *, sent: bool, end: float, tokens: int) -> None:
        if reservation.origin != "fallback":
            blob = self._settle_blob(reservation, sent=sent, end=end, tokens=tokens)
            if self._run(end, self._settle, self._keys(reservation.key), blob) is not _DOWN:
                return
        self._fallback.settle(reservation, sent=sent, end=end, tokens=tokens)

    async def asettle(
        self, reservation: Reservation, *, sent: bool, end: float, tokens: int
    ) -> None:
        if reservation.origin != "fallback":
            blob = self._settle_blob(reservation, sent=sent, end=end, tokens=tokens)
            raw = await self._arun(end, self._settle, self._keys(reservation.key), blob)
            if raw is not _DOWN:
                return
        self._fallback.settle(reservation, sent=sent, end=end, tokens=tokens)

    # -- answered slots (record_answered) ------------------------------------------

    def _answered_calls(
        self, slots: Sequence[Reservation]
    ) -> list[tuple[tuple[bytes, bytes], bytes]]:
        """answered.lua's calls: one per ledger, its slots in order."""
        by_key: dict[QuotaKey, list[Reservation]] = {}
        for slot in slots:
            by_key.setdefault(slot.key, []).append(slot)
        calls: list[tuple[tuple[bytes, bytes], bytes]] = []
        for key, group in by_key.items():
            heads = [_pack_answered(NO_LIMITS.period, MAX_FLIGHT, len(group))]
            members = []
            for slot in group:
                slot_id = slot.slot_id
                if "|" in slot_id or slot_id[:1] == "~":
                    raise ValueError(f"slot id {slot_id!r} must not contain '|' nor start with '~'")
                member = f"{slot_id}|{slot.tokens}".encode()
                today, today_end, tomorrow_end = self._days_of(slot.start)
                heads.append(
                    _pack_answered_slot(
                        slot.start,
                        slot.end,
                        slot.tokens,
                        today,
                        today_end,
                        tomorrow_end,
                        len(member),
                    )
                )
                members.append(member)
            calls.append((self._keys(key), b"".join(heads) + b"".join(members)))
        return calls

    def _split_degraded(
        self, slots: Sequence[Reservation]
    ) -> tuple[Sequence[Reservation], Sequence[Reservation]]:
        """(slots the local ledger records, slots for Redis), as `_run` picks per call."""
        until = self._outage.until
        if until is None:
            return (), slots
        return [s for s in slots if s.start < until], [s for s in slots if s.start >= until]

    def _pipeline(self, calls: list[tuple[tuple[bytes, bytes], bytes]]) -> list[Any]:
        digest = self._answered_script.digest
        with self._client.pipeline(transaction=False) as pipe:
            execute: Any = pipe.execute_command  # untyped in redis-py
            for keys, blob in calls:
                execute("EVALSHA", digest, b"2", *keys, blob)
            result: list[Any] = pipe.execute()
            return result

    async def _apipeline(self, calls: list[tuple[tuple[bytes, bytes], bytes]]) -> list[Any]:
        digest = self._answered_script.digest
        async with self._aclient().pipeline(transaction=False) as pipe:
            for keys, blob in calls:
                pipe.execute_command("EVALSHA", digest, b"2", *keys, blob)
            result: list[Any] = await pipe.execute()
            return result

    def record_answered(self, slots: Sequence[Reservation]) -> None:
        # One script per ledger (a ledger's keys share a hash tag, different ledgers
        # may not), all in one pipeline: one round trip. NOSCRIPT fails every call
        # alike (one script), so none ran and all are sent again.
        local, remote = self._split_degraded(slots)
        if remote:
            calls = self._answered_calls(remote)
            now = remote[0].start
            try:
                try:
                    self._pipeline(calls)
                except self._no_script:
                    self._client.script_load(self._answered_script.source)
                    self._pipeline(calls)
            except self._unreachable as exc:
                self._failed(exc, now)
            except self._redis_error as exc:
                raise StoreError(f"Redis at {self.url} failed: {exc}") from exc
            else:
                if self._outage.down:
                    self._answered(now)
                remote = ()
        if local or remote:
            self._fallback.record_answered([*local, *remote])

    async def arecord_answered(self, slots: Sequence[Reservation]) -> None:
        local, remote = self._split_degraded(slots)
        if remote:
            calls = self._answered_calls(remote)
            now = remote[0].start
            try:
                try:
                    await self._apipeline(calls)
                except self._no_script:
                    await self._aclient().script_load(self._answered_script.source)
                    await self._apipeline(calls)
            except self._unreachable as exc:
                self._failed(exc, now)
            except self._redis_error as exc:
                raise StoreError(f"Redis at {self.url} failed: {exc}") from exc
            else:
                if self._outage.down:
                    self._answered(now)
                remote = ()
        if local or remote:
            self._fallback.record_answered([*local, *remote])

    # The day's spent flag must outlast the day (one that just began, or the next).
    _SPENT_KEEP = 3 * 86_400.0

    def mark_day_spent(self, key: QuotaKey, *, day: int) -> None:
        self._fallback.mark_day_spent(key, day=day)
        keys, blob = self._keys(key), _pack_spent(day, self._SPENT_KEEP)
        try:
            try:
                self._execute("EVALSHA", self._spent.digest, b"2", *keys, blob)
            except self._no_script:
                self._client.script_load(self._spent.source)
                self._execute("EVALSHA", self._spent.digest, b"2", *keys, blob)
        except self._redis_error as exc:
            if self._outage.policy == "fail":
                raise StoreError(f"Redis at {self.url} failed: {exc}") from exc

    async def amark_day_spent(self, key: QuotaKey, *, day: int) -> None:
        self._fallback.mark_day_spent(key, day=day)
        keys, blob = self._keys(key), _pack_spent(day, self._SPENT_KEEP)
        try:
            client = self._aclient()
            execute: Any = client.execute_command
            try:
                await execute("EVALSHA", self._spent.digest, b"2", *keys, blob)
            except self._no_script:
                await client.script_load(self._spent.source)
                await execute("EVALSHA", self._spent.digest, b"2", *keys, blob)
        except self._redis_error as exc:
            if self._outage.policy == "fail":
                raise StoreError(f"Redis at {self.url} failed: {exc}") from exc

    def usage(self, key: QuotaKey, *, now: float, period: float = 60.0) -> KeyUsage:
        slots, meta = self._keys(key)
        today = day_index(now)[0]
        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.zrangebyscore(slots, "(0", "+inf", withscores=True)  # the slots alone
                pipe.hget(meta, str(today))
                members, counts = pipe.execute()
        except self._redis_error as exc:
            raise StoreError(f"Redis at {self.url} failed: {exc}") from exc
        ends = [float(score) for _, score in members]
        tokens_of = [int(_text(member).rsplit("|", 1)[1]) for member, _ in members]
        day_counts = None if counts is None else [int(value) for value in _unpack_day(counts)]
        return usage_of_book(key, ends, tokens_of, day_counts, now=now, period=period)

    def ledgers(self) -> list[QuotaKey]:
        found: set[QuotaKey] = set()
        try:
            for suffix in ("slots", "meta"):
                for raw in self._client.scan_iter(match=f"{self._prefix}:{{*}}:{suffix}"):
                    name = _text(raw)
                    inner = name[name.index("{") + 1 : name.rindex("}")]
                    project, _, model = inner.rpartition(":")
                    found.add(QuotaKey(project, model))
        except self._redis_error as exc:
            raise StoreError(f"Redis at {self.url} failed: {exc}") from exc
        return sorted(found)
