"""LocalBackend on real temporary directories (no mocks)."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from backend import interface as I
from backend import local
from backend.local import LocalBackend, cookie_of

V1, V2 = b"client-1", b"client-2"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def export(tmp_path):
    return tmp_path / "export"


@pytest.fixture
def mk(export):
    """Open a LocalBackend on `export` (kwargs passed on); all are closed at the end."""
    opened = []

    def make(**kw):
        b = LocalBackend(export, **kw)
        opened.append(b)
        return b

    yield make
    for b in opened:
        b.close()


@pytest.fixture
def b(mk):
    return mk()


def new_file(b, dir, name, data=b"", viewer=V1):
    s = b.create_staged(dir, name, viewer, 0o644, os.getuid(), os.getgid(), False, {})
    if data:
        s.write(0, data)
    b.publish(s)
    return s.handle


def read_all(b, h):
    out, off = b"", 0
    while True:
        data, eof = b.read(h, off, 1 << 20)
        out += data
        off += len(data)
        if eof:
            return out


def names(b, dir, viewer=None):
    return [e.name for e in b.readdir(dir, 0, viewer)]


# --------------------------------------------------------------------------- construction
def test_creates_dirs_and_rejects_state_dir_on_other_fs(tmp_path):
    b = LocalBackend(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b" / ".nfsd" / "handles.db").exists()
    b.close()
    if os.path.isdir("/dev/shm") and os.stat("/dev/shm").st_dev != os.stat(tmp_path).st_dev:
        with pytest.raises(ValueError, match="same file system"):
            LocalBackend(tmp_path / "x", state_dir=f"/dev/shm/nfsd-test-{os.getpid()}")
        assert not os.path.exists(f"/dev/shm/nfsd-test-{os.getpid()}")


def test_one_backend_per_state_dir(export, mk):
    mk()
    with pytest.raises(RuntimeError, match="in use"):
        LocalBackend(export)


def test_explicit_state_dir_outside_export(tmp_path):
    b = LocalBackend(tmp_path / "e", state_dir=tmp_path / "state")
    h = new_file(b, b.root(), b"f", b"x")
    assert names(b, b.root()) == [b"f"]
    b.close()
    b = LocalBackend(tmp_path / "e", state_dir=tmp_path / "state")
    assert read_all(b, h) == b"x"
    b.close()
    b = LocalBackend(tmp_path / "e", state_dir=tmp_path / "other-state")
    with pytest.raises(I.Stale):  # handles of another state dir are never aliases
        b.getattr(h)
    b.close()


# --------------------------------------------------------------------------- handles
def test_handles_survive_restart(mk, b):
    r = b.root()
    d = b.mkdir(r, b"d", 0o755, None, None)
    f = new_file(b, d, b"f", b"data")
    fid = b.getattr(f).fileid
    assert len(f) <= I.HANDLE_MAX
    b.close()
    b2 = mk()
    assert b2.root() == r
    assert b2.lookup(r, b"d") == d
    assert b2.lookup(d, b"f") == f
    assert b2.getattr(f).fileid == fid
    assert read_all(b2, f) == b"data"
    assert b2.parent(f) == d and b2.parent(d) == r and b2.parent(r) == r


def test_handles_after_restart_resolve_without_lookup(mk, b):
    """Deep handle resolved cold (empty caches) through the hints alone."""
    h = b.root()
    chain = []
    for i in range(6):
        h = b.mkdir(h, b"d%d" % i, 0o755, None, None)
        chain.append(h)
    f = new_file(b, h, b"leaf", b"deep")
    b.close()
    b2 = mk(node_cache=16, dir_fds=4)
    assert read_all(b2, f) == b"deep"
    assert b2.getattr(chain[2]).kind == I.Kind.DIR
    assert b2.parent(f) == chain[-1]


def test_handle_survives_rename(b, export):
    r = b.root()
    d1 = b.mkdir(r, b"d1", 0o755, None, None)
    d2 = b.mkdir(r, b"d2", 0o755, None, None)
    f = new_file(b, d1, b"f", b"x")
    b.rename(d1, b"f", d2, b"g")
    assert b.lookup(d2, b"g") == f
    assert b.parent(f) == d2
    with pytest.raises(I.NotFound):
        b.lookup(d1, b"f")
    b.rename(r, b"d2", d1, b"sub")  # directory moved: its handle and its children keep working
    assert b.lookup(d1, b"sub") == d2
    assert read_all(b, f) == b"x"
    assert b.parent(d2) == d1


def test_handles_survive_rename_and_restart(mk, b):
    r = b.root()
    d = b.mkdir(r, b"d", 0o755, None, None)
    f = new_file(b, d, b"f", b"x")
    b.rename(d, b"f", r, b"moved")
    b.rename(r, b"d", r, b"d-renamed")
    b.close()
    b2 = mk()
    assert read_all(b2, f) == b"x"
    assert b2.getattr(d).kind == I.Kind.DIR
    assert b2.lookup(r, b"moved") == f


def test_stale_after_delete(b, export):
    r = b.root()
    f = new_file(b, r, b"f", b"x")
    g = new_file(b, r, b"g", b"y")
    d = b.mkdir(r, b"d", 0o755, None, None)
    b.remove(r, b"f")
    with pytest.raises(I.Stale):
        b.getattr(f)
    with pytest.raises(I.Stale):
        b.read(f, 0, 10)
    os.unlink(export / "g")  # by a local program
    with pytest.raises(I.Stale):
        b.getattr(g)
    os.rmdir(export / "d")
    with pytest.raises(I.Stale):
        b.getattr(d)
    with pytest.raises(I.Stale):
        b.lookup(d, b"x")
    d = b.mkdir(r, b"d2", 0o755, None, None)
    b.getattr(d)
    os.rmdir(export / "d2")  # its fd is cached: operations in it still say Stale
    for op in (lambda: b.mkdir(d, b"x", 0o755, None, None),
               lambda: b.create_staged(d, b"x", V1, 0o644, None, None, False, {}),
               lambda: b.lookup(d, b"x"), lambda: list(b.readdir(d, 0)), lambda: b.parent(d)):
        with pytest.raises(I.Stale):
            op()


def test_no_alias_after_recreate_with_reused_inode(b, export):
    r = b.root()
    for how in ("backend", "local"):
        reused = False
        for _ in range(200):
            (export / "f").write_bytes(b"old")
            h = b.lookup(r, b"f")
            ino = os.stat(export / "f").st_ino
            if how == "backend":
                b.remove(r, b"f")
            else:
                os.unlink(export / "f")
            (export / "f").write_bytes(b"new")
            h2 = b.lookup(r, b"f")
            assert h2 != h
            with pytest.raises(I.Stale):
                b.getattr(h)
            reused = os.stat(export / "f").st_ino == ino
            os.unlink(export / "f")
            if reused:
                break
        assert reused, "the file system never re-used an inode number"


def test_deleted_rows_go_in_one_transaction_and_act_gone_before(tmp_path):
    """REMOVE does not write the handle database: the row is doomed in memory (every look-up
    skips it) and deleted with others in one transaction (at FLUSH_DELETES_AT rows, at
    maintenance and at close)."""
    from backend.handles import FLUSH_DELETES_AT, HandleDB

    path = str(tmp_path / "h.db")
    db = HandleDB(path)
    old = db.insert(7, 0, 1, 1, b"f")  # generation 0: a file system without birth times
    db.delete(old[0])
    assert db.get(old[0]) is None and db.find(7, 0) is None and db.find_many([(7, 0)]) == {}
    new = db.insert(7, 0, 1, 1, b"f")  # the inode number is used again at once
    assert db.find(7, 0) == new and db.find_many([(7, 0)]) == {(7, 0): new}

    def rows():
        with sqlite3.connect(path) as c:
            return [r[0] for r in c.execute("SELECT id FROM objects ORDER BY id")]

    assert rows() == [old[0], new[0]]  # not written yet
    db.flush_deletes()
    assert rows() == [new[0]]
    many = [db.insert(100 + i, 1, 1, 1, b"x%d" % i)[0] for i in range(FLUSH_DELETES_AT)]
    for oid in many[:-1]:
        db.delete(oid)
    assert len(rows()) == FLUSH_DELETES_AT + 1
    db.delete(many[-1])  # the FLUSH_DELETES_AT-th: one transaction for all
    assert rows() == [new[0]]
    db.delete(new[0])
    db.close()
    assert rows() == []


def test_remove_then_restart_leaves_no_row(mk, b, export):
    r = b.root()
    f = new_file(b, r, b"f", b"x")
    b.remove(r, b"f")
    with pytest.raises(I.Stale):
        b.getattr(f)
    b.maintenance()
    with sqlite3.connect(export / ".nfsd" / "handles.db") as c:
        assert c.execute("SELECT count(*) FROM objects WHERE id != 1").fetchone() == (0,)
    b.close()
    with pytest.raises(I.Stale):
        mk().getattr(f)


def test_hard_links_share_handle(b, export):
    r = b.root()
    d = b.mkdir(r, b"d", 0o755, None, None)
    f = new_file(b, r, b"a", b"x")
    b.link(f, d, b"b")
    assert b.lookup(d, b"b") == f
    assert b.getattr(f).nlink == 2
    os.link(export / "a", export / "c")  # local link: seen as the same object too
    assert b.lookup(r, b"c") == f
    b.remove(r, b"a")
    assert b.getattr(f).fileid == b.getattr(b.lookup(d, b"b")).fileid
    assert read_all(b, f) == b"x"
    with pytest.raises(I.IsDir):
        b.link(d, r, b"dirlink")
    with pytest.raises(I.Exists):
        b.link(f, r, b"c")


# --------------------------------------------------------------------------- namespace safety
def test_state_dir_hidden(b, export):
    r = b.root()
    assert (export / ".nfsd").is_dir()
    with pytest.raises(I.NotFound):
        b.lookup(r, b".nfsd")
    assert names(b, r) == []
    with pytest.raises(I.NotFound):
        b.remove(r, b".nfsd")
    with pytest.raises(I.NotFound):
        b.rename(r, b".nfsd", r, b"x")
    b.mkdir(r, b"x", 0o755, None, None)
    with pytest.raises((I.Permission, I.Exists)):
        b.rename(r, b"x", r, b".nfsd")
    with pytest.raises((I.Permission, I.Exists)):
        b.create_staged(r, b".nfsd", V1, 0o644, None, None, False, {})
    assert (export / ".nfsd" / "handles.db").exists()


@pytest.mark.parametrize("bad", [b"", b".", b"..", b"a/b", b"a\0b", b"/"])
def test_invalid_names(b, bad):
    r = b.root()
    for op in (lambda: b.lookup(r, bad), lambda: b.mkdir(r, bad, 0o755, None, None),
               lambda: b.remove(r, bad), lambda: b.rename(r, bad, r, b"x"),
               lambda: b.create_staged(r, bad, V1, 0o644, None, None, False, {}),
               lambda: b.symlink(r, bad, b"t", 0o777, None, None)):
        with pytest.raises(I.InvalidName):
            op()


def test_name_too_long(b):
    r = b.root()
    b.mkdir(r, b"n" * 255, 0o755, None, None)
    with pytest.raises(I.NameTooLong):
        b.mkdir(r, b"n" * 256, 0o755, None, None)
    with pytest.raises(I.NameTooLong):
        b.lookup(r, b"n" * 256)


def test_symlinks_are_never_followed(b, export):
    r = b.root()
    os.symlink("/", export / "escape")
    os.symlink("/etc/passwd", export / "pw")
    h = b.lookup(r, b"escape")
    assert b.getattr(h).kind == I.Kind.LNK
    assert b.readlink(h) == b"/"
    with pytest.raises(I.NotDir):
        b.lookup(h, b"etc")
    with pytest.raises(I.NotDir):
        list(b.readdir(h, 0))
    pw = b.lookup(r, b"pw")
    with pytest.raises(I.WrongType):
        b.read(pw, 0, 10)
    with pytest.raises((I.WrongType, I.IsDir)):
        b.stage_version(pw, V1, False, {})
    with pytest.raises((I.NotDir, I.WrongType)):
        b.create_staged(h, b"x", V1, 0o644, None, None, False, {})
    mode = os.stat("/etc/passwd").st_mode
    b.setattr(pw, I.SetAttrs(mode=0o777))  # a no-op on the link; the target is untouched
    assert os.stat("/etc/passwd").st_mode == mode
    s = b.symlink(r, b"mine", b"../../outside", 0o777, None, None)
    assert b.readlink(s) == b"../../outside"
    with pytest.raises(I.NotSymlink):
        b.readlink(r)


def test_other_file_system_inside_export_is_invisible(b, export):
    mnt = export / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "nfsd-test", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        (mnt / "inside").write_bytes(b"x")
        r = b.root()
        with pytest.raises(I.NotFound):
            b.lookup(r, b"mnt")
        assert b"mnt" not in names(b, r)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


# --------------------------------------------------------------------------- readdir
def test_readdir_cookies_are_stable_and_resume_after_delete(b, export):
    r = b.root()
    for i in range(50):
        (export / f"f{i:02}").write_bytes(b"")
    entries = list(b.readdir(r, 0))
    cookies = [e.cookie for e in entries]
    assert cookies == sorted(cookies) and min(cookies) > 2
    assert sorted(e.name for e in entries) == sorted(os.fsencode(n) for n in os.listdir(export)
                                                     if n != ".nfsd")
    assert all(e.cookie == cookie_of(e.name) for e in entries)
    mid = entries[20]
    b.remove(r, mid.name)
    (export / "zz-new").write_bytes(b"")
    rest = [e.name for e in b.readdir(r, mid.cookie)]
    expect = [e.name for e in entries[21:]]
    assert [n for n in rest if n != b"zz-new"] == expect
    assert b.dir_verifier(r) == bytes(8)
    e0 = entries[0]
    assert e0.handle == b.lookup(r, e0.name)
    assert e0.attrs.fileid == b.getattr(e0.handle).fileid


def test_readdir_cookies_survive_restart(mk, b, export):
    r = b.root()
    for i in range(20):
        (export / f"x{i}").write_bytes(b"")
    before = [(e.cookie, e.name, e.handle) for e in b.readdir(r, 0)]
    b.close()
    b2 = mk()
    assert [(e.cookie, e.name, e.handle) for e in b2.readdir(r, 0)] == before


def test_readdir_large_directory_in_chunks(b, export):
    d = export / "big"
    d.mkdir()
    for i in range(10_000):
        fd = os.open(d / f"entry-{i}", os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)
    dh = b.lookup(b.root(), b"big")
    got, cookie = [], 0
    while True:
        chunk = []
        for e in b.readdir(dh, cookie):
            chunk.append(e)
            if len(chunk) == 500:
                break
        if not chunk:
            break
        got.extend(chunk)
        cookie = chunk[-1].cookie
    assert sorted(e.name for e in got) == sorted(os.fsencode(n) for n in os.listdir(d))
    assert len({e.handle for e in got}) == 10_000


def test_readdir_sees_local_changes(b, export):
    r = b.root()
    (export / "a").write_bytes(b"")
    assert names(b, r) == [b"a"]
    (export / "b").write_bytes(b"")
    assert sorted(names(b, r)) == [b"a", b"b"]
    os.rename(export / "a", export / "c")
    assert sorted(names(b, r)) == [b"b", b"c"]


def test_unchanged_entries_are_handed_out_again(mk, export, monkeypatch):
    """A cached listing hands out the same DirEntry for an entry whose statx is unchanged, a
    new one (new attributes, same handle) for a changed entry, and nothing old once the
    directory itself changed."""
    monkeypatch.setattr(local, "RACY_NS", -1)  # cache listings however recently changed
    b = mk()
    d = export / "d"
    d.mkdir()
    for n in ("a", "b", "c"):
        (d / n).write_bytes(b"x")
    dh = b.lookup(b.root(), b"d")
    first = {e.name: e for e in b.readdir(dh, 0)}
    second = {e.name: e for e in b.readdir(dh, 0)}
    assert set(first) == {b"a", b"b", b"c"}
    assert all(second[n] is first[n] for n in first)
    os.chmod(d / "b", 0o600)  # changes the entry, not the directory
    (d / "c").write_bytes(b"longer")
    third = {e.name: e for e in b.readdir(dh, 0)}
    assert third[b"a"] is first[b"a"]
    assert third[b"b"] is not first[b"b"] and third[b"b"].attrs.mode == 0o600
    assert third[b"b"].handle == first[b"b"].handle
    assert third[b"c"].attrs.size == 6 and third[b"c"].handle == first[b"c"].handle
    new_file(b, dh, b"e")  # the directory changed: its listing and memo are dropped
    fourth = {e.name: e for e in b.readdir(dh, 0)}
    assert set(fourth) == {b"a", b"b", b"c", b"e"}
    assert all(fourth[n] is not third[n] for n in third)
    assert fourth[b"a"].handle == first[b"a"].handle


def test_unchanged_objects_keep_their_attributes_object(b, export):
    """lookup_attrs and getattr hand out the same Attrs object while the object's statx is
    unchanged, and new, current ones after any local change: chmod, a rewrite, another file
    renamed over the name, the directory's own mode, a hard link."""
    d = export / "d"
    d.mkdir()
    (d / "f").write_bytes(b"x")
    dh, da = b.lookup_attrs(b.root(), b"d")
    fh, fa = b.lookup_attrs(dh, b"f")
    assert b.lookup_attrs(dh, b"f") == (fh, fa) and b.lookup_attrs(dh, b"f")[1] is fa
    assert b.getattr(fh) is b.getattr(fh) and b.getattr(fh) == fa
    assert b.getattr(dh) is b.getattr(dh) and b.getattr(dh) == da

    os.chmod(d / "f", 0o600)
    h2, a2 = b.lookup_attrs(dh, b"f")
    assert h2 == fh and a2.mode == 0o600 and b.getattr(fh).mode == 0o600
    (d / "f").write_bytes(b"longer")
    assert b.lookup_attrs(dh, b"f")[1].size == 6 and b.getattr(fh).size == 6
    os.link(d / "f", d / "g")
    assert b.getattr(fh).nlink == 2 and b.lookup_attrs(dh, b"f")[1].nlink == 2

    (d / "new").write_bytes(b"other file")
    os.replace(d / "new", d / "f")  # another object under the same name
    h3, a3 = b.lookup_attrs(dh, b"f")
    assert h3 != fh and a3.size == 10 and a3.fileid != fa.fileid
    assert b.getattr(fh).nlink == 1  # the old object, still reachable as g
    assert b.lookup(dh, b"g") == fh

    os.chmod(d, 0o700)
    assert b.getattr(dh).mode == 0o700 and b.lookup_attrs(b.root(), b"d")[1].mode == 0o700
    os.unlink(d / "f")
    with pytest.raises(I.NotFound):
        b.lookup_attrs(dh, b"f")


