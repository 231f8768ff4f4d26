#!/usr/bin/env python3
"""How nfsd's costs grow: file size, directory size, clients, memory, start-up.

    scripts/scaling.py [EXPERIMENT ...] [--fs ext4|tmpfs] [--quick]

Experiments (all by default; each starts its own `python -m nfsd serve` on a fresh directory,
see scripts/bench, and measures wall time and the server's CPU from /proc/PID/stat):

  seq        64 files of 1 MiB against 1 file of 64 MiB: write (1 MiB FILE_SYNC WRITEs) and
             read back; MB/s and server CPU per MiB
  readdir    listing (READDIR with attributes, nfs4fs listdir) of directories of 1,000,
             10,000 and 100,000 entries made locally; first listing and second; time and
             server CPU per entry (is it linear?)
  lookup     2,000 random stats (LOOKUP + GETATTR) by name in a 1,000- and a 100,000-entry
             directory; first (cold) and second pass
  rss4g      server RSS sampled every 0.25 s while one client writes a 4 GiB file
             (1 MiB FILE_SYNC WRITEs) and reads it back: does memory stay flat?
  clients    1,000 clients (nfsd/client.py NfsClient: EXCHANGE_ID, CREATE_SESSION,
             RECLAIM_COMPLETE, one GETATTR) from 4 processes, each holding its connection
             and session; server RSS before and after: memory per client
  startup    time from exec to the "serving" line with an empty export and with 100,000
             files in 100 directories (first start, then a restart with the state directory)

The clients are nfs4fs 0.3.11 (pip) and the in-repo nfsd/client.py. Loopback only.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import statistics
import sys
import threading
import time
from importlib.machinery import SourceFileLoader

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
bench = SourceFileLoader("nfsd_bench", os.path.join(HERE, "bench")).load_module()

TICK = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20


def say(*a):
    print(*a, flush=True)


def cpu(pid) -> float:
    return sum(cpu_split(pid))


def cpu_split(pid) -> tuple[float, float]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def rss_mib(pid) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Measure:
    """with Measure(pid) as m: ...  -> m.dt (s), m.cpu (server CPU s)"""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        self.c0 = cpu_split(self.pid)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.dt = time.perf_counter() - self.t0
        c1 = cpu_split(self.pid)
        self.sys = c1[1] - self.c0[1]
        self.cpu = (c1[0] - self.c0[0]) + self.sys


class Server:
    def __init__(self, fs, extra=()):
        self.dir = bench.Directory(fs)
        self.nfsd = bench.Nfsd(self.dir.path, list(extra))
        self.pid, self.port = self.nfsd.pid, self.nfsd.port

    def client(self):
        from nfs4fs._native import NfsClient

        return NfsClient(f"127.0.0.1:{self.port}", minor_version=1, auth="auth_sys",
                         connect_timeout=60, request_timeout=120)

    def close(self):
        self.nfsd.stop()
        self.dir.close()


def write_file(c, path, size, buf):
    fd = c.open(path, "wb")
    try:
        off = 0
        while off < size:
            n = min(len(buf), size - off)
            c.pwrite(fd, buf if n == len(buf) else buf[:n], off)
            off += n
    finally:
        c.close(fd)


def read_file(c, path, req=MiB):
    fd = c.open(path, "rb")
    try:
        off = 0
        while True:
            d = c.pread(fd, req, off)
            if not d:
                return off
            off += len(d)
    finally:
        c.close(fd)


# ----------------------------------------------------------------------------- experiments
def exp_seq(a):
    s = Server(a.fs)
    try:
        c = s.client()
        buf = os.urandom(MiB)
        c.mkdir("/small", 0o755)
        say("| file size | files | write MB/s | write server CPU ms/MiB (system part) | "
            "read MB/s | read server CPU ms/MiB |")
        say("|---|---|---|---|---|---|")
        rows = ((1, 64, "/small"), (64, 1, "/"))
        if not a.quick:
            rows += ((1024, 1, "/"),)
        for size_mib, files, d in rows:
            total = size_mib * files
            rw = []
            for rep in range(a.reps):
                paths = [f"{d}/f{rep}_{i}" for i in range(files)]
                with Measure(s.pid) as w:
                    for p in paths:
                        write_file(c, p, size_mib * MiB, buf)
                with Measure(s.pid) as r:
                    for p in paths:
                        assert read_file(c, p) == size_mib * MiB
                rw.append((total * MiB / w.dt / 1e6, w.cpu / total * 1e3,
                           total * MiB / r.dt / 1e6, r.cpu / total * 1e3, w.sys / total * 1e3))
                c.remove_many(paths)
            med = [statistics.median(x[i] for x in rw) for i in range(5)]
            say(f"| {size_mib} MiB | {files} | {med[0]:.0f} | {med[1]:.2f} ({med[4]:.2f}) | "
                f"{med[2]:.0f} | {med[3]:.2f} |")
        c.shutdown()
    finally:
        s.close()


def _make_entries(directory, n):
    os.makedirs(directory, exist_ok=True)
    for i in range(n):
        fd = os.open(os.path.join(directory, f"entry-{i:06d}"), os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)


def exp_readdir(a):
    sizes = (1000, 10_000) if a.quick else (1000, 10_000, 100_000)
    s = Server(a.fs)
    try:
        for n in sizes:
            _make_entries(os.path.join(s.dir.path, f"d{n}"), n)
        c = s.client()
        say("| entries | pass | time s | entries/s | server CPU µs/entry | server RSS MiB after |")
        say("|---|---|---|---|---|---|")
        for n in sizes:
            for p in ("first", "second"):
                with Measure(s.pid) as m:
                    got = len(c.listdir(f"/d{n}"))
                assert got == n, (got, n)
                say(f"| {n:,} | {p} | {m.dt:.2f} | {n / m.dt:,.0f} | {m.cpu / n * 1e6:.1f} | "
                    f"{rss_mib(s.pid):.0f} |")
        c.shutdown()
    finally:
        s.close()


def exp_lookup(a):
    sizes = (1000, 100_000) if not a.quick else (1000, 10_000)
    k = 2000
    s = Server(a.fs)
    try:
        for n in sizes:
            _make_entries(os.path.join(s.dir.path, f"d{n}"), n)
        c = s.client()
        rnd = random.Random(1)
        say("| directory entries | pass | lookups | µs per lookup (wall) | server CPU µs/lookup |")
        say("|---|---|---|---|---|")
        for n in sizes:
            names = [f"/d{n}/entry-{rnd.randrange(n):06d}" for _ in range(k)]
            c.stat(f"/d{n}")
            for p in ("first", "second"):
                with Measure(s.pid) as m:
                    for name in names:
                        c.stat(name)
                say(f"| {n:,} | {p} | {k} | {m.dt / k * 1e6:.0f} | {m.cpu / k * 1e6:.0f} |")
        c.shutdown()
    finally:
        s.close()


def exp_rss4g(a):
    size = (512 if a.quick else 4096) * MiB
    s = Server(a.fs)
    samples = []
    stop = threading.Event()

    def sample():
        t0 = time.perf_counter()
        while not stop.is_set():
            try:
                samples.append((time.perf_counter() - t0, rss_mib(s.pid)))
            except OSError:
                return
            stop.wait(0.25)

    try:
        c = s.client()
        base = rss_mib(s.pid)
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        buf = os.urandom(MiB)
        with Measure(s.pid) as w:
            write_file(c, "/big", size, buf)
        mid = len(samples)
        with Measure(s.pid) as r:
            assert read_file(c, "/big") == size
        stop.set()
        th.join()
        c.remove_many(["/big"])
        c.shutdown()
        wr = [v for _, v in samples[:mid]] or [base]
        rd = [v for _, v in samples[mid:]] or [base]
        say(f"file {size // MiB} MiB; server RSS before {base:.0f} MiB")
        say("| phase | time s | MB/s | server CPU ms/MiB | RSS min MiB | RSS max MiB | "
            "RSS at end MiB |")
        say("|---|---|---|---|---|---|---|")
        for name, m, vals in (("write", w, wr), ("read", r, rd)):
            say(f"| {name} | {m.dt:.1f} | {size / m.dt / 1e6:.0f} | "
                f"{m.cpu / (size / MiB) * 1e3:.2f} | {min(vals):.0f} | {max(vals):.0f} | "
                f"{vals[-1]:.0f} |")
        say("samples (s, MiB): " + " ".join(f"{t:.0f}:{v:.0f}" for t, v in samples[::8]))
    finally:
        stop.set()
        s.close()


def _clients_worker(port, n, ready, done, q):
    from nfsd.client import NfsClient

    cs = []
    try:
        for i in range(n):
            c = NfsClient("127.0.0.1", port, timeout=60).mount()
            c.getattr(c.root())
            cs.append(c)
        q.put(("ok", len(cs)))
    except Exception as e:  # noqa: BLE001
        q.put(("error", f"{type(e).__name__}: {e} after {len(cs)}"))
    ready.set()
    done.wait(300)
    for c in cs:
        try:
            c.close()
        except Exception:  # noqa: BLE001
            pass


def _gauges(port) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    keep = ("nfsd_clients ", "nfsd_sessions ", "nfsd_connections ")
    return ", ".join(l.replace(" ", "=") for l in text.splitlines() if l.startswith(keep))


def exp_clients(a):
    total = 200 if a.quick else a.clients_total
    procs_n = 4
    import socket

    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        mport = so.getsockname()[1]
    s = Server(a.fs, ["--max-connections", str(total + 100), "--max-clients", str(total + 100),
                      "--metrics", f"127.0.0.1:{mport}"])
    ctx = mp.get_context("fork")
    try:
        time.sleep(1)
        before = rss_mib(s.pid)
        done = ctx.Event()
        q = ctx.Queue()
        readies, procs = [], []
        with Measure(s.pid) as m:
            for k in range(procs_n):
                ready = ctx.Event()
                p = ctx.Process(target=_clients_worker,
                                args=(s.port, total // procs_n, ready, done, q))
                p.start()
                readies.append(ready)
                procs.append(p)
            for r in readies:
                r.wait(600)
        res = [q.get(timeout=10) for _ in procs]
        time.sleep(1)
        after = rss_mib(s.pid)
        ok = sum(v for st, v in res if st == "ok")
        errs = [v for st, v in res if st != "ok"]
        say(f"{ok} clients (EXCHANGE_ID + CREATE_SESSION + RECLAIM_COMPLETE + GETATTR, each "
            f"its own connection) from {procs_n} processes in {m.dt:.1f} s, server CPU "
            f"{m.cpu / max(ok, 1) * 1e3:.2f} ms per client")
        say(f"server RSS before {before:.1f} MiB, with {ok} clients {after:.1f} MiB: "
            f"{(after - before) * 1024 / max(ok, 1):.1f} KiB per client")
        say(f"server's own gauges while they are connected: {_gauges(mport)}")
        for e in errs:
            say(f"  worker error: {e}")
        done.set()
        for p in procs:
            p.join(60)
        time.sleep(1)
        say(f"server RSS after the clients disconnected: {rss_mib(s.pid):.1f} MiB "
            "(state stays until the lease expires)")
    finally:
        s.close()


def exp_startup(a):
    n = 10_000 if a.quick else 100_000
    dirs = 100
    rows = []
    d = bench.Directory(a.fs)
    try:
        srv = bench.Nfsd(d.path)
        rows.append(("empty, first start", srv.startup_s, rss_mib(srv.pid)))
        srv.stop()
        srv = bench.Nfsd(d.path)
        rows.append(("empty, restart", srv.startup_s, rss_mib(srv.pid)))
        srv.stop()
        t0 = time.perf_counter()
        for k in range(dirs):
            _make_entries(os.path.join(d.path, f"t{k:03d}"), n // dirs)
        made = time.perf_counter() - t0
        import shutil

        shutil.rmtree(os.path.join(d.path, ".nfsd"), ignore_errors=True)
        srv = bench.Nfsd(d.path)
        rows.append((f"{n:,} files, first start (no state dir)", srv.startup_s, rss_mib(srv.pid)))
        srv.stop()
        srv = bench.Nfsd(d.path)
        rows.append((f"{n:,} files, restart", srv.startup_s, rss_mib(srv.pid)))
        srv.stop()
        say(f"({n:,} files made locally in {made:.1f} s; start-up = exec of python -m nfsd "
            "serve to its 'serving' line)")
        say("| export | start-up s | RSS after start MiB |")
        say("|---|---|---|")
        for name, t, r in rows:
            say(f"| {name} | {t:.2f} | {r:.0f} |")
    finally:
        d.close()


EXPERIMENTS = {"seq": exp_seq, "readdir": exp_readdir, "lookup": exp_lookup,
               "rss4g": exp_rss4g, "clients": exp_clients, "startup": exp_startup}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiments", nargs="*", choices=[[], *EXPERIMENTS], default=[])
    ap.add_argument("--fs", default="ext4", choices=["ext4", "tmpfs"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--clients-total", type=int, default=1000, help="clients experiment size")
    a = ap.parse_args()
    m = bench.machine()
    say(f"# scripts/scaling.py {' '.join(sys.argv[1:])}")
    say(f"# {m['date']}; {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, "
        f"Python {m['python']}, fs {a.fs}; load average {m['load'][0]:.2f}")
    for name in a.experiments or list(EXPERIMENTS):
        say(f"\n## {name}")
        EXPERIMENTS[name](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
