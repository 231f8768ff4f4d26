"""A file system with reflink for tests: an xfs image (`mkfs.xfs -m reflink=1`) on a loop device,
mounted under a temporary directory; and FIEMAP, to see which bytes of a file share their blocks.

`xfs_reflink(tmp_path)` yields the mount point, or skips the test with the reason when the
machine cannot (not root, no mkfs.xfs or losetup, no free loop device, mount refused).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import struct
import subprocess

import pytest

FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 1
FIEMAP_EXTENT_SHARED = 0x2000
_HEAD = struct.Struct("=QQIIII")  # struct fiemap
_EXTENT = struct.Struct("=QQQQQIIII")  # struct fiemap_extent


def _run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def xfs_reflink(tmp_path, size_mib: int = 512):
    if os.geteuid() != 0:
        pytest.skip("a loop-mounted xfs image needs root")
    for tool in ("mkfs.xfs", "losetup", "mount", "umount"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (xfsprogs, util-linux)")
    tmp_path.mkdir(parents=True, exist_ok=True)
    img = tmp_path / "xfs.img"
    mnt = tmp_path / "xfs"
    mnt.mkdir()
    with open(img, "wb") as f:
        f.truncate(size_mib << 20)
    r = _run("mkfs.xfs", "-q", "-m", "reflink=1", str(img))
    if r.returncode:
        pytest.skip(f"mkfs.xfs -m reflink=1 failed: {r.stderr.strip()}")
    r = _run("losetup", "-f", "--show", str(img))
    if r.returncode:
        pytest.skip(f"no loop device: {r.stderr.strip()}")
    dev = r.stdout.strip()
    try:
        r = _run("mount", dev, str(mnt))
        if r.returncode:
            pytest.skip(f"cannot mount the xfs image: {r.stderr.strip()}")
        try:
            yield mnt
        finally:
            _run("umount", "-l", str(mnt))
    finally:
        _run("losetup", "-d", dev)


def extents(path) -> list[tuple[int, int, int]]:
    """(logical offset, length, flags) of every extent of the file (FIEMAP)."""
    out = []
    fd = os.open(path, os.O_RDONLY)
    try:
        start = 0
        while True:
            n = 64
            buf = bytearray(_HEAD.size + n * _EXTENT.size)
            _HEAD.pack_into(buf, 0, start, (1 << 64) - 1 - start, FIEMAP_FLAG_SYNC, 0, n, 0)
            fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
            mapped = _HEAD.unpack_from(buf, 0)[3]
            if not mapped:
                return out
            for i in range(mapped):
                e = _EXTENT.unpack_from(buf, _HEAD.size + i * _EXTENT.size)
                out.append((e[0], e[2], e[5]))
                if e[5] & 1:  # FIEMAP_EXTENT_LAST
                    return out
            start = out[-1][0] + out[-1][1]
    finally:
        os.close(fd)


def shared_bytes(path) -> int:
    """How many bytes of the file are in extents shared with another file."""
    return sum(length for _, length, flags in extents(path) if flags & FIEMAP_EXTENT_SHARED)
