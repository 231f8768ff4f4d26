"""The storage interface the protocol layer uses. Speaks in handles, versions, staging, publish.

Model
-----
* An *object* is a file, directory, symlink or special file. It is named by a `Handle`: a short
  byte string (at most `HANDLE_MAX` bytes) that stays valid across server restarts and renames
  and never names a different object after a delete and re-create (stale handles raise `Stale`).
* A regular file's content is a sequence of immutable *versions*. Only the *published* version is
  visible in the namespace. Content is never changed in place.
* A *staging* object is a private, writable version that is not yet published:
    - `create_staged(dir, name, ...)` starts a brand-new file (transient): it has a handle from
      the start, but its name is not in the directory yet;
    - `stage_version(handle, ...)` starts a new version of an existing published file
      (copy-on-write: it starts from the published content, or empty with `truncate=True`, and
      costs the same for a large file as for a small one).
  `publish(staging)` makes it the published content in one atomic step (for a new file: the
  name appears; for a version: the handle's content is replaced; last publish wins).
  `discard(staging)` throws it away.
* *Viewer*: a transient file is visible (lookup, readdir, getattr with its staged size) only to
  the viewer key it was created for (the protocol passes the NFS client's identity). Exclusive
  creates reserve the name against everybody.
* Staging objects carry an opaque *record* (a dict of JSON values) that the protocol layer uses
  for ownership (client, open-owner, state). `sync()` makes data and record durable; after a
  restart `list_staged()` returns every staging object with its last synced record.

Extended attributes (RFC 8276): `getxattr`, `setxattr`, `listxattr`, `removexattr` work on the
object's *user* namespace; names are given without the "user." prefix. They are metadata: they
change in place on a published object (a file under construction: on its staging object, which
becomes the published inode), and `publish` of a new version carries the published version's
over. A backend without them raises `NotSupported` (and reports `FsStats.xattrs` False).

Space and sparse files (RFC 7862): `Staging.allocate` / `Staging.deallocate` change only the
staging version (fallocate, punch hole); `Staging.seek` and `seek` find data or holes in a
staging version or the published one.

Server-side copy (RFC 7862 COPY, CLONE): `Staging.copy_from(src, ...)` and
`Staging.clone_from(src, ...)` put a range of another *version* into the staging version,
like WRITE: `src` is what READ would read, a pinned published version (`open_version`) or a
staging object, of this backend or (copy only) another. The defaults here read and write
(holes stay zeros, punched where the backend can) and refuse to clone; a backend overrides
them to share or copy in place (the local one: FICLONERANGE, copy_file_range).
`Backend.clone_blksize` is the clone alignment (0: `clone_from` is NotSupported).

Contracts the protocol layer relies on
--------------------------------------
* **Handle prefix.** The first 8 bytes of every handle a backend hands out are the same for all
  of its handles, differ between backends (exports) served together, and stay the same across
  restarts: the server routes a filehandle to its export by `handle[:8]` alone
  (`nfsd.exports.ExportTable`), so handles survive restarts and reloads of the exports file.
  `HANDLE_PREFIX` is that length.
* **Threads.** Every method may be called from the reactor thread, and must then not wait
  long: memory, the page cache, or one round trip to a nearby database bounded by a timeout;
  never an object store or a slow disk (raise `WouldBlock` where the interface allows it, as
  `read(nowait=True)` does). These may block and may run in worker threads: `create_staged`,
  `stage_version`, `publish` and the callable it returns, `Staging.sync`, `Staging.write`,
  `Staging.read`, `read` (without `nowait`), `maintenance`. Each staging object is used by one
  thread at a time (the protocol layer serialises per staging object); a backend serialises its
  own shared state.
* **Whose files.** `list_staged()` returns the unfinished files *this server* left (a backend
  shared by several servers returns only its own server's); `restart` of the protocol layer
  treats every one as its own client's to reclaim.
* **Server records.** `client_records()` keeps, durably, which client incarnations hold state
  (they decide the grace period after a restart); `save_status(snapshot)` publishes the running
  server's state for `nfsd inspect` (a view, not durable); `problems()` lists what could not be
  used at start-up. Backends are opened by spec through `backend.open_backend` (`file:///srv/x`);
  nothing above `backend/` names a backend class.

Errors are the `BackendError` subclasses below; the protocol layer maps each to one NFS status.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

HANDLE_MAX = 64
HANDLE_PREFIX = 8  # handle[:8] names the backend (export) a handle belongs to
NAME_MAX = 255


# --------------------------------------------------------------------------- errors
class BackendError(Exception):
    """Base class; `errno`-like meaning given by the subclass."""


class NotFound(BackendError):
    """No such name (NFS4ERR_NOENT)."""


class Exists(BackendError):
    """Name already exists or is reserved by an exclusive create (NFS4ERR_EXIST)."""


class Stale(BackendError):
    """Handle does not name a live object (NFS4ERR_STALE)."""


class BadHandle(BackendError):
    """Not a well-formed handle of this backend (NFS4ERR_BADHANDLE)."""


class NotDir(BackendError):
    """A directory was needed (NFS4ERR_NOTDIR)."""


class IsDir(BackendError):
    """A non-directory was needed (NFS4ERR_ISDIR)."""


class NotEmpty(BackendError):
    """Directory not empty (NFS4ERR_NOTEMPTY)."""


class InvalidName(BackendError):
    """Empty, '.', '..', contains '/' or NUL (NFS4ERR_INVAL / BADNAME)."""


class NameTooLong(BackendError):
    """Longer than NAME_MAX (NFS4ERR_NAMETOOLONG)."""


class NotSymlink(BackendError):
    """READLINK of a non-symlink (NFS4ERR_INVAL)."""


class WrongType(BackendError):
    """Operation not valid for this object type (NFS4ERR_INVAL / WRONG_TYPE)."""


class CrossDevice(BackendError):
    """Rename/link across file systems (NFS4ERR_XDEV)."""


class Permission(BackendError):
    """The file system refused (EPERM/EACCES) (NFS4ERR_PERM / ACCESS)."""


class NoSpace(BackendError):
    """Out of space or quota (NFS4ERR_NOSPC / DQUOT)."""


class TooBig(BackendError):
    """File too large (NFS4ERR_FBIG)."""


class ReadOnly(BackendError):
    """Read-only file system (NFS4ERR_ROFS)."""


class IOFailure(BackendError):
    """Any other I/O error (NFS4ERR_IO)."""


class Unavailable(BackendError):
    """A service the backend depends on (a database, an object store) does not answer now;
    the request may succeed later (NFS4ERR_DELAY: the client retries). Nothing changed."""


class Fenced(BackendError):
    """This server no longer owns its part of shared storage (another server declared it dead
    after its heartbeat stopped): it must stop serving. Raised by `maintenance`."""


class WouldBlock(BackendError):
    """`read(..., nowait=True)`: the data is not in memory; read it again without `nowait`,
    where waiting for the disk is fine (a worker thread). Never reaches a client."""


class Invalid(BackendError):
    """Invalid argument (NFS4ERR_INVAL)."""


class Gone(BackendError):
    """A staging object whose target name was removed: publish did nothing."""


class NoXattr(NotFound):
    """No such extended attribute (NFS4ERR_NOXATTR)."""


class XattrTooBig(TooBig):
    """An extended attribute value the file system cannot store (NFS4ERR_XATTR2BIG)."""


class NotSupported(WrongType):
    """The file system (or this backend) cannot do this at all (NFS4ERR_NOTSUPP)."""


class PastEnd(Invalid):
    """`seek` from an offset at or past the end of the file (NFS4ERR_NXIO)."""


# --------------------------------------------------------------------------- values
class Kind(enum.IntEnum):
    """Object types, numbered as NFSv4's nfs_ftype4 so the protocol layer can pass them on."""

    REG = 1
    DIR = 2
    BLK = 3
    CHR = 4
    LNK = 5
    SOCK = 6
    FIFO = 7


