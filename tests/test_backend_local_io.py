"""LocalBackend on what the kernel and file system offer or refuse: reflink (FICLONE),
fallocate, user extended attributes, reads that must not wait (RWF_NOWAIT, the page cache),
and read buffers that are not zeroed first."""

from __future__ import annotations

import errno
import os

import pytest

from backend import interface as I
from backend import local
from backend_local_util import V1, new_file, read_all
from backend_local_util import b, export, mk, xb  # noqa: F401 (fixtures)


# --------------------------------------------------------------------------- writing
def test_reflink_path(b, export, monkeypatch):
    """The FICLONE branch (btrfs/xfs), with the ioctl emulated by a full kernel-side copy."""
    import fcntl

    from backend import local
    real_ioctl = fcntl.ioctl
    clones = []

    def ioctl(fd, req, arg=0, *rest):
        if req != local.FICLONE:
            return real_ioctl(fd, req, arg, *rest)
        size = os.fstat(arg).st_size
        os.ftruncate(fd, size)
        pos = 0
        while pos < size:
            pos += os.copy_file_range(arg, fd, size - pos, pos, pos)
        clones.append(size)
        return 0

    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    r = b.root()
    f = new_file(b, r, b"f", b"0123456789")
    s = b.stage_version(f, V1, False, {})
    assert clones == [10]
    s.write(4, b"xx")
    s.truncate(8)
    assert s.read(0, 100) == (b"0123xx67", True)
    s.sync()
    b.publish(s)
    assert (export / "f").read_bytes() == b"0123xx67"


def test_allocate_and_deallocate_need_a_supporting_file_system(b, monkeypatch):
    from backend import local
    f = new_file(b, b.root(), b"f", b"data")
    s = b.stage_version(f, V1, False, {})

    def refuse(fd, mode, offset, length):
        raise OSError(errno.EOPNOTSUPP, "not supported")

    monkeypatch.setattr(local, "_fallocate", refuse)
    with pytest.raises(I.NotSupported):
        s.allocate(0, 10)
    with pytest.raises(I.NotSupported):
        s.deallocate(0, 2)
    assert not s.dirty and s.read(0, 10) == (b"data", True)
    with pytest.raises(I.Invalid):
        s.allocate(0, 0)


def test_xattrs_on_a_file_system_without_them(xb, monkeypatch):
    """tmpfs before Linux 6.6: EOPNOTSUPP for user.* -> NotSupported, statfs says no."""
    b = xb
    f = new_file(b, b.root(), b"f", b"x")

    def refuse(*args, **kw):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(b, "_xattrs", None)
    for name in ("getxattr", "setxattr", "listxattr", "removexattr"):
        monkeypatch.setattr(os, name, refuse)
    assert b.statfs(b.root()).xattrs is False
    with pytest.raises(I.NotSupported):
        b.getxattr(f, b"k")
    with pytest.raises(I.NotSupported):
        b.setxattr(f, b"k", b"v")
    with pytest.raises(I.NotSupported):
        b.listxattr(f)
    s = b.stage_version(f, V1, False, {})
    s.write(0, b"y")
    b.publish(s)  # nothing to carry over, and that is no error
    assert read_all(b, f) == b"y"


# --------------------------------------------------------------------------- reading
def _evict(path) -> bool:
    """Drop a file's pages from the page cache; False where the file system keeps them."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        probe = bytearray(4096)
        try:
            os.preadv(fd, [probe], 0, os.RWF_NOWAIT)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False
    finally:
        os.close(fd)


def test_read_nowait_serves_the_page_cache_and_refuses_to_wait_for_the_disk(b, export):
    data = os.urandom(3 * 1024 * 1024)
    (export / "cold").write_bytes(data)
    h = b.lookup(b.root(), b"cold")
    # In the page cache (just written): served at once, same answer as a plain read.
    assert b.read(h, 4096, 8192, nowait=True) == (data[4096:4096 + 8192], False)
    assert b.read(h, len(data) - 10, 100, nowait=True) == (data[-10:], True)
    assert b.read(h, len(data) + 5, 100, nowait=True) == (b"", True)
    if not _evict(export / "cold"):
        pytest.skip("this file system keeps the file's pages in memory (tmpfs?)")
    with pytest.raises(I.WouldBlock):
        b.read(h, 1024 * 1024, 65536, nowait=True)
    # Without nowait (what the server then does in a worker thread) the data comes from disk.
    assert b.read(h, 1024 * 1024, 65536) == (data[1024 * 1024:1024 * 1024 + 65536], False)


def test_large_reads_from_the_page_cache_return_exactly_the_files_bytes(b, export):
    """Large reads fill a buffer that was not zeroed first: every byte returned is the
    file's, at every size around the threshold and at the end of the file."""
    data = os.urandom(local._UNFILLED_MIN * 3 + 123)
    (export / "big").write_bytes(data)
    f = b.lookup(b.root(), b"big")
    b.read(f, 0, len(data))  # in the page cache now
    for offset, count in [(0, len(data)), (0, local._UNFILLED_MIN),
                          (1, local._UNFILLED_MIN - 1), (5000, 1 << 20),
                          (len(data) - local._UNFILLED_MIN, 1 << 20)]:
        got, eof = b.read(f, offset, count, True)
        assert bytes(got) == data[offset:offset + count]
        assert eof == (offset + count >= len(data))