def test_entry_removed_during_a_listing_is_left_out(b, export):
    """Entries are stat'ed in batches as the listing is read: one removed locally after the
    listing began, before its batch, is skipped, and the others all come."""
    d = export / "d"
    d.mkdir()
    for i in range(40):
        (d / f"f{i}").write_bytes(b"")
    dh = b.lookup(b.root(), b"d")
    order = [e.name for e in b.readdir(dh, 0)]
    it = iter(b.readdir(dh, 0))
    first = next(it)
    os.unlink(d / order[-1].decode())
    rest = [e.name for e in it]
    assert [first.name] + rest == order[:-1]


def test_listing_memo_is_bounded_across_directories(mk, export, monkeypatch):
    monkeypatch.setattr(local, "RACY_NS", -1)
    b = mk(listing_memo=2)
    hs_ = []
    for dn in ("d1", "d2"):
        (export / dn).mkdir()
        for i in range(5):
            (export / dn / f"f{i}").write_bytes(b"")
        hs_.append(b.lookup(b.root(), dn.encode()))

    def kept(dh):
        first = {e.name: e for e in b.readdir(dh, 0)}
        return sum(e is first[e.name] for e in b.readdir(dh, 0))

    assert kept(hs_[0]) == 2
    assert kept(hs_[1]) == 0  # the budget is spent on d1
    new_file(b, hs_[0], b"new")  # d1 changed: its memo is dropped and the budget freed
    assert kept(hs_[1]) == 2


