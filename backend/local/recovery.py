"""Start-up recovery: staging objects resumed from their records.

At start-up every record in the staging directory (`<sid>.rec`, or a new file's REC_XATTR on
`<sid>.data` where there is no .rec file; `.rec.tmp` leftovers are removed, a data file without
any record is one created just before a crash and is removed too) is read back:

* a record whose data file still exists is resumed as an unpublished staging object (a
  version's base is opened again if it is still the version it started from; otherwise, unless
  its extents cover the whole base range, it is quarantined: `staging.quarantined`,
  `record['quarantined']`, and publishing it raises IOFailure);
* a record whose data file is gone was being published: if its inode sits at the target
  (`publishing`, or a new file's name) the rename happened and the publish is finished
  (database updated, record removed); otherwise the record is a problem.

`rename` is the only step that changes what is published, so a crash leaves either the old or
the new version, never a mix. Unreadable records are skipped and listed by `problems()`.

`Recovery` is a mixin of `LocalBackend`; it runs from the constructor, before any other
thread can see the backend, so it takes no lock.
"""

from __future__ import annotations

import os

from .. import interface as I
from ..handles import INO, SIZE, generation, handle_id
from .common import O_READ, REG, mtime_ns, unlink_quiet
from .linux import fstatx
from .record import load_record, read_record_file, read_record_xattr
from .staging import LocalStaging


class Recovery:
    """Resuming staging objects at start-up (mixin; see the module text)."""

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
