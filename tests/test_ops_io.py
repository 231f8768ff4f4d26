"""OPEN, READ, WRITE, COMMIT, CLOSE over a real socket, checked against the export on disk:
create modes, write-once staging (nothing appears under the name before CLOSE), stateid
errors, open modes and permissions (RFC 8881 sections 8.2, 18.2, 18.3, 18.16, 18.22, 18.32)."""

from __future__ import annotations

import os


from nfsd.client import ANON, NfsClient, encode_attrs, op
from nfsd.xdr import nfs4 as x

READ, WRITE, BOTH = x.OPEN4_SHARE_ACCESS_READ, x.OPEN4_SHARE_ACCESS_WRITE, x.OPEN4_SHARE_ACCESS_BOTH




def status(c, ops):
    return c.try_call(ops)[0]


def open_args(c, name, access=BOTH, create=None, owner=b"open-owner"):
    """OPEN4args by name; create: None or a createhow4."""
    how = x.openflag4(x.OPEN4_NOCREATE, None) if create is None else x.openflag4(x.OPEN4_CREATE, create)
    return x.nfs_argop4(x.OP_OPEN, x.OPEN4args(0, access, x.OPEN4_SHARE_DENY_NONE,
                                               x.open_owner4(c.clientid, owner), how,
                                               x.open_claim4(x.CLAIM_NULL, name)))


def on_disk(path, name):
    p = os.path.join(path, name)
    if not os.path.exists(p):
        return None
    with open(p, "rb") as f:
        return f.read()


# ---------------------------------------------------------------- create modes
def test_unchecked_create_appears_only_at_close(client, tdir):
    path, fh = tdir
    ffh, sid, _ = client.open(fh, b"new", create=True, how=x.UNCHECKED4)
    assert on_disk(path, "new") is None and os.listdir(path) == []
    client.write(ffh, sid, 0, b"hello world")
    assert on_disk(path, "new") is None
    client.commit(ffh)
    assert on_disk(path, "new") is None  # COMMIT makes it durable, not visible
    client.close_file(ffh, sid)
    assert on_disk(path, "new") == b"hello world"


def test_unchecked_create_of_existing_file_opens_it(client, tdir):
    path, fh = tdir
    client.create_file(fh, b"f", b"keep")
    ffh, sid, _ = client.open(fh, b"f", create=True, how=x.UNCHECKED4, attrs={x.FATTR4_MODE: 0o600})
    assert client.read(ffh, sid)[0] == b"keep"
    client.close_file(ffh, sid)
    assert on_disk(path, "f") == b"keep"


def test_unchecked_create_with_size_0_truncates_at_close(client, tdir):
    path, fh = tdir
    client.create_file(fh, b"f", b"old content")
    ffh, sid, _ = client.open(fh, b"f", create=True, how=x.UNCHECKED4,
                               attrs={x.FATTR4_SIZE: 0})
    assert client.read(ffh, sid)[0] == b""
    assert on_disk(path, "f") == b"old content"
    client.close_file(ffh, sid)
    assert on_disk(path, "f") == b""


def test_guarded_create(client, tdir):
    path, fh = tdir
    ffh, sid, _ = client.open(fh, b"g", create=True, how=x.GUARDED4)
    client.close_file(ffh, sid)
    assert on_disk(path, "g") == b""
    st = status(client, [op("PUTFH", fh), open_args(client, b"g", create=x.createhow4(
        x.GUARDED4, encode_attrs({})))])
    assert st == x.NFS4ERR_EXIST


def test_guarded_create_of_name_under_construction_is_exist(client, tdir):
    path, fh = tdir
    ffh, sid, _ = client.open(fh, b"g", create=True, how=x.GUARDED4)
    st = status(client, [op("PUTFH", fh), open_args(client, b"g", owner=b"other-owner",
                                                    create=x.createhow4(x.GUARDED4, encode_attrs({})))])
    assert st == x.NFS4ERR_EXIST
    client.close_file(ffh, sid)


