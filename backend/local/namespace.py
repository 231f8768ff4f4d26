"""Looking objects up and their attributes: GETATTR, LOOKUP, parent, READLINK, SETATTR, STATFS.

GETATTR of a cached object is a dict look-up and one statx: while the statx bytes are those
seen last time (`Node.seen`), the `Attrs` made then are handed out again. LOOKUP remembers the
node last found at (directory, name) (`_names`, cleared when full) and answers from it while
the entry's statx bytes are unchanged. A viewer sees its own files under construction (their
staging data file's attributes) and its own unpublished versions (`_view`). Attributes come
from the file system at every request; `change` is the ctime (directories: see dirchange.py).

Lock: every public method here takes the backend lock (`_guard`) for all its work on nodes
and the file system; outside it run only the name check (`lookup_attrs`), `statfs`'s xattr
probe, and `setattr`'s closing GETATTR (which takes the lock again).
"""

from __future__ import annotations

import os

from .. import interface as I
from ..handles import INO, ROOT_ID, Node, generation, pack_statx, unpack_statx
from ..oserror import from_oserror, maps_oserror
from .common import DIR, LNK, atime_ns, check_name, mtime_ns, to_attrs
from .linux import HAVE_PROC_FD, O_PATH_NOFOLLOW, fd_path, fstatx, fstatx_key, statx, statx_key


