"""Attribute operations over a real socket, checked against the export on disk: GETATTR,
SETATTR, VERIFY, NVERIFY, ACCESS (RFC 8881 sections 5, 18.1, 18.7, 18.15, 18.30, 18.31)."""

from __future__ import annotations

import os
import stat

import pytest

from nfsd import attrs as A
from nfsd.client import ANON, NfsClient, attr_request, decode_attrs, encode_attrs, op
from nfsd.xdr import nfs4 as x


@pytest.fixture(scope="module")
def user(server):
    """A second client identity whose calls carry uid/gid 1000."""
    c = NfsClient(*server.address, uid=1000, gid=1000).mount()
    yield c
    c.close()




def status(c, ops):
    return c.try_call(ops)[0]


def getattr_raw(c, fh, nums):
    r = c.call([op("PUTFH", fh), op("GETATTR", attr_request(*nums))])[-1]
    return r.value.obj_attributes


# ---------------------------------------------------------------- GETATTR
def test_every_supported_attribute_decodes(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"f", b"hello")
    for obj in (fh, ffh, client.root()):
        sup = client.getattr(obj, (x.FATTR4_SUPPORTED_ATTRS,))[x.FATTR4_SUPPORTED_ATTRS]
        nums = A.from_words(sup)
        # The REQUIRED attributes (RFC 8881 section 5.6).
        for required in [*range(0, 12), x.FATTR4_FILEHANDLE, x.FATTR4_SUPPATTR_EXCLCREAT]:
            assert required in nums, required
        readable = [n for n in nums if n not in (x.FATTR4_TIME_ACCESS_SET, x.FATTR4_TIME_MODIFY_SET)]
        fa = getattr_raw(client, obj, readable)
        got = decode_attrs(fa)  # raises on malformed values or trailing bytes
        assert sorted(got) == readable
        assert got[x.FATTR4_FILEHANDLE] == obj
        assert got[x.FATTR4_SUPPORTED_ATTRS] == sup


def test_getattr_values_match_the_file_on_disk(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"f", b"0123456789", mode=0o640)
    st = os.lstat(os.path.join(path, "f"))
    a = client.getattr(ffh, (x.FATTR4_TYPE, x.FATTR4_SIZE, x.FATTR4_MODE, x.FATTR4_NUMLINKS,
                             x.FATTR4_OWNER, x.FATTR4_OWNER_GROUP, x.FATTR4_TIME_MODIFY,
                             x.FATTR4_SPACE_USED))
    assert a[x.FATTR4_TYPE] == x.NF4REG
    assert a[x.FATTR4_SIZE] == 10 == st.st_size
    assert a[x.FATTR4_MODE] == 0o640 == stat.S_IMODE(st.st_mode)
    assert a[x.FATTR4_NUMLINKS] == 1
    assert a[x.FATTR4_OWNER] == b"%d" % st.st_uid
    assert a[x.FATTR4_OWNER_GROUP] == b"%d" % st.st_gid
    t = a[x.FATTR4_TIME_MODIFY]
    assert t.seconds * 1_000_000_000 + t.nseconds == st.st_mtime_ns


def test_owner_strings_are_numeric(client, tdir):
    path, fh = tdir
    open(os.path.join(path, "owned"), "wb").close()
    os.chown(os.path.join(path, "owned"), 1234, 5678)
    a = client.getattr(client.lookup(b"owned", base=fh), (x.FATTR4_OWNER, x.FATTR4_OWNER_GROUP))
    assert a == {x.FATTR4_OWNER: b"1234", x.FATTR4_OWNER_GROUP: b"5678"}


def test_unsupported_attributes_are_left_out(client, tdir):
    _, fh = tdir
    fa = getattr_raw(client, fh, [x.FATTR4_TYPE, x.FATTR4_ACL, x.FATTR4_ARCHIVE, x.FATTR4_SIZE,
                                  x.FATTR4_HIDDEN])
    assert A.from_words(fa.attrmask) == [x.FATTR4_TYPE, x.FATTR4_SIZE]
    fa = getattr_raw(client, fh, [200, 1000])
    assert fa.attrmask == [] and fa.attr_vals == b""