# --------------------------------------------------------------------------- transient files
def test_transient_visible_only_to_its_viewer(b):
    r = b.root()
    s = b.create_staged(r, b"t", V1, 0o640, None, None, False, {"owner": 1})
    s.write(0, b"12345")
    assert b.lookup(r, b"t", V1) == s.handle
    with pytest.raises(I.NotFound):
        b.lookup(r, b"t", V2)
    with pytest.raises(I.NotFound):
        b.lookup(r, b"t")
    assert names(b, r, V1) == [b"t"]
    assert names(b, r, V2) == []
    assert s.backend is b
    a = b.getattr(s.handle, V1)
    assert a.size == 5 and a.kind == I.Kind.REG and a.mode == 0o640
    assert a.fileid == s.attrs().fileid
    b.check(s.handle)  # a staged object is live
    b.publish(s)
    assert b.lookup(r, b"t", V2) == s.handle
    assert b.getattr(s.handle).fileid == a.fileid
    assert read_all(b, s.handle) == b"12345"
    with pytest.raises(I.Invalid):
        s.write(0, b"x")


def test_transient_shadows_published_for_its_viewer(b):
    r = b.root()
    old = new_file(b, r, b"f", b"old")
    s = b.create_staged(r, b"f", V1, 0o644, None, None, False, {})
    assert b.lookup(r, b"f", V1) == s.handle
    assert b.lookup(r, b"f", V2) == old
    ents = list(b.readdir(r, 0, V1))
    assert [(e.name, e.handle) for e in ents] == [(b"f", s.handle)]
    s.write(0, b"new!")
    b.publish(s)
    assert b.lookup(r, b"f", V2) == s.handle
    with pytest.raises(I.Stale):
        b.getattr(old)
    assert read_all(b, s.handle) == b"new!"


def test_exclusive_create(b):
    r = b.root()
    s = b.create_staged(r, b"x", V1, 0o644, None, None, True, {}, verifier=b"12345678")
    assert b.create_verifier(s.handle) == b"12345678"
    with pytest.raises(I.Exists):
        b.create_staged(r, b"x", V2, 0o644, None, None, True, {})
    with pytest.raises(I.Exists):
        b.mkdir(r, b"x", 0o755, None, None)
    s2 = b.create_staged(r, b"x", V2, 0o644, None, None, False, {})  # unchecked: allowed
    b.discard(s2)
    b.publish(s)
    assert b.create_verifier(s.handle) == b"12345678"
    with pytest.raises(I.Exists):
        b.create_staged(r, b"x", V2, 0o644, None, None, True, {})
    d = b.mkdir(r, b"dir", 0o755, None, None)
    with pytest.raises(I.IsDir):
        b.create_staged(r, b"dir", V1, 0o644, None, None, False, {})
    with pytest.raises(I.NotDir):
        b.create_staged(s.handle, b"y", V1, 0o644, None, None, False, {})
    assert d


def test_exclusive_create_race(b):
    r = b.root()
    barrier = threading.Barrier(8)
    results = []

    def racer(i):
        barrier.wait()
        try:
            results.append(b.create_staged(r, b"race", b"v%d" % i, 0o644, None, None, True, {}))
        except I.Exists:
            results.append(None)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [s for s in results if s is not None]
    assert len(winners) == 1 and len(results) == 8


def test_rename_transient_moves_target(b, export):
    r = b.root()
    d = b.mkdir(r, b"d", 0o755, None, None)
    s = b.create_staged(r, b"tmp", V1, 0o644, None, None, False, {})
    s.write(0, b"content")
    b.rename(r, b"tmp", d, b"final", V1)
    with pytest.raises(I.NotFound):
        b.lookup(r, b"tmp", V1)
    assert b.lookup(d, b"final", V1) == s.handle
    assert b.parent(s.handle) == d
    b.publish(s)
    assert (export / "d" / "final").read_bytes() == b"content"
    assert not (export / "tmp").exists()


def test_remove_transient_then_publish_is_gone(b, export):
    r = b.root()
    s = b.create_staged(r, b"t", V1, 0o644, None, None, False, {})
    s.write(0, b"x")
    b.remove(r, b"t", V1)
    with pytest.raises(I.NotFound):
        b.lookup(r, b"t", V1)
    with pytest.raises(I.Gone):
        b.publish(s)
    assert not (export / "t").exists()
    assert b.list_staged() == []
    assert os.listdir(export / ".nfsd" / "staging") == []


def test_discard_and_removed_target_dir(b, export):
    r = b.root()
    d = b.mkdir(r, b"d", 0o755, None, None)
    s = b.create_staged(d, b"t", V1, 0o644, None, None, False, {})
    b.discard(s)
    with pytest.raises(I.Stale):
        b.getattr(s.handle)
    s = b.create_staged(d, b"t", V1, 0o644, None, None, False, {})
    b.remove(r, b"d")  # the transient name does not keep the directory busy
    with pytest.raises(I.Gone):
        b.publish(s)
    assert b.list_staged() == []


# --------------------------------------------------------------------------- versions
def test_version_publish_is_atomic_and_pins_old(b, export):
    r = b.root()
    f = new_file(b, r, b"f", b"version-1")
    fid = b.getattr(f).fileid
    change1 = b.getattr(f).change
    pin = b.open_version(f)
    s = b.stage_version(f, V1, False, {})
    s.write(8, b"2, longer")
    assert s.read(0, 100) == (b"version-2, longer", True)
    assert b.getattr(f, V1).size == 17
    assert b.getattr(f, V2).size == 9  # other viewers see the published version
    assert read_all(b, f) == b"version-1"
    b.publish(s)
    assert read_all(b, f) == b"version-2, longer"
    assert (export / "f").read_bytes() == b"version-2, longer"
    a = b.getattr(f)
    assert a.fileid == fid and a.change != change1
    assert pin.read(0, 100) == (b"version-1", True)
    assert pin.attrs().size == 9
    pin.close()
    assert b.list_staged() == []
    pin = b.open_version(f)
    b.remove(r, b"f")
    assert pin.read(0, 7) == (b"version", False)  # PRESERVE_UNLINKED
    pin.close()


