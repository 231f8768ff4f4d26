"""Names and objects: lookup, getattr, creating, removing, renaming, linking, setattr, handles."""

from __future__ import annotations

import pytest

from backend import interface as I

from .util import V1, honours_owner, mkdir, names, new_file, read_all, staged


# --------------------------------------------------------------------------- handles
def test_root_is_a_directory_and_its_own_parent(backend):
    r = backend.root()
    a = backend.getattr(r)
    assert a.kind == I.Kind.DIR and a.nlink >= 2
    assert backend.parent(r) == r
    assert 0 < len(r) <= I.HANDLE_MAX
    assert backend.fsid() == backend.fsid()


def test_every_handle_starts_with_the_backends_identity(backend):
    """The server routes a filehandle to its export by its first 8 bytes."""
    r = backend.root()
    d = mkdir(backend, r, b"d")
    f = new_file(backend, d, b"f", b"x")
    s = staged(backend, d, b"t")
    ln = backend.symlink(r, b"l", b"f", 0o777, None, None)
    for h in (d, f, s.handle, ln):
        assert h[:8] == r[:8] and len(h) <= I.HANDLE_MAX


def test_handles_survive_rename_and_restart(backend, reopen):
    r = backend.root()
    d = mkdir(backend, r, b"d")
    sub = mkdir(backend, d, b"sub")
    f = new_file(backend, sub, b"f", b"data")
    fid = backend.getattr(f).fileid
    fsid = backend.fsid()
    backend.rename(sub, b"f", r, b"moved")
    backend.rename(r, b"d", r, b"d-renamed")
    assert backend.lookup(r, b"moved") == f and backend.lookup(r, b"d-renamed") == d
    assert read_all(backend, f) == b"data"
    b2 = reopen(backend)
    # every handle works at once, before any lookup of its path
    assert read_all(b2, f) == b"data" and b2.getattr(f).fileid == fid
    assert b2.getattr(sub).kind == I.Kind.DIR
    assert b2.parent(f) == r and b2.parent(sub) == d and b2.parent(d) == r
    assert b2.root() == r and b2.fsid() == fsid
    assert b2.lookup(r, b"moved") == f
    assert b2.lookup(r, b"d-renamed") == d and b2.lookup(d, b"sub") == sub


def test_removed_objects_are_stale_and_never_aliased(backend, reopen):
    r = backend.root()
    f = new_file(backend, r, b"f", b"x")
    d = mkdir(backend, r, b"d")
    backend.remove(r, b"f")
    backend.remove(r, b"d")
    for op in (lambda: backend.getattr(f), lambda: backend.read(f, 0, 1),
               lambda: backend.check(f), lambda: backend.getattr(d),
               lambda: backend.lookup(d, b"x"), lambda: list(backend.readdir(d, 0)),
               lambda: mkdir(backend, d, b"x"), lambda: staged(backend, d, b"x"),
               lambda: backend.parent(d), lambda: backend.statfs(f)):
        with pytest.raises(I.Stale):
            op()
    f2 = new_file(backend, r, b"f", b"y")  # the same name again: another object
    d2 = mkdir(backend, r, b"d")
    assert f2 != f and d2 != d
    assert backend.getattr(f2).fileid != backend.getattr(d2).fileid
    b2 = reopen(backend)
    with pytest.raises(I.Stale):
        b2.getattr(f)
    with pytest.raises(I.Stale):
        b2.getattr(d)
    assert read_all(b2, f2) == b"y"


def test_parent_of_each_kind_of_object(backend):
    r = backend.root()
    d = mkdir(backend, r, b"d")
    e = mkdir(backend, d, b"e")
    f = new_file(backend, e, b"f")
    t = staged(backend, e, b"t")
    assert backend.parent(e) == d and backend.parent(d) == r
    assert backend.parent(f) == e
    assert backend.parent(t.handle) == e  # a file under construction: where it will appear
    backend.rename(e, b"f", d, b"f")
    assert backend.parent(f) == d


