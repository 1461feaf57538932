"""Which model answered a call and after how many attempts: `last_call()` (per thread
or asyncio task, failed calls included) and `guard_info(response)` (a weak side table:
the SDK's response types forbid extra fields, so nothing is set on them).

Every entry point of the path tells these (guard.models, guard.client's transport, the
cache stage); they live here, below all of them, so none has to import another.
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from typing import Any

from gemini_guard.call.effects import CallInfo

__all__ = ["guard_info", "last_call", "remember", "set_last_call"]

_last_call: contextvars.ContextVar[CallInfo | None] = contextvars.ContextVar(
    "gemini_guard_last_call", default=None
)
# id(response) -> (a weak reference to it, its CallInfo). The reference's callback
# drops the entry when the response is collected (cheaper than weakref.finalize).
_infos: dict[int, tuple[weakref.ref[Any], CallInfo]] = {}
_infos_lock = threading.Lock()


def last_call() -> CallInfo | None:
    """The `CallInfo` of the latest guarded call in this thread or asyncio task."""
    return _last_call.get()


def guard_info(response: object) -> CallInfo | None:
    """The `CallInfo` of the guarded call that returned `response` (None if unknown).

    For a stream, every chunk of it maps to the call's info.
    """
    with _infos_lock:
        entry = _infos.get(id(response))
    # The id may have been reused by another object since: check it is the same one.
    if entry is None or entry[0]() is not response:
        return None
    return entry[1]


def remember(response: object, info: CallInfo) -> None:
    key = id(response)
    try:
        ref = weakref.ref(response, lambda _, key=key: _forget(key, _))  # type: ignore[misc]
    except TypeError:  # not weak-referenceable: keep only last_call()
        return
    with _infos_lock:
        _infos[key] = (ref, info)


def _forget(key: int, ref: weakref.ref[Any]) -> None:
    with _infos_lock:
        entry = _infos.get(key)
        if entry is not None and entry[0] is ref:  # not a newer object's entry
            del _infos[key]


def set_last_call(info: CallInfo) -> None:
    _last_call.set(info)
