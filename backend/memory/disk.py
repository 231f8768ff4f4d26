"""What a MemoryBackend keeps "on disk": the state that outlives the backend object.

`MemoryDisk` holds the objects (inodes by object id), the staging objects (`Staged`), the
EXCLUSIVE4 verifiers, the counters and the one lock. A backend is a view over a disk: a second
`MemoryBackend(disk)` is the server started again after `kill -9` (everything is still there,
as the page cache would keep it), and `power_loss()` first throws away what was never made
durable. Only one backend uses a disk at a time: opening another, closing it or a power loss
*fences* the one before (its calls raise IOFailure, as a killed process does nothing more).

Durability, kept simple: namespace changes, attribute changes and publishes are durable when
they return (as if every operation were synchronous); so are the counters, so an object id or
`change` value is never handed out twice. Staging objects are the exception: `Staging.sync()`
takes a snapshot (content, attributes, record, name), and a power loss rolls each one back to
its snapshot, or removes it (and its object id) if it never had one.
"""

from __future__ import annotations

import os
import threading

from .. import interface as I
from .content import Pages

ROOT_ID = 1
FIRST_COOKIE = 3  # READDIR cookies 0, 1 and 2 are reserved


def check_name(name) -> bytes:
    """The name as bytes; InvalidName / NameTooLong for what may not be a directory entry."""
    name = bytes(name)
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
        raise I.InvalidName(repr(name))
    if len(name) > I.NAME_MAX:
        raise I.NameTooLong(f"{len(name)} bytes")
    return name


class Inode:
    """One object version: a directory, a regular file version, a symlink or a special file.

    `oid` is the object id its handle carries (a published new version takes the object id
    of the one it replaces). Directories: `entries` name -> (cookie, Inode), `next_cookie`,
    `parent` (object id), `listing` (sorted cookies and names, rebuilt after a change).
    Non-directories: `names`, every (directory id, name) it is linked as; the first is the
    name a new version is published under and what `parent` answers."""

    __slots__ = ("oid", "kind", "mode", "uid", "gid", "nlink", "rdev", "atime", "mtime",
                 "ctime", "change", "pages", "target", "entries", "next_cookie", "listing",
                 "parent", "names", "xattrs")

    def __init__(self, oid: int, kind: I.Kind, mode: int, uid: int, gid: int, now: int,
                 change: int):
        self.oid = oid
        self.kind = kind
        self.mode = mode & 0o7777
        self.uid, self.gid = uid, gid
        self.nlink = 2 if kind == I.Kind.DIR else 0  # a directory's "." and its name
        self.rdev = (0, 0)
        self.atime = self.mtime = self.ctime = now
        self.change = change
        self.pages = Pages() if kind == I.Kind.REG else None
        self.target = b""
        self.entries: dict[bytes, tuple[int, Inode]] | None = {} if kind == I.Kind.DIR else None
        self.next_cookie = FIRST_COOKIE
        self.listing: tuple[list[int], list[bytes]] | None = None
        self.parent = ROOT_ID
        self.names: list[tuple[int, bytes]] = []
        self.xattrs: dict[bytes, bytes] = {}

    def clone(self) -> "Inode":
        """A copy of a regular file version (its content shares pages)."""
        c = Inode(self.oid, self.kind, self.mode, self.uid, self.gid, self.atime, self.change)
        c.nlink, c.mtime, c.ctime = self.nlink, self.mtime, self.ctime
        c.pages = self.pages.copy()
        c.names = list(self.names)
        c.xattrs = dict(self.xattrs)
        return c

    # ---- directories
    def new_cookie(self) -> int:
        c = self.next_cookie
        self.next_cookie = c + 1
        return c

    def attach(self, name: bytes, child: "Inode", cookie: int | None = None,
               at: int | None = None) -> None:
        """Link `child` as `name` (free) with `cookie` (default: a new one); `at`: where its
        name goes in `child.names` (a rename keeps its place)."""
        self.entries[name] = (self.new_cookie() if cookie is None else cookie, child)
        self.listing = None
        if child.kind == I.Kind.DIR:
            self.nlink += 1  # the child's ".."
            child.parent = self.oid
        else:
            child.nlink += 1
            child.names.insert(len(child.names) if at is None else at, (self.oid, name))

    def detach(self, name: bytes) -> tuple[int, "Inode"]:
        """Unlink `name`; its (cookie, child)."""
        cookie, child = self.entries.pop(name)
        self.listing = None
        if child.kind == I.Kind.DIR:
            self.nlink -= 1
        else:
            child.nlink -= 1
            child.names.remove((self.oid, name))
        return cookie, child

    def sorted_entries(self) -> tuple[list[int], list[bytes]]:
        """(cookies, names) in cookie order, kept until the directory changes."""
        if self.listing is None:
            pairs = sorted((c, n) for n, (c, _) in self.entries.items())
            self.listing = ([c for c, _ in pairs], [n for _, n in pairs])
        return self.listing