# --------------------------------------------------------------------------- creating
def test_lookup_and_getattr_agree(backend):
    r = backend.root()
    d = mkdir(backend, r, b"d", 0o750)
    f = new_file(backend, d, b"f", b"12345", mode=0o640)
    assert backend.lookup(r, b"d") == d
    h, a = backend.lookup_attrs(d, b"f")
    assert h == f and a == backend.getattr(f)
    assert (a.kind, a.mode, a.size, a.nlink) == (I.Kind.REG, 0o640, 5, 1)
    da = backend.getattr(d)
    assert (da.kind, da.mode, da.nlink) == (I.Kind.DIR, 0o750, 2)
    assert a.fileid != da.fileid != backend.getattr(r).fileid
    with pytest.raises(I.NotFound):
        backend.lookup(d, b"missing")
    with pytest.raises(I.NotFound):
        backend.lookup_attrs(d, b"missing")


def test_mkdir_links_and_times(backend):
    r = backend.root()
    before = backend.getattr(r)
    d = mkdir(backend, r, b"d")
    after = backend.getattr(r)
    assert after.nlink == before.nlink + 1  # the new directory's ".."
    assert after.change > before.change and after.mtime_ns >= before.mtime_ns
    mkdir(backend, d, b"a")
    mkdir(backend, d, b"b")
    new_file(backend, d, b"f")
    assert backend.getattr(d).nlink == 4
    backend.remove(d, b"a")
    assert backend.getattr(d).nlink == 3
    with pytest.raises(I.Exists):
        mkdir(backend, r, b"d")


def test_owner_of_new_objects(backend, kind):
    if not honours_owner(kind):
        pytest.skip("the local backend sets owners only when it runs as root")
    r = backend.root()
    d = backend.mkdir(r, b"d", 0o755, 1234, 5678)
    ln = backend.symlink(r, b"l", b"x", 0o777, 42, 43)
    s = backend.create_staged(r, b"f", V1, 0o644, 4321, 8765, False, {})
    assert (backend.getattr(d).uid, backend.getattr(d).gid) == (1234, 5678)
    assert (backend.getattr(ln).uid, backend.getattr(ln).gid) == (42, 43)
    assert (s.attrs().uid, s.attrs().gid) == (4321, 8765)
    backend.publish(s)
    assert backend.getattr(s.handle).uid == 4321
    assert backend.setattr(d, I.SetAttrs(uid=7, gid=8)).uid == 7
    assert backend.getattr(d).gid == 8


def test_symlinks(backend):
    r = backend.root()
    ln = backend.symlink(r, b"l", b"../../outside/target", 0o644, None, None)
    a = backend.getattr(ln)
    assert a.kind == I.Kind.LNK and a.size == len(b"../../outside/target")
    assert backend.readlink(ln) == b"../../outside/target"
    assert backend.lookup(r, b"l") == ln
    with pytest.raises(I.NotDir):
        backend.lookup(ln, b"x")  # never followed
    with pytest.raises(I.NotSymlink):
        backend.readlink(r)
    for bad in (b"", b"a\0b"):
        with pytest.raises(I.Invalid):
            backend.symlink(r, b"bad", bad, 0o777, None, None)
    mode = a.mode
    backend.setattr(ln, I.SetAttrs(mode=0o600))  # a symlink's mode means nothing: a no-op
    assert backend.getattr(ln).mode == mode
    with pytest.raises(I.Exists):
        backend.symlink(r, b"l", b"y", 0o777, None, None)


def test_special_files(backend):
    r = backend.root()
    fifo = backend.mknod(r, b"fifo", I.Kind.FIFO, (0, 0), 0o640, None, None)
    sock = backend.mknod(r, b"sock", I.Kind.SOCK, (0, 0), 0o600, None, None)
    assert (backend.getattr(fifo).kind, backend.getattr(fifo).mode) == (I.Kind.FIFO, 0o640)
    assert backend.getattr(sock).kind == I.Kind.SOCK
    try:
        chr_ = backend.mknod(r, b"null", I.Kind.CHR, (1, 3), 0o666, None, None)
    except I.Permission:  # a container may refuse device nodes
        pass
    else:
        assert backend.getattr(chr_).kind == I.Kind.CHR and backend.getattr(chr_).rdev == (1, 3)
    for k in (I.Kind.REG, I.Kind.DIR, I.Kind.LNK):
        with pytest.raises(I.WrongType):
            backend.mknod(r, b"x", k, (0, 0), 0o644, None, None)
    with pytest.raises(I.Exists):
        backend.mknod(r, b"fifo", I.Kind.FIFO, (0, 0), 0o640, None, None)
    with pytest.raises(I.WrongType):
        backend.read(fifo, 0, 1)
    with pytest.raises(I.WrongType):
        backend.stage_version(fifo, V1, False, {})
    backend.remove(r, b"fifo")
    with pytest.raises(I.Stale):
        backend.getattr(fifo)


