"""Several `nfsd serve` frontends over one namespace (docs/scale-out.md): real frontend
processes on real sockets over a real PostgreSQL and a real S3 endpoint (tests/services.py).
The numbers in the test names are those of the issue's list."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from backend.pgs3.fsck import problems
from backend.pgs3.objects import ObjectStore
from nfsd.client import NfsClient, NfsError, op
from nfsd.xdr import nfs4 as x
from server_proc import ServerProcess
from test_kernel_client import vm as vm  # noqa: F401 - the fixture, shared
from test_write_once import wait_for

RW = x.OPEN4_SHARE_ACCESS_BOTH
LEASE = 3  # seconds: a dead frontend is declared so after LEASE + grace (= LEASE)


class Cluster:
    """A formatted namespace and the frontends started on it."""

    def __init__(self, services, tmp_path):
        self.services = services
        self.meta, self.data = services.namespace()
        self.endpoint = services.s3.endpoint
        self.tmp = tmp_path
        self.frontends: list[ServerProcess] = []

    def start(self, name: str, *extra, port: int = 0, retire_after: int = 3600):
        fe = ServerProcess(None, "--meta", self.meta, "--data", self.data, "--frontend-id", name,
                           "--spool", str(self.tmp / f"spool-{name}"), "--s3-endpoint",
                           self.endpoint, "--lease-time", str(LEASE), "--retire-after",
                           str(retire_after), "--no-root-squash", "--insecure", *extra,
                           port=port).start()
        self.frontends.append(fe)
        return fe

    def client(self, fe, **kw) -> NfsClient:
        return NfsClient(*fe.address, **kw).mount()

    def inspect(self) -> dict:
        r = subprocess.run([sys.executable, "-m", "nfsd", "inspect", "--meta", self.meta,
                            "--json"], capture_output=True, text=True, timeout=60)
        assert r.returncode in (0, 3), r.stderr
        return json.loads(r.stdout)

    def objects(self) -> ObjectStore:
        return ObjectStore(self.data, self.endpoint)

    def fsck(self) -> list[str]:
        return problems(self.meta, self.objects())

    def stop(self):
        for fe in self.frontends:
            fe.stop()
        for fe in self.frontends:
            assert "Traceback" not in fe.text(), fe.text()


@pytest.fixture
def cluster(services, tmp_path):
    c = Cluster(services, tmp_path)
    yield c
    c.stop()


def status(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except NfsError as e:
        return e.status
    return x.NFS4_OK


def retrying(fn, *a, timeout: float = 60, **kw):
    """What the Linux client does with NFS4ERR_DELAY: send it again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn(*a, **kw)
        except NfsError as e:
            if e.status != x.NFS4ERR_DELAY or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def names(c, fh) -> list[bytes]:
    return sorted(e[0] for e in c.readdir(fh))


def read_opened(c, d, name: bytes) -> tuple[bytes, bytes]:
    """(handle, contents) of `name` in `d` as an application reads it: OPEN, READ, CLOSE.
    Another frontend's change shows at once at OPEN (close-to-open, docs/scale-out.md), and
    in every request of this client after it."""
    fh, sid, _ = c.open(d, name, access=x.OPEN4_SHARE_ACCESS_READ, owner=b"reader")
    try:
        return fh, c.read_all(fh, sid)
    finally:
        c.close_file(fh, sid, owner=b"reader")


# ---------------------------------------------------------------- 1, 2: visibility, names
def test_1_unfinished_on_a_is_invisible_through_b_until_close(cluster):
    a_fe, b_fe = cluster.start("a"), cluster.start("b")
    a, b = cluster.client(a_fe), cluster.client(b_fe)
    root_a, root_b = a.root(), b.root()
    assert root_a == root_b  # one namespace, the same handles
    before = b.getattr(root_b, (x.FATTR4_CHANGE,))[x.FATTR4_CHANGE]
    fh, sid, _ = a.open(root_a, b"f", create=True)
    a.write(fh, sid, 0, b"0123456789" * 1000, stable=x.FILE_SYNC4)
    assert status(b.lookup, "f") == x.NFS4ERR_NOENT
    assert names(b, root_b) == []
    assert status(b.getattr, fh) == x.NFS4ERR_STALE  # a guessed handle
    a.close_file(fh, sid)
    assert read_opened(b, root_b, b"f") == (fh, b"0123456789" * 1000)
    assert b.lookup("f") == fh and names(b, root_b) == [b"f"]
    assert b.getattr(root_b, (x.FATTR4_CHANGE,))[x.FATTR4_CHANGE] != before
    # a new version through B, read through A
    fh2, sid2, _ = b.open(root_b, b"f", access=RW)
    b.write(fh2, sid2, 0, b"X")
    assert read_opened(a, root_a, b"f")[1][:1] == b"0"
    b.close_file(fh2, sid2)
    assert read_opened(a, root_a, b"f")[1][:2] == b"X1"
    assert a.read_all(fh)[:2] == b"X1"