def test_last_publish_wins_and_truncating_version(b):
    r = b.root()
    f = new_file(b, r, b"f", b"base")
    s1 = b.stage_version(f, V1, False, {})
    s2 = b.stage_version(f, V2, True, {})
    assert s2.size() == 0
    s1.write(0, b"ONE!")
    s2.write(0, b"two")
    b.publish(s1)
    assert read_all(b, f) == b"ONE!"
    b.publish(s2)
    assert read_all(b, f) == b"two"
    changes = set()
    for i in range(5):  # rapid publishes: change must move every time
        s = b.stage_version(f, V1, True, {})
        s.write(0, b"%d" % i)
        b.publish(s)
        changes.add(b.getattr(f).change)
    assert len(changes) == 5


def test_unwritten_version_publishes_nothing(b, export):
    r = b.root()
    f = new_file(b, r, b"f", b"same")
    ino = os.stat(export / "f").st_ino
    s = b.stage_version(f, V1, False, {})
    assert b.getattr(f, V1).size == 4
    b.publish(s)
    assert os.stat(export / "f").st_ino == ino


def test_version_of_removed_file_is_gone(b):
    r = b.root()
    f = new_file(b, r, b"f", b"x")
    s = b.stage_version(f, V1, False, {})
    s.write(0, b"y")
    b.remove(r, b"f")
    with pytest.raises(I.Gone):
        b.publish(s)


def test_version_follows_rename(b, export):
    r = b.root()
    f = new_file(b, r, b"f", b"x")
    s = b.stage_version(f, V1, False, {})
    s.write(1, b"yz")
    b.rename(r, b"f", r, b"g")
    b.publish(s)
    assert (export / "g").read_bytes() == b"xyz"
    assert not (export / "f").exists()


def test_version_keeps_other_hard_links_old(b, export):
    r = b.root()
    f = new_file(b, r, b"f", b"old")
    b.link(f, r, b"other")
    s = b.stage_version(f, V1, True, {})
    s.write(0, b"new")
    b.publish(s)
    assert (export / "f").read_bytes() == b"new"
    assert (export / "other").read_bytes() == b"old"
    assert b.lookup(r, b"f") == f
    assert b.lookup(r, b"other") != f


def test_cow_of_large_sparse_file(b, export):
    size = 1 << 30
    with open(export / "big", "wb") as fh:
        fh.truncate(size)
        fh.seek(5 << 20)
        fh.write(b"island")
    r = b.root()
    f = b.lookup(r, b"big")
    s = b.stage_version(f, V1, False, {})
    assert s.size() == size
    s.write(size - 3, b"END")
    s.write(100, b"hello")
    assert s.read(98, 9) == (b"\0\0hello\0\0", False)
    assert s.read((5 << 20) - 1, 8) == (b"\0island\0", False)
    assert s.read(size - 4, 100) == (b"\0END", True)
    s.sync()
    b.publish(s)
    with open(export / "big", "rb") as fh:
        fh.seek(98)
        assert fh.read(9) == b"\0\0hello\0\0"
        fh.seek(5 << 20)
        assert fh.read(6) == b"island"
        fh.seek(size - 3)
        assert fh.read() == b"END"
    st = os.stat(export / "big")
    assert st.st_size == size and st.st_blocks * 512 < 64 << 20  # still sparse
    assert b.read(f, size - 3, 10) == (b"END", True)


MODEL_OPS = hs.lists(hs.one_of(
    hs.tuples(hs.just("w"), hs.integers(0, 3000), hs.binary(min_size=1, max_size=700)),
    hs.tuples(hs.just("t"), hs.integers(0, 3000), hs.just(b"")),
    hs.tuples(hs.just("r"), hs.integers(0, 3200), hs.integers(0, 900)),
), max_size=12)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=hs.binary(max_size=2500), ops=MODEL_OPS, trunc=hs.booleans())
def test_staging_matches_posix_model(tmp_path_factory, base, ops, trunc):
    root = tmp_path_factory.mktemp("model")
    b = LocalBackend(root / "e")
    try:
        f = new_file(b, b.root(), b"f", base) if base else new_file(b, b.root(), b"f")
        s = b.stage_version(f, V1, trunc, {})
        model = bytearray() if trunc else bytearray(base)
        for op, a, arg in ops:
            if op == "w":
                if a > len(model):
                    model.extend(bytes(a - len(model)))
                model[a:a + len(arg)] = arg
                assert s.write(a, memoryview(arg)) == len(arg)
            elif op == "t":
                if a > len(model):
                    model.extend(bytes(a - len(model)))
                else:
                    del model[a:]
                s.truncate(a)
            else:
                data, eof = s.read(a, arg)
                assert data == bytes(model[a:a + arg])
                assert eof == (a + arg >= len(model))
            assert s.size() == len(model)
        assert s.read(0, 10_000)[0] == bytes(model)
        assert b.read(f, 0, 10_000)[0] == base  # unpublished
        b.publish(s)
        assert read_all(b, f) == bytes(model)
    finally:
        b.close()


# --------------------------------------------------------------------------- group commit
def _gated_fsync(syncs, callers, then=os.fsync):
    """An fsync whose first call waits until `callers` calls of syncs.sync() have been made
    in all: the other callers arrive while it runs, whatever the scheduling. Later calls run
    `then(fd, k)` (k: 2, 3, ... the number of the fsync)."""
    done = []

    def fsync(fd):
        done.append(fd)
        if len(done) == 1:
            deadline = time.monotonic() + 30
            while syncs.calls < callers:  # the others are on their way into sync()
                assert time.monotonic() < deadline, "callers did not arrive"
                time.sleep(0.001)
            os.fsync(fd)
        else:
            then(fd, len(done))
    return fsync


def test_concurrent_publishes_share_their_directory_fsync(mk, export):
    b = mk(inline_sync=0)  # always hand the fsync back (as on a slow disk)
    root = b.root()
    pending = []
    for i in range(8):
        s = b.create_staged(root, b"f%d" % i, V1, 0o644, os.getuid(), os.getgid(), False, {})
        s.write(0, b"data %d" % i)
        s.sync()
        durable = b.publish(s, sync=False)
        assert callable(durable)
        assert (export / ("f%d" % i)).read_bytes() == b"data %d" % i  # visible at once
        pending.append(durable)
    calls, fsyncs = b._syncs.calls, b._syncs.fsyncs
    b._syncs._fsync = _gated_fsync(b._syncs, calls + 8, lambda fd, k: os.fsync(fd))
    errors = []

    def run(fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=run, args=(fn,)) for fn in pending]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert b._syncs.calls - calls == 8
    # the first fsync ran while all 8 arrived; one more covered the 7 that arrived during it
    assert b._syncs.fsyncs - fsyncs == 2
    pending[0]()  # a second call does nothing
    assert b._syncs.calls - calls == 8


def test_publish_fsyncs_at_once_while_fsyncs_are_fast(mk, export):
    b = mk(inline_sync=3600.0)
    s = b.create_staged(b.root(), b"f", V1, 0o644, os.getuid(), os.getgid(), False, {})
    s.write(0, b"x")
    calls = b._syncs.calls
    assert b.publish(s, sync=False) is None
    assert b._syncs.calls == calls + 1  # the directory's fsync, done
    assert (export / "f").read_bytes() == b"x"


