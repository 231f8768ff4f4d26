"""`MemoryBackend`: the storage interface over a `MemoryDisk`, with the local backend's rules.

The namespace is a tree of `Inode`s; handles are the disk's identity and an object id. What
the local backend gets from POSIX (rename rules, link counts, ctime moving on a rename or
link) is done here by hand, and what it decides itself (who sees a transient name, what a
version publish replaces, which errors in which order) is copied from it: see
`backend/local.py` for the reasons behind each rule.
"""

from __future__ import annotations

import dataclasses
import json
import time

from .. import interface as I
from .content import PAGE
from .disk import ROOT_ID, Inode, MemoryDisk, check_name
from .records import MemoryRecords
from .registry import Stagings
from .staging import MemoryStaging, MemoryVersion
from .writeonce import WriteOnce

REG, DIR, LNK = I.Kind.REG, I.Kind.DIR, I.Kind.LNK
HANDLE_LEN = 16  # disk identity (8 bytes) + object id (8 bytes, never used again)
DIR_SIZE = 4096  # what a small directory reports as size and space used, as on ext4
_XATTR_KINDS = (REG, DIR)  # Linux keeps user.* attributes only on these
_STATS = I.FsStats(files_total=1 << 24, files_free=1 << 23, files_avail=1 << 23,
                   space_total=1 << 40, space_free=1 << 39, space_avail=1 << 39, xattrs=True,
                   clone_blksize=PAGE)


class _Guard:
    """The disk's lock, refused to a backend that no longer owns the disk (closed, or
    superseded by a restart or a power loss)."""

    __slots__ = ("_disk", "_token")

    def __init__(self, disk: MemoryDisk, token: object):
        self._disk, self._token = disk, token

    def __enter__(self):
        self._disk.lock.acquire()
        if self._disk.owner is not self._token:
            self._disk.lock.release()
            raise I.IOFailure("this backend was closed or superseded (restart, power loss)")

    def __exit__(self, *exc):
        self._disk.lock.release()