def test_2_exclusive_creates_reserve_the_name_and_unchecked_last_close_wins(cluster):
    a_fe, b_fe = cluster.start("a"), cluster.start("b")
    a, b = cluster.client(a_fe), cluster.client(b_fe)
    r = a.root()
    fh, sid, _ = a.open(r, b"lock", create=True, how=x.GUARDED4)
    for how in (x.GUARDED4, x.EXCLUSIVE4_1):
        assert status(b.open, r, b"lock", create=True, how=how) == x.NFS4ERR_EXIST
    a.close_file(fh, sid)
    assert status(b.open, r, b"lock", create=True, how=x.GUARDED4) == x.NFS4ERR_EXIST
    # UNCHECKED on both: each writes its own file, the last CLOSE wins (as seen by clients
    # that are not writing it: a writer sees its own file until it closes it)
    fa, sa, _ = a.open(r, b"u", create=True)
    fb, sb, _ = b.open(r, b"u", create=True)
    a.write(fa, sa, 0, b"from a")
    b.write(fb, sb, 0, b"from b")
    a.close_file(fa, sa)
    watcher_b, watcher_a = cluster.client(b_fe), cluster.client(a_fe)
    assert read_opened(watcher_b, r, b"u")[1] == b"from a"
    b.close_file(fb, sb)
    assert read_opened(watcher_a, r, b"u")[1] == b"from b"


# ---------------------------------------------------------------- 3: locks and shares
def test_3_locks_and_share_reservations_conflict_across_frontends(cluster):
    a_fe, b_fe = cluster.start("a"), cluster.start("b")
    a, b = cluster.client(a_fe), cluster.client(b_fe)
    r = a.root()
    fh = a.create_file(r, b"f", b"locked content")
    fa, sa, _ = a.open(r, b"f", access=RW, owner=b"oa")
    lock = a.call([op("PUTFH", fa), op("LOCK", x.WRITE_LT, False, 0, 100, x.locker4(True, x.open_to_lock_owner4(0, sa, 0, x.lock_owner4(a.clientid, b"la"))))])[-1]
    lsid = lock.value.lock_stateid
    fb, sb, _ = b.open(r, b"f", access=RW, owner=b"ob")
    denied = b.try_call([op("PUTFH", fb), op("LOCK", x.WRITE_LT, False, 50, 10, x.locker4(True, x.open_to_lock_owner4(0, sb, 0, x.lock_owner4(b.clientid, b"lb"))))])
    assert denied[0] == x.NFS4ERR_DENIED
    assert b.try_call([op("PUTFH", fb), op("LOCKT", x.READ_LT, 0, 10, x.lock_owner4(b.clientid, b"lb"))])[0] == x.NFS4ERR_DENIED
    ok = b.try_call([op("PUTFH", fb), op("LOCK", x.WRITE_LT, False, 200, 10, x.locker4(True, x.open_to_lock_owner4(0, sb, 0, x.lock_owner4(b.clientid, b"lb"))))])
    assert ok[0] == x.NFS4_OK  # another range
    a.call([op("PUTFH", fa), op("LOCKU", x.WRITE_LT, 0, lsid, 0, 100)])
    lb = b.call([op("PUTFH", fb), op("LOCK", x.WRITE_LT, False, 50, 10, x.locker4(False, x.exist_lock_owner4(ok[1][-1].value.lock_stateid, 0)))])
    assert lb[-1].tag == x.NFS4_OK
    # share reservations: A denies writing, B cannot open for write
    gfh, gsid, _ = a.open(r, b"g", create=True, deny=x.OPEN4_SHARE_DENY_WRITE, owner=b"og")
    assert status(b.open, r, b"g", access=x.OPEN4_SHARE_ACCESS_WRITE, owner=b"og2") == \
        x.NFS4ERR_NOENT  # not published yet: it does not exist through B
    a.close_file(gfh, gsid, owner=b"og")
    g, gs, _ = a.open(r, b"g", access=x.OPEN4_SHARE_ACCESS_READ,
                      deny=x.OPEN4_SHARE_DENY_WRITE, owner=b"og3")
    assert status(b.open, r, b"g", access=x.OPEN4_SHARE_ACCESS_WRITE, owner=b"og4") == \
        x.NFS4ERR_SHARE_DENIED
    a.close_file(g, gs, owner=b"og3")
    gb, gbs, _ = b.open(r, b"g", access=x.OPEN4_SHARE_ACCESS_WRITE, owner=b"og4")
    b.close_file(gb, gbs, owner=b"og4")
    assert fh == a.lookup("f")


