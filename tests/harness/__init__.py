"""An in-process test harness: the real NFS server program, no sockets, a fake clock.

Why. The rules that depend on time (lease expiry, retention deadline, grace after a restart,
delegation revocation) were tested against `python -m nfsd serve` processes with short leases,
waiting on the wall clock: seconds per test, and timing-sensitive. Here the same program runs
in the test's own thread and time moves only when the test says so, so those tests take
milliseconds and say exactly when things happen ("at the lease boundary, not a tick later").

What is real: everything from the RPC record marking up — `RpcProtocol` and `RpcFactory`
(framing, limits, the duplicate request cache), `NfsServer`, `Compound` and every operation,
`StateStore`, the callback path (CB_RECALL over a 4.1 back channel, and the 4.0 callback
connection the server dials), and the storage interface implemented by `MemoryBackend`
(the same write-once rules as the local backend; the contract suite runs on both). Clients
are `nfsd.client.NfsClient` itself, over an in-memory connection
(`RpcClient(sock=...)`).

What is fake: time (a `task.Clock`: `h.advance(seconds)` runs every timer at its own time,
the housekeeping tick included); the thread pool (a queue drained before any call returns);
randomness (seeded); the network (`net.py`); the disk (`MemoryDisk`, with kill -9 and power
loss semantics).

Use::

    from harness import Harness

    h = Harness(lease_time=90)                 # a server is running
    a = h.mount()                              # NfsClient, EXCHANGE_ID + CREATE_SESSION
    fh, sid, _ = a.open(a.root(), b"f", create=True)
    h.advance(90.25)                           # the lease runs out; ticks ran on the way
    h.restart()                                # kill -9 and a new boot on the same disk
    a.reconnect()                              # same NfsClient, new connection
    h.power_loss()                             # only what was synced survives
    h.published("f"), h.staged(), h.events("discard"), h.text()
    h.close()

The `harness` fixture (tests/conftest.py) makes them and fails the test if a server logged a
traceback. Everything is single-threaded: one test thread drives clients and server.
"""

from .machine import ADDRESS, Harness
from .net import CallbackService

__all__ = ["ADDRESS", "CallbackService", "Harness", "status"]


def status(fn, *args, **kw) -> int:
    """The NFS status of a client call: NFS4_OK, or the error it raised."""
    from nfsd.client import NfsError
    from nfsd.xdr import nfs4 as x

    try:
        fn(*args, **kw)
    except NfsError as e:
        return e.status
    return x.NFS4_OK
