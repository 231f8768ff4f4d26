"""The write-once lifecycle: files under construction, versions, publish, discard, Gone."""

from __future__ import annotations

import threading

import pytest

from backend import interface as I

from .util import V1, V2, mkdir, names, new_file, read_all, rewrite, staged


# --------------------------------------------------------------------------- new files
def test_a_file_under_construction_is_visible_only_to_its_viewer(backend):
    r = backend.root()
    s = staged(backend, r, b"t", record={"owner": 1}, mode=0o640)
    assert s.backend is backend and s.is_new and s.viewer == V1 and s.record == {"owner": 1}
    assert isinstance(s.id, str) and s.dirty  # a new file is something to publish already
    s.write(0, b"12345")
    assert backend.lookup(r, b"t", V1) == s.handle
    for viewer in (V2, None):
        with pytest.raises(I.NotFound):
            backend.lookup(r, b"t", viewer)
    a = backend.getattr(s.handle, V1)
    assert (a.size, a.kind, a.mode) == (5, I.Kind.REG, 0o640) and a.fileid == s.attrs().fileid
    with pytest.raises(I.Stale):  # for everybody else it does not exist
        backend.getattr(s.handle, V2)
    backend.check(s.handle)
    assert backend.list_staged() == [s]
    backend.publish(s)
    assert backend.lookup(r, b"t", V2) == s.handle and backend.lookup(r, b"t") == s.handle
    assert backend.getattr(s.handle, V2).fileid == a.fileid
    assert read_all(backend, s.handle) == b"12345"
    assert backend.list_staged() == []


def test_a_viewers_new_file_shadows_the_published_one(backend):
    r = backend.root()
    old = new_file(backend, r, b"f", b"old")
    s = staged(backend, r, b"f")
    assert backend.lookup(r, b"f", V1) == s.handle and backend.lookup(r, b"f", V2) == old
    listed = [(e.name, e.handle) for e in backend.readdir(r, 0, V1)]
    assert listed == [(b"f", s.handle)]  # once: the published file is not listed too
    assert [(e.name, e.handle) for e in backend.readdir(r, 0, V2)] == [(b"f", old)]
    s.write(0, b"new!")
    assert read_all(backend, old) == b"old"
    backend.publish(s)
    assert backend.lookup(r, b"f", V2) == s.handle and read_all(backend, s.handle) == b"new!"
    with pytest.raises(I.Stale):
        backend.getattr(old)


def test_an_untouched_new_file_is_published_empty(backend):
    r = backend.root()
    s = staged(backend, r, b"touched")
    backend.publish(s)
    assert backend.getattr(s.handle).size == 0 and backend.lookup(r, b"touched") == s.handle


def test_exclusive_creates_reserve_the_name_against_everybody(backend):
    r = backend.root()
    s = staged(backend, r, b"x", exclusive=True, verifier=b"12345678")
    assert backend.create_verifier(s.handle) == b"12345678"
    for viewer in (V1, V2):
        with pytest.raises(I.Exists):
            staged(backend, r, b"x", viewer, exclusive=True)
    f = new_file(backend, r, b"other")
    for op in (lambda: mkdir(backend, r, b"x"),
               lambda: backend.symlink(r, b"x", b"t", 0o777, None, None),
               lambda: backend.mknod(r, b"x", I.Kind.FIFO, (0, 0), 0o644, None, None),
               lambda: backend.link(f, r, b"x")):
        with pytest.raises(I.Exists):
            op()
    unchecked = staged(backend, r, b"x", V2)  # an UNCHECKED create is no exclusive one
    backend.discard(unchecked)
    backend.publish(s)
    assert backend.create_verifier(s.handle) == b"12345678"
    assert backend.create_verifier(f) is None
    with pytest.raises(I.Exists):
        staged(backend, r, b"x", V2, exclusive=True)


def test_an_exclusive_create_fails_on_any_file_under_construction(backend):
    r = backend.root()
    staged(backend, r, b"x", V1)
    with pytest.raises(I.Exists):
        staged(backend, r, b"x", V2, exclusive=True)