# ---------------------------------------------------------------- 4, 5, 6: frontends that die
def _published(c, r, n=5):
    out = {}
    for i in range(n):
        data = os.urandom(random.Random(i).randrange(1, 300_000))
        name = f"pub{i}".encode()
        out[name] = (c.create_file(r, name, data), data)
    return out


def test_4_a_killed_frontends_files_are_retired_then_discarded(cluster):
    a_fe = cluster.start("a", retire_after=4)
    b_fe = cluster.start("b", retire_after=4)
    a, b = cluster.client(a_fe), cluster.client(b_fe)
    r = a.root()
    done = _published(a, r)
    fh, sid, _ = a.open(r, b"unfinished", create=True)
    a.write(fh, sid, 0, b"half of it", stable=x.FILE_SYNC4)
    a_fe.kill9()
    # handles from A work on B; nothing partial is visible
    for name, (h, data) in done.items():
        assert b.read_all(h) == data
    assert status(b.lookup, "unfinished") == x.NFS4ERR_NOENT
    wait_for(lambda: any(f["id"] == "a" and f["state"] == "dead"
                         for f in cluster.inspect()["frontends"]), 60, "A declared dead")
    files = cluster.inspect()["files"]
    assert [f["state"] for f in files] == ["retired"] and files[0]["frontend"] == "a"
    wait_for(lambda: cluster.inspect()["files"] == [], 60, "the retention time")
    assert cluster.objects().uploads() == []
    b = cluster.client(b_fe)  # (the first one was silent longer than its lease)
    assert status(b.lookup, "unfinished") == x.NFS4ERR_NOENT
    for name, (h, data) in done.items():
        assert b.read_all(b.lookup(name.decode())) == data
    assert cluster.fsck() == []


def test_5_the_same_frontend_restarted_lets_its_client_reclaim_and_finish(cluster):
    a_fe = cluster.start("a")
    b_fe = cluster.start("b")
    a = cluster.client(a_fe)
    r = a.root()
    fh, sid, _ = a.open(r, b"resumed", create=True)
    a.write(fh, sid, 0, b"before the restart ", stable=x.FILE_SYNC4)
    port = a_fe.port
    a_fe.kill9()
    a_fe = cluster.start("a", port=port)  # the same --frontend-id, in time
    again = NfsClient(*a_fe.address, owner=a.owner, verifier=a.verifier)
    again.exchange_id()
    again.create_session()
    claim = x.open_claim4(x.CLAIM_PREVIOUS, x.OPEN_DELEGATE_NONE)
    _, sid2, _ = retrying(again.open, fh, b"", claim=claim)
    again.call([op("RECLAIM_COMPLETE", False)])
    retrying(again.write, fh, sid2, 19, b"and after", stable=x.FILE_SYNC4)
    retrying(again.close_file, fh, sid2)
    b = cluster.client(b_fe)
    assert read_opened(b, b.root(), b"resumed")[1] == b"before the restart and after"


def test_6_a_frozen_frontend_declared_dead_publishes_nothing_and_stops(cluster):
    a_fe = cluster.start("a")
    b_fe = cluster.start("b")
    a, b = cluster.client(a_fe), cluster.client(b_fe)
    r = a.root()
    fh, sid, _ = a.open(r, b"frozen", create=True)
    a.write(fh, sid, 0, b"written before the freeze", stable=x.FILE_SYNC4)
    a_fe.signal(signal.SIGSTOP)
    try:
        wait_for(lambda: any(f["id"] == "a" and f["state"] == "dead"
                             for f in cluster.inspect()["frontends"]), 60, "A declared dead")
    finally:
        a_fe.signal(signal.SIGCONT)
    try:
        st = status(a.close_file, fh, sid)
        assert st != x.NFS4_OK
    except OSError:
        pass  # it stopped serving first
    wait_for(lambda: not a_fe.alive(), 60, "A to stop serving")
    assert a_fe.proc.returncode == 4
    assert "declared dead by a peer" in a_fe.text()
    b = cluster.client(b_fe)  # (the first one was silent longer than its lease)
    assert status(b.lookup, "frozen") == x.NFS4ERR_NOENT
    assert cluster.inspect()["files"][0]["state"] == "retired"


