"""What the PostgreSQL + S3 backend does beyond the contract (tests/backend_contract): its
namespace cache and its coherence across frontends, small files kept in the database, and
pieces of a file uploaded while it is being written. Real PostgreSQL and moto (tests/services.py),
two frontends in one process."""

from __future__ import annotations

import os

import psycopg
import pytest

from backend import interface as I
from backend.pgs3 import PgS3Backend
from backend.pgs3.chunks import INLINE
from backend.pgs3.format import format_namespace
from backend.pgs3.fsck import problems
from backend.pgs3.objects import ObjectStore
from test_write_once import wait_for

V = b"viewer"


@pytest.fixture
def ns(services, tmp_path):
    """A new namespace (64 KiB pieces, so a few hundred KiB make several) and a way to open
    frontends of it; all closed at the end."""
    meta = services.pg.namespace_url()
    data = f"s3://{services.s3.new_bucket()}/ns"
    format_namespace(meta, data, chunk=64 << 10)
    opened = []

    def frontend(name="a", **kw):
        b = PgS3Backend(meta, data, name, str(tmp_path / f"spool-{name}"),
                        endpoint=services.s3.endpoint, **kw)
        opened.append(b)
        wait_for(b.mcache.usable, 30, "the cache's listener")
        return b
    frontend.meta, frontend.data, frontend.endpoint = meta, data, services.s3.endpoint
    yield frontend
    for b in opened:
        b.close()


def publish(b, d, name, data, viewer=V):
    s = b.create_staged(d, name, viewer, 0o644, 0, 0, False, {})
    s.write(0, data)
    b.publish(s)
    return s.handle


# ---------------------------------------------------------------- the namespace cache
def test_a_frontend_answers_its_own_changes_at_once(ns):
    a = ns("a")
    r = a.root()
    with pytest.raises(I.NotFound):
        a.lookup(r, b"d")  # now known as absent
    before = a.getattr(r).change
    h = a.mkdir(r, b"d", 0o755, 0, 0)
    assert a.lookup(r, b"d") == h and a.getattr(r).change != before
    assert [e.name for e in a.readdir(r, 0)] == [b"d"]
    a.rename(r, b"d", r, b"e")
    assert [e.name for e in a.readdir(r, 0)] == [b"e"]
    with pytest.raises(I.NotFound):
        a.lookup(r, b"d")
    a.remove(r, b"e")
    with pytest.raises(I.Stale):
        a.getattr(h)
    assert a.mcache.hits > 0


def test_another_frontends_changes_show_after_a_barrier(ns):
    a, b = ns("a"), ns("b")
    r = a.root()
    with pytest.raises(I.NotFound):
        b.lookup(r, b"f")
    assert list(b.readdir(r, 0)) == []
    mode = b.getattr(r).mode
    for i in range(20):  # each one at once: no waiting on how fast notifications travel
        h = publish(a, r, b"f%d" % i, b"x" * i)
        a.setattr(r, I.SetAttrs(mode=mode ^ (i % 2)))
        b.barrier()
        assert b.lookup(r, b"f%d" % i) == h
        assert b.getattr(r) == a.getattr(r)
        assert len(list(b.readdir(r, 0))) == i + 1
    # a new version through B, read through A after its barrier
    s = b.stage_version(h, V, False, {})
    s.write(0, b"new")
    b.publish(s)
    a.barrier()
    assert a.read(h, 0, 100)[0] == b"new" + b"x" * 16


def test_without_a_barrier_changes_show_when_their_notification_arrives(ns):
    a, b = ns("a"), ns("b")
    r = a.root()
    assert list(b.readdir(r, 0)) == []
    a.mkdir(r, b"d", 0o755, 0, 0)
    wait_for(lambda: [e.name for e in b.readdir(r, 0)] == [b"d"], 30, "the notification")


def test_a_read_that_raced_a_change_is_not_kept(ns):
    a = ns("a")
    r = a.root()
    cache = a.mcache
    token = cache.token()
    row = cache.rows.get(1)
    cache.drop(["1"])  # a change heard of between the read and its keeping
    cache.put_rows(token, [row or (1,) * 16])
    assert 1 not in cache.rows
    assert a.getattr(r).fileid == 1  # read again from the database (and kept)
    assert 1 in cache.rows


def test_a_lost_listener_turns_the_cache_off_and_starts_over(ns, services):
    a, b = ns("a"), ns("b")
    r = a.root()
    b.getattr(r)
    assert b.mcache.rows
    pid = b.mcache.listener_pid
    with psycopg.connect(services.pg.url(), autocommit=True) as c:
        c.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # what it held is dropped (notifications may be missed meanwhile) and it listens again
    wait_for(lambda: b.mcache.listener_pid != pid and b.mcache.usable(), 30, "a new listener")
    a.mkdir(r, b"after", 0o755, 0, 0)
    b.barrier()
    assert [e.name for e in b.readdir(r, 0)] == [b"after"]


