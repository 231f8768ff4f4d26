"""Server-side copies in progress: NFSv4.2 COPY's jobs, synchronous and asynchronous (RFC 7862
sections 4, 15.2), OFFLOAD_STATUS / OFFLOAD_CANCEL's view of them, CB_OFFLOAD when one ends,
and the rule that ties them to the write-once life of a file (docs/semantics.md, COPY and
CLONE).

A copy writes into the destination open's staging version (rule 1) from a worker thread, in
steps of `STEP` bytes (`Staging.copy_from`), so a cancel or a lease expiry stops it within one
step. While a copy (or a CLONE) uses a staging version, that version is *in use*:

* CLOSE, OPEN_DOWNGRADE and COMMIT of it wait until no copy uses it (`idle`): a copy never
  publishes half a file, and COMMIT covers the copied bytes;
* WRITE, ALLOCATE, DEALLOCATE, size changes and further copies into it answer NFS4ERR_DELAY
  (one thread at a time per staging object, the backend's contract);
* what the lifecycle does to it without the client (rule 6's discard, rule 7's retirement, the
  retention deadline) first cancels the copy and happens when its step is over
  (`cancel_then`): never under a running step.

A staging version the copy reads from (the client's own file under construction) is in use too.

An asynchronous copy answers COPY at once with a stateid (the write verifier in it), and tells
the client its end with CB_OFFLOAD on the session's back channel. A client has at most
`max_async` of them running; beyond that, and without a back channel, and for copies under
`async_min` bytes, copies are synchronous (the RFC lets the server choose). A finished
asynchronous copy's result stays for OFFLOAD_STATUS (the last `KEEP_RESULTS` of them); a
cancelled one is forgotten (OFFLOAD_STATUS then answers BAD_STATEID, as knfsd).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from twisted.internet import defer

from backend import interface as bi

from .errors import NFS4Error, status_of
from .xdr import nfs4 as x

log = logging.getLogger("nfsd.copy")

STEP = 64 << 20  # bytes a copy moves per worker-thread step
KEEP_RESULTS = 1024  # finished asynchronous copies remembered for OFFLOAD_STATUS


def call(fn, *args):
    """A backend call in a worker thread; its errors as the NFS4Error COPY answers."""
    try:
        return fn(*args)
    except bi.BackendError as e:
        raise NFS4Error(status_of(e)) from None


class Copy:
    """One COPY: from version `src` (pinned: `pin` is closed at the end, if set) into staging
    `dst` of open `st`; `done` bytes so far; `status` once finished (None while running)."""

    __slots__ = ("other", "client", "st", "dst", "src", "pin", "wire", "src_offset",
                 "dst_offset", "count", "done", "status", "cancelled", "is_async", "ended",
                 "uses")

    def __init__(self, client, st, src, pin, wire, src_offset, dst_offset, count, uses):
        self.other = None  # the stateid's `other` (asynchronous copies)
        self.client = client
        self.st = st
        self.dst = st.staging
        self.src = src
        self.pin = pin
        self.wire = wire  # the destination filehandle as the client knows it (CB_OFFLOAD)
        self.src_offset, self.dst_offset, self.count = src_offset, dst_offset, count
        self.done = 0
        self.status = None
        self.cancelled = False
        self.is_async = False
        self.ended = defer.Deferred()  # fires with the Copy when it is over
        self.uses = uses  # the staging objects it keeps in use (destination, source)

    @property
    def stateid(self):
        return x.stateid4(1, self.other)


class Copies:
    """The server's copies; `server` gives the worker threads, the store and the callbacks."""

    def __init__(self, server, enabled: bool = True, async_min: int = 64 << 20,
                 max_async: int = 4, step: int = STEP):
        self.server = server
        self.step = step  # bytes per worker-thread step
        self.enabled = enabled  # False: `nfsd serve --no-server-copy`
        self.async_min = async_min
        self.max_async = max_async
        self.running: dict[bytes, Copy] = {}  # asynchronous, by stateid other
        self.results: OrderedDict[bytes, Copy] = OrderedDict()  # finished asynchronous ones
        self._sync: set = set()  # synchronous ones running
        self._uses: dict[int, list] = {}  # id(staging) -> [staging, count, [callables]]
        # metrics
        self.bytes_copied = 0
        self.clones = 0
        self.copies = 0

    # ------------------------------------------------------------------ staging in use
    def busy(self, staging) -> bool:
        return staging is not None and id(staging) in self._uses

    def use(self, staging) -> None:
        u = self._uses.get(id(staging))
        if u is None:
            self._uses[id(staging)] = [staging, 1, []]
        else:
            u[1] += 1

    def release(self, staging) -> None:
        u = self._uses[id(staging)]
        u[1] -= 1
        if u[1] == 0:
            del self._uses[id(staging)]
            for fn in u[2]:
                fn()

    def idle(self, staging):
        """None if no copy uses `staging`, else a Deferred that fires when none does."""
        u = self._uses.get(id(staging)) if staging is not None else None
        if u is None:
            return None
        d = defer.Deferred()
        u[2].append(lambda: d.callback(None))
        return d

    def cancel_then(self, staging, fn) -> bool:
        """The lifecycle is about to change `staging` behind its client's back: cancel the
        copies that use it and run `fn` once they stopped. False (fn not taken) if none does."""
        u = self._uses.get(id(staging))
        if u is None:
            return False
        for job in list(self.running.values()) + list(self._sync):
            if staging in job.uses:
                job.cancelled = True
        u[2].append(fn)
        return True

    # ------------------------------------------------------------------ running copies
    def async_count(self, client) -> int:
        return sum(1 for j in self.running.values() if j.client is client)

    def may_go_async(self, client) -> bool:
        return self.async_count(client) < self.max_async and \
            self.server.callbacks.usable41(client)

    def start(self, job: Copy, is_async: bool) -> Copy:
        """Run `job` (its `ended` fires when it is over)."""
        self.copies += 1
        job.is_async = is_async
        for s in job.uses:
            self.use(s)
        if is_async:
            job.other = self.server.store.new_other()
            self.running[job.other] = job
        else:
            self._sync.add(job)
        self._step(job)
        return job

    def _step(self, job: Copy) -> None:
        if job.cancelled:
            self._end(job, x.NFS4ERR_EXPIRED)
            return
        left = job.count - job.done
        if left <= 0:
            self._end(job, x.NFS4_OK)
            return
        n = min(self.step, left)
        d = self.server.in_thread(call, job.dst.copy_from, job.src, job.src_offset + job.done,
                                  job.dst_offset + job.done, n)
        d.addCallbacks(self._stepped, self._failed, callbackArgs=(job, n), errbackArgs=(job,))

    def _stepped(self, copied: int, job: Copy, n: int) -> None:
        job.done += copied
        self.bytes_copied += copied
        if copied < n:  # the source ends here (a staging source that shrank)
            job.count = job.done
        self._step(job)

    def _failed(self, failure, job: Copy) -> None:
        if failure.check(NFS4Error):
            status = failure.value.status
        else:
            log.error("server-side copy failed", exc_info=failure.value)
            status = x.NFS4ERR_SERVERFAULT
        self._end(job, status)

    def _end(self, job: Copy, status: int) -> None:
        job.status = status
        if job.pin is not None:
            try:
                job.pin.close()
            except Exception:  # noqa: BLE001 - closing a pinned version must not stop the end
                log.exception("closing a copy's source failed")
        if job.is_async:
            self.running.pop(job.other, None)
            if not job.cancelled:
                self.results[job.other] = job
                while len(self.results) > KEEP_RESULTS:
                    self.results.popitem(last=False)
                self._offload(job)
        else:
            self._sync.discard(job)
        for s in job.uses:
            self.release(s)
        job.ended.callback(job)

    def _offload(self, job: Copy) -> None:
        """CB_OFFLOAD: the asynchronous copy is over (its bytes unstable, as WRITE's)."""
        if job.status == x.NFS4_OK:
            info = x.offload_info4(x.NFS4_OK, self.write_response(job, x.UNSTABLE4))
        else:
            info = x.offload_info4(job.status, job.done)
        self.server.callbacks.offload(job.client, job.wire, job.stateid, info)

    def write_response(self, job: Copy, committed: int, callback: bool = False):
        return x.write_response4([job.stateid] if callback else [], job.done, committed,
                                 self.server.write_verifier)

    # ------------------------------------------------------------------ OFFLOAD_*
    def find(self, client, stateid) -> Copy:
        """The asynchronous copy a client's stateid names (running or finished)."""
        job = self.running.get(stateid.other) or self.results.get(stateid.other)
        if job is None or job.client is not client:
            raise NFS4Error(x.NFS4ERR_BAD_STATEID)
        return job

    def cancel(self, job: Copy) -> None:
        """OFFLOAD_CANCEL: a running copy stops after its current step; its result is
        forgotten (no CB_OFFLOAD)."""
        if job.status is None:
            job.cancelled = True
        else:
            self.results.pop(job.other, None)

    def running_async(self) -> int:
        return len(self.running)
