"""`MemoryBackend`: the storage interface in memory, with the local backend's write-once rules.

For tests (and state-machine tests of the protocol layer) that want the server's storage
without a file system: fast, deterministic with a fake clock, and able to simulate a server
restart and a power loss. It behaves as `LocalBackend` wherever a client could tell (the
contract suite in tests/backend_contract/ runs the same tests on both).

Use
---
::

    from backend.memory import MemoryBackend, MemoryDisk

    b = MemoryBackend()                              # a fresh disk; b.disk is it
    b = MemoryBackend(disk, clock_ns=clock, owner=(0, 0), root_mode=0o755)

    b2 = MemoryBackend(b.disk)                       # restart after kill -9 (b is fenced)
    b.disk.power_loss(); b3 = MemoryBackend(b.disk)  # restart after a power loss

* `clock_ns`: a callable giving nanoseconds for atime/mtime/ctime (default time.time_ns).
  `change` never comes from it: it is one counter for the whole disk, moved by every change
  of content or attributes (and of a directory's entries; `create_staged` moves its
  directory's times and change at once, as a create does, and `publish` again).
* `owner`: (uid, gid) of a new disk's root directory and of objects created with uid/gid
  None. Given uid/gid are always honoured (as for a local backend running as root).
* Handles are the disk's 8-byte `identity` and an 8-byte object id that is never used again.
  `fsid()` is the identity as two integers. READDIR cookies come from a per-directory counter,
  so they are stable across calls and restarts; `dir_verifier` is zeros.

Restart and power loss
----------------------
A backend is a view over a `MemoryDisk`. A new `MemoryBackend(disk)` takes the disk over from
the one using it (which is *fenced*: its calls, and those of its staging objects and pinned
versions, raise IOFailure, as a killed server does nothing more); `close()` just lets go.
After the restart everything published is there, and `list_staged()` returns every unfinished
staging object with all its written data and the record as last *written*: at creation and
at every `sync()` (the interface promises the last synced record; a `set_record` without a
sync does not survive, as with the local backend).

`disk.power_loss()` (call it between backends; it fences the one using the disk) rolls each
staging object back to what its last `sync()` made durable (content, attributes, record,
transient name) and removes the ones never synced, with their object ids. Everything else is
durable when the call that made it returns: namespace and attribute changes, and publishes.

Differences from the local backend a client cannot rely on either way: `used` is whole 4 KiB
pages (reservations included); directories report size 4096; `statfs` gives fixed numbers;
no limit on extended attributes beyond XATTR_SIZE_MAX per value; `read(nowait=True)` never
raises WouldBlock; nothing runs out of space.
"""

from .backend import MemoryBackend
from .disk import MemoryDisk
from .staging import MemoryStaging, MemoryVersion

__all__ = ["MemoryBackend", "MemoryDisk", "MemoryStaging", "MemoryVersion"]
