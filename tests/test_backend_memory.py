"""MemoryBackend's own promises beyond the contract suite (tests/backend_contract/): power
loss, fencing of a superseded backend, the change counter and the injectable clock."""

from __future__ import annotations

import time

import pytest

from backend import interface as I
from backend.memory import MemoryBackend, MemoryDisk

V1, V2 = b"client-1", b"client-2"


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, now: int = 1_000_000_000):
        self.now = now

    def __call__(self) -> int:
        return self.now


def staged(b, dir, name, viewer=V1, record=None, exclusive=False):
    return b.create_staged(dir, name, viewer, 0o644, None, None, exclusive,
                           {} if record is None else record)


def published(b, dir, name, data):
    s = staged(b, dir, name)
    s.write(0, data)
    b.publish(s)
    return s.handle


# --------------------------------------------------------------------------- power loss
def test_power_loss_rolls_staging_objects_back_to_their_last_sync():
    b = MemoryBackend()
    r = b.root()
    p = published(b, r, b"pub", b"published is durable")
    synced = staged(b, r, b"synced", record={"n": 1})
    synced.write(0, b"durable")
    synced.sync()
    synced.write(7, b" but not this")
    synced.set_record({"n": 2})
    lost = staged(b, r, b"lost")
    lost.write(0, b"never synced")
    v = b.stage_version(p, V2, False, {"v": 1})
    v.write(0, b"PUBLISHED")
    v.sync()
    v.truncate(3)

    b.disk.power_loss()
    b2 = MemoryBackend(b.disk)
    got = {s.handle: s for s in b2.list_staged()}
    assert set(got) == {synced.handle, p}
    s = got[synced.handle]
    assert s.read(0, 100) == (b"durable", True) and s.record == {"n": 1}
    assert got[p].read(0, 100) == (b"PUBLISHED is durable", True) and got[p].dirty
    with pytest.raises(I.Stale):
        b2.getattr(lost.handle)
    with pytest.raises(I.NotFound):
        b2.lookup(r, b"lost", V1)
    assert b2.read(p, 0, 100) == (b"published is durable", True)
    b2.publish(s)
    assert b2.read(synced.handle, 0, 100) == (b"durable", True)
    again = staged(b2, r, b"lost")  # the lost object's id is not handed out again
    assert again.handle != lost.handle


def test_power_loss_brings_back_the_transient_name_as_it_was_synced():
    b = MemoryBackend()
    r = b.root()
    d = b.mkdir(r, b"d", 0o755, None, None)
    s = staged(b, r, b"a")
    s.sync()
    b.rename(r, b"a", d, b"b", V1)  # not synced: a power loss forgets it
    t = staged(b, r, b"t")
    t.sync()
    b.remove(r, b"t", V1)  # likewise
    b.disk.power_loss()
    b2 = MemoryBackend(b.disk)
    assert b2.lookup(r, b"a", V1) == s.handle and b2.lookup(r, b"t", V1) == t.handle
    with pytest.raises(I.NotFound):
        b2.lookup(d, b"b", V1)
    for x in b2.list_staged():
        b2.publish(x)
    assert sorted(e.name for e in b2.readdir(r, 0)) == [b"a", b"d", b"t"]


def test_a_power_loss_can_come_twice():
    b = MemoryBackend()
    s = staged(b, b.root(), b"f")
    s.write(0, b"one")
    s.sync()
    s.write(0, b"two")
    b.disk.power_loss()
    b2 = MemoryBackend(b.disk)
    (s2,) = b2.list_staged()
    s2.write(0, b"TWO")
    b2.disk.power_loss()
    (s3,) = MemoryBackend(b.disk).list_staged()
    assert s3.read(0, 10) == (b"one", True)


def test_a_restart_keeps_the_record_as_last_written_not_as_last_set():
    """kill -9: the record is the one written at creation or by the last sync(); every
    written byte is still there (the page cache survives a killed process)."""
    b = MemoryBackend()
    s = staged(b, b.root(), b"f", record={"k": "created"})
    s.write(0, b"data")
    s.set_record({"k": "set, not synced"})
    (n,) = MemoryBackend(b.disk).list_staged()
    assert n.record == {"k": "created"} and n.read(0, 10) == (b"data", True)
    n.record["k"] = "synced"
    n.sync()
    (m,) = MemoryBackend(b.disk).list_staged()
    assert m.record == {"k": "synced"} and m.record is not n.record


