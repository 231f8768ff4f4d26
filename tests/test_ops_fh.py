"""Filehandle operations over a real socket: PUTROOTFH, PUTPUBFH, PUTFH, GETFH, SAVEFH,
RESTOREFH, LOOKUP, LOOKUPP, and what the export exposes: no way out through symlinks, no
hidden state directory (RFC 8881 sections 18.13-18.22, 18.27, 18.28)."""

from __future__ import annotations

import os
import struct

import pytest

from nfsd.client import NfsClient, compound_bytes, op
from nfsd.xdr import decode, nfs4 as x




def status(client, ops):
    return client.try_call(ops)[0]


# ---------------------------------------------------------------- PUT*FH / GETFH
def test_putrootfh_and_putpubfh_give_the_export_root(client, server):
    r = client.call([op("PUTROOTFH"), op("GETFH"), op("PUTPUBFH"), op("GETFH")])
    assert r[1].value.object == r[3].value.object
    a = client.getattr(r[1].value.object, (x.FATTR4_TYPE, x.FATTR4_FILEID))
    assert a[x.FATTR4_TYPE] == x.NF4DIR


def test_putfh_round_trip(client, tdir):
    path, fh = tdir
    with open(os.path.join(path, "f"), "wb") as f:
        f.write(b"x")
    ffh = client.lookup(b"f", base=fh)
    r = client.call([op("PUTFH", ffh), op("GETFH")])
    assert r[1].value.object == ffh


@pytest.mark.parametrize("garbage", [b"", b"\x00", b"garbage-handle", b"\x02" + bytes(30),
                                     b"\xff" * 128, b"\x01\x00" + bytes(100)],
                         ids=["empty", "one", "text", "version2", "ones128", "overlong"])
def test_putfh_garbage_is_badhandle(client, garbage):
    assert status(client, [op("PUTFH", garbage)]) == x.NFS4ERR_BADHANDLE


@pytest.mark.parametrize("cut", [1, 5])
def test_putfh_truncated_or_extended_handle_is_badhandle(client, tdir, cut):
    _, fh = tdir
    assert status(client, [op("PUTFH", fh[:-cut])]) == x.NFS4ERR_BADHANDLE
    assert status(client, [op("PUTFH", fh + bytes(cut))]) == x.NFS4ERR_BADHANDLE


def test_putfh_handle_of_unknown_export_is_stale(client, tdir):
    _, fh = tdir
    # Byte 1 starts the export's random instance id: flipped, it names no export (setting it
    # to a fixed value would leave it unchanged for one instance id in 256).
    other = fh[:1] + bytes([fh[1] ^ 0xFF]) + fh[2:]
    assert status(client, [op("PUTFH", other)]) in (x.NFS4ERR_STALE, x.NFS4ERR_BADHANDLE)


@pytest.mark.parametrize("oid", [0, 1 << 62, (1 << 63) - 1, 1 << 63, (1 << 64) - 1])
def test_putfh_with_any_object_id_is_stale_not_a_fault(client, tdir, oid):
    path, fh = tdir
    # Same export and length, object id never issued (incl. ids SQLite cannot store).
    forged = fh[:9] + oid.to_bytes(8, "big") + fh[17:]
    assert status(client, [op("PUTFH", forged)]) == x.NFS4ERR_STALE


def test_putfh_handle_too_long_for_xdr_is_badxdr(client):
    body = struct.pack(">II", x.OP_PUTFH, 129) + bytes(132)
    res = decode(x.COMPOUND4res, client.raw_compound(compound_bytes([client.sequence_op(), body])))
    assert res.status == x.NFS4ERR_BADXDR


def test_putfh_of_a_removed_file_is_stale(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"doomed", b"bytes")
    client.remove(fh, b"doomed")
    assert status(client, [op("PUTFH", ffh)]) == x.NFS4ERR_STALE
    assert status(client, [op("PUTFH", ffh), op("GETATTR", [1])]) == x.NFS4ERR_STALE