@pytest.mark.parametrize("attr", [x.FATTR4_TIME_ACCESS_SET, x.FATTR4_TIME_MODIFY_SET],
                         ids=["time_access_set", "time_modify_set"])
def test_set_only_attributes_cannot_be_read(client, tdir, attr):
    _, fh = tdir
    assert status(client, [op("PUTFH", fh), op("GETATTR", attr_request(x.FATTR4_TYPE, attr))]) \
        == x.NFS4ERR_INVAL
    st = status(client, [op("PUTFH", fh), op("READDIR", 0, bytes(8), 4096, 4096,
                                             attr_request(x.FATTR4_TYPE, attr))])
    assert st == x.NFS4ERR_INVAL
    value = encode_attrs({attr: x.settime4(x.SET_TO_SERVER_TIME4, None)})
    assert status(client, [op("PUTFH", fh), op("VERIFY", value)]) == x.NFS4ERR_INVAL
    assert status(client, [op("PUTFH", fh), op("NVERIFY", value)]) == x.NFS4ERR_INVAL


def test_fileid_is_stable_across_versions(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"f", b"one")
    fid = client.getattr(ffh, (x.FATTR4_FILEID,))[x.FATTR4_FILEID]
    assert client.getattr(ffh, (x.FATTR4_FILEID,))[x.FATTR4_FILEID] == fid
    sid = client.open_fh(ffh, access=x.OPEN4_SHARE_ACCESS_BOTH)
    client.write(ffh, sid, 0, b"two!")
    client.close_file(ffh, sid)
    with open(os.path.join(path, "f"), "rb") as f:
        assert f.read() == b"two!"
    assert client.lookup(b"f", base=fh) == ffh
    assert client.getattr(ffh, (x.FATTR4_FILEID,))[x.FATTR4_FILEID] == fid
    listed = {e[0]: e[2] for e in client.readdir(fh, attrs=(x.FATTR4_FILEID,))}
    assert listed[b"f"][x.FATTR4_FILEID] == fid


def test_change_moves_on_publish_and_on_local_chmod(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"f", b"one")
    c0 = client.getattr(ffh, (x.FATTR4_CHANGE,))[x.FATTR4_CHANGE]
    sid = client.open_fh(ffh, access=x.OPEN4_SHARE_ACCESS_BOTH)
    client.write(ffh, sid, 0, b"more bytes")
    client.close_file(ffh, sid)
    c1 = client.getattr(ffh, (x.FATTR4_CHANGE,))[x.FATTR4_CHANGE]
    assert c1 != c0
    os.chmod(os.path.join(path, "f"), 0o600)  # a local program, not the server
    a = client.getattr(ffh, (x.FATTR4_CHANGE, x.FATTR4_MODE))
    assert a[x.FATTR4_CHANGE] != c1 and a[x.FATTR4_MODE] == 0o600


def test_change_of_directory_moves_when_an_entry_is_added(client, tdir):
    path, fh = tdir
    c0 = client.getattr(fh, (x.FATTR4_CHANGE,))[x.FATTR4_CHANGE]
    client.create_file(fh, b"new", b"")
    c1 = client.getattr(fh, (x.FATTR4_CHANGE,))[x.FATTR4_CHANGE]
    assert c1 != c0
    open(os.path.join(path, "local"), "wb").close()
    assert client.getattr(fh, (x.FATTR4_CHANGE,))[x.FATTR4_CHANGE] != c1


