"""One run per output file: an exclusive OS lock held for the whole run.

    with RunLock.acquire(lock_path(output)):   # raises OutputLocked naming the holder
        ...

Two runs appending to one output would each send every pending request (quota and
money spent twice) and write each id twice. The lock is `flock(LOCK_EX | LOCK_NB)` on
`<output>.lock`, not a pid file checked by hand, because the kernel drops a flock the
instant its process dies, whatever the death (kill -9, OOM, power cut of a container):
there is no stale lock to detect, no pid to test for liveness (pids are reused, and a
pid on another host of a shared filesystem cannot be tested at all), and no window
between "the holder is dead" and "I take it". The file only carries who holds the lock
(pid, host, start time) so that a refused run can name it.

The lock file is never deleted: unlinking it while another process has it open and is
about to lock it would let two processes each hold a lock on a different inode.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from gemini_guard.clock import SystemClock
from gemini_guard.errors import GuardError

__all__ = ["LockHolder", "OutputLocked", "RunLock", "lock_path"]


def lock_path(output: str | Path) -> Path:
    """The lock file of `output`: next to it, `<output>.lock`."""
    output = Path(output)
    return output.with_name(output.name + ".lock")


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a run lock, as it wrote itself into the lock file."""

    pid: int | None
    host: str | None
    started: str | None  # ISO 8601, UTC

    def describe(self) -> str:
        if self.pid is None:
            return "another process (it has not written its pid yet)"
        return f"process {self.pid} on {self.host or '?'}, started {self.started or '?'}"


class OutputLocked(GuardError):
    """Another run holds the lock of this output; `holder` says which."""

    def __init__(self, message: str, *, path: Path, holder: LockHolder) -> None:
        super().__init__(message)
        self.path = path
        self.holder = holder


def _read_holder(fd: int) -> LockHolder:
    try:
        raw = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        raw = {}
    if not isinstance(raw, dict):
        raw = {}
    pid = raw.get("pid")
    return LockHolder(
        pid=pid if isinstance(pid, int) else None,
        host=str(raw["host"]) if "host" in raw else None,
        started=str(raw["started"]) if "started" in raw else None,
    )


class RunLock:
    """An exclusive lock on a file, held until `release` (or process death)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, path: str | Path, *, what: str = "output") -> RunLock:
        """Lock `path` now or raise `OutputLocked` at once (never waits)."""
        path = Path(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise OutputLocked(
                f"another run is using this {what}: {holder.describe()} holds {path}. "
                "Wait for it to finish (or stop it), or pick another -o path; two runs on "
                "one output would send every request twice",
                path=path,
                holder=holder,
            ) from None
        except BaseException:
            os.close(fd)
            raise
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.fromtimestamp(SystemClock().time(), UTC).isoformat(
                timespec="seconds"
            ),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode() + b"\n", 0)
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        if self._fd >= 0:
            # Closing the descriptor drops the flock; the file stays (see the module doc).
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
