"""NFSv4.2 operations over real sockets against a server process, checked against the export on
disk: extended attributes (RFC 8276: GETXATTR, SETXATTR, LISTXATTRS, REMOVEXATTR, xattr_support)
and space / sparse files (RFC 7862: ALLOCATE, DEALLOCATE, SEEK), with the write-once rules of
docs/semantics.md (content changes only through an open's staging version; xattrs are metadata)."""

from __future__ import annotations

import errno
import os

import pytest

from conftest import make_tdir
from nfsd import attrs as A
from nfsd.client import ANON, NfsClient, op
from nfsd.xdr import nfs4 as x

RW = x.OPEN4_SHARE_ACCESS_BOTH
RD = x.OPEN4_SHARE_ACCESS_READ
BYPASS = x.stateid4(0xFFFFFFFF, b"\xff" * 12)
DATA, HOLE = x.NFS4_CONTENT_DATA, x.NFS4_CONTENT_HOLE
EITHER, CREATE, REPLACE = x.SETXATTR4_EITHER, x.SETXATTR4_CREATE, x.SETXATTR4_REPLACE
CH = 64 * 1024  # a chunk many file system blocks long, so holes are exact


def mount(server, **kw):
    return NfsClient(*server.address, minor=kw.pop("minor", 2), **kw).mount()


@pytest.fixture(scope="module")
def a(server):
    c = mount(server)
    yield c
    c.close()


@pytest.fixture(scope="module")
def b(server):
    c = mount(server)
    yield c
    c.close()


@pytest.fixture(scope="module")
def user(server):
    """A third client whose calls carry uid/gid 1000."""
    c = mount(server, uid=1000, gid=1000)
    yield c
    c.close()


@pytest.fixture
def tdir(server, a, request):
    return make_tdir(server, a, request)


@pytest.fixture(scope="module")
def user_xattrs(server):
    """Skip unless the export's file system stores user.* extended attributes (tmpfs before
    Linux 6.6 does not)."""
    probe = os.path.join(server.directory, ".xattr-probe")
    with open(probe, "w"):
        pass
    try:
        os.setxattr(probe, "user.probe", b"1")
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            pytest.skip("the temporary file system refuses user extended attributes")
        raise
    finally:
        os.unlink(probe)


def status(c, ops):
    return c.try_call(ops)[0]


def xset(c, fh, name, value, how=EITHER):
    return status(c, [op("PUTFH", fh), op("SETXATTR", how, name, value)])


def xget(c, fh, name):
    st, res = c.try_call([op("PUTFH", fh), op("GETXATTR", name)])
    return st, (res[-1].value if st == x.NFS4_OK else None)


def xlist(c, fh, cookie=0, maxcount=8192):
    st, res = c.try_call([op("PUTFH", fh), op("LISTXATTRS", cookie, maxcount)])
    return st, (res[-1].value if st == x.NFS4_OK else None)


def seek(c, fh, offset, what, sid=ANON):
    st, res = c.try_call([op("PUTFH", fh), op("SEEK", sid, offset, what)])
    return st, ((res[-1].value.sr_offset, res[-1].value.sr_eof) if st == x.NFS4_OK else None)


def space(c, fh, name, sid, offset, length):
    return status(c, [op("PUTFH", fh), op(name, sid, offset, length)])


# ---------------------------------------------------------------- xattr_support, minor versions
def test_xattr_support_is_a_4_2_attribute(server, a, user_xattrs):
    root = a.root()
    got = a.getattr(root, (x.FATTR4_SUPPORTED_ATTRS, x.FATTR4_XATTR_SUPPORT))
    assert x.FATTR4_XATTR_SUPPORT in A.from_words(got[x.FATTR4_SUPPORTED_ATTRS])
    assert got[x.FATTR4_XATTR_SUPPORT] is True
    with mount(server, minor=1) as c41:
        got = c41.getattr(root, (x.FATTR4_SUPPORTED_ATTRS, x.FATTR4_XATTR_SUPPORT))
        assert x.FATTR4_XATTR_SUPPORT not in A.from_words(got[x.FATTR4_SUPPORTED_ATTRS])
        assert x.FATTR4_XATTR_SUPPORT not in got  # unsupported attributes are left out


