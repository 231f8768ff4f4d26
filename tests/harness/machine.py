"""`Harness`: the NFS server program in the test's own thread, on a fake clock, over a
`MemoryDisk`, with clients joined to it in memory. See the package text for the why.

The wiring is `nfsd.server.assemble`, the same function `nfsd serve` builds with (state store,
NFS program, recovery into a grace period, RPC factory, housekeeping tick). What differs is what
`build` would take from the process: the backend is a `MemoryBackend` on the harness's disk
(its client records and status kept on the MemoryDisk, surviving kill -9 and power loss),
time and randomness are the harness's, and nothing listens on a socket.

`Harness(directory=...)` serves a real directory with a `LocalBackend` instead (its records
and status snapshot in its state directory, as `nfsd serve` keeps them), for tests of what is
on a local disk (`nfsd inspect`, the handle database). Its
`kill9()` closes the backend, which releases what the kernel releases when a process dies (the
state directory's lock, fds, the database connection); a real kill -9 of a LocalBackend is
tests/test_write_once.py::test_rule8_kill9_restart_reclaim_and_finish. `power_loss()` needs
the MemoryDisk.
"""

from __future__ import annotations

import logging
import os
import random
import threading


from backend import interface as I
from backend import open_backend
from backend.memory import MemoryBackend, MemoryDisk
from nfsd.client import NfsClient
from nfsd.exports import Options, quick_export
from nfsd.rpc.client import RpcClient
from nfsd.server import Config, NfsServer, assemble
from nfsd.state.store import StateStore

from .logs import LogCapture
from .net import CallbackService, Network
from .reactor import FakeReactor

log = logging.getLogger("nfsd")
ADDRESS = ("127.0.0.1", 2049)
WALL_EPOCH = 1_700_000_000.0  # what the wall clock says when the fake clock says 0
TRUSTED = Options(rw=True, root_squash=False, secure=False)  # as the tests' ServerProcess


class Process:
    """One boot of the server: its reactor, backend and what `nfsd.server.assemble` wires."""

    def __init__(self, h: "Harness"):
        self.reactor = FakeReactor(h.now, h.network)
        cfg = h.config
        if h.directory is None:
            self.backend = MemoryBackend(h.disk, clock_ns=h.wallclock_ns)
        else:
            self.backend = open_backend(h.directory)
        config = Config(directory=h.directory or "/", lease_time=cfg["lease_time"],
                        grace_time=cfg["grace_time"], retire_after=cfg["retire_after"],
                        minors=cfg["minors"], delegations=cfg["delegations"],
                        max_clients=cfg["max_clients"],
                        max_opens_per_client=cfg["max_opens_per_client"],
                        max_connections=cfg["max_connections"], idle_timeout=cfg["idle_timeout"],
                        recall_timeout=cfg["recall_timeout"], server_copy=cfg["server_copy"],
                        copy_async=cfg["copy_async"], max_async_copies=cfg["max_async_copies"])
        export = quick_export(h.directory or "/", self.backend, ["*"], cfg["options"])
        self.running = assemble(config, self.reactor, [export], wallclock=h.wallclock,
                                rand=h.randbytes, now_ns=h.wallclock_ns)
        self.server = self.running.server
        self.store = self.server.store
        self.factory = self.running.factory
        self.looping = self.running._looping
        self.reactor.run_until_idle()