def test_a_failed_shared_fsync_fails_every_caller_it_covered(tmp_path):
    from backend.groupsync import GroupSync

    def later(fd, k):
        if k == 2:
            raise OSError(errno.EIO, "injected")
    g = GroupSync()
    g._fsync = _gated_fsync(g, 3, later)
    w = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        results = []

        def run():
            try:
                g.sync("d", w)
                results.append(0)
            except OSError as e:
                results.append(e.errno)
        threads = [threading.Thread(target=run) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # one caller ran the first fsync (fine); the two that arrived during it share the
        # second, which failed: both get EIO
        assert sorted(results) == sorted([0, errno.EIO, errno.EIO])
        assert g.fsyncs == 2
        g.sync("d", w)  # the next fsync works again
        assert g.fsyncs == 3
    finally:
        os.close(w)


# --------------------------------------------------------------------------- restart / crash
def test_restart_recovers_synced_staging(mk, b):
    r = b.root()
    s = b.create_staged(r, b"new", V1, 0o600, None, None, True, {"client": "c1", "seq": 3},
                        verifier=b"VVVVVVVV")
    s.write(0, b"synced data")
    s.set_record({"client": "c1", "seq": 4})
    s.sync()
    f = new_file(b, r, b"old", b"0123456789")
    v = b.stage_version(f, V2, False, {"client": "c2"})
    v.write(2, b"ab")
    v.sync()
    v.record["lock"] = [1, 2]  # changed in place: sync() notices
    v.sync()
    b.close()  # no publish: like a crash, as far as staging goes

    b2 = mk()
    staged = {x.handle: x for x in b2.list_staged()}
    assert set(staged) == {s.handle, f}
    n = staged[s.handle]
    assert n.is_new and n.viewer == V1 and n.record == {"client": "c1", "seq": 4}
    assert n.read(0, 100) == (b"synced data", True)
    assert b2.lookup(r, b"new", V1) == s.handle
    with pytest.raises(I.NotFound):
        b2.lookup(r, b"new", V2)
    with pytest.raises(I.Exists):  # the exclusive reservation survived
        b2.create_staged(r, b"new", V2, 0o644, None, None, True, {})
    assert b2.create_verifier(s.handle) == b"VVVVVVVV"
    w = staged[f]
    assert not w.is_new and w.record == {"client": "c2", "lock": [1, 2]} and w.quarantined is None
    assert w.read(0, 100) == (b"01ab456789", True)
    b2.publish(n)
    b2.publish(w)
    assert read_all(b2, s.handle) == b"synced data"
    assert read_all(b2, f) == b"01ab456789"
    assert b2.list_staged() == [] and b2.problems() == []


def test_recovered_version_with_changed_base_is_quarantined(mk, b, export):
    r = b.root()
    f = new_file(b, r, b"f", b"0123456789")
    v = b.stage_version(f, V1, False, {})
    v.write(0, b"ab")
    v.sync()
    full = b.stage_version(f, V2, False, {})
    full.write(0, b"ABCDEFGHIJ")  # covers the whole base: needs no base after restart
    full.sync()
    b.close()
    (export / "f").write_bytes(b"changed!!!")  # a local program rewrites it while we are down
    b2 = mk()
    st = {x.viewer: x for x in b2.list_staged()}
    assert st[V1].quarantined and st[V1].record["quarantined"]
    with pytest.raises(I.IOFailure):
        b2.publish(st[V1])
    assert st[V2].quarantined is None
    b2.publish(st[V2])
    assert (export / "f").read_bytes() == b"ABCDEFGHIJ"
    b2.discard(st[V1])
    assert b2.list_staged() == []


def test_corrupt_record_is_reported_not_fatal(mk, b, export):
    r = b.root()
    s = b.create_staged(r, b"good", V1, 0o644, None, None, False, {})
    s.write(0, b"ok")
    s.sync()
    t = b.create_staged(r, b"bad", V1, 0o644, None, None, False, {})
    t.sync()
    b.close()
    staging = export / ".nfsd" / "staging"
    (staging / f"{t.id}.rec").write_bytes(b"{not json")
    (staging / "deadbeef.rec").write_bytes(json.dumps({"v": 1, "id": "other"}).encode())
    (staging / "orphan.data").write_bytes(b"no record")
    (staging / "x.rec.tmp").write_bytes(b"half written")
    bad_attr = None
    try:
        (staging / "attr.data").write_bytes(b"unreadable record")
        os.setxattr(staging / "attr.data", "user.nfsd.staging-record", b"{not json")
        bad_attr = str(staging / "attr.data")
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
    b2 = mk()
    assert [x.handle for x in b2.list_staged()] == [s.handle]
    probs = dict(b2.problems())
    assert str(staging / f"{t.id}.rec") in probs
    assert str(staging / "deadbeef.rec") in probs
    if bad_attr is not None:
        assert bad_attr in probs and os.path.exists(bad_attr)  # kept for the operator
    assert not (staging / "orphan.data").exists()
    assert not (staging / "x.rec.tmp").exists()
    b2.publish(b2.list_staged()[0])
    assert (export / "good").read_bytes() == b"ok"


CRASH_CHILD = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {repo!r})
    from backend.local import LocalBackend
    b = LocalBackend({export!r}, record_xattrs={xattrs!r})
    r = b.root()
    s = b.create_staged(r, b"crash", b"v", 0o644, None, None, False, {{"k": "v"}})
    s.write(0, b"durable")
    s.sync()
    s.write(7, b" (maybe)")
    f = b.lookup(r, b"pub")
    v = b.stage_version(f, b"v", False, {{}})
    v.write(0, b"NEW")
    if {mode!r} == "mid-publish":
        # die after the rename, before the handle database moves the id to the new inode
        def die(*a):
            os.kill(os.getpid(), 9)
        LocalBackend._newer_ctime = staticmethod(die)
        b.publish(v)
    print("ready", flush=True)
    sys.stdin.read()