# --------------------------------------------------------------------------- removing
def test_remove(backend):
    r = backend.root()
    d = mkdir(backend, r, b"d")
    f = new_file(backend, d, b"f", b"x")
    ln = backend.symlink(d, b"l", b"f", 0o777, None, None)
    with pytest.raises(I.NotEmpty):
        backend.remove(r, b"d")
    before = backend.getattr(d)
    backend.remove(d, b"f")
    after = backend.getattr(d)
    assert after.change > before.change
    with pytest.raises(I.NotFound):
        backend.lookup(d, b"f")
    with pytest.raises(I.NotFound):
        backend.remove(d, b"f")
    backend.remove(d, b"l")
    with pytest.raises(I.Stale):
        backend.readlink(ln)
    backend.remove(r, b"d")
    assert names(backend, r) == []
    with pytest.raises(I.Stale):
        backend.getattr(f)


# --------------------------------------------------------------------------- renaming
def test_rename_within_and_across_directories(backend):
    r = backend.root()
    d1, d2 = mkdir(backend, r, b"d1"), mkdir(backend, r, b"d2")
    f = new_file(backend, d1, b"f", b"x")
    c1, c2 = backend.getattr(d1).change, backend.getattr(d2).change
    backend.rename(d1, b"f", d1, b"g")
    assert backend.lookup(d1, b"g") == f and backend.getattr(d1).change > c1
    with pytest.raises(I.NotFound):
        backend.lookup(d1, b"f")
    c1 = backend.getattr(d1).change
    backend.rename(d1, b"g", d2, b"h")
    assert backend.lookup(d2, b"h") == f and backend.parent(f) == d2
    assert backend.getattr(d1).change > c1 and backend.getattr(d2).change > c2
    assert names(backend, d1) == [] and names(backend, d2) == [b"h"]
    backend.rename(d2, b"h", d2, b"h")  # onto itself: nothing happens
    assert backend.lookup(d2, b"h") == f
    with pytest.raises(I.NotFound):
        backend.rename(d1, b"nope", d2, b"x")


def test_rename_moves_a_directory_with_its_children(backend):
    r = backend.root()
    a, z = mkdir(backend, r, b"a"), mkdir(backend, r, b"z")
    inner = mkdir(backend, a, b"inner")
    f = new_file(backend, inner, b"f", b"1")
    na, nz = backend.getattr(a).nlink, backend.getattr(z).nlink
    backend.rename(a, b"inner", z, b"inner2")
    assert backend.getattr(a).nlink == na - 1 and backend.getattr(z).nlink == nz + 1
    assert backend.parent(inner) == z and backend.lookup(z, b"inner2") == inner
    assert backend.lookup(inner, b"f") == f and read_all(backend, f) == b"1"


def test_rename_over_existing_names(backend):
    r = backend.root()
    f = new_file(backend, r, b"f", b"new")
    victim = new_file(backend, r, b"victim", b"old")
    backend.rename(r, b"f", r, b"victim")
    assert backend.lookup(r, b"victim") == f and read_all(backend, f) == b"new"
    with pytest.raises(I.Stale):
        backend.getattr(victim)

    d = mkdir(backend, r, b"d")
    empty = mkdir(backend, r, b"empty")
    full = mkdir(backend, r, b"full")
    new_file(backend, full, b"x")
    with pytest.raises(I.NotEmpty):
        backend.rename(r, b"d", r, b"full")
    with pytest.raises(I.IsDir):
        backend.rename(r, b"victim", r, b"d")  # a file over a directory
    with pytest.raises(I.NotDir):
        backend.rename(r, b"d", r, b"victim")  # a directory over a file
    n = backend.getattr(r).nlink
    backend.rename(r, b"d", r, b"empty")  # a directory over an empty one: fine
    assert backend.lookup(r, b"empty") == d and backend.getattr(r).nlink == n - 1
    with pytest.raises(I.Stale):
        backend.getattr(empty)