class MemoryBackend(WriteOnce, I.Backend):
    """See the package text. `disk`: a MemoryDisk (default: a new one), taken over from any
    backend using it; `clock_ns`: where times come from; `owner`: (uid, gid) of the root
    directory of a new disk and of objects created with uid/gid None; `root_mode`."""

    clone_blksize = PAGE  # CLONE shares pages (content.py)

    def __init__(self, disk: MemoryDisk | None = None, *, clock_ns=time.time_ns,
                 owner: tuple[int, int] = (0, 0), root_mode: int = 0o755):
        self.disk = MemoryDisk() if disk is None else disk
        self._clock = clock_ns
        self._owner = owner
        token = object()
        self._guard = _Guard(self.disk, token)
        self._stagings = Stagings()
        with self.disk.lock:
            self.disk.owner = token
            if ROOT_ID not in self.disk.objects:
                self._new_inode(DIR, root_mode, None, None)
            for sid in sorted(self.disk.staged):  # ids grow: creation order
                st = self.disk.staged[sid]
                self._stagings.add(MemoryStaging(self, st, json.loads(st.record)))

    def client_records(self) -> MemoryRecords:
        return MemoryRecords(self.disk)

    def save_status(self, snapshot: dict) -> None:
        with self._guard:
            self.disk.status = snapshot

    def close(self) -> None:
        """Let go of the disk (staging objects stay on it); calls after this raise IOFailure."""
        with self.disk.lock:
            if self.disk.owner is self._guard._token:
                self.disk.owner = None

    # ------------------------------------------------------------------ identity
    def root(self) -> bytes:
        return self._handle(ROOT_ID)

    def fsid(self) -> tuple[int, int]:
        ident = self.disk.identity
        return int.from_bytes(ident[:4], "big"), int.from_bytes(ident[4:], "big")

    def _handle(self, oid: int) -> bytes:
        return self.disk.identity + oid.to_bytes(8, "big")

    # ------------------------------------------------------------------ objects (guard held)
    def _obj(self, handle) -> Inode:
        handle = bytes(handle)
        if len(handle) != HANDLE_LEN:
            raise I.BadHandle(f"{len(handle)} bytes")
        if handle[:8] != self.disk.identity:
            raise I.Stale("not a handle of this export")
        inode = self.disk.objects.get(int.from_bytes(handle[8:], "big"))
        if inode is None:
            raise I.Stale("no such object")
        return inode

    def _dir(self, handle) -> Inode:
        inode = self._obj(handle)
        if inode.kind != DIR:
            raise I.NotDir()
        return inode

    def _new_inode(self, kind: I.Kind, mode: int, uid, gid) -> Inode:
        """A new object with an id of its own, reachable by handle from now on."""
        disk = self.disk
        inode = Inode(disk.new_oid(), kind, mode, self._owner[0] if uid is None else uid,
                      self._owner[1] if gid is None else gid, self._clock(), disk.tick())
        disk.objects[inode.oid] = inode
        return inode

    def _touch(self, inode: Inode, content: bool = True) -> None:
        """`inode` changed: ctime (and for content, mtime) now; `change` moves."""
        now = self._clock()
        inode.ctime = now
        if content:
            inode.mtime = now
        inode.change = self.disk.tick()

    def _attrs(self, inode: Inode, fileid: int | None = None) -> I.Attrs:
        kind = inode.kind
        if kind == REG:
            size, used = inode.pages.size, inode.pages.used()
        elif kind == DIR:
            size, used = DIR_SIZE, DIR_SIZE
        else:
            size, used = len(inode.target), 0
        return I.Attrs(kind, inode.mode, inode.nlink, inode.uid, inode.gid, size, used,
                       inode.rdev, inode.oid if fileid is None else fileid, inode.atime,
                       inode.mtime, inode.ctime, inode.change)

    def _unlinked(self, inode: Inode) -> None:
        """A name of `inode` was removed or replaced: a directory, or a file's last name,
        takes its handle with it (pinned versions stay readable)."""
        if inode.kind == DIR:
            inode.nlink = 0
            self.disk.forget(inode.oid)
            return
        self._touch(inode, content=False)
        if inode.nlink == 0:
            self.disk.forget(inode.oid)

    def _published_file(self, inode: Inode, regular: bool = True,
                        what: str = "not published yet") -> None:
        """Refuse what only a published non-directory (regular: a regular file) may do."""
        if self._stagings.new_file(inode.oid) is not None:
            raise I.Invalid(what)
        if inode.kind == DIR:
            raise I.IsDir()
        if regular and inode.kind != REG:
            raise I.WrongType()

    # ------------------------------------------------------------------ who sees what
    def _view(self, inode: Inode, viewer) -> I.Attrs:
        """What getattr shows `viewer`: its newest written (or new) staging of the object,
        else the published version; a file under construction does not exist for others."""
        sts = self._stagings.of(inode.oid)
        if sts:
            for s in reversed(sts):
                if s.viewer == viewer and (s.is_new or s.dirty):
                    return self._attrs(s._state.inode, inode.oid)
            if sts[0].is_new and viewer is not None:
                raise I.Stale("under construction by another client")
        return self._attrs(inode)

    # ------------------------------------------------------------------ namespace
    def getattr(self, handle, viewer=None) -> I.Attrs:
        with self._guard:
            return self._view(self._obj(handle), viewer)

    def lookup(self, dir, name, viewer=None) -> bytes:
        return self.lookup_attrs(dir, name, viewer)[0]

    def lookup_attrs(self, dir, name, viewer=None):
        name = check_name(name)
        with self._guard:
            d = self._dir(dir)
            if viewer is not None:
                mine = self._stagings.mine(d.oid, name, viewer)
                if mine:
                    return mine[-1].handle, self._attrs(mine[-1]._state.inode)
            entry = d.entries.get(name)
            if entry is None:
                raise I.NotFound()
            return self._handle(entry[1].oid), self._view(entry[1], viewer)

    def parent(self, handle) -> bytes:
        with self._guard:
            inode = self._obj(handle)
            s = self._stagings.new_file(inode.oid)
            if s is not None:
                return self._handle(s._state.target[0])
            if inode.kind == DIR:
                return self._handle(inode.parent)
            return self._handle(inode.names[0][0])

    def readdir(self, dir, cookie: int, viewer=None):
        """Entries in cookie order after `cookie`. Cookies come from a per-directory counter
        when a name is added (a name keeps its cookie while it exists, also when replaced), so
        they survive restarts; a viewer's transient entries come with the cookie reserved when
        they were created, which their published entry then keeps."""
        with self._guard:
            d = self._dir(dir)
            cookies, names = d.sorted_entries()
            mine = {} if viewer is None else self._stagings.mine_in(d.oid, viewer)
            items = [(c, n, None) for c, n in zip(cookies, names) if c > cookie
                     and n not in mine]
            items += [(s._state.cookie, n, s) for n, s in mine.items() if s._state.cookie > cookie]
            items.sort(key=lambda t: t[0])
        return self._entries(d, items)

    def _entries(self, d: Inode, items):
        """DirEntry for each (cookie, name, staging or None) still there when its turn comes
        (made under the guard, handed out outside it)."""
        for cookie, name, s in items:
            with self._guard:
                if s is None:
                    entry = d.entries.get(name)
                    if entry is None or entry[0] != cookie:
                        continue
                    e = I.DirEntry(cookie, name, self._handle(entry[1].oid),
                                   self._attrs(entry[1]))
                elif s._finished or s._state.gone:
                    continue
                else:
                    e = I.DirEntry(cookie, name, s.handle, self._attrs(s._state.inode))
            yield e

    def dir_verifier(self, dir) -> bytes:
        """Cookies never move, so there is nothing to verify (the local backend says so too)."""
        return bytes(8)

    # ---- creating
    def _make(self, dir, name, kind: I.Kind, mode: int, uid, gid) -> Inode:
        name = check_name(name)
        d = self._dir(dir)
        if name in d.entries or self._stagings.reserved(d.oid, name):
            raise I.Exists()
        inode = self._new_inode(kind, mode, uid, gid)
        d.attach(name, inode)
        self._touch(d)
        return inode

    def mkdir(self, dir, name, mode, uid, gid) -> bytes:
        with self._guard:
            return self._handle(self._make(dir, name, DIR, mode, uid, gid).oid)

    def symlink(self, dir, name, target: bytes, mode, uid, gid) -> bytes:
        target = bytes(target)
        if not target or b"\0" in target:
            raise I.Invalid("bad symlink target")
        with self._guard:
            inode = self._make(dir, name, LNK, 0o777, uid, gid)  # a symlink's mode is 0777
            inode.target = target
            return self._handle(inode.oid)

    def mknod(self, dir, name, kind, rdev, mode, uid, gid) -> bytes:
        if kind not in (I.Kind.BLK, I.Kind.CHR, I.Kind.FIFO, I.Kind.SOCK):
            raise I.WrongType(f"mknod of {kind}")
        with self._guard:
            inode = self._make(dir, name, I.Kind(kind), mode, uid, gid)
            if kind in (I.Kind.BLK, I.Kind.CHR) and rdev:
                inode.rdev = tuple(rdev)
            return self._handle(inode.oid)

    def readlink(self, handle) -> bytes:
        with self._guard:
            inode = self._obj(handle)
            if inode.kind != LNK:
                raise I.NotSymlink()
            return inode.target

    # ---- removing, renaming, linking
    def remove(self, dir, name, viewer=None) -> None:
        name = check_name(name)
        with self._guard:
            d = self._dir(dir)
            released = False
            if viewer is not None:
                for s in self._stagings.mine(d.oid, name, viewer):
                    self._stagings.release(s)
                    released = True
            entry = d.entries.get(name)
            if entry is None:
                if released:
                    return
                raise I.NotFound()
            if entry[1].kind == DIR and entry[1].entries:
                raise I.NotEmpty()
            d.detach(name)
            self._touch(d)
            self._unlinked(entry[1])

    def rename(self, sdir, sname, ddir, dname, viewer=None) -> None:
        sname, dname = check_name(sname), check_name(dname)
        with self._guard:
            sd, dd = self._dir(sdir), self._dir(ddir)
            if viewer is not None:
                mine = self._stagings.mine(sd.oid, sname, viewer)
                if mine:
                    self._rename_transient(mine, dd, dname, viewer)
                    return
            entry = sd.entries.get(sname)
            if entry is None:
                raise I.NotFound()
            src = entry[1]
            old = dd.entries.get(dname)
            if old is not None and old[1] is src:
                return  # two links to one file: POSIX does nothing
            if src.kind == DIR and self._inside(dd, src):
                raise I.Invalid("a directory cannot move into itself")
            if old is not None:
                self._check_replace(src, old[1])
            elif src.kind == DIR and self._stagings.mine(dd.oid, dname, viewer):
                # The viewer sees a (new, regular) file there: a directory cannot replace it.
                raise I.NotDir()
            self._move(sd, sname, dd, dname)
            if viewer is not None:
                for s in self._stagings.mine(dd.oid, dname, viewer):
                    self._stagings.release(s)

    def _inside(self, d: Inode, src: Inode) -> bool:
        """Is directory `d` the directory `src` or below it?"""
        while True:
            if d is src:
                return True
            if d.oid == ROOT_ID:
                return False
            d = self.disk.objects[d.parent]

    @staticmethod
    def _check_replace(src: Inode, victim: Inode) -> None:
        if victim.kind == DIR:
            if src.kind != DIR:
                raise I.IsDir()
            if victim.entries:
                raise I.NotEmpty()
        elif src.kind == DIR:
            raise I.NotDir()

    def _move(self, sd: Inode, sname: bytes, dd: Inode, dname: bytes) -> None:
        """rename(2) once the checks passed: the name keeps its place among the object's
        names; a replaced name keeps its cookie."""
        src = sd.entries[sname][1]
        at = None if src.kind == DIR else src.names.index((sd.oid, sname))
        cookie = victim = None
        if dname in dd.entries:
            cookie, victim = dd.detach(dname)
        sd.detach(sname)
        dd.attach(dname, src, cookie, at)
        self._touch(sd)
        if dd is not sd:
            self._touch(dd)
        self._touch(src, content=False)
        if victim is not None:
            self._unlinked(victim)

    def _rename_transient(self, mine, dd: Inode, dname: bytes, viewer) -> None:
        """A file under construction moves its publication target (and its reservation)."""
        entry = dd.entries.get(dname)
        if entry is not None and entry[1].kind == DIR:
            raise I.IsDir()
        if mine[0]._state.target == (dd.oid, dname):
            return
        for other in self._stagings.mine(dd.oid, dname, viewer):
            self._stagings.release(other)
        for s in mine:
            self._stagings.move(s, dd.oid, dname, dd.new_cookie())

    def link(self, handle, dir, name) -> None:
        name = check_name(name)
        with self._guard:
            inode = self._obj(handle)
            self._published_file(inode, False, "cannot link a file that is not published yet")
            d = self._dir(dir)
            if name in d.entries or self._stagings.reserved(d.oid, name):
                raise I.Exists()
            d.attach(name, inode)
            self._touch(d)
            self._touch(inode, content=False)

    # ---- attributes
    def setattr(self, handle, changes: I.SetAttrs) -> I.Attrs:
        """In place on the published object and on every staging of it (so a version
        published later keeps the change); a file under construction: on its staging."""
        with self._guard:
            inode = self._obj(handle)
            sts = self._stagings.of(inode.oid)
            if not (sts and sts[0].is_new):
                self._set(inode, changes)
            for s in sts:
                self._set(s._state.inode, changes)
            return self._view(inode, None)

    def _set(self, inode: Inode, c: I.SetAttrs) -> None:
        changed = False
        if c.uid is not None:
            inode.uid, changed = c.uid, True
        if c.gid is not None:
            inode.gid, changed = c.gid, True
        if c.mode is not None and inode.kind != LNK:  # a symlink's mode means nothing
            inode.mode, changed = c.mode & 0o7777, True
        if c.atime_ns is not None:
            inode.atime, changed = c.atime_ns, True
        if c.mtime_ns is not None:
            inode.mtime, changed = c.mtime_ns, True
        if changed:
            self._touch(inode, content=False)

    def statfs(self, handle) -> I.FsStats:
        with self._guard:
            self._obj(handle)
        return dataclasses.replace(_STATS)

    # ------------------------------------------------------------------ extended attributes
    def _xattr_inode(self, handle, viewer) -> Inode:
        """Where the object's attributes live: the published object, or a file under
        construction's staging (for its viewer; others get Stale)."""
        inode = self._obj(handle)
        s = self._stagings.new_file(inode.oid)
        if s is not None and viewer is not None and s.viewer != viewer:
            raise I.Stale("under construction by another client")
        return inode

    def getxattr(self, handle, name, viewer=None) -> bytes:
        key = I.xattr_name(name)
        with self._guard:
            value = self._xattr_inode(handle, viewer).xattrs.get(key)
        if value is None:
            raise I.NoXattr()
        return value

    def listxattr(self, handle, viewer=None) -> list[bytes]:
        with self._guard:
            return sorted(self._xattr_inode(handle, viewer).xattrs)

    def setxattr(self, handle, name, value, how=I.XattrHow.EITHER, viewer=None) -> tuple[int, int]:
        key = I.xattr_name(name)
        value = bytes(value)
        if len(value) > I.XATTR_SIZE_MAX:
            raise I.XattrTooBig(f"{len(value)} bytes")
        how = I.XattrHow(how)
        with self._guard:
            inode = self._xattr_inode(handle, viewer)
            if inode.kind not in _XATTR_KINDS:
                raise I.Permission("no user extended attributes on this kind of object")
            if how == I.XattrHow.CREATE and key in inode.xattrs:
                raise I.Exists()
            if how == I.XattrHow.REPLACE and key not in inode.xattrs:
                raise I.NoXattr()
            before = inode.change
            inode.xattrs[key] = value
            self._touch(inode, content=False)
            return before, inode.change

    def removexattr(self, handle, name, viewer=None) -> tuple[int, int]:
        key = I.xattr_name(name)
        with self._guard:
            inode = self._xattr_inode(handle, viewer)
            if inode.kind not in _XATTR_KINDS:
                raise I.Permission("no user extended attributes on this kind of object")
            if key not in inode.xattrs:
                raise I.NoXattr()
            before = inode.change
            del inode.xattrs[key]
            self._touch(inode, content=False)
            return before, inode.change

    # ------------------------------------------------------------------ content
    def open_version(self, handle) -> MemoryVersion:
        with self._guard:
            inode = self._obj(handle)
            self._published_file(inode)
            return MemoryVersion(self, inode, inode.oid)

    def read(self, handle, offset: int, count: int, nowait: bool = False) -> tuple[bytes, bool]:
        """Everything is in memory: `nowait` never has to wait."""
        if offset < 0 or count < 0:
            raise I.Invalid("negative offset or count")
        with self._guard:
            inode = self._obj(handle)
            self._published_file(inode)
            data = inode.pages.read(offset, count)
            return data, offset + len(data) >= inode.pages.size

    def seek(self, handle, offset: int, what) -> tuple[int, bool]:
        with self._guard:
            inode = self._obj(handle)
            self._published_file(inode)
            return inode.pages.seek(offset, what)