def test_exclusive_create_race_has_one_winner(backend):
    r = backend.root()
    barrier = threading.Barrier(6)
    results = []

    def racer(i):
        barrier.wait()
        try:
            results.append(staged(backend, r, b"race", b"v%d" % i, exclusive=True))
        except I.Exists:
            results.append(None)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and len([s for s in results if s is not None]) == 1


def test_create_staged_conflicts_with_published_names(backend):
    r = backend.root()
    d = mkdir(backend, r, b"dir")
    backend.symlink(r, b"link", b"t", 0o777, None, None)
    backend.mknod(r, b"fifo", I.Kind.FIFO, (0, 0), 0o644, None, None)
    new_file(backend, r, b"file")
    with pytest.raises(I.IsDir):
        staged(backend, r, b"dir")
    for name in (b"link", b"fifo"):
        with pytest.raises(I.Exists):
            staged(backend, r, name)
    with pytest.raises(I.Exists):
        staged(backend, r, b"file", exclusive=True)
    staged(backend, r, b"file")  # unchecked over a regular file: a new version of the name
    with pytest.raises(I.NotDir):
        staged(backend, backend.lookup(r, b"file"), b"y")
    assert d


def test_unchecked_creates_by_two_viewers_last_publish_wins(backend):
    r = backend.root()
    s1, s2 = staged(backend, r, b"f", V1), staged(backend, r, b"f", V2)
    s1.write(0, b"one")
    s2.write(0, b"two")
    assert read_all_viewer(backend, r, b"f", V1) == b"one"
    backend.publish(s2)
    assert read_all(backend, backend.lookup(r, b"f")) == b"two"
    backend.publish(s1)
    assert backend.lookup(r, b"f") == s1.handle and read_all(backend, s1.handle) == b"one"
    with pytest.raises(I.Stale):
        backend.getattr(s2.handle)


def read_all_viewer(b, dir, name, viewer):
    """What the viewer reads through its own staging object of `name`."""
    h = b.lookup(dir, name, viewer)
    (s,) = [s for s in b.list_staged() if s.handle == h and s.viewer == viewer]
    return s.read(0, 1 << 20)[0]


def test_the_directory_changes_when_a_name_is_reserved_and_when_it_is_published(backend):
    """The creating client sees its OPEN change the directory (change_info) at once."""
    r = backend.root()
    d = mkdir(backend, r, b"d")
    a0 = backend.getattr(d)
    s = staged(backend, d, b"f")
    a1 = backend.getattr(d)
    assert a1.change > a0.change and a1.mtime_ns > a0.mtime_ns and a1.ctime_ns >= a0.ctime_ns
    s.write(0, b"x")
    assert backend.getattr(d).change == a1.change  # writing is not a directory change
    backend.publish(s)
    a2 = backend.getattr(d)
    assert a2.change > a1.change and a2.mtime_ns >= a1.mtime_ns


# --------------------------------------------------------------------------- versions
def test_a_version_is_private_until_published_and_keeps_the_handle(backend):
    r = backend.root()
    f = new_file(backend, r, b"f", b"version-1")
    a1 = backend.getattr(f)
    s = backend.stage_version(f, V1, False, {"k": "v"})
    assert not s.is_new and s.handle == f and not s.dirty and s.size() == 9
    assert backend.getattr(f, V1) == a1  # nothing written yet: the published attributes
    s.write(8, b"2, longer")
    assert s.dirty and s.read(0, 100) == (b"version-2, longer", True)
    assert backend.getattr(f, V1).size == 17 and backend.getattr(f, V2).size == 9
    assert backend.getattr(f, V1).fileid == a1.fileid
    assert backend.lookup_attrs(r, b"f", V1)[1].size == 17
    assert read_all(backend, f) == b"version-1"  # readers see the published version
    backend.publish(s)
    a2 = backend.getattr(f)
    assert read_all(backend, f) == b"version-2, longer" and a2.size == 17
    assert a2.fileid == a1.fileid and a2.change > a1.change
    assert backend.lookup(r, b"f") == f and backend.list_staged() == []


def test_a_truncating_version_starts_empty(backend):
    r = backend.root()
    f = new_file(backend, r, b"f", b"base")
    s = backend.stage_version(f, V1, True, {})
    assert s.size() == 0 and s.read(0, 10) == (b"", True) and s.dirty
    assert backend.getattr(f, V1).size == 0
    backend.publish(s)
    assert backend.getattr(f).size == 0


