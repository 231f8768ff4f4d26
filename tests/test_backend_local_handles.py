"""LocalBackend's handles: the handle database (sqlite, WAL), hints that resolve a handle with
empty caches, inode numbers used again, the statx fallback without birth times, and the
database's upkeep off the request path."""

from __future__ import annotations

import os
import sqlite3

import pytest

from backend import interface as I
from backend_local_util import b, export, mk  # noqa: F401 (fixtures)
from backend_local_util import V1, names_in_main_file, new_file, read_all


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


# --------------------------------------------------------------------------- the database
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
    assert b"n0" not in names_in_main_file(db, tmp_path)
    b.maintenance()
    assert {b"n0", b"n%d" % (n - 1)} <= names_in_main_file(db, tmp_path)
    b.close()
    b.maintenance()  # after close: nothing, no error
