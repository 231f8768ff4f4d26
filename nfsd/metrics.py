"""Prometheus metrics: `nfsd serve --metrics ADDR:PORT` serves them at http://ADDR:PORT/metrics.

Two kinds of numbers, kept apart so that the request path stays cheap:

* Counted as requests run (the COMPOUND loop calls `op_done` once per operation and
  `compound_done` once per COMPOUND, both in the reactor thread): per-operation latency
  histograms (their `_count` is the operation count), operation errors by status, COMPOUNDs by
  status, bytes read and written. `op_done` does one clock read, a bucket search and a few
  integer/float additions on preallocated lists; no objects are created besides the numbers.
  An operation's latency runs from the end of the previous operation of its COMPOUND (or the
  start of the COMPOUND) to the moment its result is ready: decoding its arguments, the
  handler and, for operations that finish in a thread (FILE_SYNC WRITE, COMMIT, ...), the wait
  for the thread.
* Computed when scraped, from the state store: clients, sessions, open files, files under
  construction, retired and recoverable files, connections, grace; and from the server-side
  copies (nfsd/copies.py): bytes copied, copies started, clones, asynchronous copies running.

The HTTP endpoint is a twisted.web resource run in the reactor thread, so a scrape reads the
state store between requests, never while an operation changes it.
"""

from __future__ import annotations

import time
from bisect import bisect_left

from .xdr import nfs4 as x

# Upper bounds (seconds) of the latency buckets; a last bucket (+Inf) follows.
BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
           0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_OP_READ, _OP_WRITE = x.OP_READ, x.OP_WRITE


def _status_name(status: int) -> str:
    return x.nfsstat4.names.get(status, str(status))