class Harness:
    """A server over a MemoryDisk (or a directory) on a fake clock; see the module and
    package texts.

    Settings are those of `nfsd serve` (`lease_time`, `grace_time`, `retire_after`,
    `minors`, `delegations`, `recall_timeout`, `max_clients`, `max_opens_per_client`,
    `max_connections`, `idle_timeout`, `options`, `server_copy`, `copy_async`,
    `max_async_copies`), with these differences: exports are
    `*(rw,no_root_squash,insecure)` like the tests' subprocess servers, and connections do not
    idle out (`idle_timeout=None`) unless asked, since a test that advances hours would
    otherwise reconnect every client, which a real client does unnoticed. `seed` makes the
    server's random numbers (its boot epoch, hence every id) repeatable.
    """

    def __init__(self, *, lease_time=90, grace_time=None, retire_after=3600, minors=(0, 1, 2),
                 delegations=True, recall_timeout=None, max_clients=10_000,
                 max_opens_per_client=10_000, max_connections=1024, idle_timeout=None,
                 options: Options = TRUSTED, seed: int = 0, directory=None,
                 start: bool = True, server_copy: bool = True, copy_async: int = 64 << 20,
                 max_async_copies: int = 4):
        self.config = dict(lease_time=lease_time, grace_time=grace_time,
                           retire_after=retire_after, minors=tuple(minors),
                           delegations=delegations, recall_timeout=recall_timeout,
                           max_clients=max_clients, max_opens_per_client=max_opens_per_client,
                           max_connections=max_connections, idle_timeout=idle_timeout,
                           options=options, server_copy=server_copy, copy_async=copy_async,
                           max_async_copies=max_async_copies)
        self.directory = None if directory is None else str(directory)
        self.disk = MemoryDisk() if directory is None else None
        self.network = Network()
        self.rng = random.Random(seed)
        self._now = 1000.0  # the machine's monotonic clock while no process runs
        self.log = LogCapture(threads={threading.get_ident()}).start()
        self.proc: Process | None = None
        self.boots = 0
        self._clients: list[NfsClient] = []
        if start:
            self.start()

    # ------------------------------------------------------------------ time and randomness
    @property
    def now(self) -> float:
        """Seconds on the server's (monotonic) clock."""
        return self.proc.reactor.seconds() if self.proc is not None else self._now

    def wallclock(self) -> float:
        return WALL_EPOCH + self.now

    def wallclock_ns(self) -> int:
        return int(round(self.wallclock() * 1e9))

    def randbytes(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def advance(self, seconds: float):
        """Let `seconds` pass: every timer of the server (housekeeping ticks, timeouts) runs at
        its own time on the way."""
        self.advance_to(self.now + seconds)

    def advance_to(self, when: float):
        if self.proc is not None:
            self.proc.reactor.advance_to(when)
        else:
            self._now = max(self._now, when)

    # ------------------------------------------------------------------ the server process
    def start(self):
        """Boot a server process on the disk (the first start, or after `kill9`)."""
        assert self.proc is None, "a server is running"
        self.proc = Process(self)
        self.boots += 1
        return self

    def kill9(self):
        """The server process dies: nothing it scheduled runs again, its connections end (the
        clients see end-of-file), and what is on the disk stays as it is."""
        if self.proc is None:
            return
        self._now = self.now
        self.proc.reactor.dead = True
        self.network.kill(self.proc.reactor)
        if self.directory is not None:  # what the kernel releases when a process dies
            self.proc.backend.close()
        self.proc = None

    def restart(self):
        """kill -9 and start again on the same disk: the next boot recovers and has grace."""
        self.kill9()
        return self.start()

    def power_loss(self):
        """The machine loses power: the process dies and the disk keeps only what was synced
        (`MemoryDisk.power_loss`); then the server boots again."""
        assert self.disk is not None, "a power loss needs the MemoryDisk"
        self.kill9()
        self.disk.power_loss()
        return self.start()

    def stop(self):
        """A clean stop (SIGTERM): the tick stops, connections close, the backend lets go."""
        if self.proc is None:
            return
        p = self.proc
        if p.looping.running:
            p.looping.stop()
        for proto in list(p.factory.protocols):
            proto.transport.loseConnection()
        p.reactor.run_until_idle()
        if self.directory is None:
            p.backend.close()
        self.kill9()

    # shortcuts to the running process
    @property
    def server(self) -> NfsServer:
        return self.proc.server

    @property
    def store(self) -> StateStore:
        return self.proc.store

    @property
    def backend(self) -> MemoryBackend:
        return self.proc.backend

    @property
    def reactor(self) -> FakeReactor:
        return self.proc.reactor

    def connections(self) -> int:
        """Connections the running server has open (its RpcFactory's count)."""
        return len(self.proc.factory.protocols)

    # ------------------------------------------------------------------ clients
    def connect(self, source: tuple | None = None) -> RpcClient:
        """A new RPC connection to the running server."""
        p = self.proc
        sock = self.network.connect(p.reactor if p else None, p.factory if p else None,
                                    ADDRESS, source)
        return RpcClient(*ADDRESS, sock=sock)

    def client(self, minor: int = 1, source: tuple | None = None, **kw) -> NfsClient:
        """An `NfsClient` (not mounted) whose connections, now and at every `reconnect()`,
        go to whichever server process is running then."""
        c = NfsClient(*ADDRESS, minor=minor, connect=lambda: self.connect(source), **kw)
        self._clients.append(c)
        return c

    def mount(self, minor: int = 1, back_channel: bool = False, **kw) -> NfsClient:
        """A client with its client ID (and session, offering its connection as the back
        channel if asked), as `NfsClient.mount`."""
        return self.client(minor, **kw).mount(back_channel=back_channel)

    def callback_service(self, host: str = "127.0.0.1") -> CallbackService:
        """A 4.0 client's callback listener on the network (its `uaddr()` for SETCLIENTID)."""
        return CallbackService(self.network, host)

    # ------------------------------------------------------------------ what is on the disk
    def published(self, path: str) -> bytes | None:
        """The published content at `path` as nobody's writer sees it (None: no such name),
        read through the running server's backend without a viewer, as `cat` on the server
        machine would read it."""
        b = self.backend
        h = b.root()
        try:
            for comp in [c for c in path.encode().split(b"/") if c]:
                h = b.lookup(h, comp, None)
        except (I.NotFound, I.NotDir):
            return None
        size = b.getattr(h).size
        data, _ = b.read(h, 0, size + 1)
        return data

    def staged(self) -> list[str]:
        """Ids of the unfinished files on the disk (active, retired or recoverable), as the
        staging directory of a local export lists them."""
        if self.disk is None:
            d = os.path.join(self.backend.state_dir, "staging")
            return sorted(n[:-5] for n in os.listdir(d) if n.endswith(".data"))
        return sorted(self.disk.staged)

    def events(self, kind: str | None = None) -> list[str]:
        """The state store's lifecycle events (discard, ...) of the running process."""
        return [t for k, t in self.store.events if kind is None or k == kind]

    def text(self) -> str:
        return self.log.text()

    # ------------------------------------------------------------------ the end
    def close(self):
        for c in self._clients:
            try:
                c.rpc.close()
            except Exception:  # noqa: BLE001 - already closed, or its server is gone
                pass
        self.kill9()
        self.log.stop()