def test_fs_wide_attributes(client):
    a = client.getattr(client.root(), (x.FATTR4_FSID, x.FATTR4_LEASE_TIME, x.FATTR4_MAXNAME,
                                       x.FATTR4_MAXREAD, x.FATTR4_MAXWRITE, x.FATTR4_SPACE_TOTAL,
                                       x.FATTR4_FILES_TOTAL))
    assert a[x.FATTR4_MAXNAME] == 255 and a[x.FATTR4_LEASE_TIME] > 0
    assert a[x.FATTR4_MAXREAD] > 0 and a[x.FATTR4_MAXWRITE] > 0
    assert a[x.FATTR4_SPACE_TOTAL] > 0 and a[x.FATTR4_FILES_TOTAL] > 0


# ---------------------------------------------------------------- SETATTR
def test_setattr_mode(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"f", b"x")
    r = client.setattr(ffh, {x.FATTR4_MODE: 0o604})
    assert A.from_words(r.attrsset) == [x.FATTR4_MODE]
    assert stat.S_IMODE(os.stat(os.path.join(path, "f")).st_mode) == 0o604
    assert client.getattr(ffh, (x.FATTR4_MODE,))[x.FATTR4_MODE] == 0o604


def test_setattr_owner_and_group_as_root(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"f", b"x")
    client.setattr(ffh, {x.FATTR4_OWNER: b"4321", x.FATTR4_OWNER_GROUP: b"8765"})
    st = os.stat(os.path.join(path, "f"))
    assert (st.st_uid, st.st_gid) == (4321, 8765)
    client.setattr(ffh, {x.FATTR4_OWNER: b"0@example.org"})
    assert os.stat(os.path.join(path, "f")).st_uid == 0


def test_setattr_unknown_owner_name_is_badowner(client, tdir):
    _, fh = tdir
    ffh = client.create_file(fh, b"f", b"x")
    st = status(client, [op("PUTFH", ffh), op("SETATTR", ANON, encode_attrs(
        {x.FATTR4_OWNER: b"no-such-user-xyzzy"}))])
    assert st == x.NFS4ERR_BADOWNER


def test_setattr_times_client_and_server(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"f", b"x")
    client.setattr(ffh, {
        x.FATTR4_TIME_ACCESS_SET: x.settime4(x.SET_TO_CLIENT_TIME4, x.nfstime4(1_000_000_000, 5)),
        x.FATTR4_TIME_MODIFY_SET: x.settime4(x.SET_TO_CLIENT_TIME4, x.nfstime4(1_234_567_890, 123)),
    })
    st = os.stat(os.path.join(path, "f"))
    assert st.st_atime_ns == 1_000_000_000_000_000_005
    assert st.st_mtime_ns == 1_234_567_890_000_000_123
    before = os.stat(os.path.join(path, "f")).st_mtime_ns
    client.setattr(ffh, {x.FATTR4_TIME_MODIFY_SET: x.settime4(x.SET_TO_SERVER_TIME4, None)})
    assert os.stat(os.path.join(path, "f")).st_mtime_ns > before


def test_setattr_bad_nseconds_is_inval(client, tdir):
    _, fh = tdir
    ffh = client.create_file(fh, b"f", b"x")
    st = status(client, [op("PUTFH", ffh), op("SETATTR", ANON, encode_attrs({
        x.FATTR4_TIME_MODIFY_SET: x.settime4(x.SET_TO_CLIENT_TIME4, x.nfstime4(1, 1_000_000_000))}))])
    assert st == x.NFS4ERR_INVAL


def test_setattr_size_through_open_stateid_is_private_until_close(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"f", b"0123456789")
    sid = client.open_fh(ffh, access=x.OPEN4_SHARE_ACCESS_BOTH)
    r = client.setattr(ffh, {x.FATTR4_SIZE: 4}, stateid=sid)
    assert A.from_words(r.attrsset) == [x.FATTR4_SIZE]
    with open(os.path.join(path, "f"), "rb") as f:
        assert f.read() == b"0123456789"  # not published yet
    assert client.read(ffh, sid)[0] == b"0123"
    client.close_file(ffh, sid)
    with open(os.path.join(path, "f"), "rb") as f:
        assert f.read() == b"0123"