def test_exclusive41_create_and_retransmission(client, tdir):
    path, fh = tdir
    ffh, sid, _ = client.open(fh, b"e", create=True, how=x.EXCLUSIVE4_1, verifier=b"verif-01")
    # The retransmission (same verifier) succeeds and names the same file.
    ffh2, sid2, _ = client.open(fh, b"e", create=True, how=x.EXCLUSIVE4_1, verifier=b"verif-01")
    assert ffh2 == ffh and sid2.other == sid.other
    # Another verifier is another create: EXIST.
    st = status(client, [op("PUTFH", fh), open_args(client, b"e", create=x.createhow4(
        x.EXCLUSIVE4_1, x.creatverfattr(b"verif-02", encode_attrs({}))))])
    assert st == x.NFS4ERR_EXIST
    client.write(ffh, sid2, 0, b"exclusive")
    client.close_file(ffh, sid2)
    assert on_disk(path, "e") == b"exclusive"
    # A retransmission after the CLOSE still matches the stored verifier.
    ffh3, sid3, _ = client.open(fh, b"e", create=True, how=x.EXCLUSIVE4_1, verifier=b"verif-01")
    assert ffh3 == ffh
    client.close_file(ffh3, sid3)
    assert on_disk(path, "e") == b"exclusive"


def test_exclusive41_on_a_plain_existing_file_is_exist(client, tdir):
    path, fh = tdir
    with open(os.path.join(path, "plain"), "wb") as f:
        f.write(b"p")
    st = status(client, [op("PUTFH", fh), open_args(client, b"plain", create=x.createhow4(
        x.EXCLUSIVE4_1, x.creatverfattr(b"verif-01", encode_attrs({}))))])
    assert st == x.NFS4ERR_EXIST


def test_exclusive41_with_mode(client, tdir):
    path, fh = tdir
    ffh, sid, _ = client.open(fh, b"m", create=True, how=x.EXCLUSIVE4_1, verifier=b"12345678",
                               attrs={x.FATTR4_MODE: 0o640})
    client.close_file(ffh, sid)
    assert os.stat(os.path.join(path, "m")).st_mode & 0o777 == 0o640


def test_open_nocreate_missing_is_noent(client, tdir):
    _, fh = tdir
    assert status(client, [op("PUTFH", fh), open_args(client, b"absent")]) == x.NFS4ERR_NOENT


def test_open_directory_is_isdir(client, tdir):
    path, fh = tdir
    os.mkdir(os.path.join(path, "d"))
    assert status(client, [op("PUTFH", fh), open_args(client, b"d", access=READ)]) == x.NFS4ERR_ISDIR


def test_open_symlink_is_symlink(client, tdir):
    path, fh = tdir
    os.symlink("/etc/passwd", os.path.join(path, "l"))
    assert status(client, [op("PUTFH", fh), open_args(client, b"l", access=READ)]) == x.NFS4ERR_SYMLINK


def test_open_fifo_is_wrong_type(client, tdir):
    path, fh = tdir
    os.mkfifo(os.path.join(path, "p"))
    st = status(client, [op("PUTFH", fh), open_args(client, b"p", access=READ)])
    assert st == x.NFS4ERR_WRONG_TYPE


def test_open_bad_share_access(client, tdir):
    _, fh = tdir
    client.create_file(fh, b"f", b"")
    assert status(client, [op("PUTFH", fh), open_args(client, b"f", access=0)]) == x.NFS4ERR_INVAL


# ---------------------------------------------------------------- WRITE / READ / COMMIT
def test_write_and_read_back(client, tdir):
    path, fh = tdir
    ffh, sid, _ = client.open(fh, b"f", create=True)
    w = client.write(ffh, sid, 0, b"abcdef")
    assert w.count == 6 and w.committed == x.UNSTABLE4
    client.write(ffh, sid, 10, b"XYZ")
    assert client.read(ffh, sid, 0, 100) == (b"abcdef\0\0\0\0XYZ", True)
    assert client.read(ffh, sid, 2, 3) == (b"cde", False)
    c = client.commit(ffh)
    assert c.writeverf == w.writeverf
    client.close_file(ffh, sid)
    assert on_disk(path, "f") == b"abcdef\0\0\0\0XYZ"
    assert client.read(ffh)[0] == b"abcdef\0\0\0\0XYZ"