class Namespace:
    """`LocalBackend`'s look-ups and attributes (mixin; uses the resolver, the registry's
    `_view`, `_bumped`; state: `_names`)."""

    def getattr(self, handle, viewer=None) -> I.Attrs:
        with self._guard:
            try:
                node = self._node(handle)
                sts = self._by_oid.get(node.id)
                if sts:
                    s = self._view(sts, viewer)
                    if s is not None:
                        return s.attrs()
                return self._node_attrs(node)
            except OSError as e:
                raise from_oserror(e) from None

    def _node_attrs(self, node: Node) -> I.Attrs:
        """Attributes of a published object (Stale if it is gone). While a new statx gives the
        bytes it gave last time, the Attrs made then are handed out again (`Node.seen`)."""
        seen = node.seen
        if seen is not None and self._restat(node) == seen[0]:
            return seen[1]
        st = self._stat_node(node)
        a = to_attrs(st, node.id)
        if self._bumps and a.kind == I.Kind.DIR:
            self._bumped(a)
        node.seen = (pack_statx(*st), a)
        return a

    def _restat(self, node: Node):
        """`statx_key` of a published object where it was last found, or None (not there, or
        its directory not at hand): `_stat_node` then finds it the long way."""
        try:
            if node.kind == DIR:
                return fstatx_key(self._dirfd(node))
            if node.name is None or node.parent is None:
                return None
            p = self._cached(node.parent)
            if p is None or p.kind != DIR:
                return None
            return statx_key(self._dirfd(p), node.name)
        except (OSError, I.BackendError):
            return None

    def lookup(self, dir, name, viewer=None) -> bytes:
        return self.lookup_attrs(dir, name, viewer, False)[0]

    def lookup_attrs(self, dir, name, viewer=None, want_attrs=True):
        name = check_name(name)
        with self._guard:
            try:
                node, dfd = self._dir(dir)
                if viewer is not None and node.id in self._transient:
                    mine = self._transients(node.id, name, viewer)
                    if mine:
                        s = mine[-1]
                        return s.handle, (s.attrs() if want_attrs else None)
                raw = self._child_raw(dfd, name)
                if raw is None:
                    raise self._not_found(dfd)
                key = (node.id, name)
                child = self._names.get(key)
                seen = None if child is None else child.seen
                if seen is not None and seen[0] == raw and self._cached(child.id) is child:
                    a = seen[1]  # the same object, unchanged since it was last looked up here
                else:
                    st = unpack_statx(raw)
                    if not self._visible(st):
                        raise self._not_found(dfd)
                    child = self._id_for(st, node.id, name)
                    a = to_attrs(st, child.id)
                    if self._bumps and a.kind == I.Kind.DIR:
                        self._bumped(a)
                    child.seen = (raw, a)
                    names = self._names
                    if len(names) >= self._node_cap:
                        names.clear()
                    names[key] = child
                if not want_attrs:
                    return child.handle, None
                sts = self._by_oid.get(child.id)
                if sts:  # versions being written: what getattr shows this viewer
                    s = self._view(sts, viewer)
                    if s is not None:
                        return child.handle, s.attrs()
                return child.handle, a
            except OSError as e:
                raise from_oserror(e) from None

    @maps_oserror()
    def parent(self, handle) -> bytes:
        with self._guard:
            node = self._node(handle)
            if node.id == ROOT_ID:
                return node.handle
            s = self._new_staging(node.id)
            if s is not None:
                return s.target_dir
            if node.kind != DIR:
                self._find_file(node)
                return self._node_by_id(node.parent).handle
            self._stat_node(node)  # Stale if removed
            pst = statx(self._dirfd(node), b"..")
            try:
                p = self._node_by_id(node.parent)
                if p.kind == DIR and self._same(pst, p):
                    return p.handle
            except I.Stale:
                pass
            # moved by a local program: find the new parent among known directories
            oid = self._by_ino.get((pst[INO], generation(pst)))
            if oid is None:
                row = self._db.find(pst[INO], generation(pst))
                if row is None:
                    raise I.Stale("parent unknown (moved outside the export?)")
                oid = row[0]
            p = self._node_by_id(oid)
            pfd = self._dirfd(p)
            found = self._search(pfd, node)
            if found is not None:
                self._set_hint(node, p.id, found[0])
            return p.handle

    @maps_oserror()
    def readlink(self, handle) -> bytes:
        with self._guard:
            node = self._node(handle)
            if node.kind != LNK:
                raise I.NotSymlink()
            pfd, name, _ = self._find_file(node)
            return os.readlink(name, dir_fd=pfd)

    @maps_oserror()
    def setattr(self, handle, changes: I.SetAttrs) -> I.Attrs:
        with self._guard:
            node = self._node(handle)
            sts = list(self._by_oid.get(node.id, ()))
            if not (sts and sts[0].is_new):
                self._setattr_published(node, changes)
            for s in sts:
                self._setattr_fd(s.fd, changes)
        return self.getattr(handle)

    def _setattr_fd(self, fd: int, c: I.SetAttrs) -> None:
        if c.uid is not None or c.gid is not None:
            os.fchown(fd, -1 if c.uid is None else c.uid, -1 if c.gid is None else c.gid)
        if c.mode is not None:
            os.fchmod(fd, c.mode & 0o7777)
        if c.atime_ns is not None or c.mtime_ns is not None:
            st = fstatx(fd)
            os.utime(fd, ns=(atime_ns(st) if c.atime_ns is None else c.atime_ns,
                             mtime_ns(st) if c.mtime_ns is None else c.mtime_ns))

    def _setattr_published(self, node: Node, c: I.SetAttrs) -> None:
        if node.kind == LNK:
            pfd, name, st = self._find_file(node)
            if c.uid is not None or c.gid is not None:
                os.chown(name, -1 if c.uid is None else c.uid, -1 if c.gid is None else c.gid,
                         dir_fd=pfd, follow_symlinks=False)
            if c.atime_ns is not None or c.mtime_ns is not None:
                os.utime(name, dir_fd=pfd, follow_symlinks=False,
                         ns=(atime_ns(st) if c.atime_ns is None else c.atime_ns,
                             mtime_ns(st) if c.mtime_ns is None else c.mtime_ns))
            return  # a symlink's mode means nothing on Linux: chmod is a no-op
        if node.kind == DIR:
            fd, own = self._dirfd(node), False
        else:
            pfd, name, _ = self._find_file(node)
            fd, own = os.open(name, O_PATH_NOFOLLOW, dir_fd=pfd), True
        try:
            st = fstatx(fd)
            if not self._same(st, node):
                raise I.Stale("replaced")
            if HAVE_PROC_FD:
                path = fd_path(fd)  # the inode itself, never a symlink
                if c.uid is not None or c.gid is not None:
                    os.chown(path, -1 if c.uid is None else c.uid, -1 if c.gid is None else c.gid)
                if c.mode is not None:
                    os.chmod(path, c.mode & 0o7777)
                if c.atime_ns is not None or c.mtime_ns is not None:
                    os.utime(path, ns=(atime_ns(st) if c.atime_ns is None else c.atime_ns,
                                       mtime_ns(st) if c.mtime_ns is None else c.mtime_ns))
            else:  # pragma: no cover - Linux without /proc
                if node.kind == DIR:
                    raise I.IOFailure("setattr of a directory needs /proc")
                if c.uid is not None or c.gid is not None:
                    os.chown(name, -1 if c.uid is None else c.uid, -1 if c.gid is None else c.gid,
                             dir_fd=pfd, follow_symlinks=False)
                if c.mode is not None:
                    os.chmod(name, c.mode & 0o7777, dir_fd=pfd, follow_symlinks=False)
                if c.atime_ns is not None or c.mtime_ns is not None:
                    os.utime(name, dir_fd=pfd, follow_symlinks=False,
                             ns=(atime_ns(st) if c.atime_ns is None else c.atime_ns,
                                 mtime_ns(st) if c.mtime_ns is None else c.mtime_ns))
        finally:
            if own:
                os.close(fd)

    @maps_oserror()
    def statfs(self, handle) -> I.FsStats:
        with self._guard:
            node = self._node(handle)
            if self._new_staging(node.id) is None:
                self._stat_node(node)
            v = os.statvfs(self._root_fd)
        return I.FsStats(v.f_files, v.f_ffree, v.f_favail, v.f_blocks * v.f_frsize,
                         v.f_bfree * v.f_frsize, v.f_bavail * v.f_frsize,
                         min(v.f_namemax, I.NAME_MAX), self._user_xattrs(), self.clone_blksize)
