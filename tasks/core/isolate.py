"""Work that a hostile input could crash or stall, run where that cannot take the worker with it.

`in_child(fn, ...)` runs a pure computation in a forked child of the Dask worker (copy-on-write: its inputs are
not copied) and returns its result through a pipe. If the child dies (the OOM killer, a segfault in a native
library) the caller gets `ChildDied` instead of losing the worker. Inside the child `time_limit(seconds)` raises
`TimedOut` when a call overruns: the child's one thread is its main thread, so SIGALRM reaches it (a Dask worker
thread could not be interrupted this way). The child does no I/O: the caller writes what it returns.
"""
from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
from typing import Any, Callable, Iterator


class ChildDied(RuntimeError):
    """The child process ended without an answer (killed by a signal or an abort)."""


class TimedOut(Exception):
    """A call exceeded its time limit (raised inside the child by SIGALRM)."""


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"killed by {signal.Signals(sig).name}" + (" (out of memory?)" if sig == signal.SIGKILL else "")
    return f"exited with {os.WEXITSTATUS(status)} without an answer"


def in_child(fn: Callable[..., Any], *args, **kwargs) -> Any:
    """fn(*args, **kwargs) in a forked child; its exceptions are re-raised here, its death is ChildDied."""
    r, w = os.pipe()
    gc.freeze()  # the parent's objects kept out of the child's collections (which would copy each page they touch)
    try:
        pid = os.fork()
    except BaseException:
        gc.unfreeze()
        raise
    if pid:
        gc.unfreeze()
    if pid == 0:  # the child: compute, answer, leave without running the parent's exit handlers
        code = 0
        try:
            os.close(r)
            try:
                payload = pickle.dumps((True, fn(*args, **kwargs)), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as exc:  # noqa: BLE001 - sent back to the parent
                try:
                    payload = pickle.dumps((False, exc))
                except Exception:  # noqa: BLE001 - an exception that does not pickle
                    payload = pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
            with os.fdopen(w, "wb") as f:
                f.write(payload)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise ChildDied(_describe(status))
    ok, value = pickle.loads(data)
    if ok:
        return value
    raise value


def _alarm(signum, frame):
    raise TimedOut()


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimedOut in the body after `seconds` (main thread only, i.e. inside `in_child`); 0 means no limit."""
    if seconds <= 0:
        yield
        return
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