def test_write_file_sync(client, tdir):
    path, fh = tdir
    ffh, sid, _ = client.open(fh, b"f", create=True)
    w = client.write(ffh, sid, 0, b"durable", stable=x.FILE_SYNC4)
    assert w.committed == x.FILE_SYNC4 and w.count == 7
    w = client.write(ffh, sid, 7, b"!", stable=x.DATA_SYNC4)
    assert w.committed in (x.DATA_SYNC4, x.FILE_SYNC4)
    assert on_disk(path, "f") is None
    client.close_file(ffh, sid)
    assert on_disk(path, "f") == b"durable!"


def test_large_write_and_read(client, tdir):
    path, fh = tdir
    data = os.urandom(1 << 20)
    ffh, sid, _ = client.open(fh, b"big", create=True)
    client.write(ffh, sid, 0, data[:600_000])
    client.write(ffh, sid, 600_000, data[600_000:])
    client.close_file(ffh, sid)
    assert on_disk(path, "big") == data
    assert client.read_all(ffh, chunk=300_000) == data


def test_read_past_eof(client, tdir):
    _, fh = tdir
    ffh = client.create_file(fh, b"f", b"0123456789")
    assert client.read(ffh, ANON, 10, 5) == (b"", True)
    assert client.read(ffh, ANON, 1000, 5) == (b"", True)
    assert client.read(ffh, ANON, 8, 100) == (b"89", True)
    assert client.read(ffh, ANON, 0, 0) == (b"", False)


def test_read_of_a_directory_is_isdir(client, tdir):
    _, fh = tdir
    st = status(client, [op("PUTFH", fh), op("READ", ANON, 0, 10)])
    assert st == x.NFS4ERR_ISDIR


def test_write_with_read_only_open_is_openmode(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"f", b"ro")
    sid = client.open_fh(ffh, access=READ)
    assert status(client, [op("PUTFH", ffh), op("WRITE", sid, 0, x.UNSTABLE4, b"no")]) == x.NFS4ERR_OPENMODE
    client.close_file(ffh, sid)
    assert on_disk(path, "f") == b"ro"


def test_read_with_write_only_open(client, tdir):
    _, fh = tdir
    ffh = client.create_file(fh, b"f", b"wo")
    sid = client.open_fh(ffh, access=WRITE)
    st = status(client, [op("PUTFH", ffh), op("READ", sid, 0, 10)])
    assert st in (x.NFS4_OK, x.NFS4ERR_OPENMODE)  # servers may allow it (RFC 8881 9.1.2)
    client.close_file(ffh, sid)


def test_write_with_anonymous_stateid_is_openmode(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"f", b"keep")
    for special in (ANON, x.stateid4(0xFFFFFFFF, b"\xff" * 12)):
        st = status(client, [op("PUTFH", ffh), op("WRITE", special, 0, x.FILE_SYNC4, b"no")])
        assert st == x.NFS4ERR_OPENMODE
    assert on_disk(path, "f") == b"keep"


def test_bad_stateid(client, tdir):
    _, fh = tdir
    ffh, sid, _ = client.open(fh, b"f", create=True)
    bogus = x.stateid4(sid.seqid, bytes(reversed(sid.other)))
    assert status(client, [op("PUTFH", ffh), op("WRITE", bogus, 0, x.UNSTABLE4, b"x")]) in (
        x.NFS4ERR_BAD_STATEID, x.NFS4ERR_STALE_STATEID)
    # Invalid special stateid forms (RFC 8881 8.2.3).
    for bad in (x.stateid4(5, bytes(12)), x.stateid4(5, b"\xff" * 12)):
        assert status(client, [op("PUTFH", ffh), op("READ", bad, 0, 1)]) == x.NFS4ERR_BAD_STATEID
    # A stateid used with another file.
    other = client.create_file(fh, b"other", b"o")
    assert status(client, [op("PUTFH", other), op("READ", sid, 0, 1)]) == x.NFS4ERR_BAD_STATEID
    # A seqid newer than the server gave out.
    newer = x.stateid4(sid.seqid + 5, sid.other)
    assert status(client, [op("PUTFH", ffh), op("READ", newer, 0, 1)]) == x.NFS4ERR_BAD_STATEID
    client.close_file(ffh, sid)


