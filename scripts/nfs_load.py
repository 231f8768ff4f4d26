#!/usr/bin/env python3
"""User-space NFSv4 load benchmark (no kernel mount, no VM).

(Copied from shared/bench/bench.py, the shared instrument, for scripts/bench. Additions
here: --profile/--profiler/--profile-dir sample the server during chosen phases with py-spy
or toggle a cProfile in the server by signals (scripts/profile_serve.py), and the server's
resident memory at the end of each phase is reported as METRIC <phase>_server_rss_MiB.
Everything else is unchanged, so numbers compare with the shared tool's.)

usage: bench.py HOST PORT EXPORT_PATH [options]

Drives an NFSv4.x server with a third-party user-space client library
(nfs4fs 0.3.11 or nfs-rs 0.8.7, both Rust, from PyPI) from N parallel client
processes, each with its own TCP connection / NFSv4 client ID / session.
Prints `METRIC name=value unit` lines; with several N values every metric name
gets a `_nN` suffix (e.g. `getattr_per_s_n8`).

Phases (per repetition, all clients released together by a barrier):
  seq_write   each client writes SIZE/N bytes to its own file in REQ-sized
              requests; every request is made durable (nfs4fs: WRITE FILE_SYNC;
              nfs-rs: WRITE UNSTABLE + COMMIT per call)
  seq_read    each client reads its own file back READ_PASSES times (default 4)
              in REQ-sized requests (served from the server's page cache)
  create      FILES files in one shared directory (FILES/N per client):
              open(create) + write FILE_KIB + close
  getattr     each client stats its own files GETATTR_PASSES times (by path)
  readdir     each client lists the whole shared directory READDIR_PASSES times
  remove      each client removes its own files
For each phase the server's CPU seconds (utime+stime from /proc/PID/stat of the
process listening on PORT, or --server-pid) and the clients' CPU seconds are
reported (total and system part: fsync of FILE_SYNC/COMMIT shows up as
system time), plus server CPU per operation (per MiB for seq phases).
--batch B (nfs4fs only) keeps B operations in flight per client by packing
create/getattr/remove into vectorized COMPOUNDs instead of one call per file.
Every metric is the median of --repeat runs (default 3).
Only the host given is contacted; every loop is bounded by counts and timeouts.
"""
import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
PHASES = ["seq_write", "seq_read", "create", "getattr", "readdir", "remove"]
PHASE_METRIC = {  # name, unit
    "seq_write": ("seq_write_MBps", "MB/s"),
    "seq_read": ("seq_read_MBps", "MB/s"),
    "create": ("create_small_files_per_s", "files/s"),
    "getattr": ("getattr_per_s", "ops/s"),
    "readdir": ("readdir_entries_per_s", "entries/s"),
    "remove": ("remove_per_s", "ops/s"),
}


# ----------------------------------------------------------------------------- backends
class Nfs4fsBackend:
    """nfs4fs (PyPI) native VFSI client: NFSv4.1 / 4.2, libntirpc transport."""

    name = "nfs4fs"

    def __init__(self, host, port, export, vers, timeout):
        from nfs4fs._native import NfsClient

        minor = {"4.1": 1, "4.2": 2}.get(vers)
        if minor is None:
            raise SystemExit("nfs4fs supports --vers 4.1 or 4.2 only")
        h = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.c = NfsClient(h, minor_version=minor, auth="auth_sys",
                           connect_timeout=timeout, request_timeout=timeout)
        self.root = "/" + export.strip("/")

    def p(self, rel):
        return f"{self.root}/{rel}"

    def mkdir(self, rel):
        try:
            self.c.mkdir(self.p(rel), 0o755)
        except FileExistsError:
            pass

    def seq_write(self, rel, total, req, buf):
        fd = self.c.open(self.p(rel), "wb")
        try:
            off = 0
            while off < total:
                n = min(req, total - off)
                self.c.pwrite(fd, buf[:n] if n < len(buf) else buf, off)
                off += n
        finally:
            self.c.close(fd)

    def seq_read(self, rel, req):
        fd = self.c.open(self.p(rel), "rb")
        try:
            off = 0
            while True:
                d = self.c.pread(fd, req, off)
                if not d:
                    return off
                off += len(d)
        finally:
            self.c.close(fd)

    def create(self, rel, data):
        fd = self.c.open(self.p(rel), "wb")
        try:
            self.c.write(fd, data)
        finally:
            self.c.close(fd)

    def stat_size(self, rel):
        return self.c.stat(self.p(rel))["size"]

    def count_dir(self, rel):
        return len(self.c.listdir(self.p(rel)))

    def remove(self, rel):
        self.c.remove_many([self.p(rel)])

    def rmdir(self, rel):
        self.c.rm([self.p(rel)], True)

    # vectorized variants (--batch): many operations per COMPOUND
    def create_many(self, rels, data):
        self.c.write_many([self.p(r) for r in rels], [data] * len(rels))

    def stat_many(self, rels):
        res, errs = self.c.stat_many([self.p(r) for r in rels])
        if errs:
            raise OSError(f"stat_many errors: {dict(list(errs.items())[:3])}")
        return [r["size"] for r in res]

    def remove_many(self, rels):
        self.c.remove_many([self.p(r) for r in rels])

    def close(self):
        self.c.shutdown()


