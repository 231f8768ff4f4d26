"""The write-once rules of docs/semantics.md, one test (or a few) per rule, over real sockets
with independent client identities, against a real server and a real file system: `nfsd
serve`'s `build()` in this process (tests/inproc.py), and for the kill -9 of rule 8 a real
process. Rules 6, 7 and 8 have one end-to-end test each here; their edges (the lease
boundary, the retention deadline, grace) are on a fake clock in tests/test_crash_and_lease.py
and tests/test_restart_grace.py."""

from __future__ import annotations

import os
import threading
import time

import pytest

from nfsd.client import ANON, NfsClient, NfsError, op
from nfsd.xdr import nfs4 as x
from inproc import InProcessServer
from server_proc import ServerProcess

RW = x.OPEN4_SHARE_ACCESS_BOTH
RD = x.OPEN4_SHARE_ACCESS_READ
WR = x.OPEN4_SHARE_ACCESS_WRITE
BYPASS = x.stateid4(0xFFFFFFFF, b"\xff" * 12)


def wait_for(cond, timeout=30.0, what="condition"):
    """Wait for a condition the server reaches on its own clock (lease expiry, deadlines)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def staged_files(export):
    d = export / ".nfsd" / "staging"
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".data")) if d.exists() else []


@pytest.fixture
def server(leased_server):
    return leased_server(90)


def mount(server, **kw):
    return NfsClient(*server.address, **kw).mount()


@pytest.fixture
def a(server):
    c = mount(server)
    yield c
    c.close()


@pytest.fixture
def b(server):
    c = mount(server)
    yield c
    c.close()


def status(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except NfsError as e:
        return e.status
    return x.NFS4_OK


# ---------------------------------------------------------------- rule 1: staging
def test_rule1_only_the_creating_open_writes_or_publishes(export, a, b):
    root = a.root()
    fh, sid, _ = a.open(root, b"f", create=True)
    a.write(fh, sid, 0, b"mine")
    # Another client cannot use the stateid, to write or to close (for it the file does not
    # exist yet: STALE at PUTFH; BAD_STATEID if it could name the file).
    assert status(b.write, fh, sid, 0, b"theirs") in (x.NFS4ERR_STALE, x.NFS4ERR_BAD_STATEID)
    assert status(b.close_file, fh, sid) in (x.NFS4ERR_STALE, x.NFS4ERR_BAD_STATEID)
    # Special stateids cannot write at all.
    assert status(a.write, fh, ANON, 0, b"anon") == x.NFS4ERR_OPENMODE
    assert status(a.write, fh, BYPASS, 0, b"bypass") == x.NFS4ERR_OPENMODE
    # Another open-owner of the same client with a read-only open cannot write.
    rsid = a.open_fh(fh, RD, owner=b"reader")
    assert status(a.write, fh, rsid, 0, b"reader") == x.NFS4ERR_OPENMODE
    a.close_file(fh, rsid)  # closing another open publishes nothing
    assert not (export / "f").exists()
    a.close_file(fh, sid)
    assert (export / "f").read_bytes() == b"mine"


def test_rule1_other_clients_stateid_on_a_published_file_is_bad(export, a, b):
    (export / "shared").write_bytes(b"published")
    fh, sid, _ = a.open(a.root(), b"shared", access=RW)
    a.write(fh, sid, 0, b"PUB")
    assert status(b.write, fh, sid, 0, b"xx") == x.NFS4ERR_BAD_STATEID
    assert status(b.close_file, fh, sid) == x.NFS4ERR_BAD_STATEID
    assert (export / "shared").read_bytes() == b"published"
    a.close_file(fh, sid)
    assert (export / "shared").read_bytes() == b"PUBlished"


# ---------------------------------------------------------------- rule 2: visibility
def test_rule2_file_under_construction_is_invisible_to_others(export, a, b):
    root_a, root_b = a.root(), b.root()
    fh, sid, _ = a.open(root_a, b"new", create=True)
    a.write(fh, sid, 0, b"12345")
    # The creating client sees it, with its staged size.
    assert a.lookup("new") == fh
    assert a.getattr(fh)[x.FATTR4_SIZE] == 5
    assert b"new" in [n for n, _, _ in a.readdir(root_a)]
    # Nobody else does, and it is not in the directory on disk.
    assert status(b.lookup, "new") == x.NFS4ERR_NOENT
    assert b"new" not in [n for n, _, _ in b.readdir(root_b)]
    assert not (export / "new").exists()
    a.close_file(fh, sid)
    assert b.lookup("new") == fh
    data = b.read_all(fh)
    assert data == b"12345"


@pytest.mark.parametrize("how", [x.GUARDED4, x.EXCLUSIVE4, x.EXCLUSIVE4_1])
def test_rule2_exclusive_creates_reserve_the_name_across_clients(export, a, b, how):
    fh, sid, _ = a.open(a.root(), b"lock", create=True, how=how, verifier=b"verifA__")
    e = status(b.open, b.root(), b"lock", create=True, how=how, verifier=b"verifB__")
    assert e == x.NFS4ERR_EXIST
    a.close_file(fh, sid)
    assert (export / "lock").exists()
    assert status(b.open, b.root(), b"lock", create=True, how=how, verifier=b"verifB__") == \
        x.NFS4ERR_EXIST


def test_rule2_unchecked_creates_by_two_clients_last_close_wins(export, a, b):
    fa, sa, _ = a.open(a.root(), b"u", create=True)
    fb, sb, _ = b.open(b.root(), b"u", create=True)
    a.write(fa, sa, 0, b"from a")
    b.write(fb, sb, 0, b"from b, longer")
    a.close_file(fa, sa)
    assert (export / "u").read_bytes() == b"from a"
    b.close_file(fb, sb)
    assert (export / "u").read_bytes() == b"from b, longer"


# ---------------------------------------------------------------- rule 3: done
def test_rule3_close_publishes_whole_file_at_once(export, a, b):
    fh, sid, _ = a.open(a.root(), b"big", create=True)
    chunk = os.urandom(256 * 1024)
    for i in range(8):
        a.write(fh, sid, i * len(chunk), chunk)
        assert not (export / "big").exists()
    a.commit(fh)
    assert not (export / "big").exists()
    a.close_file(fh, sid)
    assert (export / "big").read_bytes() == chunk * 8
    assert staged_files(export) == []


def test_rule3_open_downgrade_dropping_write_publishes(export, a, b):
    fh, sid, _ = a.open(a.root(), b"d", create=True)
    a.write(fh, sid, 0, b"downgraded")
    _, sid, _ = a.open(a.root(), b"d", access=RD)  # a read-only open too: READ to go back to
    r = a.call([op("PUTFH", fh), op("OPEN_DOWNGRADE", sid, 0, RD, x.OPEN4_SHARE_DENY_NONE)])
    assert (export / "d").read_bytes() == b"downgraded"
    sid2 = r[-1].value.open_stateid
    assert b.read_all(b.lookup("d")) == b"downgraded"
    assert status(a.write, fh, sid2, 0, b"more") == x.NFS4ERR_OPENMODE
    a.close_file(fh, sid2)
    assert (export / "d").read_bytes() == b"downgraded"


def test_rule3_write_open_that_changes_nothing_publishes_nothing(export, a):
    (export / "same").write_bytes(b"untouched")
    before = os.stat(export / "same")
    fh, sid, _ = a.open(a.root(), b"same", access=RW)
    a.close_file(fh, sid)
    after = os.stat(export / "same")
    assert (after.st_ino, after.st_ctime_ns) == (before.st_ino, before.st_ctime_ns)
    assert staged_files(export) == []


def test_rule3_new_empty_file_is_published(export, a):
    fh, sid, _ = a.open(a.root(), b"touched", create=True)
    a.close_file(fh, sid)
    assert (export / "touched").read_bytes() == b""


def test_rule3_close_answers_after_a_directory_fsync_in_a_worker_thread(export, reactor_thread):
    """--inline-fsync-ms 0 (as on a slow disk): every publish's directory fsync runs in a
    worker thread and CLOSE / OPEN_DOWNGRADE answer after it; clients writing at once all
    publish, and NFSv4.0's seqid replay of such a CLOSE gets its answer again."""
    srv = InProcessServer(reactor_thread, export, inline_fsync=0.0).start()
    try:
        clients = [NfsClient(*srv.address, minor=m).mount() for m in (1, 1, 1, 0)]
        errors = []

        def write_files(k, c):
            try:
                for i in range(10):
                    c.create_file(c.root(), b"c%d-%d" % (k, i), b"data %d %d" % (k, i))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
        threads = [threading.Thread(target=write_files, args=(k, c))
                   for k, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors and not any(t.is_alive() for t in threads)
        for k in range(len(clients)):
            for i in range(10):
                assert (export / ("c%d-%d" % (k, i))).read_bytes() == b"data %d %d" % (k, i)
        assert staged_files(export) == []

        a = clients[0]  # OPEN_DOWNGRADE that drops write access publishes
        fh, sid, _ = a.open(a.root(), b"d", create=True)
        a.write(fh, sid, 0, b"downgraded")
        _, sid, _ = a.open(a.root(), b"d", access=RD)
        r = a.call([op("PUTFH", fh), op("OPEN_DOWNGRADE", sid, 0, RD, x.OPEN4_SHARE_DENY_NONE)])
        assert (export / "d").read_bytes() == b"downgraded"
        a.close_file(fh, r[-1].value.open_stateid)

        c40 = clients[3]  # 4.0: the CLOSE's answer is kept for its seqid once it is sent
        fh, sid, _ = c40.open(c40.root(), b"v40", create=True)
        c40.write(fh, sid, 0, b"four-oh", stable=x.FILE_SYNC4)
        seqid = c40.next_seqid(b"open-owner")
        first = c40.compound([op("PUTFH", fh), op("CLOSE", seqid, sid)], minor=0)
        again = c40.compound([op("PUTFH", fh), op("CLOSE", seqid, sid)], minor=0)
        assert first.status == again.status == x.NFS4_OK
        assert again.resarray[1].value.value == first.resarray[1].value.value
        assert (export / "v40").read_bytes() == b"four-oh"
        for c in clients:
            c.close()
    finally:
        srv.stop()
    srv.check()


# ---------------------------------------------------------------- rule 4: copy-on-write
def test_rule4_readers_see_published_version_until_close(export, a, b):
    (export / "doc").write_bytes(b"version one")
    fh, sid, _ = a.open(a.root(), b"doc", access=RW)
    a.write(fh, sid, 8, b"TWO, partially written")
    fb = b.lookup("doc")
    assert b.read_all(fb) == b"version one"
    assert b.getattr(fb)[x.FATTR4_SIZE] == 11
    assert a.read(fh, sid)[0] == b"version TWO, partially written"
    a.close_file(fh, sid)
    assert b.read_all(fb) == b"version TWO, partially written"
    assert (export / "doc").read_bytes() == b"version TWO, partially written"
    # The handle and fileid stay the same across versions.
    assert b.lookup("doc") == fb


def test_rule4_concurrent_writers_do_not_merge_last_close_wins(export, a, b):
    (export / "w").write_bytes(b"0123456789")
    fa, sa, _ = a.open(a.root(), b"w", access=RW)
    fb, sb, _ = b.open(b.root(), b"w", access=RW)
    a.write(fa, sa, 0, b"AA")
    b.write(fb, sb, 8, b"BB")
    b.close_file(fb, sb)
    assert (export / "w").read_bytes() == b"01234567BB"
    a.close_file(fa, sa)
    assert (export / "w").read_bytes() == b"AA23456789"


def test_rule4_opening_a_large_file_does_not_copy_it(export, a):
    big = export / "large"
    with open(big, "wb") as f:
        f.write(b"head")
        f.seek(512 * 1024 * 1024)
        f.write(b"tail")
    fh, sid, _ = a.open(a.root(), b"large", access=RW)
    a.write(fh, sid, 4096, b"changed")
    staged = export / ".nfsd" / "staging"
    used = sum(os.stat(p).st_blocks * 512 for p in staged.iterdir())
    assert used < 4 * 1024 * 1024, f"staging uses {used} bytes"
    assert a.read(fh, sid, 0, 4)[0] == b"head"
    a.close_file(fh, sid)
    with open(big, "rb") as f:
        assert f.read(4) == b"head"
        f.seek(4096)
        assert f.read(7) == b"changed"
        f.seek(512 * 1024 * 1024)
        assert f.read() == b"tail"
    assert os.path.getsize(big) == 512 * 1024 * 1024 + 4


def test_rule4_truncate_without_open_publishes_a_new_version_at_once(export, a):
    (export / "t").write_bytes(b"0123456789")
    ino = os.stat(export / "t").st_ino
    fh = a.lookup("t")
    a.setattr(fh, {x.FATTR4_SIZE: 4})
    assert (export / "t").read_bytes() == b"0123"
    assert os.stat(export / "t").st_ino != ino  # a new version, not an in-place change
    assert a.getattr(fh)[x.FATTR4_SIZE] == 4
    a.setattr(fh, {x.FATTR4_SIZE: 0})
    assert (export / "t").read_bytes() == b""


def test_rule4_truncating_open_starts_empty(export, a, b):
    (export / "tr").write_bytes(b"old content")
    fh, sid, ok = a.open(a.root(), b"tr", create=True, attrs={x.FATTR4_SIZE: 0})
    assert b.read_all(b.lookup("tr")) == b"old content"
    a.write(fh, sid, 0, b"new")
    a.close_file(fh, sid)
    assert (export / "tr").read_bytes() == b"new"


# ---------------------------------------------------------------- rule 5: namespace
def test_rule5_rename_moves_the_publication_target(export, a):
    d = a.mkdir(a.root(), b"dir")
    fh, sid, _ = a.open(a.root(), b"draft", create=True)
    a.write(fh, sid, 0, b"text")
    a.rename(a.root(), b"draft", d, b"final")
    assert a.lookup("dir/final") == fh
    a.close_file(fh, sid)
    assert (export / "dir" / "final").read_bytes() == b"text"
    assert not (export / "draft").exists()


def test_rule5_remove_means_close_publishes_nothing(export, a):
    fh, sid, _ = a.open(a.root(), b"gone", create=True)
    a.write(fh, sid, 0, b"text")
    a.remove(a.root(), b"gone")
    assert status(a.lookup, "gone") == x.NFS4ERR_NOENT
    a.close_file(fh, sid)
    assert not (export / "gone").exists()
    assert staged_files(export) == []


def test_rule5_open_file_stays_readable_after_remove_and_rename_over(export, a, b):
    (export / "p").write_bytes(b"pinned content")
    (export / "q").write_bytes(b"replacement")
    fh, sid, ok = a.open(a.root(), b"p", access=RD)
    assert ok.rflags & x.OPEN4_RESULT_PRESERVE_UNLINKED
    b.remove(b.root(), b"p")
    assert a.read(fh, sid)[0] == b"pinned content"
    assert a.getattr(fh)[x.FATTR4_NUMLINKS] == 0
    a.close_file(fh, sid)
    (export / "p").write_bytes(b"second")
    fh, sid, _ = a.open(a.root(), b"p", access=RD)
    b.rename(b.root(), b"q", b.root(), b"p")
    assert a.read(fh, sid)[0] == b"second"
    a.close_file(fh, sid)
    assert (export / "p").read_bytes() == b"replacement"


def test_rule5_metadata_and_links_change_in_place(export, a):
    (export / "m").write_bytes(b"meta")
    ino = os.stat(export / "m").st_ino
    fh = a.lookup("m")
    a.setattr(fh, {x.FATTR4_MODE: 0o600})
    a.setattr(fh, {x.FATTR4_OWNER: b"123", x.FATTR4_OWNER_GROUP: b"456"})
    a.setattr(fh, {x.FATTR4_TIME_MODIFY_SET: x.settime4(x.SET_TO_CLIENT_TIME4, x.nfstime4(1000, 5))})
    st = os.stat(export / "m")
    assert (st.st_ino, st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_mtime_ns) == \
        (ino, 0o600, 123, 456, 1000 * 10**9 + 5)
    a.link(fh, a.root(), b"m2")
    assert os.stat(export / "m2").st_ino == ino and os.stat(export / "m").st_nlink == 2


# ---------------------------------------------------------------- rule 6: crash
def test_rule6_reboot_with_new_verifier_discards_unpublished_files(export, server, a, b):
    fh, sid, _ = a.open(a.root(), b"crashed", create=True)
    a.write(fh, sid, 0, b"half", stable=x.FILE_SYNC4)
    assert len(staged_files(export)) == 1
    rebooted = NfsClient(*server.address, owner=a.owner)  # same owner, new boot verifier
    rebooted.exchange_id()
    assert staged_files(export) == []
    assert not (export / "crashed").exists()
    assert "discarded unpublished file" in server.text()
    rebooted.create_session()
    assert status(rebooted.lookup, "crashed") == x.NFS4ERR_NOENT
    assert status(b.lookup, "crashed") == x.NFS4ERR_NOENT


# ---------------------------------------------------------------- rule 7: silence
def test_rule7_lease_expiry_retires_and_the_same_client_resumes(export, leased_server):
    """End to end over sockets, on the wall clock (a 2 s lease). Every edge of rule 7 on a
    fake clock: tests/test_crash_and_lease.py."""
    server = leased_server(2)
    a = mount(server)
    mount(server)  # another client, silent too
    fh, sid, _ = a.open(a.root(), b"quiet", create=True)
    a.write(fh, sid, 0, b"first half, ", stable=x.FILE_SYNC4)
    # Stop renewing (any request with SEQUENCE would renew): the lease runs out.
    wait_for(lambda: f"of client {a.owner!r} retired" in server.text(), what="lease expiry")
    assert status(a.call, [op("PUTROOTFH")]) == x.NFS4ERR_BADSESSION
    assert len(staged_files(export)) == 1  # kept, with every acknowledged byte
    assert not (export / "quiet").exists()
    c = mount(server)  # the other lease ran out too; a fresh client
    assert status(c.lookup, "quiet") == x.NFS4ERR_NOENT
    # The same incarnation comes back and reopens by filehandle, as Linux does.
    a.exchange_id()
    a.create_session()
    a.call([op("RECLAIM_COMPLETE", False)])  # RFC 8881 18.51.3, as Linux sends it
    sid2 = a.open_fh(fh, RW)
    assert a.read(fh, sid2)[0] == b"first half, "
    a.write(fh, sid2, 12, b"second half")
    a.close_file(fh, sid2)
    assert (export / "quiet").read_bytes() == b"first half, second half"


# ---------------------------------------------------------------- rule 8: restart
def reestablish(c):
    c.reconnect()
    c.exchange_id()
    c.create_session()


def reclaim(c, fh, access=RW):
    claim = x.open_claim4(x.CLAIM_PREVIOUS, x.OPEN_DELEGATE_NONE)
    _, sid, _ = c.open(fh, b"", access=access, claim=claim)
    return sid


def test_rule8_kill9_restart_reclaim_and_finish(export):
    """End to end: `nfsd serve` killed with SIGKILL and started again on the same directory.
    Every edge of rule 8 on a fake clock: tests/test_restart_grace.py."""
    srv = ServerProcess(export, "--lease-time", "4", "--grace-time", "2").start()
    a = mount(srv)
    b = mount(srv)
    try:
        fh, sid, _ = a.open(a.root(), b"survivor", create=True)
        verf1 = a.write(fh, sid, 0, b"stable part|", stable=x.FILE_SYNC4).writeverf
        fb, sb, _ = b.open(b.root(), b"orphan", create=True)
        b.write(fb, sb, 0, b"nobody reclaims me", stable=x.FILE_SYNC4)
        srv.kill9()
        srv = ServerProcess(export, "--lease-time", "4", "--grace-time", "2", port=srv.port).start()
        # Old sessions and clientids are gone.
        a.reconnect()
        assert status(a.call, [op("PUTROOTFH")]) in (x.NFS4ERR_BADSESSION, x.NFS4ERR_STALE_CLIENTID)
        reestablish(a)
        # In grace, ordinary opens wait; reclaims work.
        assert status(a.open, a.root(), b"other", create=True) == x.NFS4ERR_GRACE
        sid2 = reclaim(a, fh)
        a.call([op("RECLAIM_COMPLETE", False)])
        w = a.write(fh, sid2, 12, b"after restart")
        assert w.writeverf != verf1  # unstable writes must be resent
        a.close_file(fh, sid2)
        assert (export / "survivor").read_bytes() == b"stable part|after restart"
        # The other client never came back: after grace its file is retired, not published.
        wait_for(lambda: "grace period over" in srv.text(), what="end of grace")
        assert not (export / "orphan").exists()
        assert len(staged_files(export)) == 1
        reestablish(b)  # the same incarnation can still resume it outside grace
        b.call([op("RECLAIM_COMPLETE", False)])
        sb2 = b.open_fh(fb, RW)
        b.close_file(fb, sb2)
        assert (export / "orphan").read_bytes() == b"nobody reclaims me"
    finally:
        a.close()
        b.close()
        srv.stop()


@pytest.mark.parametrize("inline", [True, False], ids=["fsync-on-the-event-loop",
                                                       "fsync-in-a-worker-thread"])
def test_rule3_a_failed_publish_fsync_answers_io_and_the_close_stands(
        reactor_thread, export, inline):
    """The directory fsync after a publish fails (EIO): CLOSE answers NFS4ERR_IO, the new
    file is published all the same (it was visible before the fsync) and the open is closed,
    whether the fsync ran at once or in a worker thread. The server goes on serving."""
    import errno

    from nfsd.exports import Options
    from nfsd.server import Config, build

    cfg = Config(directory=str(export), bind="127.0.0.1", port=0,
                 inline_fsync=3600.0 if inline else 0.0,
                 export_options=Options(rw=True, root_squash=False, secure=False))
    running = reactor_thread.call(build, cfg, reactor_thread.reactor)
    syncs = running.backends[0]._syncs
    c = NfsClient(*running.address).mount()
    try:
        root = c.root()
        fh, sid, _ = c.open(root, b"f", create=True)
        c.write(fh, sid, 0, b"data")  # UNSTABLE: the publish's own fdatasync makes it durable

        def eio(fd):
            raise OSError(errno.EIO, "injected")
        syncs._fsync = eio
        try:
            with pytest.raises(NfsError) as e:
                c.close_file(fh, sid)
            assert e.value.status == x.NFS4ERR_IO
        finally:
            syncs._fsync = os.fsync
        assert (export / "f").read_bytes() == b"data"  # published
        with pytest.raises(NfsError) as e:
            c.close_file(fh, sid)  # that CLOSE ended the open
        assert e.value.status == x.NFS4ERR_BAD_STATEID
        assert c.read(c.lookup("f"))[0] == b"data"
        c.create_file(root, b"g", b"more")
        assert (export / "g").read_bytes() == b"more"
    finally:
        c.close()
        reactor_thread.call(running.stop)