# --------------------------------------------------------------------------- fencing
def test_a_superseded_backend_does_nothing_more():
    b = MemoryBackend()
    r = b.root()
    f = published(b, r, b"f", b"x")
    s = staged(b, r, b"t")
    pin = b.open_version(f)
    b2 = MemoryBackend(b.disk)  # the server restarted after kill -9
    for op in (lambda: b.getattr(r), lambda: b.mkdir(r, b"d", 0o755, None, None),
               lambda: s.write(0, b"late"), lambda: b.publish(s), lambda: pin.read(0, 1),
               lambda: list(b.readdir(r, 0)), lambda: b.list_staged()):
        with pytest.raises(I.IOFailure):
            op()
    (s2,) = b2.list_staged()
    assert s2.read(0, 10) == (b"", True) and b2.read(f, 0, 10) == (b"x", True)
    b2.close()
    with pytest.raises(I.IOFailure):
        b2.getattr(r)
    b3 = MemoryBackend(b.disk)
    b3.disk.power_loss()
    with pytest.raises(I.IOFailure):
        b3.getattr(r)
    assert MemoryBackend(b.disk).read(f, 0, 10) == (b"x", True)


def test_a_staging_object_of_another_backend_is_refused():
    a, b = MemoryBackend(), MemoryBackend()
    s = staged(a, a.root(), b"f")
    with pytest.raises(I.Invalid):
        b.publish(s)
    a.publish(s)


# --------------------------------------------------------------------------- identity
def test_handles_carry_the_disks_identity_and_an_id_never_used_again():
    disk = MemoryDisk(identity=b"IDENTITY")
    b = MemoryBackend(disk)
    r = b.root()
    assert r[:8] == b"IDENTITY" and len(r) == 16
    assert b.fsid() == (int.from_bytes(b"IDEN", "big"), int.from_bytes(b"TITY", "big"))
    seen = {r}
    for _ in range(3):
        h = b.mkdir(r, b"d", 0o755, None, None)
        assert h not in seen
        seen.add(h)
        b.remove(r, b"d")
    other = MemoryBackend()
    assert other.root()[:8] != r[:8] and other.fsid() != b.fsid()
    with pytest.raises(I.Stale):
        b.getattr(other.root())
    with pytest.raises(ValueError):
        MemoryDisk(identity=b"short")


def test_owner_and_root_mode_of_a_new_disk():
    b = MemoryBackend(owner=(1000, 100), root_mode=0o700)
    a = b.getattr(b.root())
    assert (a.mode, a.uid, a.gid, a.nlink) == (0o700, 1000, 100, 2)
    d = b.getattr(b.mkdir(b.root(), b"d", 0o755, None, 7))
    assert (d.uid, d.gid) == (1000, 7)
    b2 = MemoryBackend(b.disk, owner=(5, 5), root_mode=0o755)  # an existing disk keeps its root
    assert b2.getattr(b.root()).mode == 0o700


# --------------------------------------------------------------------------- time and change
def test_times_come_from_the_clock_and_change_from_one_counter():
    clock = Clock(100)
    b = MemoryBackend(clock_ns=clock)
    r = b.root()
    d = b.mkdir(r, b"d", 0o755, None, None)
    a = b.getattr(d)
    assert (a.atime_ns, a.mtime_ns, a.ctime_ns) == (100, 100, 100)
    # the clock stands still; each change (of any object) takes the next counter value
    seq = [b.getattr(r).change]  # mkdir changed the root
    f = published(b, d, b"f", b"x")
    seq.append(b.getattr(d).change)
    b.setattr(f, I.SetAttrs(mode=0o600))
    seq.append(b.getattr(f).change)
    b.setattr(d, I.SetAttrs(mode=0o700))
    seq.append(b.getattr(d).change)
    assert seq == sorted(set(seq))
    clock.now = 250
    b.setattr(f, I.SetAttrs(mode=0o640))
    a = b.getattr(f)
    assert (a.ctime_ns, a.mtime_ns) == (250, 100)  # metadata: ctime only