def test_with_the_database_down_nothing_is_answered_from_the_cache(ns, services):
    a = ns("a")
    r = a.root()
    a.getattr(r)
    services.pg.stop()
    try:
        wait_for(lambda: not a.mcache.usable(), 30, "the listener to notice")
        with pytest.raises(I.Unavailable):
            a.getattr(r)
    finally:
        services.pg.start()
    wait_for(a.mcache.usable, 30, "the listener back")
    assert a.getattr(r).fileid == 1


def test_a_synced_new_file_survives_a_database_crash(ns, services):
    """A new staging row is committed without waiting for the WAL flush; the file's first
    sync (FILE_SYNC WRITE, COMMIT) makes it durable: after PostgreSQL is killed (immediate
    stop: no checkpoint) and restarted, the restarted frontend still has the file."""
    a = ns("a")
    s = a.create_staged(a.root(), b"f", V, 0o644, 0, 0, False, {"owner": "x"})
    s.write(0, b"kept")
    s.sync()
    services.pg.stop("immediate")
    services.pg.start()
    a.close()
    again = ns("a")
    [st] = again.list_staged()
    assert st.read(0, 4)[0] == b"kept" and st.record == {"owner": "x"}


# ---------------------------------------------------------------- small files
def test_a_small_file_lives_in_the_database(ns, services):
    a = ns("a")
    r = a.root()
    data = os.urandom(INLINE)
    services.s3.relay.cut()  # the object store is not needed for it
    try:
        h = publish(a, r, b"small", data)
        assert a.read(h, 0, INLINE + 1) == (data, True)
    finally:
        services.s3.relay.mend()
    store = ObjectStore(ns.data, ns.endpoint)
    assert store.keys() == set()
    # a copy-on-write version of it, and one that outgrows the database
    s = a.stage_version(h, V, False, {})
    s.write(1, b"Z")
    a.publish(s)
    assert a.read(h, 0, 3)[0] == data[:1] + b"Z" + data[2:3]
    s = a.stage_version(h, V, False, {})
    s.write(INLINE, b"more")
    a.publish(s)
    assert a.read(h, INLINE - 1, 10)[0] == data[-1:] + b"more"
    assert len(store.keys()) == 1
    assert problems(ns.meta, store) == []


# ---------------------------------------------------------------- early uploads
def test_pieces_a_writer_has_passed_are_uploaded_before_close(ns, services):
    a = ns("a")
    r = a.root()
    piece = a.chunk
    data = os.urandom(5 * piece + 100)
    s = a.create_staged(r, b"big", V, 0o644, 0, 0, False, {})
    for off in range(0, len(data), 8192):
        s.write(off, data[off:off + 8192])
    jobs = dict(s.early.jobs)
    assert sorted(jobs) == [0, 1, 2, 3, 4]  # the last, partial piece waits for publish
    for _, f in jobs.values():
        f.result(30)
    # piece 2 written again after its upload: publish uploads it anew
    s.write(2 * piece + 5, b"again")
    assert 2 not in s.early.jobs
    services.s3.relay.cut()
    try:  # the early objects are there; the changed piece and the tail need the store
        with pytest.raises(I.Unavailable):
            a.publish(s)
    finally:
        services.s3.relay.mend()
    a.publish(s)
    want = data[:2 * piece + 5] + b"again" + data[2 * piece + 10:]
    assert a.read(s.handle, 0, len(data) + 1) == (want, True)
    b = ns("b")  # another frontend reads it from the object store
    assert b.read(s.handle, 0, len(data) + 1, nowait=False) == (want, True)


# ---------------------------------------------------------------- heartbeat
def test_a_busy_frontend_keeps_its_heartbeat_and_is_not_declared_dead(ns):
    """The heartbeat has a thread of its own: a frontend whose upkeep pass never runs (its
    worker threads all busy publishing, as in CI once) is still alive for its peers."""
    a = ns("a", lease_time=1, grace_time=1)
    b = ns("b", lease_time=1, grace_time=1)

    def beat(name):
        """(seconds since its heartbeat, seconds since the test began), database clock."""
        with psycopg.connect(ns.meta, autocommit=True) as c:
            return c.execute("SELECT extract(epoch FROM now() - heartbeat), extract(epoch FROM "
                             "now() - %s::timestamptz) FROM frontends WHERE id = %s",
                             (began, name)).fetchone()
    with psycopg.connect(ns.meta, autocommit=True) as c:
        began = c.execute("SELECT now()").fetchone()[0]
    # a's maintenance() is never called here: past a lease plus grace (2 s) of the database's
    # clock its heartbeat must still be recent
    wait_for(lambda: beat("a")[1] > 3, 30, "three seconds of the database's clock")
    assert beat("a")[0] < 2
    b.maintenance()  # declares dead whoever has been silent for lease + grace
    with psycopg.connect(ns.meta, autocommit=True) as c:
        assert c.execute("SELECT state FROM frontends WHERE id = 'a'").fetchone()[0] == "alive"
    a.maintenance()  # not fenced
    assert not a.fenced
