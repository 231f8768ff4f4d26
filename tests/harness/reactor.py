"""A reactor for one in-process server "process": fake time, a thread pool that is a queue.

The server takes three things from its reactor: time (`seconds`, `callLater`, for leases, the
housekeeping tick, idle and callback timeouts), a thread pool (`getThreadPool` with
`deferToThreadPool`, for fsyncs and reads) and the network (`connectTCP`, for NFSv4.0
callbacks). Here time is `twisted.internet.task.Clock`, moved only by `advance_to`; work for
the pool and `callFromThread` calls go into one queue that `run_until_idle` empties in order,
so a Deferred fires within the request that made it, as seen from the test, and never on a
real thread; and `connectTCP` dials the harness's in-memory network (`net.Network`).

Why a queue rather than running pool work at once: the real pool answers on a later reactor
turn, and code that hands work to it may rely on that (it finishes its own bookkeeping
first). The queue keeps that order; the test still never waits, because every entry point
(a client sending, `advance_to`) drains the queue before it returns.

One reactor belongs to one server process. When the harness kills the process, the reactor
is dropped with everything scheduled on it: nothing of a dead process runs again.
"""

from __future__ import annotations

from collections import deque

from twisted.internet import task
from twisted.python.failure import Failure


class QueuePool:
    """What `deferToThreadPool` needs of a thread pool: `callInThreadWithCallback`. The
    work runs when the reactor drains its queue, in the order it was handed over."""

    def __init__(self, reactor: "FakeReactor"):
        self._reactor = reactor
        self.ran = 0  # how many work items ran (tests may check that work went through here)

    def callInThreadWithCallback(self, on_result, fn, *args, **kw):
        def work():
            self.ran += 1
            try:
                result = fn(*args, **kw)
            except BaseException:  # noqa: BLE001 - as the real pool: the Deferred gets it
                on_result(False, Failure())
            else:
                on_result(True, result)
        self._reactor.queue.append(work)

    def callInThread(self, fn, *args, **kw):
        self._reactor.queue.append(lambda: fn(*args, **kw))


class FakeReactor(task.Clock):
    """Time from a `task.Clock` starting at `now`; a queue for the thread pool and
    `callFromThread`; `connectTCP` through `network` (see the module text)."""

    def __init__(self, now: float, network=None):
        super().__init__()
        self.rightNow = now
        self.queue: deque = deque()
        self.network = network
        self.dead = False
        self._pool = QueuePool(self)
        self._draining = False

    # ---- IReactorThreads, the parts the server uses
    def getThreadPool(self):
        return self._pool

    def callFromThread(self, fn, *args, **kw):
        self.queue.append(lambda: fn(*args, **kw))

    def callInThread(self, fn, *args, **kw):
        self._pool.callInThread(fn, *args, **kw)

    # ---- IReactorTCP, the part the server uses (NFSv4.0 callback connections)
    def connectTCP(self, host, port, factory, timeout=30, bindAddress=None):
        return self.network.dial(self, host, port, factory)

    # ---- running
    def run_until_idle(self):
        """Run queued work and calls due now until nothing is left (work may queue more).
        Re-entrant calls (a client answering a callback from inside a drain) return at once:
        the outer drain picks up what they queued."""
        if self._draining or self.dead:
            return
        self._draining = True
        try:
            while True:
                while self.queue and not self.dead:
                    self.queue.popleft()()
                if self.dead:
                    self.queue.clear()
                    return
                if self.calls and self.calls[0].getTime() <= self.rightNow:
                    super().advance(0)
                    continue
                if not self.queue:
                    return
        finally:
            self._draining = False

    def advance_to(self, when: float):
        """Move time forward to `when`, running each timed call at its own time (and the work
        it queues before the next), as a real reactor would; a LoopingCall ticks at every
        interval in between, not once at the end."""
        self.run_until_idle()
        while not self.dead:
            self._sortCalls()
            if not self.calls or self.calls[0].getTime() > when:
                break
            self.rightNow = max(self.rightNow, self.calls[0].getTime())  # exact, no float sums
            super().advance(0)
            self.run_until_idle()
        if not self.dead and when > self.rightNow:
            self.rightNow = when
            super().advance(0)
            self.run_until_idle()

    def advance(self, amount: float):
        self.advance_to(self.rightNow + amount)