""")


@pytest.mark.parametrize("xattrs", [True, False], ids=["record-in-xattr", "record-file"])
@pytest.mark.parametrize("mode", ["staged", "mid-publish"])
def test_kill_9_recovery(tmp_path, mode, xattrs):
    export = tmp_path / "e"
    b = LocalBackend(export)
    f = new_file(b, b.root(), b"pub", b"old content")
    b.close()
    code = CRASH_CHILD.format(repo=REPO, export=str(export), mode=mode, xattrs=xattrs)
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as p:
        if mode == "staged":
            assert p.stdout.readline() == b"ready\n"
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    assert p.returncode == -9
    b = LocalBackend(export)
    try:
        assert b.problems() == []
        staged = {s.handle: s for s in b.list_staged()}
        new = [s for s in staged.values() if s.is_new]
        assert len(new) == 1 and new[0].record == {"k": "v"}
        assert new[0].read(0, 7)[0] == b"durable"
        if mode == "staged":
            assert f in staged
            assert read_all(b, f) == b"old content"
        else:  # the publish was finished at start-up
            assert f not in staged
            assert read_all(b, f) == b"NEW content"
            assert b.lookup(b.root(), b"pub") == f
        b.publish(new[0])
        assert b.read(b.lookup(b.root(), b"crash"), 0, 7)[0] == b"durable"
    finally:
        b.close()


# --------------------------------------------------------------------------- local programs
def test_local_changes_are_visible(b, export):
    r = b.root()
    f = new_file(b, r, b"f", b"abc")
    a1 = b.getattr(f)
    os.chmod(export / "f", 0o600)
    a2 = b.getattr(f)
    assert a2.mode == 0o600 and a2.change != a1.change
    with open(export / "f", "ab") as fh:
        fh.write(b"def")
    a3 = b.getattr(f)
    assert a3.size == 6 and a3.change != a2.change
    assert read_all(b, f) == b"abcdef"
    os.rename(export / "f", export / "g")  # a local rename within the directory
    assert b.getattr(f).size == 6
    assert b.lookup(r, b"g") == f
    d = b.mkdir(r, b"d", 0o755, None, None)
    g = new_file(b, d, b"inner", b"1")
    os.rename(export / "d", export / "d2")  # a directory renamed behind our back
    assert b.getattr(g).size == 1
    assert b.lookup(r, b"d2") == d


# --------------------------------------------------------------------------- namespace ops
def test_namespace_operations(b, export):
    r = b.root()
    d = b.mkdir(r, b"d", 0o750, None, None)
    assert b.getattr(d).mode == 0o750
    sub = b.mkdir(d, b"sub", 0o755, None, None)
    new_file(b, sub, b"f", b"x")
    with pytest.raises(I.Exists):
        b.mkdir(r, b"d", 0o755, None, None)
    with pytest.raises(I.NotEmpty):
        b.remove(d, b"sub")
    empty = b.mkdir(r, b"empty", 0o755, None, None)
    with pytest.raises(I.NotEmpty):
        b.rename(r, b"empty", r, b"d")
    b.rename(d, b"sub", r, b"empty")  # over an empty directory: fine
    with pytest.raises(I.Stale):
        b.getattr(empty)
    assert b.lookup(r, b"empty") == sub
    f = new_file(b, r, b"file", b"1")
    with pytest.raises(I.NotDir):
        b.rename(r, b"empty", r, b"file")
    with pytest.raises(I.IsDir):
        b.rename(r, b"file", r, b"d")
    with pytest.raises(I.Invalid):
        b.rename(r, b"d", d, b"inside")
    with pytest.raises(I.NotFound):
        b.remove(r, b"nope")
    with pytest.raises(I.NotDir):
        b.lookup(f, b"x")
    b.rename(r, b"file", r, b"file")
    assert b.lookup(r, b"file") == f
    fifo = b.mknod(r, b"fifo", I.Kind.FIFO, (0, 0), 0o640, None, None)
    assert b.getattr(fifo).kind == I.Kind.FIFO and b.getattr(fifo).mode == 0o640
    sock = b.mknod(r, b"sock", I.Kind.SOCK, (0, 0), 0o600, None, None)
    assert b.getattr(sock).kind == I.Kind.SOCK
    try:
        chr_ = b.mknod(r, b"null", I.Kind.CHR, (1, 3), 0o666, None, None)
        assert b.getattr(chr_).rdev == (1, 3)
    except I.Permission:
        pass
    with pytest.raises(I.WrongType):
        b.mknod(r, b"reg", I.Kind.REG, (0, 0), 0o644, None, None)
    with pytest.raises(I.WrongType):
        b.read(fifo, 0, 1)
    with pytest.raises(I.IsDir):
        b.read(d, 0, 1)
    b.remove(r, b"fifo")
    with pytest.raises(I.Stale):
        b.getattr(fifo)
    st = b.statfs(r)
    assert st.space_total > 0 and st.maxname == 255


def test_setattr_and_owner(b, export):
    r = b.root()
    f = new_file(b, r, b"f", b"x")
    a = b.setattr(f, I.SetAttrs(mode=0o604, mtime_ns=1_000_000_000_123))
    assert a.mode == 0o604 and a.mtime_ns == 1_000_000_000_123
    assert os.stat(export / "f").st_mode & 0o7777 == 0o604
    d = b.mkdir(r, b"d", 0o755, None, None)
    assert b.setattr(d, I.SetAttrs(mode=0o711)).mode == 0o711
    s = b.stage_version(f, V1, False, {})
    s.write(0, b"y")
    b.setattr(f, I.SetAttrs(mode=0o640))  # applies to the staging too: survives the publish
    b.publish(s)
    assert b.getattr(f).mode == 0o640
    if os.geteuid() == 0:
        h = b.mkdir(r, b"owned", 0o755, 1234, 5678)
        a = b.getattr(h)
        assert (a.uid, a.gid) == (1234, 5678)
        t = b.create_staged(r, b"t", V1, 0o644, 4321, 8765, False, {})
        assert (t.attrs().uid, t.attrs().gid) == (4321, 8765)
        b.publish(t)
        assert os.stat(export / "t").st_uid == 4321
        assert b.setattr(h, I.SetAttrs(uid=42)).uid == 42
    else:
        h = b.mkdir(r, b"owned", 0o755, 1234, 5678)  # not root: ignored silently
        assert b.getattr(h).uid == os.geteuid()


def test_read_cache_sees_new_versions(b, export):
    r = b.root()
    f = new_file(b, r, b"f", b"one")
    assert b.read(f, 0, 10) == (b"one", True)
    tmp = export / "tmpfile"
    tmp.write_bytes(b"two!")
    os.rename(tmp, export / "f")  # replaced by a local program: the old handle is gone
    with pytest.raises(I.Stale):
        b.read(f, 0, 10)
    g = b.lookup(r, b"f")
    assert b.read(g, 0, 2) == (b"tw", False)
    assert b.read(g, 2, 10) == (b"o!", True)
    assert b.read(g, 10, 10) == (b"", True)


def test_local_directory_moves(b, export):
    r = b.root()
    a = b.mkdir(r, b"a", 0o755, None, None)
    inner = b.mkdir(a, b"inner", 0o755, None, None)
    z = b.mkdir(r, b"z", 0o755, None, None)
    f = new_file(b, inner, b"f", b"1")
    os.rename(export / "a" / "inner", export / "z" / "inner2")
    assert b.parent(inner) == z
    assert read_all(b, f) == b"1"
    assert b.lookup(z, b"inner2") == inner
    os.rename(export / "z" / "inner2" / "f", export / "a" / "f")  # moved to another directory
    with pytest.raises(I.Stale):
        b.getattr(f)
    assert b.lookup(a, b"f") == f  # seen again: the same object
    assert read_all(b, f) == b"1"


def test_remove_takes_transient_and_published_name(b, export):
    r = b.root()
    new_file(b, r, b"f", b"published")
    s = b.create_staged(r, b"f", V1, 0o644, None, None, False, {})
    b.remove(r, b"f", V1)
    assert not (export / "f").exists()
    with pytest.raises(I.Gone):
        b.publish(s)


def test_version_getattr_before_and_after_write(b):
    r = b.root()
    f = new_file(b, r, b"f", b"abc")
    before = b.getattr(f)
    s = b.stage_version(f, V1, False, {})
    assert b.getattr(f, V1) == before  # nothing written yet: the published attributes
    s.write(3, b"d")
    a = b.getattr(f, V1)
    assert a.size == 4 and a.fileid == before.fileid
    b.discard(s)
    assert b.getattr(f, V1) == b.getattr(f)


def test_non_durable_mode(mk):
    b = mk(durable=False)
    h = new_file(b, b.root(), b"f", b"quick")
    assert read_all(b, h) == b"quick"
    s = b.stage_version(h, V1, False, {})
    s.write(0, b"Q")
    b.publish(s)
    assert read_all(b, h) == b"Quick"


def test_without_birth_time(mk, monkeypatch, export):
    """Fallback to os.stat (no statx): generation 0, everything else works."""
    from backend import handles, local
    monkeypatch.setattr(handles, "_statx_impl", handles._statx_fallback)
    monkeypatch.setattr(local, "statx_key", handles._statx_key_fallback)
    monkeypatch.setattr(local, "fstatx_key", handles._fstatx_key_fallback)
    monkeypatch.setattr(local, "statx_keys", handles._statx_keys_fallback)
    b = mk()
    r = b.root()
    d = b.mkdir(r, b"d", 0o755, None, None)
    f = new_file(b, d, b"f", b"x")
    assert b.lookup(d, b"f") == f and read_all(b, f) == b"x"
    assert [e.name for e in b.readdir(d, 0)] == [b"f"]
    s = b.stage_version(f, V1, False, {})
    s.write(1, b"y")
    b.publish(s)
    assert read_all(b, f) == b"xy"
    b.remove(d, b"f")
    with pytest.raises(I.Stale):
        b.getattr(f)


def test_readers_never_see_partial_versions(b):
    """Worker threads read while versions are published: every read is one whole version."""
    r = b.root()
    size = 256 << 10
    f = new_file(b, r, b"f", b"\x00" * size)
    stop = threading.Event()
    bad = []

    def reader():
        while not stop.is_set():
            data, eof = b.read(f, 0, size)
            if len(data) != size or len(set(data)) != 1:
                bad.append((len(data), sorted(set(data))[:4]))

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 25):
            s = b.stage_version(f, V1, i % 2 == 0, {})
            if i % 2:  # overwrite in two halves (copy-on-write base in between)
                s.write(0, bytes([i]) * (size // 2))
                s.write(size // 2, bytes([i]) * (size // 2))
            else:
                s.write(0, bytes([i]) * size)
            b.publish(s)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert bad == []
    assert read_all(b, f) == bytes([24]) * size


def test_reflink_path(b, export, monkeypatch):
    """The FICLONE branch (btrfs/xfs), with the ioctl emulated by a full kernel-side copy."""
    import fcntl

    from backend import local
    real_ioctl = fcntl.ioctl
    clones = []

    def ioctl(fd, req, arg=0, *rest):
        if req != local.FICLONE:
            return real_ioctl(fd, req, arg, *rest)
        size = os.fstat(arg).st_size
        os.ftruncate(fd, size)
        pos = 0
        while pos < size:
            pos += os.copy_file_range(arg, fd, size - pos, pos, pos)
        clones.append(size)
        return 0

    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    r = b.root()
    f = new_file(b, r, b"f", b"0123456789")
    s = b.stage_version(f, V1, False, {})
    assert clones == [10]
    s.write(4, b"xx")
    s.truncate(8)
    assert s.read(0, 100) == (b"0123xx67", True)
    s.sync()
    b.publish(s)
    assert (export / "f").read_bytes() == b"0123xx67"


# --------------------------------------------------------------------------- space, holes, xattrs
CH = 64 * 1024  # many blocks: holes are exact on every file system

SPACE_OPS = hs.lists(hs.one_of(
    hs.tuples(hs.just("w"), hs.integers(0, 8), hs.integers(1, 2)),
    hs.tuples(hs.just("t"), hs.integers(0, 8), hs.just(0)),
    hs.tuples(hs.just("a"), hs.integers(0, 8), hs.integers(1, 3)),
    hs.tuples(hs.just("d"), hs.integers(0, 8), hs.integers(1, 3)),
), max_size=10)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=hs.lists(hs.booleans(), max_size=6), ops=SPACE_OPS)
def test_allocate_deallocate_seek_match_a_model(tmp_path_factory, base, ops):
    """In chunks: base data chunks (True) and holes, then writes, truncates, allocates and
    punched holes on a copy-on-write version; reads and SEEK agree with the model."""
    root = tmp_path_factory.mktemp("space")
    b = LocalBackend(root / "e")
    try:
        with open(root / "e" / "f", "wb") as out:
            out.truncate(len(base) * CH)
            for i, full in enumerate(base):
                if full:
                    out.seek(i * CH)
                    out.write(bytes([65 + i]) * CH)
        f = b.lookup(b.root(), b"f")
        s = b.stage_version(f, V1, False, {})
        model = bytearray().join(bytes([65 + i]) * CH if full else bytes(CH)
                                 for i, full in enumerate(base))
        for op, at, n in ops:
            a, e = at * CH, (at + n) * CH
            if op == "w":
                model.extend(bytes(max(0, e - len(model))))
                model[a:e] = b"w" * (e - a)
                s.write(a, b"w" * (e - a))
            elif op == "t":
                model.extend(bytes(max(0, a - len(model))))
                del model[a:]
                s.truncate(a)
            elif op == "a":
                model.extend(bytes(max(0, e - len(model))))
                s.allocate(a, e - a)
            else:
                model[a:min(e, len(model))] = bytes(max(0, min(e, len(model)) - a))
                s.deallocate(a, e - a)
            assert s.size() == len(model)
        assert s.read(0, len(model) + 1)[0] == bytes(model)
        for at in range(0, len(model) + CH, CH // 2):
            if at >= len(model):
                for what in I.Content:
                    with pytest.raises(I.PastEnd):
                        s.seek(at, what)
                continue
            d, eof = s.seek(at, I.Content.DATA)
            assert not any(model[at:d]) and eof == (d == len(model))  # skipped only zeros
            assert d == len(model) or d % CH == 0 or d == at
            h, eof = s.seek(at, I.Content.HOLE)
            assert at <= h <= len(model) and eof == (h == len(model))
            assert h == len(model) or not model[h]  # a hole reads as zeros
        b.publish(s)
        assert read_all(b, f) == bytes(model)
        assert (root / "e" / "f").read_bytes() == bytes(model)
    finally:
        b.close()


def test_punched_range_of_a_version_is_not_copied_at_publish(b, export):
    with open(export / "f", "wb") as out:
        out.write(b"x" * (4 * CH))
    f = b.lookup(b.root(), b"f")
    s = b.stage_version(f, V1, False, {})
    s.deallocate(CH, 2 * CH)
    assert s.read(0, 4 * CH)[0] == b"x" * CH + bytes(2 * CH) + b"x" * CH
    assert s.seek(0, I.Content.HOLE) == (CH, False)
    assert s.seek(CH, I.Content.DATA) == (3 * CH, False)
    assert b.seek(f, CH, I.Content.DATA) == (CH, False)  # the published version is whole
    b.publish(s)
    assert (export / "f").read_bytes() == b"x" * CH + bytes(2 * CH) + b"x" * CH
    with open(export / "f", "rb") as fh:
        assert os.lseek(fh.fileno(), 0, os.SEEK_HOLE) == CH
    assert os.stat(export / "f").st_size == 4 * CH


def test_seek_published_and_pinned_versions(b, export):
    with open(export / "s", "wb") as out:
        out.truncate(3 * CH)
        out.seek(CH)
        out.write(b"d" * CH)
    r = b.root()
    f = b.lookup(r, b"s")
    assert b.seek(f, 0, I.Content.DATA) == (CH, False)
    assert b.seek(f, CH, I.Content.HOLE) == (2 * CH, False)
    assert b.seek(f, 2 * CH, I.Content.DATA) == (3 * CH, True)
    with pytest.raises(I.PastEnd):
        b.seek(f, 3 * CH, I.Content.HOLE)
    with b.open_version(f) as v:
        b.remove(r, b"s")
        with pytest.raises(I.Stale):
            b.seek(f, 0, I.Content.DATA)
        assert v.seek(0, I.Content.DATA) == (CH, False)  # removed while open: still readable


def test_allocate_and_deallocate_need_a_supporting_file_system(b, monkeypatch):
    from backend import local
    f = new_file(b, b.root(), b"f", b"data")
    s = b.stage_version(f, V1, False, {})

    def refuse(fd, mode, offset, length):
        raise OSError(errno.EOPNOTSUPP, "not supported")

    monkeypatch.setattr(local, "_fallocate", refuse)
    with pytest.raises(I.NotSupported):
        s.allocate(0, 10)
    with pytest.raises(I.NotSupported):
        s.deallocate(0, 2)
    assert not s.dirty and s.read(0, 10) == (b"data", True)
    with pytest.raises(I.Invalid):
        s.allocate(0, 0)


@pytest.fixture
def xb(b, export):
    try:
        os.setxattr(export / ".nfsd", "user.probe", b"")
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            pytest.skip("the temporary file system refuses user extended attributes")
        raise
    return b


def test_xattrs_in_the_user_namespace(xb, export):
    b = xb
    r = b.root()
    f = new_file(b, r, b"f", b"x")
    assert b.statfs(r).xattrs
    with pytest.raises(I.NoXattr):
        b.getxattr(f, b"k")
    before, after = b.setxattr(f, b"k", b"v", I.XattrHow.CREATE)
    assert after > before and b.getattr(f).change == after
    assert os.getxattr(export / "f", "user.k") == b"v"
    with pytest.raises(I.Exists):
        b.setxattr(f, b"k", b"w", I.XattrHow.CREATE)
    with pytest.raises(I.NoXattr):
        b.setxattr(f, b"missing", b"w", I.XattrHow.REPLACE)
    b.setxattr(f, b"k", b"w", I.XattrHow.REPLACE)
    b.setxattr(f, b"a", b"")
    assert b.listxattr(f) == [b"a", b"k"] and b.getxattr(f, b"k") == b"w"
    b.removexattr(f, b"a")
    with pytest.raises(I.NoXattr):
        b.removexattr(f, b"a")
    with pytest.raises(I.NameTooLong):
        b.setxattr(f, b"n" * 251, b"v")
    with pytest.raises(I.Invalid):
        b.getxattr(f, b"")
    with pytest.raises(I.XattrTooBig):
        b.setxattr(f, b"big", bytes(I.XATTR_SIZE_MAX + 1))
    d = b.mkdir(r, b"d", 0o755, None, None)
    b.setxattr(d, b"k", b"dir")
    assert os.getxattr(export / "d", "user.k") == b"dir" and b.listxattr(d) == [b"k"]
    os.symlink("f", export / "l")
    ln = b.lookup(r, b"l")
    assert b.listxattr(ln) == []  # the link itself, never its target
    with pytest.raises(I.NoXattr):
        b.getxattr(ln, b"k")


def test_xattrs_of_transient_files_and_versions(xb, export):
    b = xb
    r = b.root()
    t = b.create_staged(r, b"t", V1, 0o644, None, None, False, {})
    b.setxattr(t.handle, b"k", b"staged", viewer=V1)
    assert b.getxattr(t.handle, b"k", V1) == b"staged"
    with pytest.raises(I.Stale):
        b.getxattr(t.handle, b"k", V2)
    b.publish(t)
    assert os.getxattr(export / "t", "user.k") == b"staged"
    # A version takes the published version's attributes as they are at publish.
    s = b.stage_version(t.handle, V1, False, {})
    s.write(0, b"new")
    b.setxattr(t.handle, b"later", b"1")
    b.removexattr(t.handle, b"k")
    old = os.stat(export / "t").st_ino
    b.publish(s)
    assert os.stat(export / "t").st_ino != old
    assert os.listxattr(export / "t") == ["user.later"]


def staging_files(export):
    return sorted(os.listdir(export / ".nfsd" / "staging"))


def test_new_files_record_lives_on_its_data_file(xb, mk, export):
    """Where user xattrs are stored, a new file's staging record is an attribute of its data
    file (one fsync makes both durable): no .rec file; clients never see or change it; it is
    gone from the published file; the backend finds it again after a restart."""
    b = xb
    r = b.root()
    s = b.create_staged(r, b"n", V1, 0o644, None, None, False, {"k": "v"})
    s.write(0, b"data")
    s.sync()
    assert staging_files(export) == [f"{s.id}.data"]
    raw = os.getxattr(export / ".nfsd" / "staging" / f"{s.id}.data", "user.nfsd.staging-record")
    assert json.loads(raw)["record"] == {"k": "v"}
    b.setxattr(s.handle, b"mine", b"1", viewer=V1)
    assert b.listxattr(s.handle, V1) == [b"mine"]
    with pytest.raises(I.NoXattr):
        b.getxattr(s.handle, b"nfsd.staging-record", V1)
    with pytest.raises(I.Permission):
        b.setxattr(s.handle, b"nfsd.staging-record", b"forged", viewer=V1)
    with pytest.raises(I.Permission):
        b.removexattr(s.handle, b"nfsd.staging-record", viewer=V1)
    b.close()
    b2 = mk()
    (t,) = b2.list_staged()
    assert (t.handle, t.record, t.read(0, 10)) == (s.handle, {"k": "v"}, (b"data", True))
    t.set_record({"k": "w"})
    t.sync()
    b2.close()
    b3 = mk()
    (t,) = b3.list_staged()
    assert t.record == {"k": "w"}
    b3.publish(t)
    assert os.listxattr(export / "n") == ["user.mine"]
    assert (export / "n").read_bytes() == b"data" and staging_files(export) == []


def test_record_too_big_for_an_attribute_moves_to_a_file(xb, mk, export):
    b = xb
    s = b.create_staged(b.root(), b"n", V1, 0o644, None, None, False, {})
    s.write(0, b"data")
    big = {"pad": "x" * (I.XATTR_SIZE_MAX + 1)}  # no file system takes a value this big
    s.set_record(big)
    s.sync()
    assert staging_files(export) == [f"{s.id}.data", f"{s.id}.rec"]
    assert os.listxattr(export / ".nfsd" / "staging" / f"{s.id}.data") == []
    s.set_record({"k": "small"})  # stays a file from now on
    s.sync()
    assert staging_files(export) == [f"{s.id}.data", f"{s.id}.rec"]
    b.close()
    b2 = mk()
    (t,) = b2.list_staged()
    assert t.record == {"k": "small"} and b2.problems() == []
    b2.publish(t)
    assert (export / "n").read_bytes() == b"data"


def test_a_new_files_record_attribute_is_written_once_and_synced_with_its_data(xb, mk, export):
    """The record set at creation is what the first FILE_SYNC write needs: that sync is one
    fsync of the data file, the attribute is not written again; a changed record is."""
    b = xb
    s = b.create_staged(b.root(), b"n", V1, 0o644, None, None, False, {"k": 1})
    path = export / ".nfsd" / "staging" / f"{s.id}.data"
    first = os.getxattr(path, "user.nfsd.staging-record")
    s.write(0, b"data")
    s.sync()
    assert os.getxattr(path, "user.nfsd.staging-record") == first  # not rewritten
    s.set_record({"k": 2})
    s.sync()
    assert json.loads(os.getxattr(path, "user.nfsd.staging-record"))["record"] == {"k": 2}
    b.close()
    b2 = mk()
    (t,) = b2.list_staged()
    assert t.record == {"k": 2} and b2.problems() == []
    b2.publish(t)
    assert (export / "n").read_bytes() == b"data"


def test_stale_record_attribute_left_by_a_crash_in_publish_is_hidden(xb, mk, export):
    """A crash between the publish rename and the attribute's removal leaves the record on
    the published file: clients do not see it and a new version does not copy it."""
    b = xb
    r = b.root()
    s = b.create_staged(r, b"n", V1, 0o644, None, None, False, {})
    s.write(0, b"data")
    b.publish(s)
    os.setxattr(export / "n", "user.nfsd.staging-record", b"{}")  # what the crash leaves
    os.setxattr(export / "n", "user.k", b"v")
    f = b.lookup(r, b"n")
    assert b.listxattr(f) == [b"k"]
    v = b.stage_version(f, V1, False, {})
    v.write(0, b"DATA")
    b.publish(v)
    assert os.listxattr(export / "n") == ["user.k"]


def test_xattrs_on_a_file_system_without_them(xb, monkeypatch):
    """tmpfs before Linux 6.6: EOPNOTSUPP for user.* -> NotSupported, statfs says no."""
    b = xb
    f = new_file(b, b.root(), b"f", b"x")

    def refuse(*args, **kw):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(b, "_xattrs", None)
    for name in ("getxattr", "setxattr", "listxattr", "removexattr"):
        monkeypatch.setattr(os, name, refuse)
    assert b.statfs(b.root()).xattrs is False
    with pytest.raises(I.NotSupported):
        b.getxattr(f, b"k")
    with pytest.raises(I.NotSupported):
        b.setxattr(f, b"k", b"v")
    with pytest.raises(I.NotSupported):
        b.listxattr(f)
    s = b.stage_version(f, V1, False, {})
    s.write(0, b"y")
    b.publish(s)  # nothing to carry over, and that is no error
    assert read_all(b, f) == b"y"


# ---------------------------------------------------------------- reads that would wait for the disk
def _evict(path) -> bool:
    """Drop a file's pages from the page cache; False where the file system keeps them."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        probe = bytearray(4096)
        try:
            os.preadv(fd, [probe], 0, os.RWF_NOWAIT)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False
    finally:
        os.close(fd)


