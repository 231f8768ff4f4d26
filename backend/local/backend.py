"""`LocalBackend`: the storage interface over a local directory, with write-once files.

Published files live in the export directory as ordinary files; a file being written lives in
the state directory until it is published by one `rename(2)`, so readers only ever see whole
versions.

Use: `LocalBackend(export_dir, state_dir=None, *, durable=True, node_cache=8192, dir_fds=512,
read_fds=64, listings=16, listing_memo=16384)`; beyond `Backend`: `problems()` (state files
that could not be used at start-up, as (path, reason)), `close()` (also a context manager).
Staging objects are `LocalStaging`: beyond `Staging` they have `quarantined`, `gone`,
`target`, `verifier`; their `backend` is held weakly (no reference cycle).

On disk
-------
::

    DIR/                      the export (what clients see)
    DIR/.nfsd/                state dir (default; never visible to clients; same file system)
        lock                  flock'ed while a LocalBackend runs (one server per state dir)
        handles.db            SQLite (WAL, synchronous=NORMAL): object id -> inode, generation,
                              (parent id, name) hint, kind, EXCLUSIVE4 verifier (see handles.py)
        handles.db-wal/-shm   SQLite's
        staging/<sid>.data    content of an unpublished version (the inode that gets published)
        staging/<sid>.rec     JSON record of that staging object
        staging/<sid>.rec.tmp a record being replaced (removed at start-up)

A new file's record is instead the REC_XATTR attribute of its data file where the file system
stores user xattrs (`record_xattrs`): setxattr replaces it atomically and one fsync of the data
file makes data and record durable (then the staging dir once, for the entry, except where the
file system makes a new file's entry durable with that fsync: ext4, xfs, btrfs, see fsinfo.py).
The attribute is written once at creation and again only when the record changes. It is
removed just after the publish rename (a crash in between leaves it on the published file,
hidden from clients and never carried to a later version). A record too big for an attribute
moves to a .rec file for good; at start-up a .rec file wins over an attribute.

A record holds: id, handle, is_new, viewer (hex), the protocol's `record` dict, the data file's
inode and generation, the publication target (new files: dir handle + name), `exclusive`,
`verifier`, `gone` (its name was removed), `dirty`, the size when it was written, and for
copy-on-write versions without reflink the base version's identity (inode, generation, size,
mtime), the base limit and the written extents. The first record is written in place when the
staging object is created (one write(2): a killed server leaves all or nothing); later ones
replace it by tmp + rename. `sync()` makes data and record durable: fdatasync of the data, then
(if the record changed, also `record` changed in place) fsync tmp, rename, fsync dir. Until the
first `sync()` a staging object survives kill -9 but not a power loss.

Memory and threads
------------------
One lock (`_Guard`) covers the caches: an LRU of object id -> `Node` (inode, generation, name
hint), an LRU of directory O_PATH fds, open fds of published versions for `read`, sorted
directory listings (with the entries already handed out, re-used while their statx bytes are
unchanged: `_Listing`), and the staging registry. GETATTR of a cached object is a dict look-up and
one statx; nothing is written to SQLite by read-only operations (except to repair a name hint
after a local rename). Data I/O (pread, pwrite, fdatasync, copy_file_range) runs outside the
lock, so `read`, `publish` and `Staging` methods can run in worker threads.

Versions
--------
`stage_version` tries FICLONE (reflink, O(1) on btrfs/xfs). Otherwise it keeps the published
version's fd open as the *base*, makes a sparse data file of the same size and records which byte
ranges were written ("extents", only below the *base limit*, which truncation lowers). Reads take
written ranges from the data file, the rest below the base limit from the base, beyond it from the
data file (holes read as zeros). `publish` copies the still-clean ranges' *data* segments
(SEEK_DATA/SEEK_HOLE, `copy_file_range`) into the data file, so a sparse 10 GB file with a small
change costs what the change costs. Then the data file is renamed over the object's published name
and the object id moves to the new inode: handle and fileid stay, `change` (ctime) moves. Other
hard links to the old inode keep the old content, as with an editor's write-and-rename. The
new version takes the published version's mode and owner at publish, and its `user.*` extended
attributes (ACLs and other namespaces are not carried over).

Space and holes
---------------
`allocate` is fallocate(2) mode 0 on the data file, `deallocate` a punched hole (KEEP_SIZE, clipped
to the size). A punched range below the base limit counts as written, so it reads as the data
file's zeros, not the base. `seek` runs SEEK_DATA/SEEK_HOLE over the pieces a read would use (base
or data file), so it answers for the version as read. File systems without fallocate give
NotSupported; without SEEK_DATA everything is data.

Extended attributes
-------------------
Stored as `user.<name>` on the object's inode: a published object through an O_PATH fd opened
with O_NOFOLLOW (via /proc/self/fd, so a symlink is never followed), a file under construction on
its staging data file (the inode that gets published). Copy-on-write versions get the published
version's `user.*` attributes at publish (under the lock, just before the rename). Whether the file
system stores user xattrs at all (tmpfs before Linux 6.6 does not) is probed once, on the state
dir, and reported by `statfs().xattrs`.

Crash safety: `rename` is the only step that changes what is published. Before it, the record
names the publication target (`publishing`); at start-up a record whose data file is gone is
finished if its inode sits at the target (database updated, record removed), and a record whose
data file still exists is simply resumed as an unpublished staging object. A recovered version
whose base is no longer the published version (or was modified) and whose extents do not cover
the base range is quarantined (`staging.quarantined`, `record['quarantined']`); publishing it
raises IOFailure. Unreadable records are skipped and listed by `problems()`.

Known limits
------------
* Generation = birth time (statx STATX_BTIME). On file systems without it (or without statx)
  the generation is 0 and an inode number re-used behind the server's back (local delete +
  create) aliases the old handle. Deletes through the backend drop the id, so they never alias.
* Renames by local programs: directories are followed through cached O_PATH fds (until evicted
  or restart); a file renamed within its directory is found again by scanning that directory for
  its inode number; a file moved to another directory, or a directory moved while not cached,
  becomes Stale. A directory moved outside the export by a local program stays reachable through
  a cached fd (like knfsd's no_subtree_check).
* A hard-linked file is found through the name it was last seen under; if that name is removed
  by a local program, its handle is Stale until a lookup sees another link.
* `change` is ctime: two changes within one tick of a coarse kernel clock (kernels without
  multigrain timestamps) can share a value. Directory listings are only cached when the
  directory's mtime/ctime is older than 50 ms, so listings never go stale that way; a version
  publish waits for the new inode's ctime to exceed the old one's.
* `durable=False` skips the fsyncs of `publish` (`sync()` is always durable).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import stat as _stat
import threading
import time
from collections import OrderedDict

from .. import interface as I
from ..fsinfo import fsync_persists_new_entry
from ..groupsync import GroupSync
from ..handles import (DEV_MAJ, DEV_MIN, GID, INO, MODE, NLINK, ROOT_ID, SIZE, UID, HandleDB,
                       Node, generation, handle_id, is_dir, make_handle)
from ..oserror import RENAME_ERRORS, maps_oserror, oserrors
from .common import (DIR, O_LISTDIR, O_READ, REG, atime_ns, check_name, close_quiet, ctime_ns,
                     mtime_ns, unlink_quiet)
from .linux import HAVE_NOWAIT, HAVE_PROC_FD, O_PATHDIR, clone, fstatx
from .listing import ListingCache
from .readers import ReaderCache
from .record import load_record, read_record_file, read_record_xattr
from .staging import LocalStaging
from .dirchange import DirChanges
from .dirops import DirOps
from .listing import Listings
from .namespace import Namespace
from .readers import Reading
from .registry import StagingRegistry
from .resolver import Resolver
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


class LocalBackend(Namespace, DirOps, Listings, Reading, Xattrs, DirChanges, StagingRegistry, Resolver, I.Backend):
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
            self._lockfile.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def problems(self) -> list[tuple[str, str]]:
        """(path, reason) for every state file that could not be used (found at start-up)."""
        with self._guard:
            return list(self._problems)

    def root(self) -> bytes:
        return self._root.handle

    def fsid(self) -> tuple[int, int]:
        return int.from_bytes(self._inst[:4], "big"), int.from_bytes(self._inst[4:], "big")

    def _new_data_file(self) -> tuple[str, int]:
        while True:
            sid = secrets.token_hex(8)
            try:
                fd = os.open(f"{sid}.data", os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC |
                             os.O_NOFOLLOW, 0o600, dir_fd=self._staging_fd)
            except FileExistsError:  # pragma: no cover - 64 random bits
                continue
            return sid, fd

    @maps_oserror()
    def create_staged(self, dir, name, viewer, mode, uid, gid, exclusive, record,
                      verifier=None) -> LocalStaging:
        name = check_name(name)
        viewer = bytes(viewer or b"")
        with self._guard:
            dnode, dfd = self._dir(dir)
            st = self._child_any(dfd, name)
            if st is None and fstatx(dfd)[NLINK] == 0:
                raise I.Stale("directory removed")
            if st is not None:
                if self._is_state(st):
                    raise I.Permission("reserved name")
                if exclusive:
                    raise I.Exists()
                if is_dir(st):
                    raise I.IsDir()
                if not _stat.S_ISREG(st[MODE]):
                    raise I.Exists("not a regular file")
            if exclusive and self._transient.get(dnode.id, {}).get(name):
                raise I.Exists("name reserved by a staged file")
            self._touch_dir(dnode, dfd)
            sid, fd = self._new_data_file()
            s = None
            try:
                dst = fstatx(fd)
                if (uid is not None and uid != dst[UID]) or \
                        (gid is not None and gid != dst[GID]):
                    self._chown_fd(fd, uid, gid)  # first: chown clears set-id bits
                if dst[MODE] & 0o7777 != mode & 0o7777:
                    os.fchmod(fd, mode & 0o7777)
                verifier = None if verifier is None else bytes(verifier)
                row = self._db.insert(dst[INO], generation(dst), REG, dnode.id, name, verifier)
                node = self._remember(row)
                s = LocalStaging(backend=self, sid=sid, handle=node.handle, is_new=True,
                                 viewer=viewer, record=record, fd=fd, ino=dst[INO],
                                 gen=generation(dst), staging_fd=self._staging_fd, size=0,
                                 created_ns=time.time_ns(), target=(dnode.handle, name),
                                 exclusive=bool(exclusive), verifier=verifier, dirty=True,
                                 record_in_xattr=self._record_xattrs(),
                                 # (in xattr mode the first durable record is an fsync of
                                 # this new file)
                                 entry_durable=self._entry_with_file)
                s.write_record(durable=False, first=True)
                self._register(s)
            except BaseException:
                if s is not None:
                    self._db.delete(s.oid)
                    self._forget(s.oid)
                close_quiet(fd)
                unlink_quiet(f"{sid}.data", self._staging_fd)
                unlink_quiet(f"{sid}.rec", self._staging_fd)
                raise
            return s

    def create_verifier(self, handle) -> bytes | None:
        with self._guard:
            node = self._node(handle)
            s = self._new_staging(node.id)
            if s is not None:
                return s.verifier
            return None if node.verifier is None else bytes(node.verifier)

    @maps_oserror()
    def stage_version(self, handle, viewer, truncate, record) -> LocalStaging:
        viewer = bytes(viewer or b"")
        with self._guard:
            node = self._node(handle)
            self._published_file(node)
            pfd, name, pst = self._find_file(node)
            base_fd = None
            if not truncate and pst[SIZE] > 0:
                base_fd = os.open(name, O_READ, dir_fd=pfd)
                pst = fstatx(base_fd)
                if not self._same(pst, node):
                    os.close(base_fd)
                    raise I.Stale("replaced while staging")
            sid, fd = self._new_data_file()
        try:
            self._match_owner(fd, fstatx(fd), pst)
            limit = 0
            if base_fd is not None:
                try:
                    clone(fd, base_fd)
                except OSError:
                    os.ftruncate(fd, pst[SIZE])
                    limit = pst[SIZE]
                else:
                    os.close(base_fd)
                    base_fd = None
                os.utime(fd, ns=(atime_ns(pst), mtime_ns(pst)))
            dst = fstatx(fd)
            s = LocalStaging(backend=self, sid=sid, handle=node.handle, is_new=False, viewer=viewer,
                             record=record, fd=fd, ino=dst[INO], gen=generation(dst),
                             staging_fd=self._staging_fd, size=dst[SIZE], created_ns=time.time_ns(),
                             dirty=bool(truncate), base_fd=base_fd, limit=limit,
                             base_ident={"ino": pst[INO], "gen": generation(pst),
                                         "size": pst[SIZE], "mtime_ns": mtime_ns(pst)})
            s.write_record(durable=False, first=True)
        except BaseException:
            close_quiet(fd)
            close_quiet(base_fd)
            unlink_quiet(f"{sid}.data", self._staging_fd)
            unlink_quiet(f"{sid}.rec", self._staging_fd)
            raise
        with self._guard:
            self._register(s)
        return s

    def _match_owner(self, fd: int, st: tuple, want: tuple) -> None:
        """Give file `fd` (stat `st`) the mode, and when root the owner, of stat `want`."""
        if self._root_user and (st[UID], st[GID]) != (want[UID], want[GID]):
            os.fchown(fd, want[UID], want[GID])  # first: chown clears set-id bits
        if st[MODE] & 0o7777 != want[MODE] & 0o7777:
            os.fchmod(fd, want[MODE] & 0o7777)

    def _chown_fd(self, fd, uid, gid) -> None:
        if self._root_user and (uid is not None or gid is not None):
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)

    def publish(self, staging: LocalStaging, sync: bool = True):
        s = staging
        s.check()
        pending = self._publish_new(s) if s.is_new else self._publish_version(s)
        if pending is None:
            return None
        if sync:
            self._sync_dir(*pending)
            return None
        if self._syncs.typical < self._inline_sync:
            try:
                self._sync_dir(*pending)
            except I.BackendError as e:
                # Published all the same: the failure is the callable's to report, as when
                # the fsync runs later (the caller must not take the publish for undone).
                def report(e=e):
                    raise e
                return report
            return None
        done = False

        def make_durable():
            nonlocal done
            if not done:
                done = True
                self._sync_dir(*pending)
        return make_durable

    def _publish_new(self, s: LocalStaging):
        """Rename a new file's data file to its name; (directory id, fd) to fsync, or None."""
        if s.gone:
            self.discard(s)
            raise I.Gone("the name was removed")
        s.prepare_publish(self._durable)
        with self._guard, oserrors(RENAME_ERRORS):
            if s.gone:
                self._discard_locked(s)
                raise I.Gone("the name was removed")
            try:
                dnode = self._node(s.target_dir)
                dfd = self._dirfd(dnode)
                if fstatx(dfd)[NLINK] == 0:
                    raise I.Stale()
            except I.Stale:
                self._discard_locked(s)
                raise I.Gone("the directory was removed") from None
            name = s.target_name
            before = self._node_attrs(dnode).change
            old = self._child_any(dfd, name)
            if old is not None:
                if self._is_state(old):
                    raise I.Permission("reserved name")
                if is_dir(old):
                    raise I.IsDir()
            os.rename(s.data_name, name, src_dir_fd=self._staging_fd, dst_dir_fd=dfd)
            self._changed_dir(dnode, dfd, before)
            s.drop_record_xattr()
            self._dir_changed(dnode.id)
            if old is not None:
                self._unlinked(old, dnode.id, name)
            node = self._nodes.get(s.oid)
            if node is not None:
                node.parent, node.name = dnode.id, name
            self._finish(s, published=True)
            if not self._durable:
                return None
            return dnode.id, os.open(".", O_LISTDIR, dir_fd=dfd)

    def _publish_version(self, s: LocalStaging):
        """Rename a version's data file over the published name; (directory id, fd) to
        fsync, or None."""
        if s.gone:
            self.discard(s)
            raise I.Gone("the file was removed")
        if s.quarantined:
            raise I.IOFailure(f"quarantined: {s.quarantined}")
        if not s.dirty:
            with self._guard:
                self._finish(s)  # nothing written: the published version stays
            return None
        s.prepare_publish(self._durable)
        with self._guard, oserrors(RENAME_ERRORS):
            try:
                node = self._node(s.handle)
                pfd, name, pst = self._find_file(node)
            except I.Stale:
                self._discard_locked(s)
                raise I.Gone("the file was removed") from None
            self._match_owner(s.fd, fstatx(s.fd), pst)
            if HAVE_PROC_FD:
                self._carry_xattrs(pfd, name, node, s.fd)
            s.note_publishing(self._node_by_id(node.parent).handle, name)
            os.rename(s.data_name, name, src_dir_fd=self._staging_fd, dst_dir_fd=pfd)
            nst = self._newer_ctime(s.fd, ctime_ns(pst))
            self._by_ino.pop((node.ino, node.gen), None)
            node.ino, node.gen = nst[INO], generation(nst)
            self._by_ino[(node.ino, node.gen)] = node.id
            self._db.set_inode(node.id, node.ino, node.gen)
            self._readers.drop(node.id)
            self._dir_changed(node.parent)
            self._finish(s, published=True)
            if not self._durable:
                return None
            return node.parent, os.open(".", O_LISTDIR, dir_fd=pfd)

    @staticmethod
    def _newer_ctime(fd: int, old: int) -> tuple:
        """Stat of fd once its ctime is past `old` (so `change` moves even within a clock tick)."""
        st = fstatx(fd)
        for _ in range(200):
            if ctime_ns(st) > old:
                break
            time.sleep(0.001)
            os.fchmod(fd, st[MODE] & 0o7777)
            st = fstatx(fd)
        return st

    def sync_stats(self) -> dict:
        g = self._syncs
        return {"requests": g.calls, "fsyncs": g.fsyncs, "seconds": g.typical}

    def _sync_dir(self, key, fd: int) -> None:
        """fsync of the directory `fd` (whose id is `key`), shared with other publishes into
        it that arrive at the same time; closes fd."""
        try:
            with oserrors():
                self._syncs.sync(key, fd)
        finally:
            os.close(fd)

    def _recover(self) -> None:
        sfd = self._staging_fd
        names = os.listdir(sfd)
        recs, datas = set(), set()
        for n in names:
            if n.endswith(".tmp"):
                unlink_quiet(n, sfd)
            elif n.endswith(".rec"):
                recs.add(n[:-4])
            elif n.endswith(".data"):
                datas.add(n[:-5])
        bad = (ValueError, KeyError, TypeError, AttributeError, OSError, I.BackendError)
        for sid in sorted(datas - recs):
            path = os.path.join(self.state_dir, "staging", f"{sid}.data")
            try:
                raw = read_record_xattr(sfd, f"{sid}.data")
                if raw is None:
                    unlink_quiet(f"{sid}.data", sfd)  # created, but crashed before its record
                else:
                    self._recover_one(sid, raw)
            except bad as e:
                self._problems.append((path, f"{type(e).__name__}: {e}"))
        for sid in sorted(recs):
            path = os.path.join(self.state_dir, "staging", f"{sid}.rec")
            try:
                self._recover_one(sid)
            except bad as e:
                self._problems.append((path, f"{type(e).__name__}: {e}"))

    def _recover_one(self, sid: str, xattr_record: bytes | None = None) -> None:
        """Resume the staging object `sid` from its .rec file, or from `xattr_record` (the
        data file's REC_XATTR) when there is no .rec file."""
        sfd = self._staging_fd
        raw = xattr_record if xattr_record is not None else read_record_file(sfd, f"{sid}.rec")
        rec, handle = load_record(raw, sid, self._inst)
        oid, nonce = handle_id(handle), int.from_bytes(handle[16:], "big")
        is_new = bool(rec["is_new"])
        ino, gen = int(rec["ino"]), int(rec["gen"])
        if not isinstance(rec["record"], dict):
            raise ValueError("record dict missing")
        try:
            fd = os.open(f"{sid}.data", os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=sfd)
        except FileNotFoundError:
            self._recover_published(sid, rec, oid, nonce, is_new, ino, gen)
            return
        try:
            st = fstatx(fd)
            if (st[INO], generation(st)) != (ino, gen):
                raise ValueError("data file is not the one the record names")
            row = self._db.get(oid)
            s = LocalStaging.from_record(
                rec, backend=self, handle=handle, fd=fd, staging_fd=sfd, size=st[SIZE],
                record_in_xattr=xattr_record is not None,
                removed=not is_new and (row is None or row[1] != nonce),
                open_base=lambda ident: self._open_base(handle, ident))
            if is_new:
                self._recover_row(s, row, nonce)
        except BaseException:
            os.close(fd)
            raise
        self._register(s)

    def _recover_row(self, s: LocalStaging, row, nonce: int) -> None:
        """A new file's row in the handle database, as its record says."""
        if row is None:
            self._db.insert(s.ino, s.gen, REG, handle_id(s.target_dir), s.target_name,
                            s.verifier, oid=s.oid, nonce=nonce)
        elif row[1] != nonce:
            raise ValueError("handle database disagrees with the record")
        elif (row[2], row[3]) != (s.ino, s.gen):
            self._db.set_inode(s.oid, s.ino, s.gen)

    def _open_base(self, handle: bytes, ident: dict):
        """(fd, None) of the published version of `handle` if it is still the one a version
        started from (`ident`: inode, generation, size, mtime), else (None, why not)."""
        try:
            node = self._node(handle)
            pfd, name, pst = self._find_file(node)
            if (pst[INO], generation(pst), pst[SIZE], mtime_ns(pst)) == (
                    ident.get("ino"), ident.get("gen"), ident.get("size"), ident.get("mtime_ns")):
                bfd = os.open(name, O_READ, dir_fd=pfd)
                if self._same(fstatx(bfd), node):
                    return bfd, None
                os.close(bfd)
            return None, "the published version changed while the server was down"
        except (OSError, I.BackendError):
            return None, "the published version cannot be found"

    def _recover_published(self, sid, rec, oid, nonce, is_new, ino, gen) -> None:
        """No data file: the publish rename happened if the inode sits at the target."""
        if is_new:
            target = {"dir": rec.get("dir"), "name": rec.get("name")}
        else:
            target = rec.get("publishing")
        if target and target.get("dir") and target.get("name"):
            try:
                dnode = self._node(bytes.fromhex(target["dir"]))
                st = self._child(self._dirfd(dnode), bytes.fromhex(target["name"]))
            except (OSError, I.BackendError):
                st = None
            if st is not None and (st[INO], generation(st)) == (ino, gen):
                row = self._db.get(oid)
                if row is not None and row[1] == nonce and (row[2], row[3]) != (ino, gen):
                    self._db.set_inode(oid, ino, gen)
                unlink_quiet(f"{sid}.rec", self._staging_fd)
                return
        raise ValueError("data file missing and not published")
