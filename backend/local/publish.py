"""The write-once lifecycle, backend side: making staging objects and publishing them.

`create_staged` makes a new file's data file in the staging dir and reserves its name (only
its viewer sees it; the directory's mtime/ctime move at once, dirchange.py); `stage_version`
makes a private version of a published file (FICLONE, else a sparse copy-on-write overlay,
overlay.py). `publish` is the only step that changes what clients see: the data file is
renamed over the target name. For a new version the object id moves to the new inode: handle
and fileid stay, `change` (ctime) moves; the new inode takes the published version's mode,
owner and `user.*` attributes (other hard links to the old inode keep the old content, as
with an editor's write-and-rename). Before a version's rename its record names the target
(`publishing`), so that start-up can tell whether the rename happened (recovery.py).

Durability: publish first makes unsynced staged data durable, then renames, then fsyncs the
directory (shared with other publishes into it that arrive at the same time: GroupSync);
`durable=False` skips both fsyncs (`sync()` is always durable). `publish(sync=False)` still
fsyncs at once while fsyncs average under `inline_sync`; otherwise it returns the fsync as a
callable for a worker thread.

Lock (`_guard`): `create_staged` and `create_verifier` run under it (the data file's creation
and first record too). `stage_version` takes it to find and open the published version and
make the data file, clones (or sizes) it and writes its first record outside it, and takes it
again to register it. `publish` copies from the base and fdatasyncs outside it, does the
checks, the owner and attributes, the record, the rename and the cache and database updates
under it, and fsyncs the directory outside it.
"""

from __future__ import annotations

import os
import secrets
import stat as _stat
import time

from .. import interface as I
from ..handles import GID, INO, MODE, NLINK, SIZE, UID, generation, is_dir
from ..oserror import RENAME_ERRORS, maps_oserror, oserrors
from .common import O_LISTDIR, O_READ, REG, atime_ns, check_name, close_quiet, ctime_ns, \
    mtime_ns, unlink_quiet
from .linux import HAVE_PROC_FD, clone, fstatx
from .staging import LocalStaging


class Publishing:
    """`LocalBackend`'s staging objects from birth to publish (mixin; see the module text;
    uses the resolver, the registry, `_touch_dir`/`_changed_dir`, `_carry_xattrs`)."""

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
                # (entry_durable: in xattr mode the first durable record is an fsync of
                # this new file, which on some file systems makes its entry durable too)
                s = LocalStaging(backend=self, sid=sid, handle=node.handle, is_new=True,
                                 viewer=viewer, record=record, fd=fd, ino=dst[INO],
                                 gen=generation(dst), staging_fd=self._staging_fd, size=0,
                                 created_ns=time.time_ns(), target=(dnode.handle, name),
                                 exclusive=bool(exclusive), verifier=verifier, dirty=True,
                                 record_in_xattr=self._record_xattrs(),
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
