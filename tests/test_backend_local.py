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


def staged(b, dir, name, viewer=V1):
    return b.create_staged(dir, name, viewer, 0o644, os.getuid(), os.getgid(), False, {})


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


def test_objects_removed_by_local_programs_are_stale(b, export):
    r = b.root()
    g = new_file(b, r, b"g", b"y")
    d = b.mkdir(r, b"d", 0o755, None, None)
    os.unlink(export / "g")
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
    for op in (lambda: b.mkdir(d, b"x", 0o755, None, None), lambda: staged(b, d, b"x"),
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


def test_a_link_made_by_a_local_program_is_the_same_object(b, export):
    r = b.root()
    f = new_file(b, r, b"a", b"x")
    os.link(export / "a", export / "c")
    assert b.lookup(r, b"c") == f and b.getattr(f).nlink == 2
    b.remove(r, b"a")
    assert b.lookup(r, b"c") == f and read_all(b, f) == b"x"


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


def test_symlinks_made_by_local_programs_are_never_followed(b, export):
    """Links out of the export (to / and to /etc/passwd) are objects of their own: nothing is
    looked up, listed, read, staged or changed through them."""
    r = b.root()
    os.symlink("/", export / "escape")
    os.symlink("/etc/passwd", export / "pw")
    h = b.lookup(r, b"escape")
    assert b.getattr(h).kind == I.Kind.LNK and b.readlink(h) == b"/"
    with pytest.raises(I.NotDir):
        b.lookup(h, b"etc")
    with pytest.raises(I.NotDir):
        list(b.readdir(h, 0))
    with pytest.raises(I.NotDir):
        staged(b, h, b"x")
    pw = b.lookup(r, b"pw")
    with pytest.raises(I.WrongType):
        b.read(pw, 0, 10)
    with pytest.raises(I.WrongType):
        b.stage_version(pw, V1, False, {})
    mode = os.stat("/etc/passwd").st_mode
    b.setattr(pw, I.SetAttrs(mode=0o777))  # a no-op on the link; the target is untouched
    assert os.stat("/etc/passwd").st_mode == mode


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
def test_readdir_cookies_are_a_hash_of_the_name(b, export):
    """So a cookie holds whatever else changes, across restarts too, and the directory needs no
    verifier (always zeros)."""
    r = b.root()
    for i in range(50):
        (export / f"f{i:02}").write_bytes(b"")
    entries = list(b.readdir(r, 0))
    assert len(entries) == 50 and all(e.cookie == cookie_of(e.name) for e in entries)
    assert b.dir_verifier(r) == bytes(8)


def test_local_files_in_a_large_directory_get_handles_as_a_listing_is_read(b, export):
    """1,000 entries no handle was made for yet, read in chunks past the largest look-ahead
    batch (256): each once, each with a handle of its own."""
    d = export / "big"
    d.mkdir()
    for i in range(1000):
        os.close(os.open(d / f"entry-{i}", os.O_CREAT | os.O_WRONLY, 0o644))
    dh = b.lookup(b.root(), b"big")
    got, cookie = [], 0
    while True:
        chunk = []
        for e in b.readdir(dh, cookie):
            chunk.append(e)
            if len(chunk) == 100:
                break
        if not chunk:
            break
        got.extend(chunk)
        cookie = chunk[-1].cookie
    assert sorted(e.name for e in got) == sorted(os.fsencode(n) for n in os.listdir(d))
    assert len({e.handle for e in got}) == 1000


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


# --------------------------------------------------------------------------- on-disk layout
def test_the_export_directory_holds_exactly_what_is_published(b, export):
    """A published file is a plain file at its path, as local programs see it; files under
    construction, versions, and what was removed or discarded are not in the directory."""
    r = b.root()
    d = b.mkdir(r, b"d", 0o755, None, None)
    s = staged(b, r, b"tmp")
    s.write(0, b"content")
    assert sorted(os.listdir(export)) == [".nfsd", "d"]
    b.rename(r, b"tmp", d, b"final", V1)
    b.publish(s)
    assert (export / "d" / "final").read_bytes() == b"content"
    f = new_file(b, r, b"f", b"old")
    b.link(f, r, b"other")
    v = b.stage_version(f, V1, False, {})
    v.write(0, b"NEW")
    assert (export / "f").read_bytes() == b"old"
    b.rename(r, b"f", r, b"g")
    b.publish(v)  # at the name it has now; the other link keeps the old file
    assert (export / "g").read_bytes() == b"NEW" and (export / "other").read_bytes() == b"old"
    ino = os.stat(export / "g").st_ino
    b.publish(b.stage_version(f, V1, False, {}))  # wrote nothing: the same inode stays
    assert os.stat(export / "g").st_ino == ino
    b.setattr(f, I.SetAttrs(mode=0o604, mtime_ns=1_000_000_000_123))
    st = os.stat(export / "g")
    assert st.st_mode & 0o7777 == 0o604 and st.st_mtime_ns == 1_000_000_000_123
    t = staged(b, r, b"t")
    t.write(0, b"x")
    t.sync()
    u = staged(b, r, b"u")
    b.remove(r, b"t", V1)
    with pytest.raises(I.Gone):
        b.publish(t)
    b.discard(u)
    assert sorted(os.listdir(export)) == [".nfsd", "d", "g", "other"]
    assert staging_files(export) == []


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


# --------------------------------------------------------------------------- owners, settings, kernel features
@pytest.mark.skipif(os.geteuid() == 0, reason="root gives new objects the owner asked for")
def test_owners_asked_for_are_ignored_unless_root(b):
    h = b.mkdir(b.root(), b"owned", 0o755, 1234, 5678)
    assert b.getattr(h).uid == os.geteuid()
    t = b.create_staged(b.root(), b"t", V1, 0o644, 4321, 8765, False, {})
    assert t.attrs().uid == os.geteuid()


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


def test_extended_attributes_are_the_files_user_attributes(xb, export):
    """A published object's attribute k is its file's user.k; a new version's file carries the
    published version's as they are at publish, and nothing else."""
    b = xb
    r = b.root()
    f = new_file(b, r, b"f", b"x")
    b.setxattr(f, b"k", b"v")
    assert os.getxattr(export / "f", "user.k") == b"v"
    os.setxattr(export / "f", "user.local", b"1")  # set by a local program
    assert b.listxattr(f) == [b"k", b"local"]
    d = b.mkdir(r, b"d", 0o755, None, None)
    b.setxattr(d, b"k", b"dir")
    assert os.getxattr(export / "d", "user.k") == b"dir"
    t = staged(b, r, b"t")
    b.setxattr(t.handle, b"k", b"staged", viewer=V1)
    b.publish(t)
    assert os.getxattr(export / "t", "user.k") == b"staged"
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