def test_old_stateid(client, tdir):
    _, fh = tdir
    ffh, sid1, _ = client.open(fh, b"f", create=True, access=READ | WRITE)
    sid2 = client.open_fh(ffh, access=READ)  # the same open-owner: the stateid's seqid moves
    assert sid2.other == sid1.other and sid2.seqid == sid1.seqid + 1
    st = status(client, [op("PUTFH", ffh), op("WRITE", sid1, 0, x.UNSTABLE4, b"x")])
    assert st == x.NFS4ERR_OLD_STATEID
    # seqid 0 means "the current one" in 4.1.
    client.write(ffh, x.stateid4(0, sid1.other), 0, b"y")
    client.close_file(ffh, sid2)


def test_close_twice_is_bad_stateid(client, tdir):
    path, fh = tdir
    ffh, sid, _ = client.open(fh, b"f", create=True)
    r = client.close_file(ffh, sid)
    assert r.tag == x.NFS4_OK
    st = status(client, [op("PUTFH", ffh), op("CLOSE", 0, sid)])
    assert st == x.NFS4ERR_BAD_STATEID
    st = status(client, [op("PUTFH", ffh), op("CLOSE", 0, x.stateid4(sid.seqid + 1, sid.other))])
    assert st == x.NFS4ERR_BAD_STATEID
    assert on_disk(path, "f") == b""


def test_close_with_current_stateid_in_one_compound(client, tdir):
    path, fh = tdir
    current = x.stateid4(1, bytes(12))
    r = client.call([op("PUTFH", fh), open_args(client, b"cur", create=x.createhow4(
        x.UNCHECKED4, encode_attrs({}))), op("WRITE", current, 0, x.FILE_SYNC4, b"one trip"),
        op("CLOSE", 0, current)])
    assert r[-1].tag == x.NFS4_OK
    assert on_disk(path, "cur") == b"one trip"


def test_current_stateid_without_one_is_bad_stateid(client, tdir):
    _, fh = tdir
    ffh = client.create_file(fh, b"f", b"")
    st = status(client, [op("PUTFH", ffh), op("READ", x.stateid4(1, bytes(12)), 0, 1)])
    assert st == x.NFS4ERR_BAD_STATEID


def test_rewrite_is_copy_on_write(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"f", b"version one")
    with open(os.path.join(path, "f"), "rb") as reader:
        sid = client.open_fh(ffh, access=BOTH)
        client.write(ffh, sid, 8, b"TWO")
        assert on_disk(path, "f") == b"version one"
        assert client.read(ffh, sid)[0] == b"version TWO"
        client.close_file(ffh, sid)
        assert on_disk(path, "f") == b"version TWO"
        assert reader.read() == b"version one"  # the old version was never modified


def test_open_for_write_without_writing_publishes_nothing(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"f", b"same")
    ino = os.stat(os.path.join(path, "f")).st_ino
    sid = client.open_fh(ffh, access=BOTH)
    client.close_file(ffh, sid)
    assert os.stat(os.path.join(path, "f")).st_ino == ino


def test_commit_of_a_directory(client, tdir):
    _, fh = tdir
    assert status(client, [op("PUTFH", fh), op("COMMIT", 0, 0)]) == x.NFS4ERR_ISDIR


def test_open_downgrade_publishes(client, tdir):
    path, fh = tdir
    ffh, sid, _ = client.open(fh, b"f", create=True, access=BOTH)
    client.write(ffh, sid, 0, b"downgraded")
    # Also opened for READ by the same owner (as Linux does when a second process opens
    # O_RDONLY): READ is a mode it may downgrade to.
    _, sid, _ = client.open(fh, b"f", access=READ)
    assert on_disk(path, "f") is None
    r = client.call([op("PUTFH", ffh), op("OPEN_DOWNGRADE", sid, 0, READ, x.OPEN4_SHARE_DENY_NONE)])
    nsid = r[-1].value.open_stateid
    assert on_disk(path, "f") == b"downgraded"
    assert status(client, [op("PUTFH", ffh), op("WRITE", nsid, 0, x.UNSTABLE4, b"x")]) == x.NFS4ERR_OPENMODE
    client.close_file(ffh, nsid)


