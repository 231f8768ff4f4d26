"""POSIX permission rules where the server decides them (docs/semantics.md, "POSIX
permissions"): set-id bits after writes, truncates and chowns; sticky directories; who may chown;
what a write open keeps; a directory's times and change after a create. Users are AUTH_SYS
identities of the in-repo client over a real socket; the Linux-client side of the same rules is
tests/test_kernel_client.py::test_posix_permissions_as_root_and_two_users."""

from __future__ import annotations

import os
import stat

import pytest

from nfsd.client import NfsClient, NfsError, op
from nfsd.rpc.client import AuthSys
from nfsd.xdr import nfs4 as x

A, B = 1001, 1002  # two unprivileged users, each with its own group
RW = x.OPEN4_SHARE_ACCESS_BOTH


def status(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except NfsError as e:
        return e.status
    return x.NFS4_OK


@pytest.fixture(scope="module")
def users(server):
    """root, A and B, each a client of its own."""
    cs = [NfsClient(*server.address, uid=u, gid=u).mount() for u in (0, A, B)]
    yield cs
    for c in cs:
        c.close()


@pytest.fixture
def sdir(server, users, request):
    """A fresh world-writable sticky directory: (path, filehandle)."""
    path = os.path.join(server.directory, f"{request.node.name}")
    os.mkdir(path)
    os.chmod(path, 0o1777)
    return path, users[0].lookup(os.path.basename(path))


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def owned_file(path, uid, m, data=b"#!/bin/sh\n"):
    with open(path, "wb") as f:
        f.write(data)
    os.chown(path, uid, uid)
    os.chmod(path, m)


# ---------------------------------------------------------------- set-id bits
@pytest.mark.parametrize("before,after", [(0o4777, 0o777), (0o2777, 0o777), (0o6777, 0o777),
                                          (0o2767, 0o2767)])
def test_a_write_by_another_user_publishes_without_set_id_bits(users, sdir, before, after):
    _, a, _ = users
    path, d = sdir
    owned_file(os.path.join(path, "prog"), 0, before)
    fh, sid, _ = a.open(d, b"prog", access=RW)
    a.write(fh, sid, 0, b"#!/bin/sh\necho replaced\n")
    # cleared at the WRITE, in place (the published file too), before anything is published
    assert mode(os.path.join(path, "prog")) == after
    a.close_file(fh, sid)
    assert mode(os.path.join(path, "prog")) == after
    assert open(os.path.join(path, "prog"), "rb").read() == b"#!/bin/sh\necho replaced\n"


def test_a_write_by_root_keeps_set_id_bits(users, sdir):
    root = users[0]
    path, d = sdir
    owned_file(os.path.join(path, "prog"), A, 0o6755)
    fh, sid, _ = root.open(d, b"prog", access=RW)
    root.write(fh, sid, 0, b"new")
    root.close_file(fh, sid)
    assert mode(os.path.join(path, "prog")) == 0o6755


def test_the_owner_writing_also_clears_them(users, sdir):
    """As on Linux: only privilege (root here) keeps them, not ownership."""
    _, a, _ = users
    path, d = sdir
    owned_file(os.path.join(path, "mine"), A, 0o4755)
    fh, sid, _ = a.open(d, b"mine", access=RW)
    a.write(fh, sid, 0, b"x", stable=x.FILE_SYNC4)
    a.close_file(fh, sid)
    assert mode(os.path.join(path, "mine")) == 0o755


def test_a_truncate_by_another_user_clears_them(users, sdir):
    _, a, b = users
    path, d = sdir
    owned_file(os.path.join(path, "t"), 0, 0o6777, b"0123456789")
    fh = a.lookup("t", base=d)
    a.setattr(fh, {x.FATTR4_SIZE: 3})  # truncate(1): no open
    assert mode(os.path.join(path, "t")) == 0o777 and os.path.getsize(os.path.join(path, "t")) == 3
    owned_file(os.path.join(path, "u"), 0, 0o4777, b"0123456789")
    fh, sid, _ = b.open(d, b"u", access=RW)
    b.setattr(fh, {x.FATTR4_SIZE: 0}, stateid=sid)  # ftruncate through an open
    b.close_file(fh, sid)
    assert mode(os.path.join(path, "u")) == 0o777 and os.path.getsize(os.path.join(path, "u")) == 0


def test_allocate_by_another_user_clears_them(server, sdir):
    path, d = sdir
    owned_file(os.path.join(path, "al"), 0, 0o4777)
    with NfsClient(*server.address, minor=2, uid=A, gid=A) as c:
        c.mount()
        fh, sid, _ = c.open(d, b"al", access=RW)
        c.call([op("PUTFH", fh), op("ALLOCATE", sid, 0, 8192)])
        c.close_file(fh, sid)
    assert mode(os.path.join(path, "al")) == 0o777


def test_a_change_of_owner_or_group_clears_them(users, sdir):
    root, a, _ = users
    path, d = sdir
    owned_file(os.path.join(path, "c"), A, 0o6755)
    a.setattr(a.lookup("c", base=d), {x.FATTR4_OWNER_GROUP: str(A).encode()})
    assert mode(os.path.join(path, "c")) == 0o755
    # root too (Linux and knfsd clear them on any chown); a mode given with it loses them
    owned_file(os.path.join(path, "r"), A, 0o6755)
    root.setattr(root.lookup("r", base=d), {x.FATTR4_OWNER: b"0", x.FATTR4_MODE: 0o4711})
    assert mode(os.path.join(path, "r")) == 0o711 and os.stat(os.path.join(path, "r")).st_uid == 0
    # a directory keeps them (set-group-ID on a directory is inheritance, not privilege)
    os.mkdir(os.path.join(path, "dir"))
    os.chmod(os.path.join(path, "dir"), 0o2775)
    root.setattr(root.lookup("dir", base=d), {x.FATTR4_OWNER: str(A).encode()})
    assert mode(os.path.join(path, "dir")) == 0o2775


# ---------------------------------------------------------------- sticky directories
def test_sticky_directory_rules_for_files_directories_and_symlinks(users, sdir, server):
    root, a, b = users
    path, d = sdir
    other = os.path.join(server.directory, "elsewhere-sticky")
    os.makedirs(other, exist_ok=True)
    os.chmod(other, 0o1777)
    o = root.lookup(os.path.basename(other))
    ad = bd = d  # handles are the same for everybody (the export root is root's 0700)
    a.create_file(ad, b"file", b"a")
    a.mkdir(ad, b"dir", mode=0o755)
    a.symlink(ad, b"link", b"target")
    b.create_file(bd, b"bfile", b"b")
    for name in (b"file", b"dir", b"link"):
        assert status(b.remove, bd, name) == x.NFS4ERR_PERM
        assert status(b.rename, bd, name, bd, name + b"-moved") == x.NFS4ERR_PERM
        assert status(b.rename, bd, name, o, name) == x.NFS4ERR_PERM
    # target side: replacing someone else's entry is removing it
    assert status(b.rename, bd, b"bfile", bd, b"file") == x.NFS4ERR_PERM
    assert sorted(os.listdir(path)) == ["bfile", "dir", "file", "link"]
    # the entry's owner may, and so may the directory's owner (root here)
    a.rename(ad, b"file", ad, b"file2")
    a.rename(ad, b"dir", o, b"dir")
    a.remove(ad, b"link")
    root.rename(d, b"bfile", d, b"bfile2")
    assert sorted(os.listdir(path)) == ["bfile2", "file2"]


def test_moving_a_directory_to_another_parent_needs_write_permission_on_it(users, tdir_root):
    _, _, b = users
    path, _ = tdir_root
    os.mkdir(os.path.join(path, "src"))
    os.mkdir(os.path.join(path, "dst"))
    os.mkdir(os.path.join(path, "src", "ro"))
    for p in ("", "src", "dst"):
        os.chmod(os.path.join(path, p), 0o777)
    os.chmod(os.path.join(path, "src", "ro"), 0o555)
    os.chown(os.path.join(path, "src", "ro"), A, A)
    s, t = b.lookup("src", base=tdir_root[1]), b.lookup("dst", base=tdir_root[1])
    # its '..' would change: write permission on the directory itself is needed
    assert status(b.rename, s, b"ro", t, b"ro") == x.NFS4ERR_ACCESS
    # within its parent nothing in it changes: allowed
    b.rename(s, b"ro", s, b"ro2")
    assert os.listdir(os.path.join(path, "src")) == ["ro2"]


@pytest.fixture
def tdir_root(server, users, request):
    path = os.path.join(server.directory, request.node.name)
    os.mkdir(path)
    os.chmod(path, 0o777)
    return path, users[0].lookup(os.path.basename(path))


# ---------------------------------------------------------------- chown
def test_only_the_owner_or_root_may_chown_even_to_what_is_there(users, sdir):
    root, a, b = users
    path, d = sdir
    owned_file(os.path.join(path, "f"), A, 0o644)
    fa, fb = a.lookup("f", base=d), b.lookup("f", base=d)
    same = {x.FATTR4_OWNER: str(A).encode(), x.FATTR4_OWNER_GROUP: str(A).encode()}
    assert status(b.setattr, fb, same) == x.NFS4ERR_PERM
    assert status(b.setattr, fb, {x.FATTR4_OWNER_GROUP: str(A).encode()}) == x.NFS4ERR_PERM
    assert status(b.setattr, fb, {x.FATTR4_OWNER: str(A).encode()}) == x.NFS4ERR_PERM
    a.setattr(fa, same)  # the owner may set what is there
    assert status(a.setattr, fa, {x.FATTR4_OWNER: str(B).encode()}) == x.NFS4ERR_PERM
    assert status(a.setattr, fa, {x.FATTR4_OWNER_GROUP: str(B).encode()}) == x.NFS4ERR_PERM
    root.setattr(root.lookup("f", base=d), {x.FATTR4_OWNER: str(B).encode()})
    assert os.stat(os.path.join(path, "f")).st_uid == B


# ---------------------------------------------------------------- a write open keeps its grant
def test_a_write_open_outlives_the_mode(users, sdir):
    _, a, _ = users
    path, ad = sdir
    fh, sid, ok = a.open(ad, b"m0", create=True, attrs={x.FATTR4_MODE: 0})
    assert ok.cinfo.before != ok.cinfo.after  # the Linux client decides "created" from this
    a.write(fh, sid, 0, b"hello world")
    a.setattr(fh, {x.FATTR4_SIZE: 0}, stateid=sid)  # ftruncate(fd, 0)
    a.write(fh, sid, 0, b"after")
    a.setattr(fh, {x.FATTR4_SIZE: 3}, stateid=sid)
    # another user of that machine presenting the stateid gets their own permission: none
    a.cred = AuthSys(0, b"testclient", B, B, ())
    assert status(a.setattr, fh, {x.FATTR4_SIZE: 1}, stateid=sid) == x.NFS4ERR_ACCESS
    assert status(a.write, fh, sid, 0, b"theirs") == x.NFS4ERR_ACCESS
    a.cred = AuthSys(0, b"testclient", A, A, ())
    a.close_file(fh, sid)
    assert open(os.path.join(path, "m0"), "rb").read() == b"aft" and mode(os.path.join(path, "m0")) == 0
    # a new open is decided by the mode, the owner's too (as open(2) is)
    assert status(a.open, ad, b"m0", access=RW) == x.NFS4ERR_ACCESS


# ---------------------------------------------------------------- directory change on create
def test_a_create_moves_the_directorys_change_and_times_at_once_and_at_close(users, tdir_root):
    root, a, b = users
    path, d = tdir_root
    attrs = (x.FATTR4_CHANGE, x.FATTR4_TIME_MODIFY, x.FATTR4_TIME_METADATA)
    before = b.getattr(d, attrs)
    fh, sid, ok = root.open(d, b"new", create=True)
    seen = root.getattr(d, attrs)
    assert ok.cinfo.before == before[x.FATTR4_CHANGE]
    assert ok.cinfo.after == seen[x.FATTR4_CHANGE] != before[x.FATTR4_CHANGE]
    assert seen[x.FATTR4_TIME_MODIFY] != before[x.FATTR4_TIME_MODIFY]
    assert seen[x.FATTR4_TIME_METADATA] != before[x.FATTR4_TIME_METADATA]
    middle = b.getattr(d, attrs)  # the others see the directory changed, no entry yet
    assert middle[x.FATTR4_CHANGE] == seen[x.FATTR4_CHANGE]
    assert [e[0] for e in b.readdir(d)] == []
    root.write(fh, sid, 0, b"data")
    root.close_file(fh, sid)  # at once: within the same clock tick as the create, often
    after = b.getattr(d, attrs)
    assert after[x.FATTR4_CHANGE] != middle[x.FATTR4_CHANGE]
    assert [e[0] for e in b.readdir(d)] == [b"new"]