def test_read_nowait_serves_the_page_cache_and_refuses_to_wait_for_the_disk(b, export):
    data = os.urandom(3 * 1024 * 1024)
    (export / "cold").write_bytes(data)
    h = b.lookup(b.root(), b"cold")
    # In the page cache (just written): served at once, same answer as a plain read.
    assert b.read(h, 4096, 8192, nowait=True) == (data[4096:4096 + 8192], False)
    assert b.read(h, len(data) - 10, 100, nowait=True) == (data[-10:], True)
    assert b.read(h, len(data) + 5, 100, nowait=True) == (b"", True)
    if not _evict(export / "cold"):
        pytest.skip("this file system keeps the file's pages in memory (tmpfs?)")
    with pytest.raises(I.WouldBlock):
        b.read(h, 1024 * 1024, 65536, nowait=True)
    # Without nowait (what the server then does in a worker thread) the data comes from disk.
    assert b.read(h, 1024 * 1024, 65536) == (data[1024 * 1024:1024 * 1024 + 65536], False)


# ---------------------------------------------------------------- handle database upkeep
def _names_in_main_file(db, tmp):
    """Names in the database file alone, without its WAL: what checkpoints have copied."""
    import shutil
    import sqlite3

    copy = tmp / "main-only.db"
    shutil.copyfile(db, copy)
    c = sqlite3.connect(copy)
    try:
        rows = c.execute("SELECT name FROM objects WHERE name IS NOT NULL").fetchall()
        return {bytes(r[0]) for r in rows}
    except sqlite3.OperationalError:  # not even the table has reached the file yet
        return set()
    finally:
        c.close()
        copy.unlink()