def test_a_version_that_changes_nothing_publishes_nothing(backend):
    r = backend.root()
    f = new_file(backend, r, b"f", b"same")
    before = backend.getattr(f)
    s = backend.stage_version(f, V1, False, {})
    s.write(0, b"")  # writes nothing
    s.allocate(0, 2)  # reserves space inside the file: nothing anybody reads changes
    assert not s.dirty
    backend.publish(s)
    after = backend.getattr(f)
    assert (after.change, after.ctime_ns, after.mtime_ns) == \
        (before.change, before.ctime_ns, before.mtime_ns)
    assert read_all(backend, f) == b"same"


def test_two_writers_do_not_merge_last_publish_wins(backend):
    r = backend.root()
    f = new_file(backend, r, b"f", b"base")
    s1 = backend.stage_version(f, V1, False, {})
    s2 = backend.stage_version(f, V2, True, {})
    s1.write(0, b"ONE!")
    s2.write(0, b"two")
    backend.publish(s1)
    assert read_all(backend, f) == b"ONE!"
    assert s2.read(0, 10) == (b"two", True)  # unaffected by the other publish
    backend.publish(s2)
    assert read_all(backend, f) == b"two"
    changes = set()
    for i in range(5):  # publishes in quick succession: change moves every time
        rewrite(backend, f, b"%d" % i)
        changes.add(backend.getattr(f).change)
    assert len(changes) == 5


def test_a_version_follows_renames_of_its_file(backend):
    r = backend.root()
    d = mkdir(backend, r, b"d")
    f = new_file(backend, r, b"f", b"x")
    s = backend.stage_version(f, V1, False, {})
    s.write(1, b"yz")
    backend.rename(r, b"f", d, b"g")
    backend.publish(s)
    assert backend.lookup(d, b"g") == f and read_all(backend, f) == b"xyz"
    assert names(backend, r) == [b"d"]


def test_a_version_replaces_only_the_name_it_was_opened_by(backend):
    """Other hard links keep the old content, as after an editor's write-and-rename."""
    r = backend.root()
    f = new_file(backend, r, b"f", b"old")
    backend.link(f, r, b"other")
    rewrite(backend, f, b"new")
    other = backend.lookup(r, b"other")
    assert backend.lookup(r, b"f") == f and read_all(backend, f) == b"new"
    assert other != f and read_all(backend, other) == b"old"
    assert backend.getattr(f).nlink == 1 and backend.getattr(other).nlink == 1
    assert backend.getattr(other).fileid != backend.getattr(f).fileid
    backend.link(f, r, b"third")
    backend.rename(r, b"f", r, b"renamed")  # the name it was opened by, under a new name
    rewrite(backend, f, b"newer")
    assert backend.lookup(r, b"renamed") == f and read_all(backend, f) == b"newer"
    assert read_all(backend, backend.lookup(r, b"third")) == b"new"


def test_staging_objects_cannot_be_used_once_finished(backend):
    r = backend.root()
    f = new_file(backend, r, b"f", b"x")
    s = backend.stage_version(f, V1, False, {})
    s.write(0, b"y")
    backend.publish(s)
    for op in (lambda: s.write(0, b"x"), lambda: s.read(0, 1), lambda: s.truncate(0),
               lambda: s.attrs(), lambda: s.sync(), lambda: s.set_record({}),
               lambda: backend.publish(s)):
        with pytest.raises(I.Invalid):
            op()
    backend.discard(s)  # discarding a finished one does nothing
    n = staged(backend, r, b"n")
    backend.publish(n)
    with pytest.raises(I.Invalid):  # a new file too, once published
        n.write(0, b"x")
    t = staged(backend, r, b"t")
    backend.discard(t)
    with pytest.raises(I.Invalid):
        backend.publish(t)
    assert backend.list_staged() == []


def test_publish_without_sync_is_visible_at_once(backend):
    r = backend.root()
    s = staged(backend, r, b"f")
    s.write(0, b"x")
    durable = backend.publish(s, sync=False)
    assert backend.lookup(r, b"f") == s.handle and read_all(backend, s.handle) == b"x"
    if durable is not None:
        durable()
    v = backend.stage_version(s.handle, V1, False, {})
    v.write(0, b"y")
    durable = backend.publish(v, sync=False)
    assert read_all(backend, s.handle) == b"y"
    if durable is not None:
        durable()


