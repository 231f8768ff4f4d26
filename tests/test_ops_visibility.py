"""Two client identities over real sockets: a file under construction is visible only to the
client that creates it until its CLOSE publishes it (docs/semantics.md rules 1-3)."""

from __future__ import annotations

import os

import pytest

from conftest import make_tdir
from nfsd.client import ANON, NfsClient, encode_attrs, op
from nfsd.xdr import nfs4 as x


@pytest.fixture(scope="module")
def alice(server):
    c = NfsClient(*server.address, owner=b"alice-machine").mount()
    yield c
    c.close()


@pytest.fixture(scope="module")
def bob(server):
    c = NfsClient(*server.address, owner=b"bob-machine").mount()
    yield c
    c.close()


@pytest.fixture
def tdir(server, alice, request):
    return make_tdir(server, alice, request)


def listing(c, fh):
    return sorted(e[0] for e in c.readdir(fh))


def test_unpublished_file_is_invisible_to_another_client_until_close(alice, bob, tdir):
    path, fh = tdir
    ffh, sid, _ = alice.open(fh, b"draft", create=True)
    alice.write(ffh, sid, 0, b"work in progress", stable=x.FILE_SYNC4)
    # The creating client sees it (with its staged size) ...
    assert alice.lookup(b"draft", base=fh) == ffh
    assert listing(alice, fh) == [b"draft"]
    assert alice.getattr(ffh, (x.FATTR4_SIZE,))[x.FATTR4_SIZE] == 16
    assert alice.read(ffh)[0] == b"work in progress"
    # ... the other does not, and neither does the directory on disk.
    assert bob.try_call([op("PUTFH", fh), op("LOOKUP", b"draft")])[0] == x.NFS4ERR_NOENT
    assert listing(bob, fh) == []
    assert os.listdir(path) == []
    # Not even by filehandle: for the other client it does not exist yet.
    for ops in ([op("READ", ANON, 0, 100)], [op("GETATTR", [1 << x.FATTR4_SIZE])],
                [op("SETATTR", ANON, encode_attrs({x.FATTR4_MODE: 0o777}))],
                [op("SAVEFH"), op("PUTFH", fh), op("LINK", b"stolen")]):
        assert bob.try_call([op("PUTFH", ffh)] + ops)[0] == x.NFS4ERR_STALE
    assert os.listdir(path) == []
    alice.close_file(ffh, sid)
    assert bob.lookup(b"draft", base=fh) == ffh
    assert listing(bob, fh) == [b"draft"]
    assert bob.read(ffh)[0] == b"work in progress"
    with open(os.path.join(path, "draft"), "rb") as f:
        assert f.read() == b"work in progress"
    assert os.stat(os.path.join(path, "draft")).st_mode & 0o777 == 0o644


def test_rewrite_is_invisible_to_another_client_until_close(alice, bob, tdir):
    path, fh = tdir
    ffh = alice.create_file(fh, b"doc", b"v1")
    sid = alice.open_fh(ffh, access=x.OPEN4_SHARE_ACCESS_BOTH)
    alice.write(ffh, sid, 0, b"v2, longer")
    assert alice.read(ffh)[0] == b"v2, longer"
    assert bob.read(ffh)[0] == b"v1"
    assert bob.getattr(ffh, (x.FATTR4_SIZE,))[x.FATTR4_SIZE] == 2
    alice.close_file(ffh, sid)
    assert bob.read(ffh)[0] == b"v2, longer"
    assert bob.getattr(ffh, (x.FATTR4_SIZE,))[x.FATTR4_SIZE] == 10


def test_other_client_cannot_use_the_creators_stateid(alice, bob, tdir):
    path, fh = tdir
    ffh, sid, _ = alice.open(fh, b"mine", create=True)
    st = bob.try_call([op("PUTFH", ffh), op("WRITE", sid, 0, x.UNSTABLE4, b"intrusion")])[0]
    assert st in (x.NFS4ERR_BAD_STATEID, x.NFS4ERR_STALE)
    st = bob.try_call([op("PUTFH", ffh), op("CLOSE", 0, sid)])[0]
    assert st in (x.NFS4ERR_BAD_STATEID, x.NFS4ERR_STALE)
    assert os.listdir(path) == []
    alice.close_file(ffh, sid)
    assert os.listdir(path) == ["mine"]


def test_other_client_exclusive_create_of_reserved_name_is_exist(alice, bob, tdir):
    path, fh = tdir
    ffh, sid, _ = alice.open(fh, b"lock", create=True, how=x.GUARDED4)
    a = x.OPEN4args(0, x.OPEN4_SHARE_ACCESS_BOTH, 0, x.open_owner4(bob.clientid, b"o"),
                    x.openflag4(x.OPEN4_CREATE, x.createhow4(x.GUARDED4, x.fattr4([], b""))),
                    x.open_claim4(x.CLAIM_NULL, b"lock"))
    assert bob.try_call([op("PUTFH", fh), x.nfs_argop4(x.OP_OPEN, a)])[0] == x.NFS4ERR_EXIST
    alice.close_file(ffh, sid)


def test_remove_by_creator_before_close_publishes_nothing(alice, bob, tdir):
    path, fh = tdir
    ffh, sid, _ = alice.open(fh, b"tmp", create=True)
    alice.write(ffh, sid, 0, b"scratch")
    alice.remove(fh, b"tmp")
    alice.close_file(ffh, sid)
    assert os.listdir(path) == [] and listing(bob, fh) == []


def test_rename_by_creator_before_close_moves_publication(alice, bob, tdir):
    path, fh = tdir
    ffh, sid, _ = alice.open(fh, b"part", create=True)
    alice.write(ffh, sid, 0, b"renamed")
    alice.rename(fh, b"part", fh, b"final")
    assert listing(bob, fh) == [] and os.listdir(path) == []
    alice.close_file(ffh, sid)
    assert listing(bob, fh) == [b"final"]
    with open(os.path.join(path, "final"), "rb") as f:
        assert f.read() == b"renamed"


def test_minor_version_2_client_sees_the_same(server, alice, tdir):
    path, fh = tdir
    with NfsClient(*server.address, minor=2, owner=b"carol-machine") as carol:
        carol.mount()
        ffh, sid, _ = alice.open(fh, b"v42", create=True)
        assert carol.try_call([op("PUTFH", fh), op("LOOKUP", b"v42")])[0] == x.NFS4ERR_NOENT
        alice.close_file(ffh, sid)
        assert carol.lookup(b"v42", base=fh) == ffh
        carol.destroy()
