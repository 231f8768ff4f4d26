"""LocalBackend's fsyncs: directory fsyncs shared by concurrent publishes (group commit,
backend/groupsync.py), done at once while they are fast, and the staging directory's fsync left
out where the file system makes a new entry durable with its file (backend/fsinfo.py)."""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest

from backend_local_util import V1
from backend_local_util import b, export, mk  # noqa: F401 (fixtures)


# --------------------------------------------------------------------------- group commit
def _gated_fsync(syncs, callers, then=os.fsync):
    """An fsync whose first call waits until `callers` calls of syncs.sync() have been made
    in all: the other callers arrive while it runs, whatever the scheduling. Later calls run
    `then(fd, k)` (k: 2, 3, ... the number of the fsync)."""
    done = []

    def fsync(fd):
        done.append(fd)
        if len(done) == 1:
            deadline = time.monotonic() + 30
            while syncs.calls < callers:  # the others are on their way into sync()
                assert time.monotonic() < deadline, "callers did not arrive"
                time.sleep(0.001)
            os.fsync(fd)
        else:
            then(fd, len(done))
    return fsync


def test_concurrent_publishes_share_their_directory_fsync(mk, export):
    b = mk(inline_sync=0)  # always hand the fsync back (as on a slow disk)
    root = b.root()
    pending = []
    for i in range(8):
        s = b.create_staged(root, b"f%d" % i, V1, 0o644, os.getuid(), os.getgid(), False, {})
        s.write(0, b"data %d" % i)
        s.sync()
        durable = b.publish(s, sync=False)
        assert callable(durable)
        assert (export / ("f%d" % i)).read_bytes() == b"data %d" % i  # visible at once
        pending.append(durable)
    calls, fsyncs = b._syncs.calls, b._syncs.fsyncs
    b._syncs._fsync = _gated_fsync(b._syncs, calls + 8, lambda fd, k: os.fsync(fd))
    errors = []

    def run(fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=run, args=(fn,)) for fn in pending]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert b._syncs.calls - calls == 8
    # the first fsync ran while all 8 arrived; one more covered the 7 that arrived during it
    assert b._syncs.fsyncs - fsyncs == 2
    pending[0]()  # a second call does nothing
    assert b._syncs.calls - calls == 8


def test_publish_fsyncs_at_once_while_fsyncs_are_fast(mk, export):
    b = mk(inline_sync=3600.0)
    s = b.create_staged(b.root(), b"f", V1, 0o644, os.getuid(), os.getgid(), False, {})
    s.write(0, b"x")
    calls = b._syncs.calls
    assert b.publish(s, sync=False) is None
    assert b._syncs.calls == calls + 1  # the directory's fsync, done
    assert (export / "f").read_bytes() == b"x"


def test_a_failed_shared_fsync_fails_every_caller_it_covered(tmp_path):
    from backend.groupsync import GroupSync

    def later(fd, k):
        if k == 2:
            raise OSError(errno.EIO, "injected")
    g = GroupSync()
    g._fsync = _gated_fsync(g, 3, later)
    w = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        results = []

        def run():
            try:
                g.sync("d", w)
                results.append(0)
            except OSError as e:
                results.append(e.errno)
        threads = [threading.Thread(target=run) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # one caller ran the first fsync (fine); the two that arrived during it share the
        # second, which failed: both get EIO
        assert sorted(results) == sorted([0, errno.EIO, errno.EIO])
        assert g.fsyncs == 2
        g.sync("d", w)  # the next fsync works again
        assert g.fsyncs == 3
    finally:
        os.close(w)


# --------------------------------------------------------------------------- the staging directory
def test_mountinfo_names_the_file_system_of_a_device():
    from backend.fsinfo import fs_type
    # the kernel's own view of two mounts that always exist
    assert fs_type(os.stat("/proc").st_dev) == "proc"
    sample = ("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
              "23 22 0:21 / /tmp rw master:2 shared:3 - tmpfs tmpfs rw,size=64k\n"
              "24 22 0:33 /sub /mnt rw - xfs /dev/sdb rw\n"
              "bad line\n")
    assert fs_type(os.makedev(8, 1), sample) == "ext4"
    assert fs_type(os.makedev(0, 21), sample) == "tmpfs"  # several optional fields
    assert fs_type(os.makedev(0, 33), sample) == "xfs"
    assert fs_type(os.makedev(9, 9), sample) is None  # not mounted: the caller keeps fsyncs


@pytest.mark.parametrize("sync_new_entries", [True, False])
def test_a_new_files_first_fsync_syncs_the_staging_directory_only_if_needed(
        mk, export, sync_new_entries):
    b = mk(sync_new_entries=sync_new_entries)
    s = b.create_staged(b.root(), b"f", V1, 0o644, os.getuid(), os.getgid(), False, {})
    s.write(0, b"x" * 4096)
    # (a record kept in a .rec file, where user xattrs are not stored, always syncs it)
    want = 1 if sync_new_entries or not s._xrec else 0
    calls = b._syncs.calls
    s.sync()  # the data file's fsync (data and record), and its entry's
    assert b._syncs.calls - calls == want
    s.write(4096, b"y")
    s.sync()  # the entry was made durable once: no directory fsync again
    assert b._syncs.calls - calls == want
    b.publish(s)
    assert (export / "f").read_bytes() == b"x" * 4096 + b"y"


def test_the_staging_directory_fsync_is_left_out_only_where_the_file_system_covers_it(
        mk, export):
    from backend.fsinfo import fsync_persists_new_entry
    b = mk()
    covered = fsync_persists_new_entry(b._staging_fd)
    s = b.create_staged(b.root(), b"f", V1, 0o644, os.getuid(), os.getgid(), False, {})
    s.write(0, b"x")
    calls = b._syncs.calls
    s.sync()
    assert b._syncs.calls - calls == (0 if covered and s._xrec else 1)
    b.publish(s)
