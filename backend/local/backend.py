"""`LocalBackend`: the class, its start and end, and its lock.

It is composed of one mixin per concern (the package text lists them); the state of every
mixin is set up here, in `LocalBackend.__init__`.

One lock (`_Guard`, re-entrant) covers the caches: an LRU of object id -> `Node` and one of
directory O_PATH fds (resolver.py), open fds of published versions for `read` (readers.py),
sorted directory listings with the entries already handed out (listing.py); and the handle
database and the staging registry. GETATTR of a cached object is a dict look-up and one
statx. Data I/O (pread, pwrite, fdatasync, copy_file_range, directory fsyncs) runs outside
the lock, so `read`, `publish` and `Staging` methods can run in worker threads. Here
`maintenance`, `close` and `problems` take it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections import OrderedDict

from .. import interface as I
from ..fsinfo import fsync_persists_new_entry
from ..groupsync import GroupSync
from ..handles import DEV_MAJ, DEV_MIN, INO, ROOT_ID, HandleDB, Node, generation, make_handle
from .common import DIR, O_LISTDIR, close_quiet
from .dirchange import DirChanges
from .dirops import DirOps
from .linux import HAVE_NOWAIT, O_PATHDIR, can_clone, fstatx
from .listing import ListingCache, Listings
from .namespace import Namespace
from .publish import Publishing
from .readers import ReaderCache, Reading
from .records import RecordStore, write_status
from .recovery import Recovery
from .registry import StagingRegistry
from .resolver import Resolver
from .staging import LocalStaging
from .xattrs import Xattrs


class _Guard:
    """The backend lock. Directory fds evicted from the cache while it is held are closed only
    when the outermost holder leaves, so an fd obtained during an operation stays valid
    until that operation ends."""

    __slots__ = ("_lock", "_depth", "grave")

    def __init__(self):
        self._lock = threading.RLock()
        self._depth = 0
        self.grave: list[int] = []

    def __enter__(self):
        self._lock.acquire()
        self._depth += 1

    def __exit__(self, *exc):
        self._depth -= 1
        if not self._depth and self.grave:
            for fd in self.grave:
                close_quiet(fd)
            self.grave.clear()
        self._lock.release()


def _state_dir(export_dir, state_dir) -> tuple[str, str, int]:
    """(export dir, state dir, state dir's inode), both made if missing; ValueError unless the
    state dir is on the export's file system (publishing is a rename)."""
    export_dir = os.path.abspath(os.fsdecode(export_dir))
    os.makedirs(export_dir, exist_ok=True)
    state_dir = os.path.join(export_dir, ".nfsd") if state_dir is None \
        else os.path.abspath(os.fsdecode(state_dir))
    est = os.stat(export_dir)
    existing = state_dir
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if os.stat(existing).st_dev != est.st_dev:
        raise ValueError(f"state dir {state_dir} must be on the same file system as the "
                         f"export {export_dir} (publishing is a rename)")
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    sst = os.stat(state_dir)
    if est.st_dev != sst.st_dev:
        raise ValueError(f"state dir {state_dir} must be on the same file system as the "
                         f"export {export_dir} (publishing is a rename)")
    if est.st_ino == sst.st_ino:
        raise ValueError("the state dir cannot be the export dir itself")
    return export_dir, state_dir, sst.st_ino


def _lock(state_dir: str):
    """The state dir's lock file, flock'ed: one LocalBackend per state dir."""
    lockfile = open(os.path.join(state_dir, "lock"), "a+b")
    try:
        fcntl.flock(lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lockfile.close()
        raise RuntimeError(f"state dir {state_dir} is in use by another LocalBackend "
                           "(close() it first)") from None
    return lockfile


class LocalBackend(Namespace, DirOps, Listings, Reading, Xattrs, Publishing, Recovery,
                   DirChanges, StagingRegistry, Resolver, I.Backend):
    """The export directory `export_dir`, with its state in `state_dir` (default DIR/.nfsd).

    Keyword options: `durable` (fsync in publish, default True), cache sizes `node_cache`
    (objects), `dir_fds` (O_PATH directory fds), `read_fds` (open published versions for
    `read`), `listings` (sorted directory listings), `listing_memo` (entries of cached listings
    kept to be handed out again while unchanged, in all; about 1.2 KiB each with the protocol
    layer's encoded form; 0 turns it off), `record_xattrs` (keep new files' staging records in
    an attribute of the data file: default where the file system stores user xattrs; False:
    always a .rec file), `inline_sync` (seconds: `publish(sync=False)` fsyncs the directory at
    once while fsyncs average under this, else returns the fsync to run in a worker thread;
    default 0.001), `sync_new_entries` (fsync the staging directory after a new file's first
    fsync, for its entry: default only where the file system does not already persist the
    entry with the file, see backend/fsinfo.py). Extra methods: `problems()`, `close()` (also
    a context manager).
    """

    def __init__(self, export_dir, state_dir=None, *, durable: bool = True,
                 node_cache: int = 8192, dir_fds: int = 512, read_fds: int = 64,
                 listings: int = 16, record_xattrs: bool | None = None,
                 listing_memo: int = 16384, inline_sync: float = 0.001,
                 sync_new_entries: bool | None = None):
        self._guard = _Guard()
        self._durable = durable
        # publish(sync=False) still fsyncs the directory itself while fsyncs average under
        # this (seconds): on fast disks a hand-off to a thread costs more than the fsync.
        self._inline_sync = inline_sync
        self._syncs = GroupSync()  # directory fsyncs, shared by callers that arrive together
        self._node_cap = max(16, node_cache)
        self._dirfd_cap = max(4, dir_fds)
        # READ tries the page cache first (RWF_NOWAIT) so the reactor thread never waits for
        # the disk; False once the file system has said it cannot.
        self._nowait = HAVE_NOWAIT
        # (directory id, name) -> Node last found there by lookup_attrs; a hit is used only
        # while the entry's statx bytes equal the node's `seen` ones. Cleared when full.
        self._names: dict[tuple[int, bytes], Node] = {}
        # directory id -> (ctime, change): after the server changed a directory within the
        # same tick of the kernel's coarse clock as its last change (ctime did not move), the
        # `change` it reports until ctime moves on (see `_changed_dir`).
        self._bumps: dict[int, tuple[int, int]] = {}
        self._root_user = os.geteuid() == 0
        self._xattrs: bool | None = None  # user xattrs stored? (probed on first use)
        self._rec_xattrs = record_xattrs  # None: where the file system stores user xattrs
        self._problems: list[tuple[str, str]] = []
        self._closed = False
        self._clone_blksize: int | None = None  # probed on first use

        self.export_dir, self.state_dir, self._state_ino = _state_dir(export_dir, state_dir)
        export_dir, state_dir = self.export_dir, self.state_dir

        self._lockfile = _lock(state_dir)
        fds = []
        try:
            self._root_fd = os.open(export_dir, O_PATHDIR)
            fds.append(self._root_fd)
            staging = os.path.join(state_dir, "staging")
            os.makedirs(staging, mode=0o700, exist_ok=True)
            self._staging_fd = os.open(staging, O_LISTDIR)
            fds.append(self._staging_fd)
            # Does the first fsync of a new data file also make its staging entry durable
            # (ext4, xfs, btrfs)? Then the staging directory's own fsync is left out.
            self._entry_with_file = fsync_persists_new_entry(self._staging_fd) \
                if sync_new_entries is None else not sync_new_entries
            rst = fstatx(self._root_fd)
            self._dev = (rst[DEV_MAJ], rst[DEV_MIN])
            self._db = HandleDB(os.path.join(state_dir, "handles.db"))
            self._records = RecordStore(os.path.join(state_dir, "clients"))
        except BaseException:
            for fd in fds:
                close_quiet(fd)
            self._lockfile.close()
            raise
        self._inst = self._db.instance
        self._nodes: OrderedDict[int, Node] = OrderedDict()
        self._by_ino: dict[tuple[int, int], int] = {}
        self._dirfds: OrderedDict[int, int] = OrderedDict()
        self._readers = ReaderCache(max(1, read_fds))
        self._listings = ListingCache(max(1, listings), max(0, listing_memo))
        self._stagings: dict[str, LocalStaging] = {}
        self._by_oid: dict[int, list[LocalStaging]] = {}
        self._transient: dict[int, dict[bytes, list[LocalStaging]]] = {}
        try:
            self._root = self._init_root(rst)
            self._recover()
        except BaseException:
            self.close()
            raise

    @property
    def clone_blksize(self) -> int:
        """The block size where the file system can share extents (CLONE), else 0; probed
        once, in the staging directory (the same file system as the export)."""
        if self._clone_blksize is None:
            self._clone_blksize = os.fstatvfs(self._staging_fd).f_bsize \
                if can_clone(self._staging_fd) else 0
        return self._clone_blksize

    def _init_root(self, rst: tuple) -> Node:
        row = self._db.get(ROOT_ID)
        ino, gen = rst[INO], generation(rst)
        if row is None:
            row = self._db.insert(ino, gen, DIR, ROOT_ID, b"", oid=ROOT_ID)
        elif (row[2], row[3]) != (ino, gen):
            self._db.set_inode(ROOT_ID, ino, gen)  # the export dir itself was re-created
            row = self._db.get(ROOT_ID)
        oid, nonce, ino, gen, kind, parent, name, verifier = row
        handle = make_handle(self._inst, oid, nonce)
        node = Node(oid, handle, ino, gen, kind, parent, name, verifier)
        self._by_ino[(ino, gen)] = ROOT_ID
        return node

    def maintenance(self) -> None:
        """Delete the rows of removed objects, checkpoint the handle database's WAL (see
        HandleDB.flush_deletes and .checkpoint)."""
        if not self._closed:
            with self._guard:
                if not self._closed:
                    self._db.flush_deletes()
            self._db.checkpoint()

    def close(self) -> None:
        """Release fds, the database and the state-dir lock. Staging objects stay on disk."""
        with self._guard:
            if self._closed:
                return
            self._closed = True
            for s in list(self._stagings.values()):
                s.close_fds()
            self._guard.grave.extend(self._dirfds.values())
            self._readers.close()
            self._dirfds.clear()
            close_quiet(self._root_fd)
            close_quiet(self._staging_fd)
            self._db.close()
            self._records.close()
            self._lockfile.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def client_records(self) -> RecordStore:
        """One JSON file per client owner in STATE_DIR/clients (records.py)."""
        return self._records

    def save_status(self, snapshot: dict) -> None:
        """STATE_DIR/status.json, replaced whole (what `nfsd inspect` reads)."""
        write_status(os.path.join(self.state_dir, "status.json"), snapshot)

    def problems(self) -> list[tuple[str, str]]:
        """(path, reason) for every state file that could not be used (found at start-up)."""
        with self._guard:
            return list(self._problems)

    def root(self) -> bytes:
        return self._root.handle

    def fsid(self) -> tuple[int, int]:
        return int.from_bytes(self._inst[:4], "big"), int.from_bytes(self._inst[4:], "big")
