"""LocalBackend and its directory: the state dir, what the export directory holds, and files,
links and directories that local programs make, change, move and remove behind its back (real
temporary directories, no mocks).

The local backend's other concerns have their own modules: tests/test_backend_local_handles.py,
_listing, _records, _crash, _sync and _io. What every backend does is in the contract suite
(tests/backend_contract/), which runs on LocalBackend too."""

from __future__ import annotations

import os
import subprocess

import pytest

from backend import interface as I
from backend.local import LocalBackend
from backend_local_util import b, export, mk, xb  # noqa: F401 (fixtures)
from backend_local_util import V1, names, new_file, read_all, staged, staging_files


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


def test_non_durable_mode(mk):
    b = mk(durable=False)
    h = new_file(b, b.root(), b"f", b"quick")
    assert read_all(b, h) == b"quick"
    s = b.stage_version(h, V1, False, {})
    s.write(0, b"Q")
    b.publish(s)
    assert read_all(b, h) == b"Quick"


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


@pytest.mark.skipif(os.geteuid() == 0, reason="root gives new objects the owner asked for")
def test_owners_asked_for_are_ignored_unless_root(b):
    h = b.mkdir(b.root(), b"owned", 0o755, 1234, 5678)
    assert b.getattr(h).uid == os.geteuid()
    t = b.create_staged(b.root(), b"t", V1, 0o644, 4321, 8765, False, {})
    assert t.attrs().uid == os.geteuid()


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


def test_a_link_made_by_a_local_program_is_the_same_object(b, export):
    r = b.root()
    f = new_file(b, r, b"a", b"x")
    os.link(export / "a", export / "c")
    assert b.lookup(r, b"c") == f and b.getattr(f).nlink == 2
    b.remove(r, b"a")
    assert b.lookup(r, b"c") == f and read_all(b, f) == b"x"


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