def test_stage_version_needs_a_published_regular_file(backend):
    r = backend.root()
    d = mkdir(backend, r, b"d")
    ln = backend.symlink(r, b"l", b"d", 0o777, None, None)
    t = staged(backend, r, b"t")
    with pytest.raises(I.IsDir):
        backend.stage_version(d, V1, False, {})
    with pytest.raises(I.WrongType):
        backend.stage_version(ln, V1, False, {})
    with pytest.raises(I.Invalid):
        backend.stage_version(t.handle, V1, False, {})
    with pytest.raises(I.Invalid):  # the record is written as JSON
        backend.stage_version(new_file(backend, r, b"f"), V1, False, {"x": object()})


# --------------------------------------------------------------------------- discard and Gone
def test_discard(backend):
    r = backend.root()
    f = new_file(backend, r, b"f", b"kept")
    t = staged(backend, r, b"t")
    v = backend.stage_version(f, V1, False, {})
    v.write(0, b"lost")
    backend.discard(t)
    backend.discard(v)
    with pytest.raises(I.Stale):
        backend.getattr(t.handle)
    with pytest.raises(I.NotFound):
        backend.lookup(r, b"t", V1)
    assert read_all(backend, f) == b"kept" and backend.getattr(f, V1) == backend.getattr(f)
    assert backend.list_staged() == []


def test_removing_a_transient_name_means_publish_does_nothing(backend):
    r = backend.root()
    s = staged(backend, r, b"t")
    s.write(0, b"x")
    backend.remove(r, b"t", V1)
    with pytest.raises(I.NotFound):
        backend.lookup(r, b"t", V1)
    with pytest.raises(I.Gone):
        backend.publish(s)
    assert names(backend, r) == [] and backend.list_staged() == []
    with pytest.raises(I.Stale):
        backend.getattr(s.handle)


def test_remove_by_the_viewer_takes_its_transient_and_the_published_name(backend):
    r = backend.root()
    new_file(backend, r, b"f", b"published")
    s = staged(backend, r, b"f")
    backend.remove(r, b"f", V1)
    assert names(backend, r) == [] and names(backend, r, V1) == []
    with pytest.raises(I.Gone):
        backend.publish(s)


def test_another_viewers_transient_name_cannot_be_removed(backend):
    r = backend.root()
    s = staged(backend, r, b"t", V1)
    for viewer in (V2, None):
        with pytest.raises(I.NotFound):
            backend.remove(r, b"t", viewer)
    backend.publish(s)
    assert backend.lookup(r, b"t") == s.handle


def test_removing_the_directory_means_publish_does_nothing(backend):
    r = backend.root()
    d = mkdir(backend, r, b"d")
    s = staged(backend, d, b"t")
    backend.remove(r, b"d")  # a transient name does not keep the directory busy
    with pytest.raises(I.Gone):
        backend.publish(s)
    assert backend.list_staged() == []


def test_a_version_of_a_removed_file_is_gone(backend):
    r = backend.root()
    f = new_file(backend, r, b"f", b"x")
    s = backend.stage_version(f, V1, False, {})
    s.write(0, b"y")
    backend.remove(r, b"f")
    with pytest.raises(I.Gone):
        backend.publish(s)
    assert backend.list_staged() == []


def test_publishing_where_a_directory_appeared_is_refused(backend):
    r = backend.root()
    s = staged(backend, r, b"x")
    mkdir(backend, r, b"x")
    with pytest.raises(I.IsDir):
        backend.publish(s)
    assert backend.list_staged() == [s]  # still there: the client may rename it elsewhere
    backend.rename(r, b"x", r, b"elsewhere", V1)
    backend.publish(s)
    assert backend.lookup(r, b"elsewhere") == s.handle