class NfsRsBackend:
    """nfs-rs (PyPI) client: NFSv4.1 and experimental NFSv4.0 (also NFSv3)."""

    name = "nfs-rs"

    def __init__(self, host, port, export, vers, timeout):
        from nfs_rs import Client

        if vers not in ("4.0", "4.1"):
            raise SystemExit("nfs-rs supports --vers 4.0 or 4.1 only")
        h = f"[{host}]" if ":" in host else host
        url = (f"nfs://{h}:{port}/{export.strip('/')}?version={vers}"
               f"&noresvport=true&uid={os.getuid()}&gid={os.getgid()}")
        self.c = Client.connect(url, connect_timeout=timeout, operation_timeout=timeout)
        # Keep every call to one RPC: nfs-rs splits a call larger than the negotiated
        # limit into up to 8 concurrent chunks, and (0.8.7, NFSv4.1) a chunk
        # abandoned at EOF can leave its session slot's seqid unadvanced, so the
        # next request on that slot is rejected by the server as a false retry.
        self.max_read = self.c.io_limits.max_read
        self.max_write = self.c.io_limits.max_write

    def mkdir(self, rel):
        self.c.mkdir(rel, exist_ok=True)

    def seq_write(self, rel, total, req, buf):
        mv = memoryview(buf)
        with self.c.open(rel, "wb") as f:
            off = 0
            while off < total:
                n = min(req, self.max_write, total - off)
                f.write(mv[:n])
                off += n

    def seq_read(self, rel, req):
        b = bytearray(min(req, self.max_read))
        total = 0
        with self.c.open(rel, "rb") as f:
            while True:
                n = f.readinto(b)
                if not n:
                    return total
                total += n

    def create(self, rel, data):
        with self.c.open(rel, "wb") as f:
            f.write(data)

    def stat_size(self, rel):
        return self.c.stat(rel).size

    def count_dir(self, rel):
        return sum(1 for e in self.c.scandir(rel) if e.name not in (".", ".."))

    def remove(self, rel):
        self.c.remove(rel)

    def rmdir(self, rel):
        self.c.rmdir(rel)

    def close(self):
        self.c.close()


BACKENDS = {"nfs4fs": Nfs4fsBackend, "nfs-rs": NfsRsBackend}


# ----------------------------------------------------------------------------- helpers
def proc_rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PhaseProfiler:
    """Samples the server while chosen phases run: py-spy record (collapsed stacks, 'raw',
    or a flame graph, 'flamegraph'), or SIGUSR1/SIGUSR2 to a server run under
    scripts/profile_serve.py (cProfile on/off, stats written at each SIGUSR2)."""

    def __init__(self, a, spid):
        import signal
        import subprocess

        self.signal, self.subprocess = signal, subprocess
        self.phases = set(p for p in a.profile.split(",") if p)
        self.kind, self.dir, self.spid, self.fmt = a.profiler, a.profile_dir, spid, a.profile_format
        self.rate = a.profile_rate
        self.proc = None
        os.makedirs(self.dir, exist_ok=True)

    def start(self, phase, n, rep):
        if phase not in self.phases or not self.spid:
            return
        if self.kind == "cprofile":
            os.kill(self.spid, self.signal.SIGUSR1)
            return
        ext = "svg" if self.fmt == "flamegraph" else "txt"
        out = os.path.join(self.dir, f"{phase}-n{n}-r{rep + 1}.{ext}")
        self.proc = self.subprocess.Popen(
            ["py-spy", "record", "--pid", str(self.spid), "--rate", str(self.rate),
             "--format", self.fmt, "-o", out, "--nonblocking"],
            stdout=self.subprocess.DEVNULL, stderr=self.subprocess.DEVNULL)
        time.sleep(0.5)  # let it attach before the phase starts

    def stop(self, phase, n, rep):
        if phase not in self.phases or not self.spid:
            return
        if self.kind == "cprofile":
            os.kill(self.spid, self.signal.SIGUSR2)  # the server writes its stats
            time.sleep(0.5)
            return
        if self.proc is not None:
            self.proc.send_signal(self.signal.SIGINT)
            try:
                self.proc.wait(60)
            except self.subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