class Content(enum.IntEnum):
    """What `seek` looks for, numbered as NFSv4.2's data_content4."""

    DATA = 0
    HOLE = 1


class XattrHow(enum.IntEnum):
    """`setxattr` modes, numbered as NFSv4.2's setxattr_option4 (and Linux XATTR_CREATE/REPLACE)."""

    EITHER = 0  # create or replace
    CREATE = 1  # Exists if it is there
    REPLACE = 2  # NoXattr if it is not


XATTR_NAME_MAX = 255 - len("user.")  # a name without the prefix; Linux limits the whole to 255
XATTR_SIZE_MAX = 65536  # largest value (Linux XATTR_SIZE_MAX)


def xattr_name(name) -> bytes:
    """A client's extended attribute name (without "user.") as bytes; Invalid for an empty one
    or one with a NUL, NameTooLong past XATTR_NAME_MAX (every backend checks the same)."""
    name = bytes(name)
    if not name or b"\0" in name:
        raise Invalid("bad extended attribute name")
    if len(name) > XATTR_NAME_MAX:
        raise NameTooLong(f"{len(name)} bytes")
    return name


@dataclass(slots=True)
class Attrs:
    """Attributes of one object (a published version or a staging object)."""

    kind: Kind
    mode: int  # permission bits 0o7777
    nlink: int
    uid: int
    gid: int
    size: int
    used: int  # bytes allocated
    rdev: tuple[int, int]  # (major, minor) for BLK/CHR
    fileid: int  # stable per object (inode number of the first version for files)
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    change: int  # moves whenever content or attributes change, also by local programs
    # Left to the protocol layer: what it derived from these attributes (GETATTR's encoded
    # reply). A backend that hands out the same Attrs object again, because nothing changed,
    # lets that be reused; a new object starts empty.
    memo: object = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class FsStats:
    files_total: int
    files_free: int
    files_avail: int
    space_total: int
    space_free: int
    space_avail: int
    maxname: int = NAME_MAX
    xattrs: bool = False  # user extended attributes can be stored
    clone_blksize: int = 0  # `Backend.clone_blksize` (NFSv4.2 clone_blksize attribute)