def test_setattr_size_with_anonymous_stateid_publishes_at_once(client, tdir):
    path, fh = tdir
    p = os.path.join(path, "f")
    ffh = client.create_file(fh, b"f", b"0123456789")
    with open(p, "rb") as old:  # a local reader of the version before the truncate
        client.setattr(ffh, {x.FATTR4_SIZE: 3})
        with open(p, "rb") as f:
            assert f.read() == b"012"
        # Copy-on-write: a new version replaced the name; the old one is untouched.
        assert os.fstat(old.fileno()).st_ino != os.stat(p).st_ino
        assert old.read() == b"0123456789"
    client.setattr(ffh, {x.FATTR4_SIZE: 6})
    with open(p, "rb") as f:
        assert f.read() == b"012\0\0\0"
    client.setattr(ffh, {x.FATTR4_SIZE: 0})
    assert os.path.getsize(p) == 0
    assert client.getattr(ffh, (x.FATTR4_SIZE,))[x.FATTR4_SIZE] == 0


def test_setattr_size_with_read_only_open_is_openmode(client, tdir):
    _, fh = tdir
    ffh = client.create_file(fh, b"f", b"0123")
    sid = client.open_fh(ffh, access=x.OPEN4_SHARE_ACCESS_READ)
    st = status(client, [op("PUTFH", ffh), op("SETATTR", sid, encode_attrs({x.FATTR4_SIZE: 1}))])
    assert st == x.NFS4ERR_OPENMODE
    client.close_file(ffh, sid)


def test_setattr_size_of_a_directory(client, tdir):
    _, fh = tdir
    st = status(client, [op("PUTFH", fh), op("SETATTR", ANON, encode_attrs({x.FATTR4_SIZE: 0}))])
    assert st in (x.NFS4ERR_ISDIR, x.NFS4ERR_INVAL)


@pytest.mark.parametrize("attr,value", [
    (x.FATTR4_TYPE, x.NF4REG), (x.FATTR4_FILEID, 7), (x.FATTR4_CHANGE, 1),
    (x.FATTR4_NUMLINKS, 3), (x.FATTR4_TIME_MODIFY, None), (x.FATTR4_SUPPORTED_ATTRS, [1]),
], ids=["type", "fileid", "change", "numlinks", "time_modify", "supported"])
def test_setattr_read_only_attribute_is_inval(client, tdir, attr, value):
    path, fh = tdir
    ffh = client.create_file(fh, b"f", b"x")
    if value is None:
        value = x.nfstime4(5, 0)
    st = status(client, [op("PUTFH", ffh), op("SETATTR", ANON, encode_attrs({attr: value}))])
    assert st == x.NFS4ERR_INVAL


@pytest.mark.parametrize("attr,value", [(x.FATTR4_ARCHIVE, True), (x.FATTR4_HIDDEN, True),
                                        (x.FATTR4_SYSTEM, True), (x.FATTR4_MIMETYPE, b"text/plain")],
                         ids=["archive", "hidden", "system", "mimetype"])
def test_setattr_unsupported_attribute_is_attrnotsupp(client, tdir, attr, value):
    _, fh = tdir
    ffh = client.create_file(fh, b"f", b"x")
    st = status(client, [op("PUTFH", ffh), op("SETATTR", ANON, encode_attrs({attr: value}))])
    assert st == x.NFS4ERR_ATTRNOTSUPP


def test_setattr_garbled_values_are_badxdr(client, tdir):
    _, fh = tdir
    ffh = client.create_file(fh, b"f", b"x")
    bad = x.fattr4(attr_request(x.FATTR4_MODE), b"\0\0")
    assert status(client, [op("PUTFH", ffh), op("SETATTR", ANON, bad)]) == x.NFS4ERR_BADXDR
    extra = x.fattr4(attr_request(x.FATTR4_MODE), b"\0\0\1\xa4" + b"\0" * 4)
    assert status(client, [op("PUTFH", ffh), op("SETATTR", ANON, extra)]) == x.NFS4ERR_BADXDR