def test_a_new_name_moves_its_directorys_times_and_change_at_once():
    clock = Clock(100)
    b = MemoryBackend(clock_ns=clock)
    d = b.mkdir(b.root(), b"d", 0o755, None, None)
    before = b.getattr(d)
    clock.now = 200
    s = staged(b, d, b"f")
    a = b.getattr(d)
    assert (a.mtime_ns, a.ctime_ns) == (200, 200) and a.change > before.change
    clock.now = 300
    s.write(0, b"x")
    assert b.getattr(d) == a  # writing changes the file, not the directory
    assert (s.attrs().mtime_ns, s.attrs().ctime_ns) == (300, 300)
    clock.now = 400
    b.publish(s)
    p = b.getattr(d)
    assert (p.mtime_ns, p.ctime_ns) == (400, 400) and p.change > a.change


# --------------------------------------------------------------------------- cookies and space
def test_cookies_are_handed_out_in_order_and_kept_by_a_name():
    b = MemoryBackend()
    r = b.root()
    for n in (b"a", b"b", b"c"):
        published(b, r, n, b"")
    cookies = {e.name: e.cookie for e in b.readdir(r, 0)}
    assert cookies[b"a"] < cookies[b"b"] < cookies[b"c"]
    published(b, r, b"b", b"replaced")  # the name stays where it was
    b.rename(r, b"a", r, b"c")  # ... also when replaced by a rename
    assert {e.name: e.cookie for e in b.readdir(r, 0)} == {b"b": cookies[b"b"],
                                                         b"c": cookies[b"c"]}
    s = staged(b, r, b"new")
    mine = {e.name: e.cookie for e in b.readdir(r, 0, V1)}[b"new"]
    assert mine > cookies[b"c"]
    b.publish(s)
    assert {e.name: e.cookie for e in b.readdir(r, 0, V2)}[b"new"] == mine


def test_space_used_is_whole_pages_written_or_reserved():
    b = MemoryBackend()
    s = staged(b, b.root(), b"f")
    s.write(0, b"x")
    assert s.attrs().used == 4096
    s.allocate(8192, 8192)
    assert s.attrs().used == 3 * 4096 and s.size() == 16384
    assert s.seek(4096, I.Content.DATA) == (16384, True)  # reserved pages are holes
    s.deallocate(0, 16384)
    assert s.attrs().used == 0 and s.read(0, 2) == (b"\0\0", False)


def test_statfs_and_nowait_reads():
    b = MemoryBackend()
    f = published(b, b.root(), b"f", b"abc")
    st = b.statfs(b.root())
    assert st.xattrs and st.maxname == I.NAME_MAX
    st.files_free = 0  # the caller's copy
    assert b.statfs(f).files_free > 0
    assert b.read(f, 0, 10, nowait=True) == (b"abc", True)  # never WouldBlock
    assert b.publish(b.stage_version(f, V1, True, {}), sync=False) is None


# --------------------------------------------------------------------------- under the server
def test_the_nfs_server_runs_on_it(reactor_thread):
    """The protocol layer over a MemoryBackend, two clients over sockets: what the later
    state-machine tests build on (16-byte handles route to the export, viewers hold)."""
    from nfsd.client import NfsClient, NfsError
    from nfsd.exports import ExportTable, Options, quick_export
    from nfsd.rpc.server import RpcFactory
    from nfsd.server import NfsServer
    from nfsd.state.store import StateStore
    from nfsd.xdr import nfs4 as x

    backend = MemoryBackend()
    store = StateStore(lease_time=5, clock=reactor_thread.reactor.seconds)
    store.start_grace(set())
    export = quick_export("/", backend, ["*"], Options(rw=True, root_squash=False, secure=False))
    server = NfsServer(ExportTable([export], time.time_ns()), store,
                       reactor_thread.reactor)
    port = reactor_thread.listen(RpcFactory({100003: server}, reactor=reactor_thread.reactor))
    a = NfsClient("127.0.0.1", port).mount()
    b = NfsClient("127.0.0.1", port).mount()
    try:
        fh, sid, _ = a.open(a.root(), b"f", create=True)
        a.write(fh, sid, 0, b"hello")
        assert a.lookup("f") == fh and a.getattr(fh)[x.FATTR4_SIZE] == 5
        with pytest.raises(NfsError) as e:
            b.lookup("f")
        assert e.value.status == x.NFS4ERR_NOENT
        a.close_file(fh, sid)
        assert b.read_all(b.lookup("f")) == b"hello"
        assert backend.read(fh[1:], 0, 10) == (b"hello", True)  # fh[0]: the wire format byte
    finally:
        a.close()
        b.close()
        reactor_thread.stop_listening(port)