def test_4_2_operations_in_a_4_1_compound_are_notsupp(server, a, tdir):
    _, d = tdir
    fh, sid, _ = a.open(d, b"f", create=True)
    a.close_file(fh, sid)
    with mount(server, minor=1) as c41:
        for o in (op("GETXATTR", b"k"), op("SETXATTR", EITHER, b"k", b"v"),
                  op("LISTXATTRS", 0, 4096), op("REMOVEXATTR", b"k"), op("ALLOCATE", ANON, 0, 1),
                  op("DEALLOCATE", ANON, 0, 1), op("SEEK", ANON, 0, DATA)):
            st, res = c41.try_call([op("PUTFH", fh), o])
            assert st == x.NFS4ERR_NOTSUPP, o
            assert len(res) == 2


# ---------------------------------------------------------------- extended attributes
def test_xattrs_round_trip_as_user_attributes_on_disk(a, tdir, user_xattrs):
    path, d = tdir
    fh = a.create_file(d, b"f", b"content")
    f = os.path.join(path, "f")
    before = a.getattr(fh)[x.FATTR4_CHANGE]
    st, res = a.try_call([op("PUTFH", fh), op("SETXATTR", CREATE, b"color", b"blue")])
    assert st == x.NFS4_OK
    cinfo = res[-1].value
    assert cinfo.before == before and cinfo.after > before
    assert a.getattr(fh)[x.FATTR4_CHANGE] == cinfo.after
    assert os.getxattr(f, "user.color") == b"blue"  # the wire name has no "user." prefix
    assert xget(a, fh, b"color") == (x.NFS4_OK, b"blue")
    os.setxattr(f, "user.local", b"set on the server")  # local programs' changes show
    assert xget(a, fh, b"local") == (x.NFS4_OK, b"set on the server")
    st, ok = xlist(a, fh)
    assert st == x.NFS4_OK and ok.lxr_names == [b"color", b"local"] and ok.lxr_eof
    if os.geteuid() == 0:
        os.setxattr(f, "trusted.hidden", b"x")  # other namespaces are not listed
        assert xlist(a, fh)[1].lxr_names == [b"color", b"local"]
    st, res = a.try_call([op("PUTFH", fh), op("REMOVEXATTR", b"color")])
    assert st == x.NFS4_OK and res[-1].value.after > res[-1].value.before
    assert "user.color" not in os.listxattr(f)
    assert xget(a, fh, b"color")[0] == x.NFS4ERR_NOXATTR
    # Metadata changes in place: same inode, content untouched.
    assert open(f, "rb").read() == b"content"


def test_setxattr_options_and_missing_names(a, tdir, user_xattrs):
    path, d = tdir
    fh = a.create_file(d, b"f")
    assert xget(a, fh, b"k")[0] == x.NFS4ERR_NOXATTR
    assert status(a, [op("PUTFH", fh), op("REMOVEXATTR", b"k")]) == x.NFS4ERR_NOXATTR
    assert xset(a, fh, b"k", b"1", REPLACE) == x.NFS4ERR_NOXATTR
    assert xset(a, fh, b"k", b"1", CREATE) == x.NFS4_OK
    assert xset(a, fh, b"k", b"2", CREATE) == x.NFS4ERR_EXIST
    assert xget(a, fh, b"k") == (x.NFS4_OK, b"1")
    assert xset(a, fh, b"k", b"3", REPLACE) == x.NFS4_OK
    assert xset(a, fh, b"k", b"4", EITHER) == x.NFS4_OK
    assert xset(a, fh, b"new", b"", EITHER) == x.NFS4_OK  # EITHER creates; empty values exist
    assert xget(a, fh, b"k") == (x.NFS4_OK, b"4")
    assert xget(a, fh, b"new") == (x.NFS4_OK, b"")
    assert os.getxattr(os.path.join(path, "f"), "user.k") == b"4"