def test_setattr_non_root_chmod_of_anothers_file_is_perm(user, tdir):
    path, fh = tdir
    p = os.path.join(path, "roots")
    with open(p, "wb") as f:
        f.write(b"r")
    os.chmod(p, 0o666)
    rfh = user.lookup(b"roots", base=fh)
    st = status(user, [op("PUTFH", rfh), op("SETATTR", ANON, encode_attrs({x.FATTR4_MODE: 0o777}))])
    assert st == x.NFS4ERR_PERM
    st = status(user, [op("PUTFH", rfh), op("SETATTR", ANON, encode_attrs({x.FATTR4_OWNER: b"1000"}))])
    assert st == x.NFS4ERR_PERM
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o666 and os.stat(p).st_uid == 0


def test_setattr_non_root_chmod_of_own_file(user, tdir):
    path, fh = tdir
    ffh = user.create_file(fh, b"mine", b"m", mode=0o600)
    assert os.stat(os.path.join(path, "mine")).st_uid == 1000
    user.setattr(ffh, {x.FATTR4_MODE: 0o640})
    assert stat.S_IMODE(os.stat(os.path.join(path, "mine")).st_mode) == 0o640


def test_setattr_on_read_only_attr_and_mode_together_changes_nothing(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"f", b"x", mode=0o644)
    st = status(client, [op("PUTFH", ffh), op("SETATTR", ANON, encode_attrs(
        {x.FATTR4_MODE: 0o600, x.FATTR4_NUMLINKS: 2}))])
    assert st == x.NFS4ERR_INVAL
    assert stat.S_IMODE(os.stat(os.path.join(path, "f")).st_mode) == 0o644


# ---------------------------------------------------------------- VERIFY / NVERIFY
def test_verify_and_nverify(client, tdir):
    _, fh = tdir
    ffh = client.create_file(fh, b"f", b"12345", mode=0o644)
    same = encode_attrs({x.FATTR4_SIZE: 5, x.FATTR4_MODE: 0o644})
    differ = encode_attrs({x.FATTR4_SIZE: 6, x.FATTR4_MODE: 0o644})
    assert status(client, [op("PUTFH", ffh), op("VERIFY", same)]) == x.NFS4_OK
    assert status(client, [op("PUTFH", ffh), op("VERIFY", differ)]) == x.NFS4ERR_NOT_SAME
    assert status(client, [op("PUTFH", ffh), op("NVERIFY", same)]) == x.NFS4ERR_SAME
    assert status(client, [op("PUTFH", ffh), op("NVERIFY", differ)]) == x.NFS4_OK
    # VERIFY guards the operations after it.
    st, res = client.try_call([op("PUTFH", ffh), op("VERIFY", differ), op("GETFH")])
    assert st == x.NFS4ERR_NOT_SAME and len(res) == 2


def test_verify_unsupported_attribute_is_attrnotsupp(client, tdir):
    _, fh = tdir
    st = status(client, [op("PUTFH", fh), op("VERIFY", encode_attrs({x.FATTR4_ARCHIVE: False}))])
    assert st == x.NFS4ERR_ATTRNOTSUPP


def test_verify_rdattr_error_is_inval(client, tdir):
    _, fh = tdir
    st = status(client, [op("PUTFH", fh), op("VERIFY", encode_attrs({x.FATTR4_RDATTR_ERROR: 0}))])
    assert st == x.NFS4ERR_INVAL


# ---------------------------------------------------------------- ACCESS
ALL = (x.ACCESS4_READ | x.ACCESS4_LOOKUP | x.ACCESS4_MODIFY | x.ACCESS4_EXTEND
       | x.ACCESS4_DELETE | x.ACCESS4_EXECUTE)


FOR_DIR = ALL & ~x.ACCESS4_EXECUTE
FOR_OTHER = ALL & ~(x.ACCESS4_LOOKUP | x.ACCESS4_DELETE)