@dataclass(slots=True, eq=False)
class DirEntry:
    """One entry of a listing. A backend may hand out the same DirEntry object again while the
    entry is unchanged (same cookie, name, handle and attributes); `memo` is the caller's, to
    keep what it derived from the entry (the protocol layer keeps its encoded form there), and
    is only valid for as long as the object is handed out. Treat the other fields as
    read-only."""

    cookie: int  # resume point: > 2, stable across restarts for an unchanged directory
    name: bytes
    handle: bytes
    attrs: Attrs
    memo: object = None


@dataclass(slots=True)
class SetAttrs:
    """Metadata changes (content/size changes go through staging)."""

    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    atime_ns: int | None = None  # SET_TO_SERVER_TIME is resolved by the caller
    mtime_ns: int | None = None


class Staging:
    """A private writable version. Created only by `Backend.create_staged`/`stage_version`."""

    backend: Backend  # the backend it belongs to
    id: str  # unique, stable across restarts
    handle: bytes  # the object this version belongs to (stable after publish)
    is_new: bool  # True: a new file (transient name); False: a new version of a published file
    viewer: bytes  # who may see the transient name
    record: dict  # protocol-layer ownership data, persisted by sync()
    dirty: bool  # written, truncated or (for a new file) created since it was staged

    def write(self, offset: int, data) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def read(self, offset: int, count: int, nowait: bool = False) -> tuple[bytes, bool]:  # pragma: no cover
        """(data, eof). With `nowait`, raise WouldBlock instead of waiting for remote storage
        (a backend whose bytes are all local may always read)."""
        raise NotImplementedError

    def truncate(self, size: int) -> None:  # pragma: no cover
        raise NotImplementedError

    def size(self) -> int:  # pragma: no cover
        raise NotImplementedError

    def attrs(self) -> Attrs:  # pragma: no cover
        raise NotImplementedError

    def set_record(self, record: dict) -> None:  # pragma: no cover
        raise NotImplementedError

    def sync(self) -> None:  # pragma: no cover
        """Make every written byte and the record durable (fdatasync + record fsync)."""
        raise NotImplementedError

    def allocate(self, offset: int, length: int) -> None:  # pragma: no cover
        """Reserve space for [offset, offset+length) (fallocate mode 0): content unchanged, the
        size grows to offset+length if that is larger. NotSupported if it cannot reserve."""
        raise NotSupported("allocate")

    def deallocate(self, offset: int, length: int) -> None:  # pragma: no cover
        """Punch a hole: [offset, offset+length) reads as zeros afterwards; the size stays."""
        raise NotSupported("deallocate")

    def seek(self, offset: int, what: Content) -> tuple[int, bool]:
        """The first byte of `what` at or after `offset` and whether that is the end of the file
        (no data found, or the virtual hole at the end: the offset is then the size).
        PastEnd when offset >= size. This default knows no holes."""
        size = self.size()
        if offset >= size:
            raise PastEnd(f"{offset} >= {size}")
        return (offset, False) if what == Content.DATA else (size, True)

    def copy_from(self, src, src_offset: int, dst_offset: int, count: int) -> int:
        """Copy [src_offset, src_offset+count) of version `src` (a pinned published version or
        a staging object: anything with read, seek, attrs) to dst_offset of this version, as
        WRITEs of those bytes would; stops where `src` ends. Returns the bytes copied. This
        default (backend/copying.py) reads and writes in pieces; the source's holes are not
        read: they become holes."""
        from .copying import copy_by_writing

        return copy_by_writing(self, src, src_offset, dst_offset, count)

    def clone_from(self, src, src_offset: int, dst_offset: int, count: int) -> None:
        """Make [dst_offset, dst_offset+count) of this version share [src_offset, ...+count)
        of `src` (reflink): O(1) in bytes. The caller has checked the range against the source
        size and the alignment (`Backend.clone_blksize`). NotSupported where the storage
        cannot share (the default)."""
        raise NotSupported("clone")


