"""Extended attributes: GETXATTR, LISTXATTR, SETXATTR, REMOVEXATTR (NFSv4.2, RFC 8276).

A client's attribute NAME is stored as `user.NAME` on the object's inode: a published object
through an O_PATH fd opened with O_NOFOLLOW (via /proc/self/fd, so a symlink is never
followed), a file under construction on its staging data file (the inode that gets
published). Copy-on-write versions get the published version's `user.*` attributes at publish
(`_carry_xattrs`, under the lock, just before the rename; ACLs and other namespaces are not
carried over). The server's own REC_XATTR (record.py) does not exist for clients. Whether the
file system stores user xattrs at all (tmpfs before Linux 6.6 does not) is probed once, on
the state dir (`_user_xattrs`), and reported by `statfs().xattrs`.

`Xattrs` is a mixin of `LocalBackend`; state: `_xattrs` (probed: stored?), `_rec_xattrs` (keep
new files' records in an attribute). The client operations check the name (and value) first,
then find the object and call the file system under the backend lock (`_guard`);
`_xattr_target` and `_carry_xattrs` expect it held, `_user_xattrs` and `_record_xattrs` need
none (a probe twice at once gives the same answer).
"""

from __future__ import annotations

import errno
import os

from .. import interface as I
from ..handles import NLINK, Node
from ..oserror import from_oserror, maps_oserror
from .common import DIR, NO_XATTRS, close_quiet
from .linux import HAVE_PROC_FD, O_PATH_NOFOLLOW, fd_path, fstatx
from .record import REC_XATTR

USER = b"user."


def xattr_key(name, reading: bool = False) -> bytes:
    """A client's extended attribute name (without "user.") as the file system's name. The
    server's own (REC_XATTR) does not exist for reading and cannot be changed."""
    key = USER + I.xattr_name(name)
    if key == REC_XATTR:
        raise I.NoXattr() if reading else I.Permission("reserved extended attribute name")
    return key


def xattr_error(e: OSError) -> I.BackendError:
    """The backend error for an xattr call's OSError (beyond `from_oserror`: no such
    attribute, no user xattrs on this file system, too big)."""
    if e.errno == errno.ENODATA:
        return I.NoXattr()
    if e.errno in NO_XATTRS:
        return I.NotSupported("the file system stores no user extended attributes")
    if e.errno in (errno.E2BIG, errno.ERANGE):
        return I.XattrTooBig(os.strerror(e.errno))
    return from_oserror(e)


