"""COPY and CLONE on the local backend: on xfs with reflink the copy shares the source's blocks
(FIEMAP shows them shared, the free space does not move); elsewhere CLONE answers NOTSUPP and
COPY copies in the kernel (copy_file_range), keeping holes. The harness serves a real directory
(`Harness(directory=...)`, a LocalBackend), so the bytes are on a real file system."""

from __future__ import annotations

import os

import pytest

from harness import status
from nfsd.client import op
from nfsd.xdr import nfs4 as x
from reflink import shared_bytes, xfs_reflink

ANON = x.stateid4(0, bytes(12))
MIB = 1 << 20


def _copy(c, sfh, dfh, dsid, sync=True):
    return c.call([op("PUTFH", sfh), op("SAVEFH"), op("PUTFH", dfh),
                   op("COPY", ANON, dsid, 0, 0, 0, True, sync, [])])[-1].value


def _clone(c, sfh, dfh, dsid, count=0):
    return c.call([op("PUTFH", sfh), op("SAVEFH"), op("PUTFH", dfh),
                   op("CLONE", ANON, dsid, 0, 0, count)])


def _source(c, name: bytes, size: int) -> tuple[bytes, bytes]:
    data = os.urandom(size)
    fh, sid, _ = c.open(c.root(), name, create=True)
    for off in range(0, size, MIB):
        c.write(fh, sid, off, data[off:off + MIB])
    c.commit(fh)
    c.close_file(fh, sid)
    return fh, data


@pytest.fixture
def xfs(tmp_path):
    """A mounted xfs with reflink (set up before the harness, so torn down after it)."""
    with xfs_reflink(tmp_path) as mnt:
        yield mnt


def test_clone_and_copy_share_blocks_on_xfs_with_reflink(xfs, harness):
    export = xfs / "export"
    export.mkdir()
    h = harness(directory=export)
    c = h.mount(minor=2)
    assert c.getattr(c.root(), (x.FATTR4_CLONE_BLKSIZE,))[x.FATTR4_CLONE_BLKSIZE] == 4096
    sfh, data = _source(c, b"src", 16 * MIB)
    free = os.statvfs(xfs).f_bfree
    dfh, dsid, _ = c.open(c.root(), b"cloned", create=True)
    _clone(c, sfh, dfh, dsid)
    c.close_file(dfh, dsid)
    dfh2, dsid2, _ = c.open(c.root(), b"copied", create=True)
    assert _copy(c, sfh, dfh2, dsid2).cr_response.wr_count == 16 * MIB
    c.close_file(dfh2, dsid2)
    for name in ("cloned", "copied"):
        assert (export / name).read_bytes() == data
        assert shared_bytes(export / name) == 16 * MIB  # every block shared with src
    # 32 MiB of new files cost (next to) no blocks: the metadata of the new files only
    assert free - os.statvfs(xfs).f_bfree < MIB // os.statvfs(xfs).f_bsize
    assert h.server.copies.clones == 1


def test_without_reflink_clone_is_notsupp_and_copy_keeps_holes(harness, tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    h = harness(directory=export)
    c = h.mount(minor=2)
    if h.backend.clone_blksize:
        pytest.skip("this test's file system has reflink (tests above cover it)")
    assert c.getattr(c.root(), (x.FATTR4_CLONE_BLKSIZE,))[x.FATTR4_CLONE_BLKSIZE] == 0
    sfh, data = _source(c, b"src", 2 * MIB)
    fh, sid, _ = c.open(c.root(), b"sparse", create=True)
    c.write(fh, sid, 0, b"head")
    c.write(fh, sid, 64 * MIB, b"tail")
    c.close_file(fh, sid)
    dfh, dsid, _ = c.open(c.root(), b"dst", create=True)
    assert status(_clone, c, sfh, dfh, dsid) == x.NFS4ERR_NOTSUPP
    assert _copy(c, sfh, dfh, dsid).cr_response.wr_count == 2 * MIB
    c.close_file(dfh, dsid)
    assert (export / "dst").read_bytes() == data
    # a sparse source: its hole stays a hole in the copy
    dfh, dsid, _ = c.open(c.root(), b"sparse-copy", create=True)
    assert _copy(c, fh, dfh, dsid).cr_response.wr_count == 64 * MIB + 4
    c.close_file(dfh, dsid)
    st = os.stat(export / "sparse-copy")
    assert st.st_size == 64 * MIB + 4 and st.st_blocks * 512 < MIB
    with open(export / "sparse-copy", "rb") as f:
        assert f.read(4) == b"head"
        f.seek(64 * MIB)
        assert f.read() == b"tail"


def test_clone_across_exports_is_xdev_and_copy_across_them_works(tmp_path, reactor_thread):
    """Two exports of one server (`nfsd serve --exports FILE`, in this process): CLONE between
    them answers NFS4ERR_XDEV (RFC 7862 15.13); COPY copies (through the kernel, or by reading
    and writing where it cannot)."""
    from inproc import InProcessServer
    from nfsd.client import NfsClient

    for p in ("one", "two"):
        (tmp_path / p).mkdir()
    (tmp_path / "exports").write_text(f"{tmp_path}/one 127.0.0.1(rw,no_root_squash,insecure)\n"
                                      f"{tmp_path}/two 127.0.0.1(rw,no_root_squash,insecure)\n")
    srv = InProcessServer(reactor_thread, None, exports_file=str(tmp_path / "exports")).start()
    try:
        c = NfsClient(*srv.address, minor=2).mount()
        one = c.lookup(str(tmp_path / "one"))
        two = c.lookup(str(tmp_path / "two"))
        sfh = c.create_file(one, b"src", b"s" * 10_000)
        dfh, dsid, _ = c.open(two, b"dst", create=True)
        assert status(_clone, c, sfh, dfh, dsid) == x.NFS4ERR_XDEV
        assert _copy(c, sfh, dfh, dsid).cr_response.wr_count == 10_000
        c.close_file(dfh, dsid)
        assert (tmp_path / "two" / "dst").read_bytes() == b"s" * 10_000
        c.destroy()
    finally:
        srv.stop()
    srv.check()
