"""Directory operations over a real socket, checked against the export on disk: READDIR,
CREATE, REMOVE, RENAME, LINK, READLINK (RFC 8881 sections 18.4, 18.9, 18.23-18.26)."""

from __future__ import annotations

import os
import stat
import time

import pytest

from nfsd.client import NfsClient, attr_request, compound_bytes, decode_attrs, encode_attrs, op
from nfsd.xdr import decode, encode, nfs4 as x

NOATTRS = x.fattr4([], b"")




def status(c, ops):
    return c.try_call(ops)[0]


def readdir_once(c, fh, cookie=0, verf=bytes(8), maxcount=8192, attrs=(x.FATTR4_FILEID,)):
    return c.call([op("PUTFH", fh), op("READDIR", cookie, verf, maxcount, maxcount,
                                       attr_request(*attrs))])[-1].value


def names(c, fh):
    return sorted(e[0] for e in c.readdir(fh))


# ---------------------------------------------------------------- READDIR
def test_readdir_lists_local_entries_with_attributes(client, tdir):
    path, fh = tdir
    os.mkdir(os.path.join(path, "d"))
    with open(os.path.join(path, "f"), "wb") as f:
        f.write(b"abc")
    os.symlink("f", os.path.join(path, "l"))
    got = {e[0]: e[2] for e in client.readdir(fh, attrs=(x.FATTR4_TYPE, x.FATTR4_SIZE,
                                                         x.FATTR4_FILEID))}
    assert sorted(got) == [b"d", b"f", b"l"]
    assert got[b"d"][x.FATTR4_TYPE] == x.NF4DIR
    assert got[b"f"][x.FATTR4_TYPE] == x.NF4REG and got[b"f"][x.FATTR4_SIZE] == 3
    assert got[b"l"][x.FATTR4_TYPE] == x.NF4LNK
    assert got[b"f"][x.FATTR4_FILEID] == client.getattr(client.lookup(b"f", base=fh),
                                                        (x.FATTR4_FILEID,))[x.FATTR4_FILEID]


def _settled(path):
    """Wait until the directory's mtime/ctime are older than the server's racy window (50 ms),
    after which it caches the listing and re-uses unchanged entries (backend/local/listing.py)."""
    st = os.stat(path)
    while time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) <= 60_000_000:
        time.sleep(0.01)


def test_readdir_of_a_cached_listing_shows_changed_entries(client, tdir):
    """Entries are encoded once and re-used while unchanged: a local change to an entry (not
    to the directory) shows in the next listing, the rest is byte for byte the same."""
    path, fh = tdir
    for n in ("a", "b", "c"):
        with open(os.path.join(path, n), "wb") as f:
            f.write(b"x")
    _settled(path)
    want = (x.FATTR4_TYPE, x.FATTR4_SIZE, x.FATTR4_MODE, x.FATTR4_CHANGE, x.FATTR4_FILEID,
            x.FATTR4_TIME_METADATA)
    first = readdir_once(client, fh, maxcount=65536, attrs=want)
    again = readdir_once(client, fh, maxcount=65536, attrs=want)
    assert encode(x.READDIR4resok, again) == encode(x.READDIR4resok, first)
    os.chmod(os.path.join(path, "b"), 0o600)
    with open(os.path.join(path, "c"), "wb") as f:
        f.write(b"longer")
    got = {e[0]: e[2] for e in client.readdir(fh, attrs=want)}
    before = {e.name: decode_attrs(e.attrs) for e in first.reply.entries}
    assert got[b"a"] == before[b"a"]
    assert got[b"b"][x.FATTR4_MODE] == 0o600 and got[b"b"][x.FATTR4_CHANGE] != \
        before[b"b"][x.FATTR4_CHANGE]
    assert got[b"c"][x.FATTR4_SIZE] == 6
    assert got[b"b"][x.FATTR4_FILEID] == before[b"b"][x.FATTR4_FILEID]