def test_a_directory_cannot_move_into_itself(backend):
    r = backend.root()
    d = mkdir(backend, r, b"d")
    sub = mkdir(backend, d, b"sub")
    deeper = mkdir(backend, sub, b"deeper")
    for target in (d, sub, deeper):
        with pytest.raises(I.Invalid):
            backend.rename(r, b"d", target, b"x")
    with pytest.raises(I.NotEmpty):
        backend.rename(sub, b"deeper", r, b"d")  # over its own (non-empty) ancestor
    assert backend.lookup(r, b"d") == d and backend.parent(deeper) == sub


def test_rename_onto_another_link_of_the_same_file_does_nothing(backend):
    r = backend.root()
    f = new_file(backend, r, b"a", b"x")
    backend.link(f, r, b"b")
    backend.rename(r, b"a", r, b"b")
    assert names(backend, r) == [b"a", b"b"] and backend.getattr(f).nlink == 2


# --------------------------------------------------------------------------- links
def test_hard_links(backend):
    r = backend.root()
    d1, d2 = mkdir(backend, r, b"d1"), mkdir(backend, r, b"d2")
    f = new_file(backend, d1, b"a", b"x")
    before = backend.getattr(f)
    c2 = backend.getattr(d2).change
    backend.link(f, d2, b"b")
    after = backend.getattr(f)
    assert backend.lookup(d2, b"b") == f and after.nlink == 2 and after.change > before.change
    assert after.fileid == before.fileid and backend.getattr(d2).change > c2
    backend.remove(d1, b"a")
    gone = backend.getattr(f)
    assert gone.nlink == 1 and gone.change > after.change and read_all(backend, f) == b"x"
    assert backend.parent(f) == d2  # the name it still has
    with pytest.raises(I.IsDir):
        backend.link(d1, r, b"dirlink")
    with pytest.raises(I.Exists):
        backend.link(f, r, b"d1")
    with pytest.raises(I.NotDir):
        backend.link(f, f, b"x")
    t = staged(backend, r, b"t")
    with pytest.raises(I.Invalid):  # not published yet: nothing to link to
        backend.link(t.handle, r, b"t2")


# --------------------------------------------------------------------------- attributes
def test_setattr_changes_metadata_in_place(backend):
    r = backend.root()
    f = new_file(backend, r, b"f", b"x")
    a0 = backend.getattr(f)
    a = backend.setattr(f, I.SetAttrs(mode=0o604, mtime_ns=1_000_000_000_123,
                                      atime_ns=2_000_000_000_456))
    assert (a.mode, a.mtime_ns, a.atime_ns) == (0o604, 1_000_000_000_123, 2_000_000_000_456)
    assert a == backend.getattr(f) and a.change > a0.change and a.fileid == a0.fileid
    assert backend.setattr(f, I.SetAttrs()).change == a.change  # nothing asked, nothing moves
    d = mkdir(backend, r, b"d")
    assert backend.setattr(d, I.SetAttrs(mode=0o711)).mode == 0o711
    assert read_all(backend, f) == b"x"


def test_setattr_reaches_a_version_being_written(backend):
    """chmod while a new version is staged: the version published later keeps the mode."""
    r = backend.root()
    f = new_file(backend, r, b"f", b"x")
    s = backend.stage_version(f, V1, False, {})
    s.write(0, b"y")
    backend.setattr(f, I.SetAttrs(mode=0o640))
    backend.publish(s)
    assert backend.getattr(f).mode == 0o640 and read_all(backend, f) == b"y"
    t = staged(backend, r, b"t")  # a file under construction: its staging object
    assert backend.setattr(t.handle, I.SetAttrs(mode=0o600)).mode == 0o600
    assert t.attrs().mode == 0o600
    backend.publish(t)
    assert backend.getattr(t.handle).mode == 0o600


def test_statfs(backend):
    r = backend.root()
    st = backend.statfs(r)
    assert st.maxname == I.NAME_MAX and st.space_total > 0 and st.files_total > 0
    assert 0 <= st.space_avail <= st.space_total and 0 <= st.files_free <= st.files_total
    assert isinstance(st.xattrs, bool)
    f = new_file(backend, r, b"f")
    assert backend.statfs(f).xattrs == st.xattrs  # any object of the export answers