def access(c, fh, want=ALL):
    r = c.call([op("PUTFH", fh), op("ACCESS", want)])[-1].value
    # Only the bits meaningful for the object's type are supported (as Linux nfsd answers).
    assert r.supported in (want & FOR_DIR, want & FOR_OTHER)
    assert not r.access & ~r.supported
    return r.access


def test_access_user_on_closed_root_directory(user, tdir):
    path, fh = tdir
    os.mkdir(os.path.join(path, "private"), 0o700)
    got = access(user, user.lookup(b"private", base=fh))
    assert not got & (x.ACCESS4_READ | x.ACCESS4_LOOKUP | x.ACCESS4_MODIFY | x.ACCESS4_DELETE)


def test_access_user_on_own_file(user, tdir):
    path, fh = tdir
    ffh = user.create_file(fh, b"mine", b"m", mode=0o644)
    got = access(user, ffh)
    assert got & x.ACCESS4_READ and got & x.ACCESS4_MODIFY and got & x.ACCESS4_EXTEND
    assert not got & x.ACCESS4_EXECUTE


def test_access_user_on_others_readable_file(user, tdir):
    path, fh = tdir
    p = os.path.join(path, "pub")
    open(p, "wb").close()
    os.chmod(p, 0o644)
    got = access(user, user.lookup(b"pub", base=fh))
    assert got & x.ACCESS4_READ and not got & (x.ACCESS4_MODIFY | x.ACCESS4_EXTEND)


def test_access_root_on_directory(client, tdir):
    _, fh = tdir
    got = access(client, fh)
    assert got & x.ACCESS4_READ and got & x.ACCESS4_LOOKUP and got & x.ACCESS4_MODIFY
    assert got & x.ACCESS4_DELETE and not got & x.ACCESS4_EXECUTE


def test_access_only_reports_what_was_asked(client, tdir):
    _, fh = tdir
    r = client.call([op("PUTFH", fh), op("ACCESS", x.ACCESS4_READ | 0x8000)])[-1].value
    assert r.supported == x.ACCESS4_READ and r.access == x.ACCESS4_READ


# ---------------------------------------------------------------- LOOKUP + GETATTR in one COMPOUND
def _lookup_getattr(c, dirfh, name, *middle):
    r = c.call([op("PUTFH", dirfh), op("LOOKUP", name), *middle,
                op("GETATTR", attr_request(x.FATTR4_SIZE, x.FATTR4_MODE, x.FATTR4_CHANGE))])
    return decode_attrs(r[-1].value.obj_attributes)


def test_getattr_after_lookup_sees_the_file_as_it_is(client, tdir):
    """GETATTR right after LOOKUP uses what LOOKUP found; after anything that changes the
    file it asks the file system again."""
    path, fh = tdir
    client.create_file(fh, b"f", b"12345")
    got = _lookup_getattr(client, fh, b"f")
    st = os.stat(os.path.join(path, "f"))
    assert (got[x.FATTR4_SIZE], got[x.FATTR4_MODE]) == (5, stat.S_IMODE(st.st_mode))
    # A SETATTR between them: the GETATTR shows its effect.
    got = _lookup_getattr(client, fh, b"f", op("SETATTR", ANON, encode_attrs({x.FATTR4_MODE: 0o600})))
    assert got[x.FATTR4_MODE] == 0o600
    got = _lookup_getattr(client, fh, b"f", op("SETATTR", ANON, encode_attrs({x.FATTR4_SIZE: 2})))
    assert got[x.FATTR4_SIZE] == 2
    # A local change between two COMPOUNDs is seen by the next one.
    os.truncate(os.path.join(path, "f"), 9)
    assert _lookup_getattr(client, fh, b"f")[x.FATTR4_SIZE] == 9