def test_checkpoints_leave_the_request_path(b, export, tmp_path):
    """Recording handles (on the request path) does not checkpoint the WAL, which would end in
    an fsync; `maintenance()`, which the server runs in a worker thread, does."""
    n = 1500  # a transaction each: several thousand WAL frames, past SQLite's default 1,000
    for i in range(n):
        (export / f"n{i}").write_bytes(b"")
    root = b.root()
    for i in range(n):
        b.lookup(root, b"n%d" % i)
    db = export / ".nfsd" / "handles.db"
    assert b"n0" not in _names_in_main_file(db, tmp_path)
    b.maintenance()
    assert {b"n0", b"n%d" % (n - 1)} <= _names_in_main_file(db, tmp_path)
    b.close()
    b.maintenance()  # after close: nothing, no error


def test_mountinfo_names_the_file_system_of_a_device():
    from backend.fsinfo import fs_type
    # the kernel's own view of two mounts that always exist
    assert fs_type(os.stat("/proc").st_dev) == "proc"
    sample = ("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
              "23 22 0:21 / /tmp rw master:2 shared:3 - tmpfs tmpfs rw,size=64k\n"
              "24 22 0:33 /sub /mnt rw - xfs /dev/sdb rw\n"
              "bad line\n")
    assert fs_type(os.makedev(8, 1), sample) == "ext4"
    assert fs_type(os.makedev(0, 21), sample) == "tmpfs"  # several optional fields
    assert fs_type(os.makedev(0, 33), sample) == "xfs"
    assert fs_type(os.makedev(9, 9), sample) is None  # not mounted: the caller keeps fsyncs


@pytest.mark.parametrize("sync_new_entries", [True, False])
def test_a_new_files_first_fsync_syncs_the_staging_directory_only_if_needed(
        mk, export, sync_new_entries):
    b = mk(sync_new_entries=sync_new_entries)
    s = b.create_staged(b.root(), b"f", V1, 0o644, os.getuid(), os.getgid(), False, {})
    s.write(0, b"x" * 4096)
    # (a record kept in a .rec file, where user xattrs are not stored, always syncs it)
    want = 1 if sync_new_entries or not s._xrec else 0
    calls = b._syncs.calls
    s.sync()  # the data file's fsync (data and record), and its entry's
    assert b._syncs.calls - calls == want
    s.write(4096, b"y")
    s.sync()  # the entry was made durable once: no directory fsync again
    assert b._syncs.calls - calls == want
    b.publish(s)
    assert (export / "f").read_bytes() == b"x" * 4096 + b"y"


def test_the_staging_directory_fsync_is_left_out_only_where_the_file_system_covers_it(
        mk, export):
    from backend.fsinfo import fsync_persists_new_entry
    b = mk()
    covered = fsync_persists_new_entry(b._staging_fd)
    s = b.create_staged(b.root(), b"f", V1, 0o644, os.getuid(), os.getgid(), False, {})
    s.write(0, b"x")
    calls = b._syncs.calls
    s.sync()
    assert b._syncs.calls - calls == (0 if covered and s._xrec else 1)
    b.publish(s)


def test_large_reads_from_the_page_cache_return_exactly_the_files_bytes(b, export):
    """Large reads fill a buffer that was not zeroed first: every byte returned is the
    file's, at every size around the threshold and at the end of the file."""
    data = os.urandom(local._UNFILLED_MIN * 3 + 123)
    (export / "big").write_bytes(data)
    f = b.lookup(b.root(), b"big")
    b.read(f, 0, len(data))  # in the page cache now
    for offset, count in [(0, len(data)), (0, local._UNFILLED_MIN),
                          (1, local._UNFILLED_MIN - 1), (5000, 1 << 20),
                          (len(data) - local._UNFILLED_MIN, 1 << 20)]:
        got, eof = b.read(f, offset, count, True)
        assert bytes(got) == data[offset:offset + count]
        assert eof == (offset + count >= len(data))