def test_putfh_of_a_locally_removed_file_is_stale(client, tdir):
    path, fh = tdir
    with open(os.path.join(path, "local"), "wb") as f:
        f.write(b"x")
    ffh = client.lookup(b"local", base=fh)
    os.unlink(os.path.join(path, "local"))
    assert status(client, [op("PUTFH", ffh), op("GETATTR", [1 << x.FATTR4_SIZE])]) == x.NFS4ERR_STALE


def test_putfh_of_a_removed_directory_is_stale(client, tdir):
    path, fh = tdir
    dfh = client.mkdir(fh, b"gone")
    client.remove(fh, b"gone")
    assert status(client, [op("PUTFH", dfh), op("GETATTR", [1])]) == x.NFS4ERR_STALE
    os.mkdir(os.path.join(path, "gone2"))
    d2 = client.lookup(b"gone2", base=fh)
    os.rmdir(os.path.join(path, "gone2"))
    assert status(client, [op("PUTFH", d2), op("GETATTR", [1])]) == x.NFS4ERR_STALE


def test_filehandles_survive_a_new_connection(client, tdir):
    _, fh = tdir
    ffh = client.create_file(fh, b"kept", b"k")
    client.reconnect()
    assert client.read(ffh)[0] == b"k"


# ---------------------------------------------------------------- SAVEFH / RESTOREFH
def test_savefh_restorefh(client, tdir):
    _, fh = tdir
    r = client.call([op("PUTFH", fh), op("SAVEFH"), op("PUTROOTFH"), op("RESTOREFH"), op("GETFH")])
    assert r[-1].value.object == fh


def test_restorefh_without_saved_fh(client):
    assert status(client, [op("PUTROOTFH"), op("RESTOREFH")]) == x.NFS4ERR_NOFILEHANDLE


def test_savefh_without_current_fh(client):
    assert status(client, [op("SAVEFH")]) == x.NFS4ERR_NOFILEHANDLE


def test_saved_fh_does_not_outlive_the_compound(client):
    client.call([op("PUTROOTFH"), op("SAVEFH")])
    assert status(client, [op("PUTROOTFH"), op("RESTOREFH")]) == x.NFS4ERR_NOFILEHANDLE


# ---------------------------------------------------------------- LOOKUP
def test_lookup_existing_and_missing(client, tdir):
    path, fh = tdir
    os.mkdir(os.path.join(path, "sub"))
    sub = client.lookup(b"sub", base=fh)
    assert client.getattr(sub, (x.FATTR4_TYPE,))[x.FATTR4_TYPE] == x.NF4DIR
    assert status(client, [op("PUTFH", fh), op("LOOKUP", b"missing")]) == x.NFS4ERR_NOENT


def test_lookup_on_a_file_is_notdir(client, tdir):
    path, fh = tdir
    ffh = client.create_file(fh, b"plain", b"p")
    assert status(client, [op("PUTFH", ffh), op("LOOKUP", b"x")]) == x.NFS4ERR_NOTDIR


@pytest.mark.parametrize("name,expect", [
    (b"", x.NFS4ERR_INVAL),
    (b".", x.NFS4ERR_BADNAME),
    (b"..", x.NFS4ERR_BADNAME),
    (b"a/b", x.NFS4ERR_BADNAME),
    (b"/", x.NFS4ERR_BADNAME),
    (b"nul\0byte", x.NFS4ERR_BADNAME),
    (b"n" * 256, x.NFS4ERR_NAMETOOLONG),
    (b"n" * 4000, x.NFS4ERR_NAMETOOLONG),
    (b"\xff\xfe", x.NFS4ERR_INVAL),
    (b"caf\xc3", x.NFS4ERR_INVAL),
], ids=["empty", "dot", "dotdot", "slash-inside", "slash", "nul", "256", "4000", "ff-fe",
        "cut-utf8"])