def test_getattr_after_lookup_shows_the_writers_staged_size(client, user, tdir):
    path, fh = tdir
    client.create_file(fh, b"g", b"abc")
    ffh, sid, _ = client.open(fh, b"g", access=x.OPEN4_SHARE_ACCESS_BOTH)
    client.write(ffh, sid, 0, b"0123456789")
    # the writer sees its private version, everybody else the published one
    assert _lookup_getattr(client, fh, b"g")[x.FATTR4_SIZE] == 10
    assert _lookup_getattr(user, fh, b"g")[x.FATTR4_SIZE] == 3
    client.close_file(ffh, sid)
    assert _lookup_getattr(user, fh, b"g")[x.FATTR4_SIZE] == 10


def test_lookup_by_path_follows_local_changes(client, tdir):
    """The nfs4fs stat request (PUTROOTFH, LOOKUP per component, GETATTR), repeated: the
    answer follows a local chmod, rewrite and replacement of the file and a chmod of its
    directory, though unchanged objects' attributes are reused between requests."""
    path, _ = tdir
    dname = os.path.basename(path).encode()
    p = os.path.join(path, "f")
    with open(p, "wb") as f:
        f.write(b"x")
    want = (x.FATTR4_FILEID, x.FATTR4_MODE, x.FATTR4_SIZE, x.FATTR4_CHANGE)

    def stat_by_path():
        r = client.call([op("PUTROOTFH"), op("LOOKUP", dname), op("GETATTR", attr_request(*want)),
                         op("LOOKUP", b"f"), op("GETFH"), op("GETATTR", attr_request(*want))])
        return (decode_attrs(r[2].value.obj_attributes), r[4].value.object,
                decode_attrs(r[5].value.obj_attributes))

    d0, fh0, a0 = stat_by_path()
    assert stat_by_path() == (d0, fh0, a0)
    assert client.getattr(fh0, want) == a0  # PUTFH + GETATTR
    os.chmod(p, 0o600)
    assert client.getattr(fh0, (x.FATTR4_MODE,))[x.FATTR4_MODE] == 0o600
    _, fh1, a1 = stat_by_path()
    assert fh1 == fh0 and a1[x.FATTR4_MODE] == 0o600 and a1[x.FATTR4_CHANGE] != a0[x.FATTR4_CHANGE]
    with open(p, "ab") as f:
        f.write(b"yz")
    assert stat_by_path()[2][x.FATTR4_SIZE] == 3
    with open(p + ".new", "wb") as f:
        f.write(b"other")
    os.replace(p + ".new", p)
    _, fh2, a2 = stat_by_path()
    assert fh2 != fh0 and a2[x.FATTR4_SIZE] == 5 and a2[x.FATTR4_FILEID] != a0[x.FATTR4_FILEID]
    os.chmod(path, 0o700)
    assert stat_by_path()[0][x.FATTR4_MODE] == 0o700


def test_getattr_of_an_unchanged_file_follows_the_bitmap_and_free_space(client, tdir):
    """GETATTR replies of an unchanged object are kept, per bitmap; space figures are not."""
    path, fh = tdir
    ffh = client.create_file(fh, b"f", b"abc")
    assert client.getattr(ffh, (x.FATTR4_SIZE,)) == {x.FATTR4_SIZE: 3}
    assert client.getattr(ffh, (x.FATTR4_SIZE, x.FATTR4_MODE)) == \
        {x.FATTR4_SIZE: 3, x.FATTR4_MODE: 0o644}
    assert client.getattr(ffh, (x.FATTR4_SIZE,)) == {x.FATTR4_SIZE: 3}
    free = (x.FATTR4_SIZE, x.FATTR4_SPACE_FREE)
    before = client.getattr(ffh, free)
    with open(os.path.join(os.path.dirname(path), f"filler-{os.getpid()}"), "wb") as f:
        f.write(os.urandom(8 << 20))  # 8 MiB elsewhere on the same file system
        f.flush()
        os.fsync(f.fileno())
    try:
        after = client.getattr(ffh, free)
    finally:
        os.unlink(f.name)
    assert after[x.FATTR4_SIZE] == 3
    assert after[x.FATTR4_SPACE_FREE] != before[x.FATTR4_SPACE_FREE]