def proc_cpu(pid="self"):
    return sum(proc_cpu_split(pid))


def proc_cpu_split(pid="self"):
    """(user, system) CPU seconds of a whole process (all threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK  # utime, stime


def find_listener_pid(host, port):
    """PID of the local process with a listening TCP socket on PORT (needs root
    or the same user). Returns None if not found."""
    inodes = set()
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(fn) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[3] == "0A" and int(p[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(p[9])
        except OSError:
            pass
    if not inodes:
        return None
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    l = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if l.startswith("socket:[") and l[8:-1] in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


# ----------------------------------------------------------------------------- worker
def worker(k, a, top, barrier, results):
    """One client: own process, own connection/session. Runs every phase between
    two barrier waits and reports (phase, ok, detail, client_cpu_s)."""
    def report(phase, ok, detail, cpu):
        results.put((k, phase, ok, detail, cpu))

    try:
        be = BACKENDS[a.client](a.host, a.port, a.export, a.vers, a.timeout)
    except BaseException as e:  # still take part in every barrier so the run ends
        err = f"connect: {type(e).__name__}: {e}"
        for ph in ["setup"] + PHASES + ["cleanup"]:
            barrier.wait()
            report(ph, False, err, 0.0)
            barrier.wait()
        return
    n = a.n_clients
    my_bytes = a.size_mib * (1 << 20) // n
    files = [f"{top}/d/c{k}_f{i}" for i in range(k, a.files, n)]
    buf = os.urandom(a.req_kib * 1024)
    small = os.urandom(a.file_kib * 1024)
    big = f"{top}/big{k}"
    batch = a.batch

    def ph_setup():
        if k == 0:
            be.mkdir(top)
            be.mkdir(f"{top}/d")
        return ""

    def ph_seq_write():
        be.seq_write(big, my_bytes, a.req_kib * 1024, buf)
        return my_bytes

    def ph_seq_read():
        total = 0
        for _ in range(a.read_passes):
            got = be.seq_read(big, a.req_kib * 1024)
            if got != my_bytes:
                raise IOError(f"read {got} bytes, expected {my_bytes}")
            total += got
        return total

    def ph_create():
        if batch and hasattr(be, "create_many"):
            for i in range(0, len(files), batch):
                be.create_many(files[i:i + batch], small)
        else:
            for p in files:
                be.create(p, small)
        return len(files)

    def ph_getattr():
        for _ in range(a.getattr_passes):
            if batch and hasattr(be, "stat_many"):
                for i in range(0, len(files), batch):
                    for s in be.stat_many(files[i:i + batch]):
                        if s != len(small):
                            raise IOError(f"size {s} != {len(small)}")
            else:
                for p in files:
                    s = be.stat_size(p)
                    if s != len(small):
                        raise IOError(f"{p}: size {s} != {len(small)}")
        return len(files) * a.getattr_passes

    def ph_readdir():
        total = 0
        for _ in range(a.readdir_passes):
            c = be.count_dir(f"{top}/d")
            if c != a.files:
                raise IOError(f"readdir saw {c} entries, expected {a.files}")
            total += c
        return total

    def ph_remove():
        if batch and hasattr(be, "remove_many"):
            for i in range(0, len(files), batch):
                be.remove_many(files[i:i + batch])
        else:
            for p in files:
                be.remove(p)
        return len(files)

    def ph_cleanup():
        try:
            be.remove(big)
        except Exception:
            pass
        return ""

    funcs = {"setup": ph_setup, "seq_write": ph_seq_write, "seq_read": ph_seq_read,
             "create": ph_create, "getattr": ph_getattr, "readdir": ph_readdir,
             "remove": ph_remove, "cleanup": ph_cleanup}
    failed = None
    for ph in ["setup"] + PHASES + ["cleanup"]:
        barrier.wait()
        c0 = proc_cpu()
        if failed:
            report(ph, False, f"skipped after {failed}", 0.0)
        else:
            try:
                report(ph, True, funcs[ph](), proc_cpu() - c0)
            except BaseException as e:
                failed = ph
                msg = f"{type(e).__name__}: {e}"
                cause = e.__cause__ or e.__context__
                if cause is not None:
                    msg += f" <- {type(cause).__name__}: {cause}"
                report(ph, False, msg[:600], proc_cpu() - c0)
        barrier.wait()
    try:
        be.close()
    except Exception:
        pass


# ----------------------------------------------------------------------------- driver
def one_run(a, n, rep, spid, ctx, prof=None):
    a.n_clients = n
    top = f"lcbench-{os.getpid()}-n{n}-r{rep}"
    barrier = ctx.Barrier(n + 1, timeout=a.phase_timeout)
    results = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(k, a, top, barrier, results), daemon=True)
             for k in range(n)]
    for p in procs:
        p.start()
    out = {}
    try:
        for ph in ["setup"] + PHASES + ["cleanup"]:
            if prof is not None:
                prof.start(ph, n, rep)
            s0 = proc_cpu_split(spid) if spid else (0.0, 0.0)
            t0 = time.perf_counter()
            barrier.wait()           # release the clients
            barrier.wait()           # all clients done with this phase
            dt = time.perf_counter() - t0
            s1 = proc_cpu_split(spid) if spid else (0.0, 0.0)
            rss = proc_rss_mib(spid) if spid else 0.0
            if prof is not None:
                prof.stop(ph, n, rep)
            rs = [results.get(timeout=a.phase_timeout) for _ in range(n)]
            bad = [r for r in rs if not r[2]]
            out[ph] = {"dt": dt, "server_cpu": (s1[0] - s0[0]) + (s1[1] - s0[1]),
                       "server_sys": s1[1] - s0[1], "server_rss": rss,
                       "client_cpu": sum(r[4] for r in rs),
                       "work": sum(r[3] for r in rs if r[2] and isinstance(r[3], int)),
                       "errors": [f"client{r[0]}: {r[3]}" for r in bad]}
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    # best-effort removal of the run's directories
    try:
        be = BACKENDS[a.client](a.host, a.port, a.export, a.vers, a.timeout)
        try:
            for k in range(n):
                try:
                    be.remove(f"{top}/big{k}")
                except Exception:
                    pass
            if out.get("remove", {}).get("errors"):
                for i in range(a.files):
                    try:
                        be.remove(f"{top}/d/c{i % n}_f{i}")
                    except Exception:
                        pass
            be.rmdir(f"{top}/d")
            be.rmdir(top)
        finally:
            be.close()
    except Exception as e:
        print(f"# cleanup of {top} failed: {type(e).__name__}: {e}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("export", help="NFSv4 pseudo path of the export, e.g. /export")
    ap.add_argument("-n", "--clients", default="1,8",
                    help="comma list of parallel client counts (default 1,8)")
    ap.add_argument("--client", choices=sorted(BACKENDS), default="nfs4fs")
    ap.add_argument("--vers", default="4.1", help="4.0 (nfs-rs), 4.1, 4.2 (nfs4fs)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=256, help="total seq bytes (split over N)")
    ap.add_argument("--req-kib", type=int, default=1024, help="seq request size")
    ap.add_argument("--read-passes", type=int, default=4,
                    help="times each client reads its file back (default 4)")
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--file-kib", type=int, default=4)
    ap.add_argument("--getattr-passes", type=int, default=0,
                    help="stat passes over the files (default 5, or 25 with --batch)")
    ap.add_argument("--readdir-passes", type=int, default=20)
    ap.add_argument("--batch", type=int, default=0,
                    help="nfs4fs only: vectorize create/getattr/remove in batches of this many")
    ap.add_argument("--server-pid", type=int, default=0,
                    help="server PID for CPU accounting (default: listener on PORT)")
    ap.add_argument("--timeout", type=float, default=60.0, help="per-RPC/connect timeout, s")
    ap.add_argument("--phase-timeout", type=float, default=300.0)
    ap.add_argument("--profile", default="", metavar="PHASES",
                    help="comma list of phases during which the server is profiled")
    ap.add_argument("--profiler", choices=["py-spy", "cprofile"], default="py-spy",
                    help="py-spy record, or signals to a server under scripts/profile_serve.py")
    ap.add_argument("--profile-dir", default="profiles")
    ap.add_argument("--profile-format", choices=["raw", "flamegraph", "speedscope"],
                    default="raw", help="py-spy output (raw: collapsed stacks)")
    ap.add_argument("--profile-rate", type=int, default=250, help="py-spy samples per second")
    a = ap.parse_args()
    if a.host not in ("127.0.0.1", "localhost", "::1") and not a.host.startswith("127."):
        raise SystemExit("refusing: this benchmark only targets loopback addresses")
    if a.batch and a.client != "nfs4fs":
        raise SystemExit("--batch needs --client nfs4fs (nfs-rs has no vectorized calls)")
    if a.client == "nfs4fs" and a.vers == "4.0":
        raise SystemExit("nfs4fs has no NFSv4.0; use --client nfs-rs --vers 4.0")
    ns = [int(x) for x in a.clients.split(",") if x]
    if not a.getattr_passes:
        a.getattr_passes = 25 if a.batch else 5
    spid = a.server_pid or find_listener_pid(a.host, a.port)
    print(f"# client={a.client} vers={a.vers} N={ns} repeat={a.repeat} "
          f"server_pid={spid} size={a.size_mib}MiB req={a.req_kib}KiB files={a.files}"
          f"x{a.file_kib}KiB batch={a.batch} read_passes={a.read_passes} "
          f"getattr_passes={a.getattr_passes} readdir_passes={a.readdir_passes}", flush=True)
    if not spid:
        print("# server PID unknown: server CPU not reported (use --server-pid)", flush=True)
    ctx = mp.get_context("spawn")  # the native clients own threads: never fork them
    prof = PhaseProfiler(a, spid) if a.profile else None
    rc = 0
    for n in ns:
        runs = []
        for rep in range(a.repeat):
            out = one_run(a, n, rep, spid, ctx, prof)
            runs.append(out)
            line = []
            for ph in PHASES:
                o = out.get(ph)
                if not o:
                    continue
                if o["errors"]:
                    rc = 1
                    print(f"# n={n} run={rep + 1} {ph} ERROR {o['errors'][0]}", flush=True)
                    continue
                rate = o["work"] / o["dt"]
                if ph.startswith("seq"):
                    rate /= 1e6
                line.append(f"{ph}={rate:.1f}/{o['dt']:.2f}s/srv{o['server_cpu']:.2f}s"
                            f"/cli{o['client_cpu']:.2f}s")
            print(f"# n={n} run={rep + 1} " + " ".join(line), flush=True)
        suf = f"_n{n}" if len(ns) > 1 else ""
        for ph in PHASES:
            good = [r[ph] for r in runs if ph in r and not r[ph]["errors"] and r[ph]["dt"] > 0]
            if not good:
                print(f"METRIC {PHASE_METRIC[ph][0]}{suf}=nan {PHASE_METRIC[ph][1]}")
                continue
            rates = [g["work"] / g["dt"] / (1e6 if ph.startswith("seq") else 1) for g in good]
            name, unit = PHASE_METRIC[ph]
            print(f"METRIC {name}{suf}={statistics.median(rates):.1f} {unit}")
            scpu = statistics.median(g["server_cpu"] for g in good)
            ccpu = statistics.median(g["client_cpu"] for g in good)
            per = "MiB" if ph.startswith("seq") else "op"
            per_op = statistics.median(
                g["server_cpu"] / (g["work"] / (1 << 20) if ph.startswith("seq") else g["work"])
                for g in good)
            if spid:
                print(f"METRIC {ph}_server_cpu_s{suf}={scpu:.2f} s")
                ssys = statistics.median(g["server_sys"] for g in good)
                print(f"METRIC {ph}_server_sys_cpu_s{suf}={ssys:.2f} s")
                print(f"METRIC {ph}_server_cpu_us_per_{per}{suf}={per_op * 1e6:.1f} us")
                rss = max(g["server_rss"] for g in good)
                print(f"METRIC {ph}_server_rss_MiB{suf}={rss:.1f} MiB")
            print(f"METRIC {ph}_client_cpu_s{suf}={ccpu:.2f} s")
            if len(good) < len(runs):
                print(f"# {ph}: {len(runs) - len(good)} of {len(runs)} runs failed")
        sys.stdout.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main())