# ---------------------------------------------------------------- 7: outages
def test_7_database_and_object_store_outages_delay_but_lose_nothing(cluster, services):
    fe = cluster.start("a")
    c = cluster.client(fe)
    r = c.root()
    written = {}
    errors = []
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            name = f"o{i}".encode()
            data = os.urandom(100_000 + i)  # more than the database keeps (chunks.INLINE)
            try:
                fh, sid, _ = retrying(c.open, r, name, create=True)
                retrying(c.write, fh, sid, 0, data, stable=x.FILE_SYNC4)
                retrying(c.close_file, fh, sid)
                written[name] = data
            except Exception as e:  # noqa: BLE001 - the test reports it
                errors.append(e)
                return
            i += 1
    t = threading.Thread(target=writer)
    t.start()
    try:
        wait_for(lambda: len(written) >= 3, 60, "writes before the outages")
        services.pg.stop()
        time.sleep(5)  # the outage lasts five seconds
        services.pg.start()
        n = len(written)
        wait_for(lambda: len(written) > n + 2 or errors, 60, "writes after the database")
        services.s3.relay.cut()
        time.sleep(5)
        services.s3.relay.mend()
        n = len(written)
        wait_for(lambda: len(written) > n + 2 or errors, 60, "writes after the object store")
    finally:
        stop.set()
        t.join(120)
    assert errors == []
    for name, data in written.items():
        assert c.read_all(c.lookup(name.decode())) == data
    text = fe.text()
    assert text.count("database unavailable") == 1 and "database available again" in text
    assert text.count("object store unavailable") == 1 and "object store available again" in text


# ---------------------------------------------------------------- 8: many writers
def test_8_two_frontends_and_eight_threads_leave_a_consistent_namespace(cluster):
    fronts = [cluster.start("a"), cluster.start("b")]
    seconds = float(os.environ.get("NFSD_SCALE_STRESS_SECONDS", "60"))
    r = cluster.client(fronts[0]).root()
    cluster.client(fronts[0]).mkdir(r, b"d", mode=0o777)
    errors = []
    end = time.monotonic() + seconds

    def worker(n):
        rnd = random.Random(n)
        c = cluster.client(fronts[n % 2])
        d = c.lookup("d")
        try:
            while time.monotonic() < end:
                name = f"f{rnd.randrange(40)}".encode()
                what = rnd.random()
                try:
                    if what < 0.5:
                        c.create_file(d, name, os.urandom(rnd.randrange(1, 70_000)))
                    elif what < 0.75:
                        c.rename(d, name, d, f"f{rnd.randrange(40)}".encode())
                    else:
                        c.remove(d, name)
                except NfsError as e:
                    if e.status not in (x.NFS4ERR_NOENT, x.NFS4ERR_DELAY, x.NFS4ERR_EXIST):
                        raise
        except Exception as e:  # noqa: BLE001
            errors.append((n, e))
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    assert errors == [], [fe.text()[-4000:] for fe in fronts]
    c = cluster.client(fronts[1])
    d = c.lookup("d")
    c.create_file(d, b"checked", b"")  # an OPEN: from here on B answers with every change
    for name in names(c, d):
        c.read_all(c.lookup("d/" + name.decode()))
    # after the gc queue's delay (two leases), nothing is unreferenced or missing
    wait_for(lambda: cluster.fsck() == [], 60, "a consistent namespace after gc")


# ---------------------------------------------------------------- 9: the Linux client
@pytest.mark.vm
def test_9_the_linux_client_writes_through_a_while_b_watches(cluster, vm):
    from test_kernel_writeonce import finish, start_vm

    a_fe, b_fe = cluster.start("a"), cluster.start("b")
    b = cluster.client(b_fe)
    p = start_vm(a_fe.port, "scale")

    def marker():
        return status(b.lookup, "marker1") == x.NFS4_OK or p.poll() is not None
    wait_for(marker, 600, "the guest's marker")
    assert status(b.lookup, "marker1") == x.NFS4_OK, finish(p)[1]
    assert status(b.lookup, "fromvm.txt") == x.NFS4ERR_NOENT  # open for writing on A
    b.create_file(b.root(), b"ack1", b"go on")  # through B; the guest sees it through A
    rc, out = finish(p)
    assert rc == 0 and "@@LC PASS scale" in out, out[-3000:] + a_fe.text()[-3000:]
    assert read_opened(b, b.root(), b"fromvm.txt")[1] == b"part one\npart two\n"


