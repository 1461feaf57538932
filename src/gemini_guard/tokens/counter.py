"""How many input tokens a call books against the quota before it is sent.

The quota limiter reserves a request's input tokens before sending and corrects its
ledger from the answer's `usageMetadata`. The reservation is only as good as the
figure: too low and a burst of long prompts overruns the TPM limit before the
corrections arrive; too high and calls wait for room they never use. The Guard takes
its figure from a `TokenCounter`, chosen with `Guard(token_counter=...)`:

- "estimate" (default): `gemini_guard.tokens`, by script (English, Chinese, code...),
  offline.
- "api": the model's own tokenizer, `models.count_tokens` on the Guard's client, once
  per distinct request; see `ApiTokenCounter`.
- a function `(model, contents, config) -> int`, or any object with `count` and
  `acount` methods (an `ApiTokenCounter` with another timeout, for instance).

Counting is advisory: whatever goes wrong while counting (an error, a timeout, a
function that raises), the call reserves the local estimate instead and goes on, and
the "gemini_guard" logger says so once per model.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from google.genai import types

from gemini_guard.diagnosis import diagnose
from gemini_guard.errors import ConfigError
from gemini_guard.secrets import REDACTED
from gemini_guard.tokens.estimate import estimate_text_tokens, estimate_tokens

if TYPE_CHECKING:
    from google import genai

__all__ = [
    "TOKEN_COUNTERS",
    "ApiTokenCounter",
    "EstimateTokenCounter",
    "FunctionTokenCounter",
    "TokenCounter",
    "TokenCounterChoice",
    "make_token_counter",
]

TOKEN_COUNTERS: tuple[str, ...] = ("estimate", "api")

_log = logging.getLogger("gemini_guard")

# The config fields the server counts as input besides the contents.
_COUNTED_FIELDS = (("system_instruction", "systemInstruction"), ("tools", "tools"))
# Counting answers are cached under this name, never under a project or a key: the
# figure depends on the model and the text alone.
_NAMESPACE = "count_tokens"


@runtime_checkable
class TokenCounter(Protocol):
    """Input tokens of a request, for the quota reservation. Never raises."""

    def count(self, model: str, contents: Any, config: Any) -> int: ...

    async def acount(self, model: str, contents: Any, config: Any) -> int: ...


TokenCounterChoice = Literal["estimate", "api"] | Callable[[str, Any, Any], int] | TokenCounter


def estimate(contents: Any) -> int:
    """The local estimate of `contents` (the string case without the walk)."""
    return estimate_text_tokens(contents) if type(contents) is str else estimate_tokens(contents)


class EstimateTokenCounter:
    """The local estimate of the contents (`gemini_guard.tokens`): no I/O, no cache."""

    __slots__ = ()

    def count(self, model: str, contents: Any, config: Any) -> int:
        return estimate(contents)

    async def acount(self, model: str, contents: Any, config: Any) -> int:
        return estimate(contents)

    def __repr__(self) -> str:
        return "EstimateTokenCounter()"


def _field(config: Any, name: str, alias: str) -> Any:
    if config is None:
        return None
    if isinstance(config, Mapping):
        value = config.get(name)
        return value if value is not None else config.get(alias)
    return getattr(config, name, None)


def _counted(config: Any) -> dict[str, Any]:
    """The system instruction and the declared tools of `config`: input the server
    counts besides the contents. Python functions among the tools are left out (the
    SDK turns them into declarations itself, at send time)."""
    out: dict[str, Any] = {}
    system = _field(config, *_COUNTED_FIELDS[0])
    if system is not None:
        out["system_instruction"] = system
    tools = _field(config, *_COUNTED_FIELDS[1])
    if tools:
        declared = [t for t in tools if isinstance(t, types.Tool | Mapping)]
        if declared:
            out["tools"] = declared
    return out


def _local_tokens(counted: Mapping[str, Any]) -> int:
    """The local estimate of a system instruction and tools, by the same rules as
    the contents' (text by length, tools by the length of the JSON sent)."""
    tokens = 0
    system = counted.get("system_instruction")
    if system is not None:
        tokens += estimate(system)
    tools = counted.get("tools")
    if tools:
        wire = [
            t.model_dump(mode="json", by_alias=True, exclude_none=True)
            if isinstance(t, types.Tool)
            else t
            for t in tools
        ]
        tokens += estimate_text_tokens(json.dumps(wire, sort_keys=True, default=str))
    return tokens