# ---------------------------------------------------------------- permissions
def test_user_cannot_open_root_file_for_write(server, tdir):
    path, fh = tdir
    p = os.path.join(path, "rootfile")
    with open(p, "wb") as f:
        f.write(b"root's")
    os.chmod(p, 0o644)
    with NfsClient(*server.address, uid=1000, gid=1000) as user:
        user.mount()
        rfh = user.lookup(b"rootfile", base=fh)
        for access in (WRITE, BOTH):
            st = user.try_call([op("PUTFH", fh), open_args(user, b"rootfile", access=access)])[0]
            assert st == x.NFS4ERR_ACCESS
            st = user.try_call([op("PUTFH", fh), open_args(user, b"rootfile", access=access,
                                create=x.createhow4(x.UNCHECKED4, encode_attrs({})))])[0]
            assert st == x.NFS4ERR_ACCESS
        # Reading is allowed, by OPEN and with the anonymous stateid.
        sid = user.open_fh(rfh, access=READ)
        assert user.read(rfh, sid)[0] == b"root's"
        user.close_file(rfh, sid)
        assert user.read(rfh)[0] == b"root's"
        st = user.try_call([op("PUTFH", rfh), op("SETATTR", ANON, encode_attrs({x.FATTR4_SIZE: 0}))])[0]
        assert st == x.NFS4ERR_ACCESS
        user.destroy()
    assert on_disk(path, "rootfile") == b"root's"


def test_user_cannot_read_private_file(server, tdir):
    path, fh = tdir
    p = os.path.join(path, "secret")
    with open(p, "wb") as f:
        f.write(b"secret")
    os.chmod(p, 0o600)
    with NfsClient(*server.address, uid=1000, gid=1000) as user:
        user.mount()
        sfh = user.lookup(b"secret", base=fh)
        assert user.try_call([op("PUTFH", sfh), op("READ", ANON, 0, 10)])[0] == x.NFS4ERR_ACCESS
        st = user.try_call([op("PUTFH", fh), open_args(user, b"secret", access=READ)])[0]
        assert st == x.NFS4ERR_ACCESS
        user.destroy()


def test_user_creates_in_writable_directory(server, tdir):
    path, fh = tdir
    with NfsClient(*server.address, uid=1000, gid=1000) as user:
        user.mount()
        user.create_file(fh, b"users-file", b"u", mode=0o600)
        user.destroy()
    st = os.stat(os.path.join(path, "users-file"))
    assert (st.st_uid, st.st_gid) == (1000, 1000) and st.st_mode & 0o777 == 0o600


def test_user_cannot_create_in_root_directory(server, tdir):
    path, fh = tdir
    os.chmod(path, 0o755)
    with NfsClient(*server.address, uid=1000, gid=1000) as user:
        user.mount()
        st = user.try_call([op("PUTFH", fh), open_args(user, b"nope", create=x.createhow4(
            x.UNCHECKED4, encode_attrs({})))])[0]
        assert st == x.NFS4ERR_ACCESS
        user.destroy()
    assert os.listdir(path) == []


# ---------------------------------------------------------------- cold reads
def test_read_of_data_not_in_memory_is_served_from_disk(server, client, tdir):
    """READ first tries the page cache without waiting (RWF_NOWAIT); data that is only on
    disk is read in a worker thread. Both give the same bytes, also with other requests
    in flight on the same connection."""
    path, fh = tdir
    data = os.urandom(2 * 1024 * 1024 + 123)
    with open(os.path.join(path, "cold"), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    ffh = client.lookup(os.path.basename(path) + "/cold")
    got = bytearray()
    while True:
        chunk, eof = client.read(ffh, ANON, len(got), 300_000)
        got += chunk
        if eof:
            break
    assert bytes(got) == data