def test_xattr_name_and_value_limits(a, tdir, user_xattrs):
    _, d = tdir
    fh = a.create_file(d, b"f")
    assert xset(a, fh, b"", b"v") == x.NFS4ERR_INVAL
    assert xget(a, fh, b"")[0] == x.NFS4ERR_INVAL
    assert xset(a, fh, b"a\0b", b"v") == x.NFS4ERR_INVAL
    assert xset(a, fh, b"\xff\xfe", b"v") == x.NFS4ERR_INVAL  # xattrkey4 is UTF-8
    assert xset(a, fh, b"n" * 256, b"v") == x.NFS4ERR_NAMETOOLONG
    # "user." + name must fit the file system's 255 bytes.
    assert xset(a, fh, b"n" * 251, b"v") == x.NFS4ERR_NAMETOOLONG
    assert xset(a, fh, b"n" * 250, b"v") == x.NFS4_OK
    assert xget(a, fh, b"n" * 250) == (x.NFS4_OK, b"v")
    assert xset(a, fh, b"big", bytes(64 * 1024 + 1)) == x.NFS4ERR_XATTR2BIG
    assert xget(a, fh, b"big")[0] == x.NFS4ERR_NOXATTR


def test_listxattrs_cookies_eof_and_maxcount(a, tdir, user_xattrs):
    _, d = tdir
    fh = a.create_file(d, b"f")
    st, ok = xlist(a, fh, maxcount=16)  # no names: the empty result fits exactly
    assert st == x.NFS4_OK and ok.lxr_names == [] and ok.lxr_eof
    assert xlist(a, fh, maxcount=15)[0] == x.NFS4ERR_TOOSMALL
    names = [b"attr%d" % i for i in range(6)]
    for n in names:
        assert xset(a, fh, n, b"value", CREATE) == x.NFS4_OK
    st, ok = xlist(a, fh)
    assert ok.lxr_names == names and ok.lxr_eof and ok.lxr_cookie == 6
    # Each 5-byte name costs 4 + 8 bytes: room for two per call, resumed by the cookie.
    got, cookie, calls = [], 0, 0
    while True:
        st, ok = xlist(a, fh, cookie, 16 + 2 * 12)
        assert st == x.NFS4_OK and len(ok.lxr_names) <= 2
        got += ok.lxr_names
        cookie = ok.lxr_cookie
        calls += 1
        if ok.lxr_eof:
            break
    assert got == names and calls == 3
    assert xlist(a, fh, 0, 16 + 11)[0] == x.NFS4ERR_TOOSMALL  # not even one name fits
    st, ok = xlist(a, fh, 99)  # past the end (names removed meanwhile): nothing more
    assert st == x.NFS4_OK and ok.lxr_names == [] and ok.lxr_eof


def test_xattr_permissions(a, user, tdir, user_xattrs):
    path, d = tdir
    fh = a.create_file(d, b"f", mode=0o644)  # owned by root
    assert xset(a, fh, b"k", b"v") == x.NFS4_OK
    assert xget(user, fh, b"k") == (x.NFS4_OK, b"v")  # reading needs read permission
    assert xlist(user, fh)[1].lxr_names == [b"k"]
    assert xset(user, fh, b"k", b"mine") == x.NFS4ERR_ACCESS  # changing needs write permission
    assert status(user, [op("PUTFH", fh), op("REMOVEXATTR", b"k")]) == x.NFS4ERR_ACCESS
    a.setattr(fh, {x.FATTR4_MODE: 0o600})
    assert xget(user, fh, b"k")[0] == x.NFS4ERR_ACCESS
    assert xlist(user, fh)[0] == x.NFS4ERR_ACCESS
    a.setattr(fh, {x.FATTR4_MODE: 0o666})
    assert xset(user, fh, b"k", b"mine") == x.NFS4_OK
    assert os.getxattr(os.path.join(path, "f"), "user.k") == b"mine"


def test_xattrs_on_directories(a, tdir, user_xattrs):
    path, d = tdir
    sub = a.mkdir(d, b"sub")
    assert xset(a, sub, b"k", b"dir") == x.NFS4_OK
    assert os.getxattr(os.path.join(path, "sub"), "user.k") == b"dir"
    assert xget(a, sub, b"k") == (x.NFS4_OK, b"dir")
    assert xlist(a, sub)[1].lxr_names == [b"k"]