def _valid_count(value: object, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{source} gave {value!r}, not a token count (an integer >= 0)")
    return value


class _Warned:
    """Says once per model that counting failed, never once per call."""

    def __init__(self, what: str, secrets: tuple[str, ...] = ()) -> None:
        self._what = what
        self._secrets = tuple(s for s in secrets if s)
        self._models: set[str] = set()
        self._lock = threading.Lock()

    def failed(self, model: str, exc: BaseException) -> None:
        with self._lock:
            if model in self._models:
                return
            self._models.add(model)
        diagnosis = diagnose(exc)
        # The diagnosis' message is already redacted; the exact keys in use go too.
        message = diagnosis.message
        for secret in self._secrets:
            message = message.replace(secret, REDACTED)
        status = f", HTTP {diagnosis.http_status}" if diagnosis.http_status else ""
        _log.warning(
            "%s failed for %s (%s%s: %s); its calls reserve the local token estimate "
            "instead (said once per model)",
            self._what,
            model,
            diagnosis.category,
            status,
            message[:300],
        )


class FunctionTokenCounter:
    """A function `(model, contents, config) -> int` as a counter. It runs inline,
    on the event loop for asyncio calls: keep it quick, or give an object with an
    async `acount` instead."""

    def __init__(self, function: Callable[[str, Any, Any], int]) -> None:
        self.function = function
        self._warned = _Warned(f"token_counter {getattr(function, '__name__', function)!r}")

    def count(self, model: str, contents: Any, config: Any) -> int:
        try:
            return _valid_count(self.function(model, contents, config), "the token counter")
        except Exception as exc:
            self._warned.failed(model, exc)
            return estimate(contents)

    async def acount(self, model: str, contents: Any, config: Any) -> int:
        return self.count(model, contents, config)

    def __repr__(self) -> str:
        return f"FunctionTokenCounter({self.function!r})"


class ApiTokenCounter:
    """Input tokens counted by the model's tokenizer (`models.count_tokens` on `client`).

    - One request per distinct request: the answer is remembered in an LRU of
      `max_entries`, keyed by a hash of the model and the canonical form of the
      contents and counted config fields (`gemini_guard.cache.keys`), never the key.
    - The system instruction and declared tools count too. The Vertex AI backend
      counts them with the contents; the Gemini Developer API's `count_tokens` takes
      contents only (the SDK refuses the other fields there), so on that backend they
      are added from the local estimate.
    - `timeout` (seconds, real time) bounds one count, sent without the SDK's retries.
      On any failure the call reserves the local estimate of the contents, system
      instruction and tools; the next call with that request asks again.
    """

    def __init__(
        self, client: genai.Client, *, max_entries: int = 4096, timeout: float = 5.0
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError(
                f"max_entries must be a positive integer, got {max_entries!r}; e.g. 4096"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(f"timeout must be a positive number of seconds, got {timeout!r}")
        # Imported here: the cache package is not needed until a counter is made.
        from gemini_guard.cache.keys import request_key

        self._request_key = request_key
        self.client = client
        self.max_entries = max_entries
        self.timeout = float(timeout)
        self._vertex = bool(getattr(client, "vertexai", False))
        self._http = types.HttpOptions(
            timeout=max(1, math.ceil(self.timeout * 1000)),
            # A count that fails is replaced by the estimate at once: retrying it
            # would only delay the call it is for.
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        self._plain = types.CountTokensConfig(http_options=self._http)
        self._entries: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        api_key = getattr(getattr(client, "_api_client", None), "api_key", None)
        self._warned = _Warned("countTokens", (api_key,) if isinstance(api_key, str) else ())

    def __repr__(self) -> str:
        return (
            f"ApiTokenCounter(max_entries={self.max_entries}, timeout={self.timeout:g}, "
            f"cached={len(self._entries)})"
        )

    def __len__(self) -> int:
        """How many counts are remembered."""
        return len(self._entries)

    # -- the cache -----------------------------------------------------------------

    def _look_up(self, model: str, contents: Any, config: Any) -> tuple[str | None, int | None]:
        """The cache key of the request (None: it has no stable form, so it is counted
        every time) and its remembered count, if any."""
        counted = _counted(config)
        key = self._request_key(
            project=_NAMESPACE, model=model, contents=contents, config=counted or None
        )
        if key is None:
            return None, None
        with self._lock:
            tokens = self._entries.get(key)
            if tokens is not None:
                self._entries.move_to_end(key)
        return key, tokens

    def _keep(self, key: str | None, tokens: int) -> int:
        if key is not None:
            with self._lock:
                self._entries[key] = tokens
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return tokens

    # -- one count -----------------------------------------------------------------

    def _request(self, config: Any) -> types.CountTokensConfig:
        counted = _counted(config) if self._vertex else None
        if not counted:
            return self._plain
        return types.CountTokensConfig(http_options=self._http, **counted)

    def _total(self, response: types.CountTokensResponse, config: Any) -> int:
        tokens = _valid_count(response.total_tokens, "countTokens")
        return tokens if self._vertex else tokens + _local_tokens(_counted(config))

    def _fallback(self, model: str, contents: Any, config: Any, exc: Exception) -> int:
        self._warned.failed(model, exc)
        try:
            return estimate(contents) + _local_tokens(_counted(config))
        except Exception:  # a config too odd to estimate: the contents alone
            return estimate(contents)

    def count(self, model: str, contents: Any, config: Any) -> int:
        try:
            key, tokens = self._look_up(model, contents, config)
            if tokens is not None:
                return tokens
            response = self.client.models.count_tokens(
                model=model, contents=contents, config=self._request(config)
            )
            return self._keep(key, self._total(response, config))
        except Exception as exc:
            return self._fallback(model, contents, config, exc)

    async def acount(self, model: str, contents: Any, config: Any) -> int:
        try:
            key, tokens = self._look_up(model, contents, config)
            if tokens is not None:
                return tokens
            response = await self.client.aio.models.count_tokens(
                model=model, contents=contents, config=self._request(config)
            )
            return self._keep(key, self._total(response, config))
        except Exception as exc:
            return self._fallback(model, contents, config, exc)


def make_token_counter(choice: object, *, client: genai.Client) -> TokenCounter:
    """The counter for `Guard(token_counter=choice)`; a `ConfigError` for anything else."""
    if isinstance(choice, str):
        if choice == "estimate":
            return EstimateTokenCounter()
        if choice == "api":
            return ApiTokenCounter(client)
    elif isinstance(choice, TokenCounter):
        return choice
    elif inspect.iscoroutinefunction(choice):
        raise ConfigError(
            f"token_counter {choice!r} is an async function, which sync calls cannot "
            "await; give a plain function, or an object with count() and async acount()"
        )
    elif callable(choice):
        return FunctionTokenCounter(choice)
    raise ConfigError(
        f"token_counter {choice!r} is not one of: 'estimate', 'api', a function "
        "(model, contents, config) -> int, or an object with count() and acount(); "
        'e.g. token_counter="api" to count with the model\'s tokenizer'
    )