def test_lookup_bad_names(client, tdir, name, expect):
    _, fh = tdir
    assert status(client, [op("PUTFH", fh), op("LOOKUP", name)]) == expect


def test_lookup_longest_name(client, tdir):
    path, fh = tdir
    name = "n" * 255
    open(os.path.join(path, name), "wb").close()
    client.lookup(name.encode(), base=fh)


def test_lookup_utf8_name(client, tdir):
    path, fh = tdir
    name = "naïve-文件"
    open(os.path.join(path, name), "wb").close()
    client.lookup(name.encode(), base=fh)


def test_lookup_in_a_directory_without_search_permission(server, tdir):
    path, fh = tdir
    os.mkdir(os.path.join(path, "closed"), 0o700)
    open(os.path.join(path, "closed", "inside"), "wb").close()
    with NfsClient(*server.address, uid=1000, gid=1000) as user:
        user.mount()
        closed = user.lookup(b"closed", base=fh)
        assert user.try_call([op("PUTFH", closed), op("LOOKUP", b"inside")])[0] == x.NFS4ERR_ACCESS
        user.destroy()


# ---------------------------------------------------------------- LOOKUPP
def test_lookupp(client, tdir):
    path, fh = tdir
    os.makedirs(os.path.join(path, "a", "b"))
    b = client.lookup(b"a/b", base=fh)
    a = client.lookup(b"a", base=fh)
    r = client.call([op("PUTFH", b), op("LOOKUPP"), op("GETFH"), op("LOOKUPP"), op("GETFH")])
    assert r[2].value.object == a and r[4].value.object == fh


def test_lookupp_at_root_is_noent(client):
    assert status(client, [op("PUTROOTFH"), op("LOOKUPP")]) == x.NFS4ERR_NOENT


def test_lookupp_of_a_file_is_notdir(client, tdir):
    _, fh = tdir
    ffh = client.create_file(fh, b"f", b"")
    assert status(client, [op("PUTFH", ffh), op("LOOKUPP")]) == x.NFS4ERR_NOTDIR


def test_lookupp_from_top_level_dir_gives_root(client, tdir):
    _, fh = tdir
    r = client.call([op("PUTFH", fh), op("LOOKUPP"), op("GETFH")])
    assert r[-1].value.object == client.root()


# ---------------------------------------------------------------- the export's boundary
def test_symlink_to_host_root_cannot_be_followed(client, tdir, server):
    path, fh = tdir
    os.symlink("/", os.path.join(path, "escape"))
    os.symlink("/etc", os.path.join(path, "etc"))
    os.symlink("../../../../../../../../", os.path.join(path, "up"))
    for link in (b"escape", b"etc", b"up"):
        lfh = client.lookup(link, base=fh)  # the link itself is an object of the export
        a = client.getattr(lfh, (x.FATTR4_TYPE,))
        assert a[x.FATTR4_TYPE] == x.NF4LNK
        for name in (b"etc", b"passwd", b"hostname", b"tmp"):
            st = status(client, [op("PUTFH", fh), op("LOOKUP", link), op("LOOKUP", name)])
            assert st in (x.NFS4ERR_SYMLINK, x.NFS4ERR_NOTDIR), (link, name)
        assert status(client, [op("PUTFH", lfh), op("LOOKUPP")]) in (x.NFS4ERR_SYMLINK,
                                                                      x.NFS4ERR_NOTDIR)
        st = status(client, [op("PUTFH", lfh), op("READDIR", 0, bytes(8), 4096, 4096, [])])
        assert st in (x.NFS4ERR_SYMLINK, x.NFS4ERR_NOTDIR)
    assert client.readlink(client.lookup(b"escape", base=fh)) == b"/"