class Xattrs:
    """`LocalBackend`'s extended attributes (mixin; see the module text)."""

    def _record_xattrs(self) -> bool:
        """Keep new files' staging records in an attribute of their data file?"""
        if self._rec_xattrs is None:
            self._rec_xattrs = self._user_xattrs()
        return self._rec_xattrs

    def _user_xattrs(self) -> bool:
        """Does the file system store user.* attributes? (Probed once, on the state dir.)"""
        ok = self._xattrs
        if ok is None:
            try:
                os.setxattr(self._staging_fd, b"user.nfsd-probe", b"")
                os.removexattr(self._staging_fd, b"user.nfsd-probe")
                ok = True
            except OSError as e:
                ok = e.errno not in NO_XATTRS  # other refusals are answered per operation
            self._xattrs = ok
        return ok

    def _xattr_target(self, handle, viewer) -> tuple[object, int | None]:
        """Lock held. Where the object's attributes live: a file under construction's data fd,
        else a /proc/self/fd path of an O_PATH, O_NOFOLLOW fd of the published object (following
        that magic link reaches the object itself, never a symlink's target); plus an fd to
        close afterwards."""
        node = self._node(handle)
        s = self._new_staging(node.id)
        if s is not None:
            if viewer is not None and s.viewer != viewer:
                raise I.Stale("under construction by another client")
            return s.fd, None
        if not HAVE_PROC_FD:  # pragma: no cover - Linux without /proc
            raise I.NotSupported("extended attributes need /proc")
        if node.kind == DIR:
            fd = self._dirfd(node)
            if fstatx(fd)[NLINK] == 0:
                raise I.Stale("directory removed")
            return fd_path(fd), None
        pfd, name, _ = self._find_file(node)
        fd = os.open(name, O_PATH_NOFOLLOW, dir_fd=pfd)
        if not self._same(fstatx(fd), node):
            os.close(fd)
            raise I.Stale("replaced")
        return fd_path(fd), fd

    @maps_oserror(to=xattr_error)
    def getxattr(self, handle, name, viewer=None) -> bytes:
        key = xattr_key(name, reading=True)
        with self._guard:
            target, own = self._xattr_target(handle, viewer)
            try:
                return os.getxattr(target, key)
            finally:
                close_quiet(own)

    @maps_oserror(to=xattr_error)
    def listxattr(self, handle, viewer=None) -> list[bytes]:
        with self._guard:
            target, own = self._xattr_target(handle, viewer)
            try:
                names = [os.fsencode(n) for n in os.listxattr(target)]
            finally:
                close_quiet(own)
        return sorted(n[len(USER):] for n in names
                      if n.startswith(USER) and len(n) > len(USER) and n != REC_XATTR)

    def setxattr(self, handle, name, value, how=I.XattrHow.EITHER, viewer=None) -> tuple[int, int]:
        key = xattr_key(name)
        value = bytes(value)
        if len(value) > I.XATTR_SIZE_MAX:
            raise I.XattrTooBig(f"{len(value)} bytes")
        flags = {I.XattrHow.EITHER: 0, I.XattrHow.CREATE: os.XATTR_CREATE,
                 I.XattrHow.REPLACE: os.XATTR_REPLACE}[I.XattrHow(how)]
        try:
            return self._change_xattr(handle, viewer,
                                      lambda t: os.setxattr(t, key, value, flags))
        except I.NoSpace:
            # ext4 answers ENOSPC for attributes that do not fit its one attribute block,
            # however much space is free: with free space, the value cannot be stored.
            if os.statvfs(self._root_fd).f_bavail > 0:
                raise I.XattrTooBig(f"{len(value)} bytes do not fit") from None
            raise

    def removexattr(self, handle, name, viewer=None) -> tuple[int, int]:
        key = xattr_key(name)
        return self._change_xattr(handle, viewer, lambda t: os.removexattr(t, key))

    @maps_oserror(to=xattr_error)
    def _change_xattr(self, handle, viewer, change) -> tuple[int, int]:
        with self._guard:
            target, own = self._xattr_target(handle, viewer)
            try:
                before = os.stat(target).st_ctime_ns
                change(target)
                after = os.stat(target).st_ctime_ns
            finally:
                close_quiet(own)
        return before, after

    def _carry_xattrs(self, pfd: int, name: bytes, node: Node, fd: int) -> None:
        """Lock held. Give the new version `fd` the published version's user.* attributes."""
        src = os.open(name, O_PATH_NOFOLLOW, dir_fd=pfd)
        try:
            if not self._same(fstatx(src), node):
                raise I.Stale("replaced while publishing")
            path = fd_path(src)
            try:
                names = [n for n in os.listxattr(path)
                         if n.startswith("user.") and os.fsencode(n) != REC_XATTR]
            except OSError as e:
                if e.errno in NO_XATTRS:
                    return
                raise
            want = {}
            for n in names:
                try:
                    want[n] = os.getxattr(path, n)
                except OSError as e:
                    if e.errno != errno.ENODATA:  # removed meanwhile
                        raise
            for n in os.listxattr(fd):
                if n.startswith("user.") and n not in want:
                    os.removexattr(fd, n)  # left by an earlier attempt
            for n, v in want.items():
                os.setxattr(fd, n, v)
        finally:
            os.close(src)
