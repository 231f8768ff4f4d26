"""A restart over the same storage: what was published is there, unfinished staging objects
come back from `list_staged()` with their synced records and every byte written."""

from __future__ import annotations

import pytest

from backend import interface as I

from .util import V1, V2, mkdir, names, new_file, read_all, staged


def test_published_objects_survive(backend, reopen):
    r = backend.root()
    d = mkdir(backend, r, b"d", 0o751)
    f = new_file(backend, d, b"f", b"content", mode=0o640)
    backend.link(f, r, b"hard")
    ln = backend.symlink(d, b"l", b"f", 0o777, None, None)
    fifo = backend.mknod(r, b"p", I.Kind.FIFO, (0, 0), 0o600, None, None)
    backend.setattr(f, I.SetAttrs(mtime_ns=1_234_567_890_000_000_000))
    before = {h: backend.getattr(h) for h in (d, f, ln, fifo)}
    b2 = reopen(backend)
    for h, a in before.items():
        got = b2.getattr(h)
        assert (got.kind, got.mode, got.nlink, got.size, got.fileid, got.mtime_ns) == \
            (a.kind, a.mode, a.nlink, a.size, a.fileid, a.mtime_ns)
    assert read_all(b2, f) == b"content" and b2.readlink(ln) == b"f"
    assert b2.lookup(r, b"hard") == f and names(b2, r) == [b"d", b"hard", b"p"]
    assert b2.list_staged() == []


def test_unfinished_staging_objects_come_back_with_their_records(backend, reopen):
    r = backend.root()
    s = staged(backend, r, b"new", V1, exclusive=True, record={"client": "c1", "seq": 3},
               verifier=b"VVVVVVVV", mode=0o600)
    s.write(0, b"synced data")
    s.set_record({"client": "c1", "seq": 4})
    s.sync()
    f = new_file(backend, r, b"old", b"0123456789")
    v = backend.stage_version(f, V2, False, {"client": "c2"})
    v.write(2, b"ab")
    v.sync()
    v.record["lock"] = [1, 2]  # changed in place: sync() writes it all the same
    v.sync()
    ids = {s.handle: s.id, f: v.id}

    b2 = reopen(backend)
    assert b2.problems() == []  # every record was readable
    got = {x.handle: x for x in b2.list_staged()}
    assert set(got) == {s.handle, f}
    n, w = got[s.handle], got[f]
    assert {n.id, w.id} == {ids[s.handle], ids[f]} and n.id == ids[s.handle]
    assert n.backend is b2 and n.is_new and n.viewer == V1 and n.dirty
    assert n.record == {"client": "c1", "seq": 4}
    assert n.read(0, 100) == (b"synced data", True) and n.attrs().mode == 0o600
    assert not w.is_new and w.viewer == V2 and w.dirty
    assert w.record == {"client": "c2", "lock": [1, 2]}
    assert w.read(0, 100) == (b"01ab456789", True)
    # the file under construction is still private, and its exclusive reservation holds
    assert b2.lookup(r, b"new", V1) == s.handle
    with pytest.raises(I.NotFound):
        b2.lookup(r, b"new", V2)
    with pytest.raises(I.Exists):
        staged(b2, r, b"new", V2, exclusive=True)
    assert b2.create_verifier(s.handle) == b"VVVVVVVV"
    assert read_all(b2, f) == b"0123456789" and b2.getattr(f, V2).size == 10
    b2.publish(n)
    b2.publish(w)
    assert read_all(b2, s.handle) == b"synced data" and read_all(b2, f) == b"01ab456789"
    assert b2.list_staged() == []


def test_bytes_written_after_the_last_sync_survive_a_restart(backend, reopen):
    """A server crash (not a power loss) keeps the page cache: every acknowledged byte."""
    r = backend.root()
    s = staged(backend, r, b"f", record={"k": "v"})
    s.write(0, b"durable")
    s.sync()
    s.write(7, b" and cached")
    b2 = reopen(backend)
    (n,) = b2.list_staged()
    assert n.read(0, 100) == (b"durable and cached", True) and n.record == {"k": "v"}


def test_a_never_synced_file_under_construction_survives_a_restart(backend, reopen):
    r = backend.root()
    s = staged(backend, r, b"f", record={"made": 1})
    s.write(0, b"x")
    b2 = reopen(backend)
    (n,) = b2.list_staged()
    assert (n.handle, n.record, n.read(0, 10)) == (s.handle, {"made": 1}, (b"x", True))


def test_finished_staging_objects_do_not_come_back(backend, reopen):
    r = backend.root()
    p = staged(backend, r, b"published")
    p.sync()
    backend.publish(p)
    d = staged(backend, r, b"discarded")
    d.sync()
    backend.discard(d)
    v = backend.stage_version(p.handle, V1, False, {})
    v.sync()
    backend.publish(v)  # nothing written: finished all the same
    b2 = reopen(backend)
    assert b2.list_staged() == [] and names(b2, r) == [b"published"]
    with pytest.raises(I.Stale):
        b2.getattr(d.handle)


def test_a_removed_transient_name_stays_removed(backend, reopen):
    r = backend.root()
    s = staged(backend, r, b"t")
    s.write(0, b"x")
    s.sync()
    backend.remove(r, b"t", V1)
    b2 = reopen(backend)
    staged_now = b2.list_staged()
    with pytest.raises(I.NotFound):
        b2.lookup(r, b"t", V1)
    for x in staged_now:  # (a backend may keep it until publish says Gone)
        with pytest.raises(I.Gone):
            b2.publish(x)
    assert b2.list_staged() == [] and names(b2, r, V1) == []


def test_a_renamed_transient_name_keeps_its_new_target(backend, reopen):
    r = backend.root()
    d = mkdir(backend, r, b"d")
    s = staged(backend, r, b"tmp")
    s.write(0, b"x")
    backend.rename(r, b"tmp", d, b"final", V1)
    s.sync()
    b2 = reopen(backend)
    (n,) = b2.list_staged()
    assert b2.lookup(d, b"final", V1) == s.handle
    b2.publish(n)
    assert b2.lookup(d, b"final") == s.handle and names(b2, r) == [b"d"]


def test_a_version_of_a_file_removed_before_the_restart_is_gone(backend, reopen):
    r = backend.root()
    f = new_file(backend, r, b"f", b"x")
    v = backend.stage_version(f, V1, False, {})
    v.write(0, b"y")
    v.sync()
    backend.remove(r, b"f")
    b2 = reopen(backend)
    for x in b2.list_staged():
        with pytest.raises(I.Gone):
            b2.publish(x)
    assert b2.list_staged() == [] and names(b2, r) == []