def test_symlink_to_host_file_cannot_be_read_or_opened(client, tdir):
    path, fh = tdir
    os.symlink("/etc/hostname", os.path.join(path, "hostfile"))
    lfh = client.lookup(b"hostfile", base=fh)
    st = status(client, [op("PUTFH", lfh), op("READ", x.stateid4(0, bytes(12)), 0, 100)])
    assert st in (x.NFS4ERR_SYMLINK, x.NFS4ERR_INVAL, x.NFS4ERR_WRONG_TYPE)
    a = x.OPEN4args(0, x.OPEN4_SHARE_ACCESS_READ, 0, x.open_owner4(client.clientid, b"o"),
                    x.openflag4(x.OPEN4_NOCREATE, None), x.open_claim4(x.CLAIM_NULL, b"hostfile"))
    st = status(client, [op("PUTFH", fh), x.nfs_argop4(x.OP_OPEN, a)])
    assert st == x.NFS4ERR_SYMLINK


def test_state_dir_is_hidden_at_the_root(client, server):
    assert os.path.isdir(os.path.join(server.directory, ".nfsd"))
    assert status(client, [op("PUTROOTFH"), op("LOOKUP", b".nfsd")]) == x.NFS4ERR_NOENT
    names = [e[0] for e in client.readdir(client.root())]
    assert b".nfsd" not in names
    # Nor can a client make something there.
    st = status(client, [op("PUTROOTFH"), op("CREATE", x.createtype4(x.NF4DIR, None), b".nfsd",
                                                     x.fattr4([], b""))])
    assert st in (x.NFS4ERR_EXIST, x.NFS4ERR_ACCESS, x.NFS4ERR_PERM, x.NFS4ERR_BADNAME)
    st = status(client, [op("PUTROOTFH"), op("REMOVE", b".nfsd")])
    assert st in (x.NFS4ERR_NOENT, x.NFS4ERR_ACCESS, x.NFS4ERR_PERM, x.NFS4ERR_BADNAME)
    assert os.path.isdir(os.path.join(server.directory, ".nfsd", "staging"))


def test_state_dir_name_is_usable_below_the_root(client, tdir):
    path, fh = tdir
    os.mkdir(os.path.join(path, ".nfsd"))
    client.lookup(b".nfsd", base=fh)
    assert b".nfsd" in [e[0] for e in client.readdir(fh)]


def test_state_dir_cannot_be_reached_by_rename(client, server, tdir):
    path, fh = tdir
    client.create_file(fh, b"victim", b"v")
    root = client.root()
    st = client.try_call([op("PUTFH", fh), op("SAVEFH"), op("PUTFH", root),
                          op("RENAME", b"victim", b".nfsd")])[0]
    assert st != x.NFS4_OK
    assert os.path.isdir(os.path.join(server.directory, ".nfsd", "staging"))
    st = client.try_call([op("PUTFH", root), op("SAVEFH"), op("PUTFH", fh),
                          op("RENAME", b".nfsd", b"stolen")])[0]
    assert st != x.NFS4_OK
    assert not os.path.exists(os.path.join(path, "stolen"))


def test_server_checkpoints_the_handle_database_in_the_background(tmp_path, harness):
    """Handles recorded by LOOKUPs reach the database file through the server's periodic
    upkeep (handed to the worker pool by the housekeeping tick), not through checkpoints on
    the request path. On the harness (a LocalBackend on a fake clock) the tick is a step."""
    from backend_local_util import names_in_main_file

    export = tmp_path / "e"
    export.mkdir()
    for i in range(50):
        (export / f"h{i}").write_bytes(b"")
    h = harness(directory=export, lease_time=4)  # a tick every second
    c = h.mount()
    for i in range(50):
        c.lookup(f"h{i}")
    db = export / ".nfsd" / "handles.db"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    assert not {b"h0", b"h49"} & names_in_main_file(db, scratch)  # not on the request path
    ran = h.reactor.getThreadPool().ran
    h.advance(1)  # one tick: the upkeep runs in the pool
    assert h.reactor.getThreadPool().ran > ran
    assert {b"h0", b"h49"} <= names_in_main_file(db, scratch)