# --------------------------------------------------------------------- renames of transient names
def test_renaming_a_transient_name_moves_the_publication_target(backend):
    r = backend.root()
    d = mkdir(backend, r, b"d")
    s = staged(backend, r, b"tmp")
    s.write(0, b"content")
    backend.rename(r, b"tmp", d, b"final", V1)
    with pytest.raises(I.NotFound):
        backend.lookup(r, b"tmp", V1)
    assert backend.lookup(d, b"final", V1) == s.handle and backend.parent(s.handle) == d
    with pytest.raises(I.NotFound):
        backend.lookup(d, b"final", V2)
    backend.publish(s)
    assert backend.lookup(d, b"final") == s.handle and read_all(backend, s.handle) == b"content"
    assert names(backend, r) == [b"d"]


def test_renaming_a_transient_name_over_a_published_file_replaces_it_at_publish(backend):
    r = backend.root()
    f = new_file(backend, r, b"f", b"old")
    s = staged(backend, r, b"t")
    s.write(0, b"NEW")
    backend.rename(r, b"t", r, b"f", V1)
    assert backend.lookup(r, b"f", V1) == s.handle and backend.lookup(r, b"f", V2) == f
    assert [e.handle for e in backend.readdir(r, 0, V1)] == [s.handle]
    backend.publish(s)
    assert backend.lookup(r, b"f") == s.handle
    with pytest.raises(I.Stale):
        backend.getattr(f)
    mkdir(backend, r, b"d")
    staged(backend, r, b"u")
    with pytest.raises(I.IsDir):  # a file under construction cannot replace a directory
        backend.rename(r, b"u", r, b"d", V1)


def test_renames_onto_a_viewers_transient_name(backend):
    r = backend.root()
    g = new_file(backend, r, b"g", b"G")
    s = staged(backend, r, b"h")
    backend.rename(r, b"g", r, b"h", V1)  # the viewer replaced its own file under construction
    with pytest.raises(I.Gone):
        backend.publish(s)
    assert backend.lookup(r, b"h") == g
    s = staged(backend, r, b"i")
    backend.rename(r, b"h", r, b"i")  # somebody else's rename: the staged file still publishes
    backend.publish(s)
    assert backend.lookup(r, b"i") == s.handle
    mkdir(backend, r, b"d")
    staged(backend, r, b"j")
    with pytest.raises(I.NotDir):  # the viewer sees a file there
        backend.rename(r, b"d", r, b"j", V1)


# --------------------------------------------------------------------------- pinned versions
def test_an_open_version_stays_readable_after_remove_and_replace(backend):
    r = backend.root()
    f = new_file(backend, r, b"f", b"version-1")
    pin = backend.open_version(f)
    assert pin.attrs().size == 9 and pin.attrs().nlink == 1
    rewrite(backend, f, b"version-2, longer")
    assert pin.read(0, 100) == (b"version-1", True)
    assert pin.attrs().size == 9 and pin.attrs().nlink == 0
    pin.close()
    with pytest.raises(I.Invalid):
        pin.read(0, 1)
    pin = backend.open_version(f)
    backend.remove(r, b"f")
    assert pin.read(0, 7) == (b"version", False)  # PRESERVE_UNLINKED
    assert pin.attrs().nlink == 0
    with pytest.raises(I.Stale):
        backend.open_version(f)
    pin.close()


def test_open_version_needs_a_published_regular_file(backend):
    r = backend.root()
    d = mkdir(backend, r, b"d")
    t = staged(backend, r, b"t")
    with pytest.raises(I.IsDir):
        backend.open_version(d)
    with pytest.raises(I.Invalid):
        backend.open_version(t.handle)
    with pytest.raises(I.WrongType):
        backend.open_version(backend.symlink(r, b"l", b"t", 0o777, None, None))


def test_readers_in_threads_never_see_part_of_a_version(backend):
    r = backend.root()
    size = 64 << 10
    f = new_file(backend, r, b"f", bytes(size))
    stop = threading.Event()
    bad = []

    def reader():
        while not stop.is_set():
            data, _ = backend.read(f, 0, size)
            if len(data) != size or len(set(data)) != 1:
                bad.append(len(data))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 13):
            s = backend.stage_version(f, V1, i % 2 == 0, {})
            s.write(0, bytes([i]) * (size // 2))  # in two halves: the first alone is a mix
            s.write(size // 2, bytes([i]) * (size // 2))
            backend.publish(s)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert bad == [] and read_all(backend, f) == bytes([12]) * size
