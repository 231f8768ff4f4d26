"""Changing directories: MKDIR, SYMLINK, MKNOD, REMOVE, RENAME, LINK.

Each of these is one system call on the directory's O_PATH fd (names relative to it), with
the caches kept right: the directory's listing is dropped, a removed or replaced object's node
forgotten (its id leaves the database with the last link), a renamed object's name hint
moved. A viewer's own files under construction have a transient name only it sees: REMOVE of
that name releases it (the file publishes nothing), RENAME moves it (the record follows), and
an exclusive create's name is reserved against other creators.

`DirOps` is a mixin of `LocalBackend`. Every public method checks its names, then does all its
work under the backend lock (`_guard`); the helpers expect it held.
"""

from __future__ import annotations

import os
import stat as _stat

from .. import interface as I
from ..handles import INO, NLINK, generation, is_dir
from ..oserror import RENAME_ERRORS, maps_oserror
from .common import DIR, check_name
from .linux import statx
from .staging import LocalStaging

MKNOD_TYPE = {I.Kind.FIFO: _stat.S_IFIFO, I.Kind.SOCK: _stat.S_IFSOCK,
              I.Kind.BLK: _stat.S_IFBLK, I.Kind.CHR: _stat.S_IFCHR}


class DirOps:
    """`LocalBackend`'s directory changes (mixin; uses the resolver, the registry's transient
    names, `_dir_changed`; state: `_root_user`)."""

    @maps_oserror()
    def _make(self, dir, name, uid, gid, create, mode=None) -> bytes:
        """Create with `create(dfd, name)`, then owner, then mode (chown clears set-id bits)."""
        name = check_name(name)
        with self._guard:
            node, dfd = self._dir(dir)
            if self._reserved(node.id, name):
                raise I.Exists("reserved by an exclusive create")
            try:
                create(dfd, name)
            except FileNotFoundError:
                raise self._not_found(dfd) from None
            self._dir_changed(node.id)
            self._chown_at(dfd, name, uid, gid)
            if mode is not None:
                os.chmod(name, mode & 0o7777, dir_fd=dfd, follow_symlinks=False)
            st = statx(dfd, name)
            return self._id_for(st, node.id, name).handle

    def mkdir(self, dir, name, mode, uid, gid) -> bytes:
        def create(dfd, name):
            os.mkdir(name, 0o700, dir_fd=dfd)
        return self._make(dir, name, uid, gid, create, mode)

    def symlink(self, dir, name, target: bytes, mode, uid, gid) -> bytes:
        target = os.fsencode(target) if isinstance(target, str) else bytes(target)
        if not target or b"\0" in target:
            raise I.Invalid("bad symlink target")

        def create(dfd, name):
            os.symlink(target, name, dir_fd=dfd)
        return self._make(dir, name, uid, gid, create)

    def mknod(self, dir, name, kind, rdev, mode, uid, gid) -> bytes:
        try:
            ftype = MKNOD_TYPE[I.Kind(kind)]
        except (KeyError, ValueError):
            raise I.WrongType(f"mknod of {kind}") from None
        device = os.makedev(*rdev) if rdev and ftype in (_stat.S_IFBLK, _stat.S_IFCHR) else 0

        def create(dfd, name):
            os.mknod(name, ftype | 0o600, device, dir_fd=dfd)
        return self._make(dir, name, uid, gid, create, mode)

    def _chown_at(self, dfd, name, uid, gid) -> None:
        if self._root_user and (uid is not None or gid is not None):
            os.chown(name, -1 if uid is None else uid, -1 if gid is None else gid,
                     dir_fd=dfd, follow_symlinks=False)

    @maps_oserror(RENAME_ERRORS)
    def remove(self, dir, name, viewer=None) -> None:
        name = check_name(name)
        with self._guard:
            node, dfd = self._dir(dir)
            released = False
            if viewer is not None:
                for s in self._transients(node.id, name, viewer):
                    self._release_name(s)
                    released = True
            st = self._child(dfd, name)
            if st is None:
                if released:
                    return
                raise self._not_found(dfd)
            if is_dir(st):
                os.rmdir(name, dir_fd=dfd)
            else:
                os.unlink(name, dir_fd=dfd)
            self._dir_changed(node.id)
            self._unlinked(st, node.id, name)

    def _release_name(self, s: LocalStaging) -> None:
        """The transient name of `s` was removed (or replaced): publish will raise Gone."""
        self._tn_del(s)
        s.mark_gone()

    @maps_oserror(RENAME_ERRORS)
    def rename(self, sdir, sname, ddir, dname, viewer=None) -> None:
        sname, dname = check_name(sname), check_name(dname)
        with self._guard:
            snode, sfd = self._dir(sdir)
            dnode, dfd = self._dir(ddir)
            if viewer is not None and snode.id in self._transient:
                mine = self._transients(snode.id, sname, viewer)
                if mine:
                    self._rename_transient(mine, dnode, dfd, dname, viewer)
                    return
            sst = self._child(sfd, sname)
            if sst is None:
                raise self._not_found(sfd)
            dst = self._child_any(dfd, dname)
            if dst is not None:
                if self._is_state(dst):
                    raise I.Permission("reserved name")
                if dst[INO] == sst[INO] and generation(dst) == generation(sst):
                    return  # two links to one file: POSIX does nothing
            elif is_dir(sst) and viewer is not None and \
                    self._transients(dnode.id, dname, viewer):
                # The viewer sees a (new, regular) file there: a directory cannot replace it.
                raise I.NotDir()
            os.rename(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd)
            self._dir_changed(snode.id)
            self._dir_changed(dnode.id)
            if viewer is not None:
                for s in self._transients(dnode.id, dname, viewer):
                    self._release_name(s)
            oid = self._by_ino.get((sst[INO], generation(sst)))
            node = self._nodes.get(oid) if oid is not None else None
            if node is None:
                row = self._db.find(sst[INO], generation(sst))
                node = self._remember(row) if row is not None else None
            if node is not None:
                was_hint = (node.parent, node.name) == (snode.id, sname)
                if node.kind == DIR or sst[NLINK] <= 1 or was_hint:
                    self._set_hint(node, dnode.id, dname)
                else:
                    if node.alt:
                        node.alt.discard((snode.id, sname))
                    self._add_alt(node, dnode.id, dname)
            if dst is not None:
                self._unlinked(dst, dnode.id, dname)

    def _rename_transient(self, mine, dnode, dfd, dname, viewer) -> None:
        dst = self._child_any(dfd, dname)
        if dst is not None:
            if self._is_state(dst):
                raise I.Permission("reserved name")
            if is_dir(dst):
                raise I.IsDir()
        if mine[0].target_dir == dnode.handle and mine[0].target_name == dname:
            return
        for other in self._transients(dnode.id, dname, viewer):
            self._release_name(other)
        for s in mine:
            self._tn_del(s)
            s.retarget(dnode.handle, dname)
            self._tn_add(s)
            node = self._nodes.get(s.oid)
            if node is not None:
                node.parent, node.name = dnode.id, dname
            self._db.set_hint(s.oid, dnode.id, dname)
            s.write_record(durable=False)

    @maps_oserror()
    def link(self, handle, dir, name) -> None:
        name = check_name(name)
        with self._guard:
            node = self._node(handle)
            self._published_file(node, False, "cannot link a file that is not published yet")
            dnode, dfd = self._dir(dir)
            if self._child_any(dfd, name) is not None or self._reserved(dnode.id, name):
                raise I.Exists()
            pfd, pname, _ = self._find_file(node)
            os.link(pname, name, src_dir_fd=pfd, dst_dir_fd=dfd, follow_symlinks=False)
            self._dir_changed(dnode.id)
            self._add_alt(node, dnode.id, name)