class ClientRecords:
    """Durable records of the client incarnations (owner, boot verifier) that hold state: after
    a restart they decide whether there is a grace period and who may reclaim. A write is
    durable when it returns."""

    def put_client(self, owner: bytes, verifier: bytes) -> None:  # pragma: no cover
        raise NotImplementedError

    def delete_client(self, owner: bytes) -> None:  # pragma: no cover
        raise NotImplementedError

    def clients(self) -> list[tuple[bytes, bytes]]:  # pragma: no cover
        raise NotImplementedError


class SharedLocks:
    """Byte-range locks and share reservations held through *other* servers that share this
    storage (a backend several frontends serve). The protocol layer keeps its own clients'
    locks and reservations in memory and tells this object what they are, so the others see
    them; each call checks against the others' and records ours in one step."""

    def share(self, handle: bytes, key: bytes, access: int, deny: int) -> bool:  # pragma: no cover
        """Set the reservation of our open `key` on `handle` (access 0: it is gone). False,
        and nothing recorded, if another server's reservations conflict (OPEN4 bits)."""
        raise NotImplementedError

    def lock(self, handle: bytes, owner: bytes, ranges: list, want=None):  # pragma: no cover
        """Set our lock-owner `owner`'s ranges on `handle` to `ranges` [(start, end, write)]
        (end exclusive; [] drops them). With `want` (start, end, write): first check it against
        the other servers' locks, and return the (start, end, write) in its way, recording
        nothing; None when it was recorded."""
        raise NotImplementedError

    def test(self, handle: bytes, start: int, end: int, write: bool):  # pragma: no cover
        """The other servers' lock in the way of (start, end, write), or None (LOCKT)."""
        raise NotImplementedError

    def release(self, handle: bytes, key: bytes) -> None:  # pragma: no cover
        """Our open or lock state `key` on `handle` is gone (CLOSE, lease expiry): drop what
        it held. Never raises: if the storage cannot be reached now, it is done later."""
        raise NotImplementedError