def test_xattrs_of_a_file_under_construction(server, a, b, tdir, user_xattrs):
    path, d = tdir
    fh, sid, _ = a.open(d, b"new", create=True)
    a.write(fh, sid, 0, b"staged")
    assert xset(a, fh, b"k", b"v", CREATE) == x.NFS4_OK
    assert xget(a, fh, b"k") == (x.NFS4_OK, b"v")
    assert xlist(a, fh)[1].lxr_names == [b"k"]
    # Only its client sees the file: for the others the handle is stale, and it is not on disk.
    assert xget(b, fh, b"k")[0] == x.NFS4ERR_STALE
    assert xset(b, fh, b"k", b"theirs") == x.NFS4ERR_STALE
    assert not os.path.exists(os.path.join(path, "new"))
    staged = os.path.join(server.directory, ".nfsd", "staging")
    # On its staging data file, next to the server's own record (which no client sees).
    assert any(set(os.listxattr(os.path.join(staged, n))) <= {"user.k", "user.nfsd.staging-record"}
               and "user.k" in os.listxattr(os.path.join(staged, n))
               for n in os.listdir(staged) if n.endswith(".data"))
    assert xget(a, fh, b"nfsd.staging-record")[0] == x.NFS4ERR_NOXATTR
    assert xset(a, fh, b"nfsd.staging-record", b"forged") == x.NFS4ERR_PERM
    a.close_file(fh, sid)
    f = os.path.join(path, "new")
    assert open(f, "rb").read() == b"staged" and os.getxattr(f, "user.k") == b"v"
    assert os.listxattr(f) == ["user.k"]
    assert xget(b, fh, b"k") == (x.NFS4_OK, b"v")


def test_xattrs_survive_a_copy_on_write_publish(a, b, tdir, user_xattrs):
    path, d = tdir
    f = os.path.join(path, "f")
    fh = a.create_file(d, b"f", b"version 1")
    assert xset(a, fh, b"one", b"1") == x.NFS4_OK
    old_ino = os.stat(f).st_ino
    wfh, sid, _ = a.open(d, b"f", access=RW)
    a.write(wfh, sid, 0, b"VERSION 2")
    # Meanwhile another client changes the published file's xattrs, in place.
    assert xset(b, fh, b"two", b"2") == x.NFS4_OK
    assert xset(b, fh, b"one", b"1b", REPLACE) == x.NFS4_OK
    assert os.stat(f).st_ino == old_ino and open(f, "rb").read() == b"version 1"
    a.close_file(wfh, sid)
    st = os.stat(f)
    assert st.st_ino != old_ino  # a new version was published...
    assert open(f, "rb").read() == b"VERSION 2"
    # ... with the published version's user xattrs as they were at CLOSE.
    assert sorted(os.listxattr(f)) == ["user.one", "user.two"]
    assert os.getxattr(f, "user.one") == b"1b" and os.getxattr(f, "user.two") == b"2"
    assert xlist(b, fh)[1].lxr_names == [b"one", b"two"]


def test_xattrs_survive_truncate_without_open(a, tdir, user_xattrs):
    """SETATTR of size without an open publishes a new version at once (rule 4)."""
    path, d = tdir
    fh = a.create_file(d, b"f", b"0123456789")
    assert xset(a, fh, b"k", b"kept") == x.NFS4_OK
    a.setattr(fh, {x.FATTR4_SIZE: 4})
    f = os.path.join(path, "f")
    assert open(f, "rb").read() == b"0123" and os.getxattr(f, "user.k") == b"kept"


# ---------------------------------------------------------------- ALLOCATE, DEALLOCATE
def test_allocate_and_deallocate_through_an_open_are_invisible_until_close(
        server, a, b, tdir):
    path, d = tdir
    f = os.path.join(path, "f")
    with open(f, "wb") as out:
        out.write(b"x" * (3 * CH))
    fh = a.lookup(f"{os.path.basename(path)}/f")
    wfh, sid, _ = a.open(d, b"f", access=RW)
    assert space(a, wfh, "ALLOCATE", sid, 2 * CH, 3 * CH) == x.NFS4_OK  # grows to 5 CH
    assert space(a, wfh, "DEALLOCATE", sid, CH, CH) == x.NFS4_OK  # below the base: zeros
    assert space(a, wfh, "DEALLOCATE", sid, 10 * CH, CH) == x.NFS4_OK  # past the end: nothing
    want = b"x" * CH + bytes(CH) + b"x" * CH + bytes(2 * CH)
    # The writing open sees its version ...
    assert a.getattr(wfh)[x.FATTR4_SIZE] == 5 * CH
    assert a.read_all(wfh, sid) == want
    # ... nobody else does, and the published file on disk is untouched.
    assert b.getattr(fh)[x.FATTR4_SIZE] == 3 * CH
    assert b.read_all(fh) == b"x" * (3 * CH)
    assert open(f, "rb").read() == b"x" * (3 * CH)
    assert seek(b, fh, 0, HOLE) == (x.NFS4_OK, (3 * CH, True))
    a.close_file(wfh, sid)
    assert os.path.getsize(f) == 5 * CH
    assert open(f, "rb").read() == want
    with open(f, "rb") as fd:  # the punched range was not copied from the old version
        assert os.lseek(fd.fileno(), 0, os.SEEK_HOLE) == CH
        assert os.lseek(fd.fileno(), CH, os.SEEK_DATA) == 2 * CH
    assert b.getattr(fh)[x.FATTR4_SIZE] == 5 * CH
    assert b.read_all(fh) == want


