"""The event loop `nfsd serve` runs: Twisted's epoll reactor without its per-event log context.

Twisted's `EPollReactor.doPoll` hands every ready descriptor to `twisted.python.log.
callWithLogger`, which asks the connection for its log prefix and runs the handler inside a
legacy logging context, so that `twisted.python.log` messages written meanwhile carry the
connection's name. nfsd logs through the standard `logging` module and never reads that
context; the wrapper is five Python calls per event, a few microseconds of every request.
`Reactor.doPoll` does what Twisted's does without it: poll, then for each event the reactor's
own `_doReadOrWrite` (which reads or writes, and disconnects on an error as before). An
exception that escapes it is logged here and the loop goes on, as Twisted's wrapper did.

Everything else (timers, threads, signals, shutdown) is Twisted's EPollReactor unchanged.
`install()` makes it the global reactor; it must run before anything imports
`twisted.internet.reactor`.
"""

from __future__ import annotations

import logging

from twisted.internet import epollreactor

log = logging.getLogger("nfsd.reactor")


class Reactor(epollreactor.EPollReactor):
    def doPoll(self, timeout):
        try:
            # At most as many events as descriptors watched, as Twisted does.
            events = self._poller.poll(-1 if timeout is None else timeout,
                                       len(self._selectables))
        except InterruptedError:
            return
        selectables = self._selectables
        handle = self._doReadOrWrite
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is None:  # removed by an earlier event of this round
                continue
            try:
                handle(selectable, fd, event)
            except Exception:  # noqa: BLE001 - one connection must not stop the loop
                log.exception("event loop: handling %r failed", selectable)

    doIteration = doPoll  # what mainLoop calls (EPollReactor binds its own doPoll by name)


def install() -> bool:
    """Install `Reactor` as Twisted's global reactor; False if one is installed already (then
    that one is used)."""
    import sys

    from twisted.internet.main import installReactor

    if "twisted.internet.reactor" in sys.modules:
        return False
    installReactor(Reactor())
    return True
