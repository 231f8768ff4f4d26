"""The NFS program (100003 version 4) and the wiring of one server: exports, state, RPC.

`build(config, reactor)` returns a started `NfsServer` listening on its port; the CLI and the
tests both go through it.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from dataclasses import dataclass, field

from twisted.internet import defer, task, threads
from twisted.internet.error import CannotListenError

from backend import open_backend

from backend import interface as bi

from .access import NOBODY, Cred
from .callback import Callbacks
from .compound import Compound
from .copies import Copies
from .drc import ReplyCache
from .exports import Export, ExportTable, Options, parse_exports, quick_export
from .ops import handlers
from .ops.common import call
from .rpc.server import ProcUnavail, RpcFactory
from .state.store import StateStore

log = logging.getLogger("nfsd")

NFS_PROGRAM = 100003


@dataclass
class Config:
    directory: str
    bind: str = "0.0.0.0"
    port: int = 2049
    state_dir: str | None = None
    lease_time: int = 90
    grace_time: int | None = None
    retire_after: int = 3600
    minors: tuple = (0, 1, 2)
    max_connections: int = 1024
    idle_timeout: float = 600.0
    delegations: bool = True
    exports_file: str | None = None
    max_clients: int = 10_000
    max_opens_per_client: int = 10_000
    metrics: str | None = None  # ADDR:PORT of the Prometheus endpoint (nfsd/metrics.py)
    # directory fsyncs of a publish run on the event loop while they average under this
    # (seconds); slower ones run in worker threads, shared by concurrent publishes
    inline_fsync: float = 0.001
    # `nfsd serve DIR`: who may mount (addresses, CIDR blocks or '*'; empty: this host's own
    # networks, nfsd/localnet.py) and how (exports(5) defaults, but read-write)
    allow: tuple = ()
    export_options: Options = field(default_factory=lambda: Options(rw=True))
    recall_timeout: float | None = None  # seconds a recalled delegation may stay (None: default)
    # A frontend of a shared namespace (docs/scale-out.md): metadata database URL, data URL
    # (s3://bucket/prefix), this frontend's id, its spool directory, the S3 endpoint
    meta: str | None = None
    data: str | None = None
    frontend_id: str | None = None
    spool: str | None = None
    s3_endpoint: str | None = None
    # NFSv4.2 server-side copy (nfsd/copies.py): off with --no-server-copy; copies of at
    # least copy_async bytes run asynchronously (CB_OFFLOAD), at most max_async_copies per client
    server_copy: bool = True
    copy_async: int = 64 << 20
    max_async_copies: int = 4
    extra: dict = field(default_factory=dict)


class NfsServer:
    """Program 100003 version 4: NULL and COMPOUND, with the server-wide facts ops need."""

    versions = (4, 4)

    def __init__(self, exports: ExportTable, store: StateStore, reactor, minors=(1, 2),
                 delegations: bool = True, now_ns=time.time_ns, copies: dict | None = None):
        self.exports = exports
        self.now_ns = now_ns  # the wall clock in ns (SET_TO_SERVER_TIME)
        self.store = store
        self.reactor = reactor
        self.minors = frozenset(minors)
        self.compound = Compound(self, handlers())
        self.drc = ReplyCache()
        # Changes at every start, so clients resend unstable writes after a restart.
        self.write_verifier = struct.pack(">II", store.epoch, os.getpid() & 0xFFFFFFFF)
        self.owner_major = b"nfsd-" + os.uname().nodename.encode()
        self.scope = self.owner_major
        self._pool = reactor.getThreadPool()
        store.persist = self._persist
        self.delegations = delegations
        self.callbacks = Callbacks(self, reactor)
        store.send_recall = self.callbacks.recall
        self.copies = Copies(self, **(copies or {}))
        # The lifecycle changes a staging version a copy writes only after that copy stopped.
        store.unfinished.in_use = self.copies.cancel_then

    def _persist(self, staging):
        if self.copies.cancel_then(staging, lambda: self._persist(staging)):
            return  # a copy into it is stopping: its record is written after

        def failed(f):
            log.warning("cannot save the record of %s: %s", staging.id, f.getErrorMessage())
        self.in_thread(staging.sync).addErrback(failed)

    # ---- the RPC program
    def dispatch(self, call):
        if call.proc == 0:
            return []
        if call.proc != 1:
            raise ProcUnavail()
        c = call.cred
        cred = Cred(c.uid, c.gid, tuple(c.gids)) if c is not None else NOBODY
        return self.compound.run(call, cred)

    # ---- facts and services for operations
    def max_read_reply(self, ctx) -> int:
        s = ctx.session
        return (s.fore.maxresponsesize - 512) if s is not None else 1 << 20

    def max_readdir_reply(self, ctx) -> int:
        s = ctx.session
        return (s.fore.maxresponsesize - 512) if s is not None else 1 << 20

    def in_thread(self, fn, *args):
        return threads.deferToThreadPool(self.reactor, self._pool, fn, *args)

    def sync(self, staging):
        """staging.sync() in a worker thread; a backend failure (ENOSPC, EIO) fails the
        Deferred with the NFS4Error the operation answers."""
        return self.in_thread(call, staging.sync)

    def sync_all(self, stagings):
        def run():
            for s in stagings:
                s.sync()
        return self.in_thread(call, run)

    def log_client(self, client, what: str):
        log.info("client %s (%s): %s", client.owner.decode("utf-8", "replace")[:80],
                 f"{client.clientid:#x}", what)


class Running:
    """A server put together by `assemble`: its program, state, RPC factory, housekeeping, and
    (once `build` listens) its port."""

    def __init__(self, server, factory, backends, looping, config):
        self.server = server
        self.factory = factory
        self.backends = backends
        self._looping = looping
        self.config = config
        self.port = None  # the listening port, set by `build`
        self.metrics_port = None  # the Prometheus endpoint's listening port, with --metrics
        self.fenced = False  # another server declared this one dead: it stopped serving
        self.on_fenced = None  # what stops the process then (the CLI stops its reactor)

    @property
    def address(self):
        a = self.port.getHost()
        return a.host, a.port

    def fence(self):
        """Stop serving at once: every connection closes, nothing more is answered."""
        if self.fenced:
            return
        self.fenced = True
        self.stop()
        for proto in list(self.factory.protocols):
            proto.transport.abortConnection()
        if self.on_fenced is not None:
            self.on_fenced()

    def stop(self):
        if self._looping.running:
            self._looping.stop()
        if self.metrics_port is not None:
            self.metrics_port.stopListening()
        d = defer.maybeDeferred(self.port.stopListening) if self.port is not None \
            else defer.succeed(None)

        def closed(_):
            for b in self.backends:
                b.close()
        return d.addCallback(closed)


def open_exports(config: Config, reuse: dict | None = None) -> list[Export]:
    """The exports with their backends: from the exports file, or `nfsd serve DIR`.
    `reuse` maps directories to backends already open (a reload keeps them)."""
    reuse = reuse or {}
    if config.meta is not None:
        from .localnet import local_networks

        backend = open_backend(config.meta, data_url=config.data, frontend=config.frontend_id,
                               spool_dir=config.spool, endpoint=config.s3_endpoint,
                               lease_time=config.lease_time, grace_time=config.grace_time,
                               retire_after=config.retire_after)
        try:
            return [quick_export(f"frontend {config.frontend_id}", backend,
                                 config.allow or local_networks(), config.export_options)]
        except ValueError:
            backend.close()
            raise
    if config.exports_file is None:
        from .localnet import local_networks

        clients = config.allow or local_networks()
        backend = reuse.get(config.directory) or open_backend(
            config.directory, state_dir=config.state_dir, inline_sync=config.inline_fsync)
        try:
            return [quick_export(config.directory, backend, clients, config.export_options)]
        except ValueError:
            if config.directory not in reuse:
                backend.close()
            raise
    exports = parse_exports(config.exports_file)
    opened = []
    try:
        for e in exports:
            e.backend = reuse.get(e.directory)
            if e.backend is None:
                e.backend = open_backend(e.directory, inline_sync=config.inline_fsync)
                opened.append(e.backend)
    except BaseException:
        for b in opened:
            b.close()
        raise
    return exports


def assemble(config: Config, reactor, exports: list[Export], *, clock=None,
             wallclock=time.time, rand=os.urandom, now_ns=time.time_ns) -> Running:
    """Wire one server over opened exports, without listening: the state store (on `clock`,
    default the reactor's), the NFS program, recovery of what an earlier run left (rule 8:
    staged files and client records decide the grace period), the RPC factory and the
    housekeeping tick. `build` calls it for `nfsd serve`; tests call it with a fake reactor,
    clocks and randomness (tests/harness)."""
    # Server-wide state (client records, status) lives with the first export's storage.
    first = min(exports, key=lambda e: e.path).backend
    records = first.client_records()
    store = StateStore(lease_time=config.lease_time, grace_time=config.grace_time,
                       retire_after=config.retire_after, records=records,
                       clock=clock or reactor.seconds, wallclock=wallclock, rand=rand,
                       max_clients=config.max_clients,
                       max_opens_per_client=config.max_opens_per_client,
                       recall_timeout=config.recall_timeout)
    store.shared = first.shared_locks()
    # Delegations need every open of a file in one place: not with frontends that share it.
    server = NfsServer(ExportTable(exports, now_ns()), store, reactor, minors=config.minors,
                       delegations=config.delegations and store.shared is None, now_ns=now_ns,
                       copies=dict(enabled=config.server_copy, async_min=config.copy_async,
                                   max_async=config.max_async_copies))
    for e in exports:
        for st in e.backend.list_staged():
            store.unfinished.restart(st)  # rule 8
        for what, why in e.backend.problems():
            log.warning("unreadable staging record %s: %s", what, why)
    owners = {o for o, _ in records.clients()}
    owners |= {k[0] for k in store.unfinished.recoverable_keys()}
    store.start_grace(owners)
    factory = RpcFactory({NFS_PROGRAM: server}, max_connections=config.max_connections,
                         idle_timeout=config.idle_timeout, reactor=reactor)
    started = wallclock()
    maintaining = []  # a backend upkeep pass is running in a worker thread

    def maintain(backends):
        for b in backends:
            try:
                b.maintenance()
            except bi.Fenced as e:
                log.error("%s: this server stops serving", e)
                reactor.callFromThread(running.fence)
            except Exception as e:  # noqa: BLE001 - upkeep failing must not stop the server
                log.warning("backend upkeep failed: %s", e)

    def tick():
        store.tick()
        try:
            snap = store.snapshot()
            snap.update(pid=os.getpid(), started=started, updated=wallclock())
            first.save_status(snap)
        except (OSError, bi.BackendError) as e:  # an operator view must not take the server down
            log.warning("cannot save the status snapshot: %s", e)
        if not maintaining:
            maintaining.append(True)
            d = server.in_thread(maintain, list(running.backends))
            d.addBoth(lambda _: maintaining.clear())

    looping = task.LoopingCall(tick)
    looping.clock = reactor
    looping.start(max(0.2, min(5.0, config.lease_time / 4)), now=False)
    running = Running(server, factory, [e.backend for e in exports], looping, config)
    return running


def build(config: Config, reactor=None) -> Running:
    """`nfsd serve`: open the exports, assemble the server and listen on its port."""
    if reactor is None:
        from twisted.internet import reactor as _r

        reactor = _r
    exports = open_exports(config)
    running = assemble(config, reactor, exports)
    try:
        running.port = reactor.listenTCP(config.port, running.factory, interface=config.bind)
    except CannotListenError as e:
        running.stop()
        raise OSError(f"cannot listen on {config.bind}:{config.port}: {e.socketError}") from None
    if config.metrics:
        from .metrics import Metrics, serve

        server = running.server
        server.compound.metrics = Metrics(server, running.factory,
                                          backends=lambda: list(running.backends))
        running.metrics_port = serve(server.compound.metrics, config.metrics, reactor)
    return running


def reload_exports(running: "Running") -> bool:
    """Re-read the exports file (SIGHUP) without dropping clients: unchanged exports keep their
    backends and state; a bad file is refused and the old exports stay. True if applied."""
    config = running.config
    if config.exports_file is None:
        return False
    server = running.server
    old = {e.directory: e.backend for e in server.exports.exports}
    try:
        exports = open_exports(config, reuse=old)
    except (OSError, ValueError) as e:
        log.error("exports not reloaded: %s", e)
        return False
    server.exports = ExportTable(exports, server.exports.started_ns)
    kept = {e.directory for e in exports}
    for d, b in old.items():
        if d not in kept:
            b.close()  # its filehandles are stale from now on
    running.backends = [e.backend for e in exports]
    log.info("exports reloaded: %s", ", ".join(e.path for e in exports))
    return True