def test_allocate_on_a_new_file(a, tdir):
    path, d = tdir
    fh, sid, _ = a.open(d, b"new", create=True, access=x.OPEN4_SHARE_ACCESS_WRITE)
    assert space(a, fh, "ALLOCATE", sid, 0, 1) == x.NFS4_OK
    assert space(a, fh, "ALLOCATE", sid, 0, 1) == x.NFS4_OK  # inside: the size stays
    assert a.getattr(fh)[x.FATTR4_SIZE] == 1
    a.close_file(fh, sid)
    assert open(os.path.join(path, "new"), "rb").read() == b"\0"


def test_allocate_within_the_size_alone_publishes_nothing(a, tdir):
    """A reservation changes nothing anybody reads: like a write-open that wrote nothing
    (rule 3), the published version keeps its inode."""
    path, d = tdir
    a.create_file(d, b"f", b"data")
    ino = os.stat(os.path.join(path, "f")).st_ino
    wfh, sid, _ = a.open(d, b"f", access=RW)
    assert space(a, wfh, "ALLOCATE", sid, 0, 4) == x.NFS4_OK
    a.close_file(wfh, sid)
    assert os.stat(os.path.join(path, "f")).st_ino == ino


def test_special_stateids_and_read_only_opens_cannot_allocate(a, b, tdir):
    path, d = tdir
    fh = a.create_file(d, b"f", b"data")
    for name in ("ALLOCATE", "DEALLOCATE"):
        assert space(a, fh, name, ANON, 0, 1) == x.NFS4ERR_OPENMODE
        assert space(a, fh, name, BYPASS, 0, 1) == x.NFS4ERR_OPENMODE
    rsid = a.open_fh(fh, RD, owner=b"reader")
    assert space(a, fh, "ALLOCATE", rsid, 0, 100) == x.NFS4ERR_OPENMODE
    assert space(a, fh, "DEALLOCATE", rsid, 0, 1) == x.NFS4ERR_OPENMODE
    a.close_file(fh, rsid, owner=b"reader")
    # With an open that denies writing, special stateids get LOCKED (as WRITE does).
    dsid = b.open_fh(fh, RD, deny=x.OPEN4_SHARE_DENY_WRITE)
    assert space(a, fh, "ALLOCATE", ANON, 0, 1) == x.NFS4ERR_LOCKED
    b.close_file(fh, dsid)
    # Another client's stateid is nothing to this one.
    wfh, wsid, _ = a.open(d, b"f", access=RW)
    assert space(b, fh, "ALLOCATE", wsid, 0, 100) == x.NFS4ERR_BAD_STATEID
    a.close_file(wfh, wsid)
    assert open(os.path.join(path, "f"), "rb").read() == b"data"


def test_allocate_argument_errors(a, tdir):
    path, d = tdir
    wfh, sid, _ = a.open(d, b"f", create=True)
    for name in ("ALLOCATE", "DEALLOCATE"):
        assert space(a, wfh, name, sid, 0, 0) == x.NFS4ERR_INVAL
        assert space(a, wfh, name, sid, (1 << 63) + 1, 1 << 63) == x.NFS4ERR_INVAL  # past 2^64
        assert space(a, wfh, name, sid, A.MAX_FILESIZE, 1) == x.NFS4ERR_FBIG
        assert space(a, d, name, sid, 0, 1) == x.NFS4ERR_ISDIR
    a.close_file(wfh, sid)
    link = a.symlink(d, b"l", b"f")
    assert space(a, link, "ALLOCATE", ANON, 0, 1) == x.NFS4ERR_WRONG_TYPE
    assert os.path.getsize(os.path.join(path, "f")) == 0


