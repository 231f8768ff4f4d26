"""Group commit: one fsync of a directory for every caller that arrived while the last one ran.

Publishing a file is a rename followed by an fsync of the directory it lands in; the first
durable write of a staged file needs an fsync of the staging directory (for the file's entry).
When several clients do this at once, each caller only needs *some* fsync of that directory that
started after its own change. `GroupSync.sync(key, fd)` gives exactly that: if no fsync of `key`
is running, the caller runs one; if one is running (it may have started before the caller's
change), the caller waits for it to end and then for the next one, which one of the waiting
callers runs for all of them. k callers that arrive together cost about two fsyncs, not k.

Thread-safe and blocking: call it from worker threads, never while holding a lock other callers
need. A failed fsync raises its OSError in every caller it was meant to cover. `typical` is a moving
average of how long an fsync took (seconds), for callers that decide whether to wait for one on
a thread that must not block for long.
"""

from __future__ import annotations

import os
import threading
import time

_FAILURES_KEPT = 64  # failed fsync numbers remembered per key (failures are rare: EIO, ENOSPC)


class _Key:
    __slots__ = ("cond", "users", "started", "done", "running", "failed")

    def __init__(self):
        self.cond = None  # a Condition on GroupSync's lock, made when a caller has to wait
        self.users = 0  # callers inside sync() for this key
        self.started = 0  # fsyncs started (numbered from 1)
        self.done = 0  # the number of the last finished fsync
        self.running = False
        self.failed: dict[int, OSError] = {}


class GroupSync:
    """fsyncs shared by the callers that arrive together, per key (see the module text).

    `fsyncs` and `calls` count what was done, for tests and statistics; `typical` is the
    moving average (weight 1/8) of an fsync's duration in seconds, over all keys."""

    def __init__(self, fsync=os.fsync):
        self._fsync = fsync
        self._lock = threading.Lock()
        self._keys: dict[object, _Key] = {}
        self.calls = 0
        self.fsyncs = 0
        self.typical = 0.0

    def sync(self, key, fd: int) -> None:
        """Return once an fsync of the file `key` stands for, started after this call, has
        finished. `fd` is the caller's descriptor of that file (any one will do: the fsync a
        caller runs is of its own descriptor); the caller keeps and closes it."""
        lock = self._lock
        with lock:
            k = self._keys.get(key)
            if k is None:
                k = self._keys[key] = _Key()
            k.users += 1
            self.calls += 1
            want = k.started + 1  # the first fsync to start after now
            try:
                while k.done < want:
                    if k.running:
                        if k.cond is None:
                            k.cond = threading.Condition(lock)
                        k.cond.wait()
                        continue
                    k.running = True
                    k.started += 1
                    n = k.started  # == want or later callers': it covers all of them
                    err = None
                    lock.release()
                    t = time.monotonic()
                    try:
                        self._fsync(fd)
                    except OSError as e:
                        err = e
                    finally:
                        t = time.monotonic() - t
                        lock.acquire()
                        k.running = False
                        k.done = n
                        self.fsyncs += 1
                        self.typical += (t - self.typical) / 8
                        if err is not None:
                            k.failed[n] = err
                            while len(k.failed) > _FAILURES_KEPT:
                                del k.failed[min(k.failed)]
                        if k.cond is not None:
                            k.cond.notify_all()
                err = k.failed.get(want)
                if err is not None:
                    raise OSError(err.errno, err.strerror)
            finally:
                k.users -= 1
                if k.users == 0:
                    del self._keys[key]