class Metrics:
    """The counters of one server and the collector that turns them into Prometheus families.

    `server` is the `NfsServer` (its `store` gives the gauges); `factory` the `RpcFactory`
    (connections), optional; `backends` a callable returning the backends now in use (their
    directory-sync counters), optional."""

    def __init__(self, server, factory=None, clock=time.perf_counter, backends=None):
        self.server = server
        self.factory = factory
        self.backends = backends
        self.clock = clock
        nb = len(BUCKETS) + 1
        # opnum -> [bucket 0, ..., bucket +Inf, sum of seconds]; not cumulative.
        self.hist = {op: [0] * nb + [0.0] for op in x.OP_NAMES}
        self.errors: dict[tuple[int, int], int] = {}  # (opnum, status) -> count
        self.compounds: dict[int, int] = {}  # COMPOUND status -> count
        self.bytes_read = 0
        self.bytes_written = 0

    # ------------------------------------------------------------------ the request path
    def start(self) -> float:
        """The time a COMPOUND starts (the first operation's latency counts from here)."""
        return self.clock()

    def op_done(self, run, opnum: int, status: int, res) -> None:
        """One operation of `run` (a COMPOUND in progress, with its last time in `run.t`)
        finished with `status` and result `res`."""
        now = self.clock()
        dt = now - run.t
        run.t = now
        h = self.hist.get(opnum)
        if h is None:
            return
        h[bisect_left(BUCKETS, dt)] += 1
        h[-1] += dt
        if status:
            k = (opnum, status)
            self.errors[k] = self.errors.get(k, 0) + 1
        elif opnum == _OP_READ:
            self.bytes_read += len(res.value.data)
        elif opnum == _OP_WRITE:
            self.bytes_written += res.value.count

    def compound_done(self, status: int) -> None:
        c = self.compounds
        c[status] = c.get(status, 0) + 1

    # ------------------------------------------------------------------ scrape
    def gauges(self) -> dict[str, float]:
        """The state store's numbers, now."""
        store = self.server.store
        opens = store.opens_by_file
        n_opens = sum(len(lst) for lst in opens.values())
        files = store.unfinished.counts()
        clients = store.clients.values()
        return {
            "clients": sum(1 for c in clients if c.confirmed and not c.expired),
            "clients_unconfirmed": sum(1 for c in clients if not c.confirmed)
                                   + len(store.unconfirmed40),
            "sessions": len(store.sessions),
            "open_files": sum(1 for lst in opens.values() if lst),
            "open_states": n_opens,
            "files_under_construction": files["active"],
            "retired_files": files["retired"],
            "recoverable_files": files["recoverable"],
            "delegations": sum(len(v) for v in store.delegs_by_file.values()),
            "connections": len(self.factory.protocols) if self.factory is not None else 0,
            "in_grace": 1 if store.grace_until is not None else 0,
            "async_copies": self.server.copies.running_async(),
        }

    GAUGE_HELP = {
        "clients": "Confirmed clients whose lease has not expired.",
        "clients_unconfirmed": "Client records not (yet) confirmed.",
        "sessions": "NFSv4.1+ sessions.",
        "open_files": "Files with at least one open.",
        "open_states": "Open states (one per open-owner and file).",
        "files_under_construction": "Staging versions attached to an open (active writes).",
        "retired_files": "Unpublished files of clients whose lease expired, kept until "
                         "--retire-after.",
        "recoverable_files": "Files under construction from before a restart, awaiting reclaim.",
        "delegations": "Read delegations held by clients.",
        "connections": "Open TCP connections.",
        "in_grace": "1 while the grace period after a restart lasts.",
        "async_copies": "Asynchronous server-side copies (COPY) running.",
    }

    def collect(self):
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        names = x.OP_NAMES
        ops = CounterMetricFamily("nfsd_operations", "NFSv4 operations run, by operation.",
                                  labels=["op"])
        lat = HistogramMetricFamily("nfsd_operation_seconds",
                                    "Time to run one NFSv4 operation (decode to result).",
                                    labels=["op"])
        les = [repr(b) for b in BUCKETS] + ["+Inf"]
        for opnum, h in sorted(self.hist.items()):
            total = sum(h[:-1])
            if not total:
                continue
            name = names.get(opnum, str(opnum))
            ops.add_metric([name], total)
            cum, acc = [], 0
            for le, n in zip(les, h[:-1]):
                acc += n
                cum.append((le, acc))
            lat.add_metric([name], cum, h[-1])
        yield ops
        yield lat
        err = CounterMetricFamily("nfsd_operation_errors",
                                  "NFSv4 operations that failed, by operation and status.",
                                  labels=["op", "status"])
        for (opnum, status), n in sorted(self.errors.items()):
            err.add_metric([names.get(opnum, str(opnum)), _status_name(status)], n)
        yield err
        comp = CounterMetricFamily("nfsd_compounds", "COMPOUND requests, by final status.",
                                   labels=["status"])
        for status, n in sorted(self.compounds.items()):
            comp.add_metric([_status_name(status)], n)
        yield comp
        yield CounterMetricFamily("nfsd_read_bytes", "Bytes returned by READ.",
                                  value=self.bytes_read)
        yield CounterMetricFamily("nfsd_written_bytes", "Bytes accepted by WRITE.",
                                  value=self.bytes_written)
        copies = self.server.copies
        yield CounterMetricFamily("nfsd_copied_bytes",
                                  "Bytes copied by the server for COPY (not through clients).",
                                  value=copies.bytes_copied)
        yield CounterMetricFamily("nfsd_server_copies", "COPY operations started.",
                                  value=copies.copies)
        yield CounterMetricFamily("nfsd_clones", "CLONE operations done (shared extents).",
                                  value=copies.clones)
        for key, value in self.gauges().items():
            yield GaugeMetricFamily("nfsd_" + key, self.GAUGE_HELP[key], value=value)
        if self.backends is not None:
            stats = [b.sync_stats() for b in self.backends()]
            stats = [s for s in stats if s]
            yield CounterMetricFamily(
                "nfsd_directory_fsync_requests",
                "Directory fsyncs asked for (a publish, a new file's first durable write).",
                value=sum(s["requests"] for s in stats))
            yield CounterMetricFamily(
                "nfsd_directory_fsyncs",
                "Directory fsyncs done; fewer than requested when concurrent ones are shared.",
                value=sum(s["fsyncs"] for s in stats))
            yield GaugeMetricFamily(
                "nfsd_fsync_seconds",
                "Moving average of one directory fsync (worst export); at or over "
                "--inline-fsync-ms, publishes fsync in worker threads.",
                value=max((s["seconds"] for s in stats), default=0.0))


def registry_for(metrics: Metrics):
    """A registry with the server's metrics and the process's (CPU, memory, fds)."""
    from prometheus_client import CollectorRegistry, ProcessCollector

    reg = CollectorRegistry(auto_describe=False)
    reg.register(metrics)
    ProcessCollector(registry=reg)
    return reg


def parse_address(text: str) -> tuple[str, int]:
    """'ADDR:PORT', ':PORT' or 'PORT' (then 127.0.0.1); '[v6]:PORT' for IPv6."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        n = int(port)
    except ValueError:
        raise ValueError(f"--metrics: bad address {text!r} (want ADDR:PORT)") from None
    if not 0 <= n <= 65535:
        raise ValueError(f"--metrics: bad port in {text!r}")
    return host, n


def serve(metrics: Metrics, address: str, reactor):
    """Listen on `address` ('ADDR:PORT'); returns the listening port (stopListening())."""
    from twisted.web import resource, server

    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    reg = registry_for(metrics)

    class Page(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            if request.postpath not in ([b"metrics"], [b""], []):
                request.setResponseCode(404)
                return b"not found: try /metrics\n"
            request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
            return generate_latest(reg)

    site = server.Site(Page())
    site.noisy = False
    host, port = parse_address(address)
    from twisted.internet.error import CannotListenError

    try:
        return reactor.listenTCP(port, site, interface=host)
    except CannotListenError as e:  # the CLI reports OSError as "cannot serve"
        raise OSError(f"--metrics {address}: {e.socketError or e}") from None