# ---------------------------------------------------------------- SEEK
def sparse(path, layout, size):
    """A file with data chunks at the given chunk numbers and holes elsewhere."""
    with open(path, "wb") as out:
        out.truncate(size)
        for i in layout:
            out.seek(i * CH)
            out.write(b"d" * CH)


def test_seek_on_a_published_sparse_file(a, tdir):
    path, d = tdir
    sparse(os.path.join(path, "s"), [0, 4], 6 * CH)  # data, hole x3, data, hole
    fh = a.lookup(f"{os.path.basename(path)}/s")
    assert seek(a, fh, 0, DATA) == (x.NFS4_OK, (0, False))
    assert seek(a, fh, 0, HOLE) == (x.NFS4_OK, (CH, False))
    assert seek(a, fh, CH + 5, HOLE) == (x.NFS4_OK, (CH + 5, False))
    assert seek(a, fh, CH, DATA) == (x.NFS4_OK, (4 * CH, False))
    assert seek(a, fh, 4 * CH, HOLE) == (x.NFS4_OK, (5 * CH, False))
    # No data after the last chunk: eof, at the size.
    assert seek(a, fh, 5 * CH, DATA) == (x.NFS4_OK, (6 * CH, True))
    # From the end on: NXIO.
    for off in (6 * CH, 6 * CH + 1, A.MAX_FILESIZE, (1 << 64) - 1):
        assert seek(a, fh, off, DATA)[0] == x.NFS4ERR_NXIO
        assert seek(a, fh, off, HOLE)[0] == x.NFS4ERR_NXIO
    # Every file has the virtual hole at its end.
    dense = a.create_file(d, b"dense", b"z" * 100)
    assert seek(a, dense, 0, HOLE) == (x.NFS4_OK, (100, True))
    assert seek(a, dense, 99, DATA) == (x.NFS4_OK, (99, False))
    empty = a.create_file(d, b"empty")
    assert seek(a, empty, 0, DATA)[0] == x.NFS4ERR_NXIO
    assert seek(a, d, 0, DATA)[0] == x.NFS4ERR_ISDIR


def test_seek_reads_the_version_the_stateid_reads(a, b, tdir):
    path, d = tdir
    with open(os.path.join(path, "f"), "wb") as out:
        out.write(b"x" * (4 * CH))
    fh = a.lookup(f"{os.path.basename(path)}/f")
    wfh, sid, _ = a.open(d, b"f", access=RW)
    assert space(a, wfh, "DEALLOCATE", sid, 0, 2 * CH) == x.NFS4_OK
    assert seek(a, wfh, 0, DATA, sid) == (x.NFS4_OK, (2 * CH, False))
    assert seek(a, wfh, 0, HOLE, sid) == (x.NFS4_OK, (0, False))
    # The writing client's anonymous SEEK reads its version too, as its READ does ...
    assert seek(a, fh, 0, DATA) == (x.NFS4_OK, (2 * CH, False))
    # ... other clients see the published version until CLOSE.
    assert seek(b, fh, 0, DATA) == (x.NFS4_OK, (0, False))
    assert seek(b, fh, 0, HOLE) == (x.NFS4_OK, (4 * CH, True))
    rsid = b.open_fh(fh, RD)
    assert seek(b, fh, 0, DATA, rsid) == (x.NFS4_OK, (0, False))
    a.close_file(wfh, sid)
    assert seek(b, fh, 0, DATA, rsid) == (x.NFS4_OK, (2 * CH, False))
    assert seek(b, fh, 0, DATA) == (x.NFS4_OK, (2 * CH, False))
    b.close_file(fh, rsid)


def test_seek_with_special_stateids_respects_share_deny(a, b, tdir):
    _, d = tdir
    fh = a.create_file(d, b"f", b"data")
    dsid = b.open_fh(fh, RD, deny=x.OPEN4_SHARE_DENY_READ)
    assert seek(a, fh, 0, DATA)[0] == x.NFS4ERR_LOCKED
    assert seek(b, fh, 0, DATA, dsid) == (x.NFS4_OK, (0, False))
    b.close_file(fh, dsid)
    assert seek(a, fh, 0, DATA) == (x.NFS4_OK, (0, False))