def test_readdir_file_system_statistics_are_current_for_unchanged_entries(client, tdir):
    """Entries are re-used, but space figures are read for every listing."""
    path, fh = tdir
    open(os.path.join(path, "a"), "wb").close()
    _settled(path)
    first = {e[0]: e[2] for e in client.readdir(fh, attrs=(x.FATTR4_SPACE_FREE,))}
    with open(os.path.join(os.path.dirname(path), f"filler-{os.getpid()}"), "wb") as f:
        f.write(os.urandom(8 << 20))  # 8 MiB elsewhere on the same file system
        f.flush()
        os.fsync(f.fileno())
    try:
        then = {e[0]: e[2] for e in client.readdir(fh, attrs=(x.FATTR4_SPACE_FREE,))}
    finally:
        os.unlink(f.name)
    assert then[b"a"][x.FATTR4_SPACE_FREE] != first[b"a"][x.FATTR4_SPACE_FREE]


def test_readdir_empty_directory(client, tdir):
    _, fh = tdir
    r = readdir_once(client, fh)
    assert r.reply.entries == [] and r.reply.eof


def test_readdir_cookies_resume(client, tdir):
    path, fh = tdir
    want = sorted(b"e%03d" % i for i in range(40))
    for n in want:
        open(os.path.join(path, n.decode()), "wb").close()
    first = readdir_once(client, fh, maxcount=600)
    assert first.reply.entries and not first.reply.eof
    seen = [e.name for e in first.reply.entries]
    # Resuming from the cookie of any entry continues right after it.
    mid = first.reply.entries[len(first.reply.entries) // 2]
    again = readdir_once(client, fh, cookie=mid.cookie, verf=first.cookieverf, maxcount=600)
    k = seen.index(mid.name)
    assert [e.name for e in again.reply.entries][:len(seen) - k - 1] == seen[k + 1:]
    # Following the cookies to the end lists everything exactly once.
    cookie, verf, out = 0, bytes(8), []
    while True:
        r = readdir_once(client, fh, cookie=cookie, verf=verf, maxcount=600)
        out += [e.name for e in r.reply.entries]
        for e in r.reply.entries:
            assert e.cookie not in (0, 1, 2)
        if r.reply.eof:
            break
        cookie, verf = r.reply.entries[-1].cookie, r.cookieverf
    assert sorted(out) == want and len(out) == len(set(out))


def test_readdir_2000_entries_with_small_maxcount(client, tdir):
    path, fh = tdir
    want = {("n%05d" % i).encode() for i in range(2000)}
    for n in want:
        os.close(os.open(os.path.join(path, n.decode()), os.O_CREAT | os.O_WRONLY, 0o644))
    calls = 0
    cookie, verf, out = 0, bytes(8), []
    while True:
        r = readdir_once(client, fh, cookie=cookie, verf=verf, maxcount=1024)
        calls += 1
        out += [e.name for e in r.reply.entries]
        if r.reply.eof:
            break
        assert r.reply.entries
        cookie, verf = r.reply.entries[-1].cookie, r.cookieverf
    assert set(out) == want and len(out) == 2000
    assert calls > 20  # the small maxcount was honoured


def test_readdir_reply_fits_maxcount(client, tdir):
    path, fh = tdir
    for i in range(100):
        open(os.path.join(path, "x" * 50 + "%03d" % i), "wb").close()
    for maxcount in (200, 500, 1000, 4000):
        args = compound_bytes([client.sequence_op(), op("PUTFH", fh),
                               op("READDIR", 0, bytes(8), maxcount, maxcount,
                                  attr_request(x.FATTR4_FILEID, x.FATTR4_TYPE))])
        reply = client.raw_compound(args)
        res = decode(x.COMPOUND4res, reply)
        assert res.status == x.NFS4_OK
        # Size of the READDIR4res (everything after the READDIR opnum).
        body = reply[len(reply) - _readdir_res_size(res.resarray[-1].value):]
        assert len(body) <= maxcount, (maxcount, len(body))


def _readdir_res_size(res):
    return len(encode(x.READDIR4res, res))


def test_readdir_maxcount_too_small(client, tdir):
    path, fh = tdir
    open(os.path.join(path, "a-file-with-a-long-name" * 4), "wb").close()
    for maxcount in (0, 16, 40):
        st = status(client, [op("PUTFH", fh), op("READDIR", 0, bytes(8), maxcount, maxcount,
                                                 attr_request(x.FATTR4_FILEID))])
        assert st == x.NFS4ERR_TOOSMALL, maxcount


def test_readdir_maxcount_too_small_for_an_empty_listing(client, tdir):
    _, fh = tdir
    for maxcount in (0, 8, 15):
        st = status(client, [op("PUTFH", fh), op("READDIR", 0, bytes(8), maxcount, maxcount, [])])
        assert st == x.NFS4ERR_TOOSMALL, maxcount
    r = readdir_once(client, fh, maxcount=32)
    assert r.reply.entries == [] and r.reply.eof


@pytest.mark.parametrize("cookie", [1, 2])
def test_readdir_reserved_cookies(client, tdir, cookie):
    _, fh = tdir
    st = status(client, [op("PUTFH", fh), op("READDIR", cookie, bytes(8), 4096, 4096, [])])
    assert st == x.NFS4ERR_BAD_COOKIE


def test_readdir_unknown_cookie(client, tdir):
    path, fh = tdir
    open(os.path.join(path, "a"), "wb").close()
    r = readdir_once(client, fh)
    st = status(client, [op("PUTFH", fh), op("READDIR", 0x1234_5678_9ABC, r.cookieverf, 4096, 4096, [])])
    assert st in (x.NFS4_OK, x.NFS4ERR_BAD_COOKIE)


def test_readdir_on_a_file_is_notdir(client, tdir):
    _, fh = tdir
    ffh = client.create_file(fh, b"f", b"")
    st = status(client, [op("PUTFH", ffh), op("READDIR", 0, bytes(8), 4096, 4096, [])])
    assert st == x.NFS4ERR_NOTDIR


def test_readdir_sees_local_creates_and_removes(client, tdir):
    path, fh = tdir
    open(os.path.join(path, "one"), "wb").close()
    assert names(client, fh) == [b"one"]
    open(os.path.join(path, "two"), "wb").close()
    os.mkdir(os.path.join(path, "three"))
    assert names(client, fh) == [b"one", b"three", b"two"]
    os.unlink(os.path.join(path, "one"))
    os.rename(os.path.join(path, "two"), os.path.join(path, "deux"))
    assert names(client, fh) == [b"deux", b"three"]
    os.rmdir(os.path.join(path, "three"))
    assert names(client, fh) == [b"deux"]


def test_readdir_attribute_error_for_requested_rdattr_error(client, tdir):
    path, fh = tdir
    open(os.path.join(path, "f"), "wb").close()
    r = readdir_once(client, fh, attrs=(x.FATTR4_RDATTR_ERROR, x.FATTR4_TYPE))
    [e] = r.reply.entries
    got = decode_attrs(e.attrs)
    assert got.get(x.FATTR4_RDATTR_ERROR, 0) == 0 and got[x.FATTR4_TYPE] == x.NF4REG


def test_readdir_without_read_permission(server, tdir):
    path, fh = tdir
    os.mkdir(os.path.join(path, "closed"), 0o711)
    with NfsClient(*server.address, uid=1000, gid=1000) as user:
        user.mount()
        closed = user.lookup(b"closed", base=fh)
        st = user.try_call([op("PUTFH", closed), op("READDIR", 0, bytes(8), 4096, 4096, [])])[0]
        assert st == x.NFS4ERR_ACCESS
        user.destroy()


# ---------------------------------------------------------------- CREATE
def test_create_directory(client, tdir):
    path, fh = tdir
    r = client.call([op("PUTFH", fh), op("CREATE", x.createtype4(x.NF4DIR, None), b"sub",
                                          encode_attrs({x.FATTR4_MODE: 0o750})), op("GETFH")])
    assert r[1].value.cinfo.before != r[1].value.cinfo.after
    st = os.stat(os.path.join(path, "sub"))
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o750
    assert client.lookup(b"sub", base=fh) == r[2].value.object


def test_create_symlink(client, tdir):
    path, fh = tdir
    lfh = client.symlink(fh, b"link", b"../some/where")
    assert os.readlink(os.path.join(path, "link")) == "../some/where"
    assert client.readlink(lfh) == b"../some/where"
    assert client.getattr(lfh, (x.FATTR4_TYPE,))[x.FATTR4_TYPE] == x.NF4LNK


def test_create_symlink_with_empty_target_is_inval(client, tdir):
    _, fh = tdir
    st = status(client, [op("PUTFH", fh), op("CREATE", x.createtype4(x.NF4LNK, b""), b"l", NOATTRS)])
    assert st == x.NFS4ERR_INVAL


def test_create_fifo(client, tdir):
    path, fh = tdir
    r = client.call([op("PUTFH", fh), op("CREATE", x.createtype4(x.NF4FIFO, None), b"pipe",
                                          encode_attrs({x.FATTR4_MODE: 0o600})), op("GETFH")])
    st = os.lstat(os.path.join(path, "pipe"))
    assert stat.S_ISFIFO(st.st_mode)
    assert client.getattr(r[-1].value.object, (x.FATTR4_TYPE,))[x.FATTR4_TYPE] == x.NF4FIFO


def test_create_socket(client, tdir):
    path, fh = tdir
    client.call([op("PUTFH", fh), op("CREATE", x.createtype4(x.NF4SOCK, None), b"sock", NOATTRS)])
    assert stat.S_ISSOCK(os.lstat(os.path.join(path, "sock")).st_mode)


def test_create_for_another_owner_as_user_is_perm(server, tdir):
    path, fh = tdir
    os.chmod(path, 0o777)
    with NfsClient(*server.address, uid=1000, gid=1000) as user:
        user.mount()
        st = user.try_call([op("PUTFH", fh), op("CREATE", x.createtype4(x.NF4DIR, None), b"d",
                                                      encode_attrs({x.FATTR4_OWNER: b"0"}))])[0]
        assert st == x.NFS4ERR_PERM
        user.destroy()
    assert os.listdir(path) == []


def test_create_regular_file_and_other_types_are_badtype(client, tdir):
    path, fh = tdir
    for t in (x.NF4REG, x.NF4ATTRDIR, x.NF4NAMEDATTR):
        st = status(client, [op("PUTFH", fh), op("CREATE", x.createtype4(t, None), b"reg", NOATTRS)])
        assert st == x.NFS4ERR_BADTYPE, t
    assert not os.path.exists(os.path.join(path, "reg"))


def test_create_existing_name_is_exist(client, tdir):
    path, fh = tdir
    open(os.path.join(path, "taken"), "wb").close()
    for t in (x.createtype4(x.NF4DIR, None), x.createtype4(x.NF4LNK, b"t"),
              x.createtype4(x.NF4FIFO, None)):
        st = status(client, [op("PUTFH", fh), op("CREATE", t, b"taken", NOATTRS)])
        assert st == x.NFS4ERR_EXIST
    assert os.path.isfile(os.path.join(path, "taken"))


def test_create_bad_names(client, tdir):
    _, fh = tdir
    t = x.createtype4(x.NF4DIR, None)
    for name, want in ((b"", x.NFS4ERR_INVAL), (b".", x.NFS4ERR_BADNAME), (b"..", x.NFS4ERR_BADNAME),
                       (b"a/b", x.NFS4ERR_BADNAME), (b"n" * 256, x.NFS4ERR_NAMETOOLONG),
                       (b"\xc0\xaf", x.NFS4ERR_INVAL)):
        assert status(client, [op("PUTFH", fh), op("CREATE", t, name, NOATTRS)]) == want, name


def test_create_in_a_file_is_notdir(client, tdir):
    _, fh = tdir
    ffh = client.create_file(fh, b"f", b"")
    st = status(client, [op("PUTFH", ffh), op("CREATE", x.createtype4(x.NF4DIR, None), b"d", NOATTRS)])
    assert st == x.NFS4ERR_NOTDIR


def test_create_as_user_without_write_permission(server, tdir):
    path, fh = tdir
    os.chmod(path, 0o755)
    with NfsClient(*server.address, uid=1000, gid=1000) as user:
        user.mount()
        st = user.try_call([op("PUTFH", fh), op("CREATE", x.createtype4(x.NF4DIR, None), b"d",
                                                      NOATTRS)])[0]
        assert st == x.NFS4ERR_ACCESS
        user.destroy()
    assert not os.path.exists(os.path.join(path, "d"))


def test_create_owned_by_the_caller(server, tdir):
    path, fh = tdir
    os.chmod(path, 0o777)
    with NfsClient(*server.address, uid=1000, gid=1001) as user:
        user.mount()
        user.mkdir(fh, b"users")
        user.destroy()
    st = os.stat(os.path.join(path, "users"))
    assert (st.st_uid, st.st_gid) == (1000, 1001)


# ---------------------------------------------------------------- REMOVE
def test_remove_file_and_empty_directory(client, tdir):
    path, fh = tdir
    client.create_file(fh, b"f", b"data")
    client.mkdir(fh, b"d")
    r = client.remove(fh, b"f")
    assert r.value.cinfo.before != r.value.cinfo.after
    assert not os.path.exists(os.path.join(path, "f"))
    client.remove(fh, b"d")
    assert os.listdir(path) == []


def test_remove_non_empty_directory(client, tdir):
    path, fh = tdir
    os.makedirs(os.path.join(path, "d", "inner"))
    st = status(client, [op("PUTFH", fh), op("REMOVE", b"d")])
    assert st == x.NFS4ERR_NOTEMPTY
    assert os.path.isdir(os.path.join(path, "d", "inner"))


def test_remove_missing_and_bad_names(client, tdir):
    _, fh = tdir
    assert status(client, [op("PUTFH", fh), op("REMOVE", b"absent")]) == x.NFS4ERR_NOENT
    assert status(client, [op("PUTFH", fh), op("REMOVE", b"..")]) == x.NFS4ERR_BADNAME
    assert status(client, [op("PUTFH", fh), op("REMOVE", b"")]) == x.NFS4ERR_INVAL


def test_remove_symlink_removes_the_link_only(client, tdir):
    path, fh = tdir
    client.create_file(fh, b"target", b"t")
    client.symlink(fh, b"link", b"target")
    client.remove(fh, b"link")
    assert os.listdir(path) == ["target"]


def test_remove_sticky_directory_others_file(server, tdir):
    path, fh = tdir
    os.chmod(path, 0o1777)
    open(os.path.join(path, "roots"), "wb").close()
    with NfsClient(*server.address, uid=1000, gid=1000) as user:
        user.mount()
        # Not the owner of the entry or of the sticky directory: EPERM, as Linux answers.
        assert user.try_call([op("PUTFH", fh), op("REMOVE", b"roots")])[0] == x.NFS4ERR_PERM
        user.destroy()
    assert os.path.exists(os.path.join(path, "roots"))


# ---------------------------------------------------------------- RENAME
def test_rename_file(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"a", b"content")
    r = client.rename(fh, b"a", fh, b"b")
    assert r.value.source_cinfo.before != r.value.source_cinfo.after
    assert os.listdir(path) == ["b"]
    with open(os.path.join(path, "b"), "rb") as f:
        assert f.read() == b"content"
    assert client.lookup(b"b", base=fh) == ffh  # handles survive renames


def test_rename_across_directories(client, tdir):
    path, fh = tdir
    d1 = client.mkdir(fh, b"d1")
    d2 = client.mkdir(fh, b"d2")
    ffh = client.create_file(d1, b"f", b"x")
    client.rename(d1, b"f", d2, b"g")
    assert os.listdir(os.path.join(path, "d2")) == ["g"] and os.listdir(os.path.join(path, "d1")) == []
    assert client.read(ffh)[0] == b"x"


def test_rename_directory(client, tdir):
    path, fh = tdir
    d = client.mkdir(fh, b"olddir")
    client.create_file(d, b"inside", b"i")
    client.rename(fh, b"olddir", fh, b"newdir")
    assert os.listdir(os.path.join(path, "newdir")) == ["inside"]
    assert client.lookup(b"newdir", base=fh) == d
    assert client.lookup(b"inside", base=d)


def test_rename_over_existing_file(client, tdir):
    path, fh = tdir
    client.create_file(fh, b"src", b"new")
    client.create_file(fh, b"dst", b"old")
    client.rename(fh, b"src", fh, b"dst")
    assert os.listdir(path) == ["dst"]
    with open(os.path.join(path, "dst"), "rb") as f:
        assert f.read() == b"new"


def test_rename_directory_over_empty_directory(client, tdir):
    path, fh = tdir
    d = client.mkdir(fh, b"src")
    client.create_file(d, b"f", b"")
    client.mkdir(fh, b"dst")
    client.rename(fh, b"src", fh, b"dst")
    assert os.listdir(path) == ["dst"] and os.listdir(os.path.join(path, "dst")) == ["f"]


def test_rename_directory_onto_non_empty_directory(client, tdir):
    path, fh = tdir
    client.mkdir(fh, b"src")
    dst = client.mkdir(fh, b"dst")
    client.create_file(dst, b"keep", b"")
    st = status(client, [op("PUTFH", fh), op("SAVEFH"), op("RENAME", b"src", b"dst")])
    assert st in (x.NFS4ERR_NOTEMPTY, x.NFS4ERR_EXIST)
    assert sorted(os.listdir(path)) == ["dst", "src"]


def test_rename_file_onto_directory_and_back(client, tdir):
    path, fh = tdir
    client.create_file(fh, b"f", b"")
    client.mkdir(fh, b"d")
    st = status(client, [op("PUTFH", fh), op("SAVEFH"), op("RENAME", b"f", b"d")])
    assert st in (x.NFS4ERR_EXIST, x.NFS4ERR_ISDIR)
    st = status(client, [op("PUTFH", fh), op("SAVEFH"), op("RENAME", b"d", b"f")])
    assert st in (x.NFS4ERR_EXIST, x.NFS4ERR_NOTDIR)
    assert sorted(os.listdir(path)) == ["d", "f"]


def test_rename_directory_into_itself_is_inval(client, tdir):
    path, fh = tdir
    d = client.mkdir(fh, b"d")
    st = status(client, [op("PUTFH", fh), op("SAVEFH"), op("PUTFH", d), op("RENAME", b"d", b"sub")])
    assert st == x.NFS4ERR_INVAL
    assert os.listdir(path) == ["d"]


def test_rename_onto_itself_is_a_no_op(client, tdir):
    path, fh = tdir
    client.create_file(fh, b"same", b"s")
    client.rename(fh, b"same", fh, b"same")
    assert os.listdir(path) == ["same"]


def test_rename_without_saved_filehandle(client, tdir):
    _, fh = tdir
    client.create_file(fh, b"f", b"")
    assert status(client, [op("PUTFH", fh), op("RENAME", b"f", b"g")]) == x.NFS4ERR_NOFILEHANDLE


def test_rename_missing_source(client, tdir):
    _, fh = tdir
    st = status(client, [op("PUTFH", fh), op("SAVEFH"), op("RENAME", b"absent", b"g")])
    assert st == x.NFS4ERR_NOENT


def test_rename_bad_names(client, tdir):
    _, fh = tdir
    client.create_file(fh, b"f", b"")
    for old, new, want in ((b"f", b"..", x.NFS4ERR_BADNAME), (b".", b"g", x.NFS4ERR_BADNAME),
                           (b"f", b"", x.NFS4ERR_INVAL), (b"f", b"a/b", x.NFS4ERR_BADNAME)):
        st = status(client, [op("PUTFH", fh), op("SAVEFH"), op("RENAME", old, new)])
        assert st == want, (old, new)


def test_rename_source_not_a_directory(client, tdir):
    _, fh = tdir
    ffh = client.create_file(fh, b"f", b"")
    st = status(client, [op("PUTFH", ffh), op("SAVEFH"), op("PUTFH", fh), op("RENAME", b"x", b"y")])
    assert st == x.NFS4ERR_NOTDIR


# ---------------------------------------------------------------- LINK
def test_link_file(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"orig", b"shared")
    r = client.link(ffh, fh, b"alias")
    assert r.value.cinfo.before != r.value.cinfo.after
    st1, st2 = os.stat(os.path.join(path, "orig")), os.stat(os.path.join(path, "alias"))
    assert st1.st_ino == st2.st_ino and st1.st_nlink == 2
    a = client.getattr(ffh, (x.FATTR4_NUMLINKS, x.FATTR4_FILEID))
    b = client.getattr(client.lookup(b"alias", base=fh), (x.FATTR4_NUMLINKS, x.FATTR4_FILEID))
    assert a[x.FATTR4_NUMLINKS] == 2 and a == b


def test_link_directory_is_isdir(client, tdir):
    path, fh = tdir
    d = client.mkdir(fh, b"d")
    st = status(client, [op("PUTFH", d), op("SAVEFH"), op("PUTFH", fh), op("LINK", b"dlink")])
    assert st == x.NFS4ERR_ISDIR
    assert os.listdir(path) == ["d"]


def test_link_existing_name_is_exist(client, tdir):
    _, fh = tdir
    ffh = client.create_file(fh, b"a", b"")
    client.create_file(fh, b"b", b"")
    st = status(client, [op("PUTFH", ffh), op("SAVEFH"), op("PUTFH", fh), op("LINK", b"b")])
    assert st == x.NFS4ERR_EXIST


def test_link_without_saved_filehandle(client, tdir):
    _, fh = tdir
    assert status(client, [op("PUTFH", fh), op("LINK", b"x")]) == x.NFS4ERR_NOFILEHANDLE


def test_link_into_a_file_is_notdir(client, tdir):
    _, fh = tdir
    ffh = client.create_file(fh, b"a", b"")
    st = status(client, [op("PUTFH", ffh), op("SAVEFH"), op("LINK", b"x")])
    assert st == x.NFS4ERR_NOTDIR


# ---------------------------------------------------------------- READLINK
def test_readlink_of_local_symlink(client, tdir):
    path, fh = tdir
    os.symlink("/absolute/target", os.path.join(path, "abs"))
    assert client.readlink(client.lookup(b"abs", base=fh)) == b"/absolute/target"


def test_readlink_on_file_and_directory_is_inval(client, tdir):
    _, fh = tdir
    ffh = client.create_file(fh, b"f", b"")
    assert status(client, [op("PUTFH", ffh), op("READLINK")]) == x.NFS4ERR_INVAL
    assert status(client, [op("PUTFH", fh), op("READLINK")]) == x.NFS4ERR_INVAL