class Staged:
    """A staging object as the disk holds it. `record` is the record as last written (JSON
    text: at creation and at every sync), `durable` the snapshot of the last sync (None: never
    synced). New files: `target` (directory id, name) and `cookie`, their transient entry."""

    __slots__ = ("id", "oid", "is_new", "viewer", "inode", "record", "dirty", "gone",
                 "target", "cookie", "exclusive", "durable")

    def __init__(self, sid: str, oid: int, is_new: bool, viewer: bytes, inode: Inode,
                 record: str, dirty: bool):
        self.id, self.oid, self.is_new, self.viewer = sid, oid, is_new, viewer
        self.inode = inode
        self.record = record
        self.dirty = dirty
        self.gone = False
        self.target: tuple[int, bytes] | None = None
        self.cookie = 0
        self.exclusive = False
        self.durable: tuple | None = None

    def snapshot(self) -> None:
        self.durable = (self.inode.clone(), self.record, self.dirty, self.gone, self.target,
                        self.cookie)

    def roll_back(self) -> None:
        inode, self.record, self.dirty, self.gone, self.target, self.cookie = self.durable
        self.inode = inode.clone()  # the snapshot stays as it is for the next power loss


class MemoryDisk:
    """The storage a MemoryBackend runs on; see the module text. `identity`: the 8 bytes every
    handle starts with (random by default)."""

    def __init__(self, identity: bytes | None = None):
        self.identity = os.urandom(8) if identity is None else bytes(identity)
        if len(self.identity) != 8:
            raise ValueError("identity must be 8 bytes")
        self.lock = threading.RLock()
        self.owner: object | None = None  # the token of the backend using the disk
        self.objects: dict[int, Inode] = {}
        self.staged: dict[str, Staged] = {}
        self.verifiers: dict[int, bytes] = {}
        self.clients: dict[bytes, bytes] = {}  # durable client records (MemoryRecords)
        self.status: dict | None = None  # the last status snapshot saved
        self.last_oid = 0
        self.last_change = 0
        self.last_sid = 0

    def tick(self) -> int:
        """The next `change` value (one counter for every object: never repeats)."""
        self.last_change += 1
        return self.last_change

    def new_oid(self) -> int:
        self.last_oid += 1
        return self.last_oid

    def new_sid(self) -> str:
        self.last_sid += 1
        return f"{self.last_sid:016x}"

    def forget(self, oid: int) -> None:
        """The object is gone: its handle is Stale from now on."""
        self.objects.pop(oid, None)
        self.verifiers.pop(oid, None)

    def power_loss(self) -> None:
        """Lose what was never made durable: staging objects go back to their last sync (or
        away, with their object ids, if never synced). Fences the backend using the disk."""
        with self.lock:
            self.owner = None
            for st in list(self.staged.values()):
                if st.durable is None:
                    del self.staged[st.id]
                    if st.is_new:
                        self.forget(st.oid)
                    continue
                st.roll_back()
                if st.is_new:
                    self.objects[st.oid] = st.inode