class Backend:
    """One exported tree. All `dir`/`handle` arguments are handles (bytes)."""

    # The alignment of `Staging.clone_from` ranges (NFSv4.2 clone_blksize); 0: it cannot clone.
    clone_blksize: int = 0

    # a backend several servers share (their clients' locks must conflict): SharedLocks
    def shared_locks(self) -> SharedLocks | None:
        return None

    def barrier(self) -> None:
        """Return once every change any other server of a shared backend committed before
        this call is what this one answers from. The protocol layer calls it where NFS
        promises to see others' changes: at OPEN (close-to-open) and LOCK. A backend no other
        server changes has nothing to do (the default)."""

    # ---- what the server keeps with its storage
    def client_records(self) -> ClientRecords:  # pragma: no cover
        """The durable client records (the server uses those of its first export)."""
        raise NotImplementedError

    def save_status(self, snapshot: dict) -> None:
        """Publish the running server's status (JSON values) for `nfsd inspect`; rewritten
        every few seconds, never read back by the server. Default: kept nowhere."""

    def problems(self) -> list[tuple[str, str]]:
        """(what, why) of state that could not be used at start-up (unreadable records)."""
        return []

    # ---- identity
    def root(self) -> bytes:  # pragma: no cover
        raise NotImplementedError

    def fsid(self) -> tuple[int, int]:  # pragma: no cover
        raise NotImplementedError

    def check(self, handle: bytes) -> None:
        """Raise Stale unless the handle names a live object (published or staged)."""
        self.getattr(handle)

    # ---- namespace (published view, plus the viewer's own transient names)
    def getattr(self, handle: bytes, viewer: bytes | None = None) -> Attrs:  # pragma: no cover
        """Attributes of the published version, or of the viewer's newest staging of it."""
        raise NotImplementedError

    def lookup(self, dir: bytes, name: bytes, viewer: bytes | None = None) -> bytes:  # pragma: no cover
        raise NotImplementedError

    def lookup_attrs(self, dir: bytes, name: bytes, viewer: bytes | None = None):
        """`lookup` and the attributes `getattr(handle, viewer)` would give, as (handle,
        Attrs); backends override it to do both in one step."""
        h = self.lookup(dir, name, viewer)
        return h, self.getattr(h, viewer)

    def parent(self, handle: bytes) -> bytes:  # pragma: no cover
        """The directory containing `handle` (the root's parent is the root)."""
        raise NotImplementedError

    def readdir(self, dir: bytes, cookie: int, viewer: bytes | None = None):  # pragma: no cover
        """Iterate DirEntry in a stable order starting after `cookie` (0 = from the start)."""
        raise NotImplementedError

    def dir_verifier(self, dir: bytes) -> bytes:  # pragma: no cover
        """8 bytes; equal for an unchanged directory, across restarts."""
        raise NotImplementedError

    def mkdir(self, dir, name, mode, uid, gid) -> bytes:  # pragma: no cover
        raise NotImplementedError

    def symlink(self, dir, name, target: bytes, mode, uid, gid) -> bytes:  # pragma: no cover
        raise NotImplementedError

    def mknod(self, dir, name, kind: Kind, rdev, mode, uid, gid) -> bytes:  # pragma: no cover
        raise NotImplementedError

    def readlink(self, handle) -> bytes:  # pragma: no cover
        raise NotImplementedError

    def remove(self, dir, name, viewer: bytes | None = None) -> None:  # pragma: no cover
        """Remove a name (file, empty directory, ...). A transient name of the viewer is
        removed too: its staging then publishes nothing (`publish` raises Gone)."""
        raise NotImplementedError

    def rename(self, sdir, sname, ddir, dname, viewer: bytes | None = None) -> None:  # pragma: no cover
        """POSIX rename. A transient name of the viewer moves its publication target."""
        raise NotImplementedError

    def link(self, handle, dir, name) -> None:  # pragma: no cover
        raise NotImplementedError

    def setattr(self, handle, changes: SetAttrs) -> Attrs:  # pragma: no cover
        raise NotImplementedError

    def statfs(self, handle) -> FsStats:  # pragma: no cover
        raise NotImplementedError

    # ---- content
    def open_version(self, handle):  # pragma: no cover
        """Pin the currently published version for reading; returns an object with
        read(offset, count) -> (data, eof), attrs() and close(). Stays readable after the
        name is removed or replaced (NFSv4 PRESERVE_UNLINKED)."""
        raise NotImplementedError

    def read(self, handle, offset: int, count: int,
             nowait: bool = False) -> tuple[bytes, bool]:  # pragma: no cover
        """Read the published version: (data, eof). With `nowait`, raise WouldBlock instead
        of waiting for the disk (backends that cannot tell may always read)."""
        raise NotImplementedError

    def seek(self, handle, offset: int, what: Content) -> tuple[int, bool]:
        """`Staging.seek` on the published version. This default knows no holes."""
        size = self.getattr(handle).size
        if offset >= size:
            raise PastEnd(f"{offset} >= {size}")
        return (offset, False) if what == Content.DATA else (size, True)

    # ---- extended attributes (user namespace; names without "user.")
    def getxattr(self, handle, name: bytes, viewer: bytes | None = None) -> bytes:
        """The value; NoXattr if there is none."""
        raise NotSupported("extended attributes")

    def listxattr(self, handle, viewer: bytes | None = None) -> list[bytes]:
        """Every name, sorted (a stable order for LISTXATTRS cookies)."""
        raise NotSupported("extended attributes")

    def setxattr(self, handle, name: bytes, value: bytes, how: XattrHow = XattrHow.EITHER,
                 viewer: bytes | None = None) -> tuple[int, int]:
        """Set a value (Exists / NoXattr as `how` says); returns `change` before and after."""
        raise NotSupported("extended attributes")

    def removexattr(self, handle, name: bytes, viewer: bytes | None = None) -> tuple[int, int]:
        """Remove one (NoXattr if there is none); returns `change` before and after."""
        raise NotSupported("extended attributes")

    # ---- write-once lifecycle
    def create_staged(self, dir, name, viewer: bytes, mode, uid, gid, exclusive: bool,
                      record: dict, verifier: bytes | None = None) -> Staging:  # pragma: no cover
        """Start a new file `name` in `dir`. exclusive: raise Exists if the name is published or
        reserved by any staging; else only a published non-regular file conflicts (Exists/IsDir).
        `verifier` (EXCLUSIVE4 create verifier) is stored and reported by `create_verifier`."""
        raise NotImplementedError

    def create_verifier(self, handle) -> bytes | None:  # pragma: no cover
        raise NotImplementedError

    def stage_version(self, handle, viewer: bytes, truncate: bool, record: dict) -> Staging:  # pragma: no cover
        """Start a private new version of a published regular file."""
        raise NotImplementedError

    def publish(self, staging: Staging, sync: bool = True):  # pragma: no cover
        """Atomically make the staging object's content published. Raises Gone if its name was
        removed (the staging object is discarded then). The staging object is finished after.

        sync=True: the publish is durable when this returns (None is returned). sync=False:
        it is visible when this returns, and the returned callable (or None if it is durable
        already: a backend whose syncs are fast may do them at once) makes it durable: it
        blocks (call it in a worker thread), raises BackendError if that fails, and publishes
        whose callables run at the same time share their syncs (group commit). With
        sync=False an exception means nothing was published; once the content is visible,
        a failure to make it durable (even one met at once) is raised by the callable."""
        raise NotImplementedError

    def discard(self, staging: Staging) -> None:  # pragma: no cover
        raise NotImplementedError

    def list_staged(self) -> list[Staging]:  # pragma: no cover
        """Every unfinished staging object (after a restart: recovered from disk)."""
        raise NotImplementedError

    def sync_stats(self) -> dict:
        """Counters of the directory syncs a backend shares among callers (group commit), for
        metrics: `requests` (syncs asked for), `fsyncs` (syncs done), `seconds` (moving
        average of one). Default: none."""
        return {}

    def maintenance(self) -> None:
        """Upkeep that may wait for the disk (the server calls it from a worker thread every
        few seconds, never on the request path). Default: nothing."""

    def close(self) -> None:
        """Release resources (fds, database)."""
