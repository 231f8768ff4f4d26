"""The staging record: what a staging object is, on disk, so that it survives a restart.

A record is JSON: id, handle, is_new, viewer (hex), the protocol's `record` dict, the data
file's inode and generation, the publication target (new files: dir handle + name),
`exclusive`, `verifier`, `gone` (its name was removed), `dirty`, the size when it was written,
and for copy-on-write versions without reflink the base version's identity (inode, generation,
size, mtime), the base limit and the written extents (see overlay.py); `publishing` (a
version's publish target, written just before the rename), `quarantined`.

Where it lives: a new file's record is the REC_XATTR attribute of its own data file where the
file system stores user xattrs (`record_xattrs`), so one fsync makes data and record durable;
else (and for versions, and for good once an attribute is refused for room) `<sid>.rec` in the
staging directory. The first record is written in place when the staging object is created
(one write(2), or one setxattr(2): a killed server leaves all or nothing); a .rec file is
replaced later by tmp + rename. At start-up a .rec file wins over an attribute. `sync()`
makes data and record durable: fdatasync of the data, then, if the record changed (also if
`record` was changed in place), fsync tmp, rename, fsync the staging dir; in xattr mode one
fsync of the data file, and the first time the staging dir's unless the file system makes a
new file's entry durable with it (ext4, xfs, btrfs: backend/fsinfo.py). The attribute is
written again only when the record changes, and removed just after the publish rename
(`drop_record_xattr`; a crash in between leaves it on the published file, hidden from
clients and never carried to a later version). Until the first `sync()` a staging object
survives kill -9 but not a power loss.

`StagingRecord` is a mixin of `LocalStaging`: it writes the record (under the staging
object's `_rlock`, as `close_fds` is). Its fields: `_rec_dirty` (changed since written),
`_rec_unsynced` (xattr mode: written, not fsync'ed), `_xrec` (xattr mode), `_entry_durable`
(the data file's staging-directory entry is durable), `_publishing`, `_written_record`.
`read_record_xattr`, `read_record_file` and `load_record` read records back (start-up, and
`nfsd inspect`).
"""

from __future__ import annotations

import errno
import json
import os
import time

from .. import interface as I
from ..handles import HANDLE_LEN
from .common import NO_XATTRS

# Where a new file's staging record lives when the file system stores user xattrs: on its own
# data file, so one fsync makes data and record durable. Hidden from and refused to clients.
REC_XATTR = b"user.nfsd.staging-record"
# setxattr refusals after which the record goes to a file instead (no room, too big, no xattrs).
_XATTR_FULL = {errno.ENOSPC, errno.E2BIG, errno.ERANGE, errno.EDQUOT, errno.EOPNOTSUPP,
               errno.ENOTSUP}
STAGING_KEY = "staging"  # GroupSync key of the staging directory (directories: their ids)


def read_record_xattr(dir_fd: int, name: str) -> bytes | None:
    """The staging record kept in data file `name`'s REC_XATTR, or None."""
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        return os.getxattr(fd, REC_XATTR)
    except OSError as e:
        if e.errno == errno.ENODATA or e.errno in NO_XATTRS:
            return None
        raise
    finally:
        os.close(fd)


def read_record_file(dir_fd: int, name: str) -> bytes:
    """The bytes of the .rec file `name`."""
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        raw = b""
        while chunk := os.read(fd, 1 << 20):
            raw += chunk
    finally:
        os.close(fd)
    return raw


def load_record(raw: bytes, sid: str, instance: bytes) -> tuple[dict, bytes]:
    """(record, handle) of staging object `sid` of the state dir `instance`; ValueError (or
    KeyError, TypeError) if `raw` is not one."""
    rec = json.loads(raw)
    if not isinstance(rec, dict) or rec.get("v") != 1 or rec.get("id") != sid:
        raise ValueError("not a staging record of this version")
    handle = bytes.fromhex(rec["handle"])
    if len(handle) != HANDLE_LEN or handle[:8] != instance:
        raise ValueError("record belongs to another state dir")
    return rec, handle


class StagingRecord:
    """Writing a staging object's record (see the module text)."""

    def _start_record(self, in_xattr: bool, entry_durable: bool) -> None:
        self._rec_dirty = True  # the record changed since it was written
        self._rec_unsynced = False  # (xattr mode) written as it is, but not fsync'ed yet
        self._xrec = in_xattr  # the record is the data file's REC_XATTR, not a .rec file
        self._entry_durable = entry_durable  # the data file's staging dir entry was fsync'ed
        self._publishing = None
        self._written_record = None  # `record` as last written, to notice in-place changes

    @property
    def record_name(self) -> str:
        return f"{self.id}.rec"

    def _record_json(self) -> str:
        try:
            return json.dumps(self.record, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError) as e:
            raise I.Invalid(f"record is not JSON: {e}") from None

    def _to_json(self) -> dict:
        return {
            "v": 1, "id": self.id, "handle": self.handle.hex(), "is_new": self.is_new,
            "viewer": self.viewer.hex(), "record": self.record, "ino": self.ino, "gen": self.gen,
            "dir": None if self.target_dir is None else self.target_dir.hex(),
            "name": None if self.target_name is None else self.target_name.hex(),
            "exclusive": self.exclusive,
            "verifier": None if self.verifier is None else bytes(self.verifier).hex(),
            "gone": self.gone, "dirty": self.dirty, "size": self._size,
            "base": self._base_ident, "limit": self._limit,
            "extents": [[s, e] for s, e in zip(self._starts, self._ends)],
            "quarantined": self.quarantined, "publishing": self._publishing,
            "created_ns": self._created_ns, "written_ns": time.time_ns(),
        }

    def write_record(self, durable: bool, first: bool = False) -> None:
        """Replace the record atomically; durable: also make it (and, in xattr mode, the data)
        reach the disk. Raises OSError (the caller maps it).

        xattr mode (`_xrec`): one setxattr(2) on the data file; durable: fsync of the data file
        (data, size and attribute together) and, the first time, of the staging directory.
        File mode: first: there is no record yet, write it in place (one small write(2): a
        killed process leaves all of it or none of it); otherwise tmp + rename; durable: fsync
        the file and the staging directory. A setxattr refused for room (the client's own
        attributes share the space) moves the record to a file for good."""
        with self._rlock:
            if self._finished:
                return
            written = self._record_json()
            try:
                data = json.dumps(self._to_json(), separators=(",", ":")).encode()
            except (TypeError, ValueError) as e:
                raise I.Invalid(f"record is not JSON: {e}") from None
            if self._xrec:
                try:
                    os.setxattr(self.fd, REC_XATTR, data)
                except OSError as e:
                    if e.errno not in _XATTR_FULL:
                        raise
                    self._to_file_record(data, durable)
                else:
                    if durable:
                        self._fsync_with_record()
                    self._rec_unsynced = not durable
                    self._rec_dirty = False  # a later sync() needs only the fsync
                    self._written_record = written
                    return
            else:
                self._write_file_record(data, durable, first)
            self._rec_dirty = not durable
            self._written_record = written

    def _fsync_with_record(self) -> None:
        """xattr mode, `_rlock` held: one fsync of the data file makes its data, size and
        record attribute durable; the first time also its staging directory entry, unless
        the file system's fsync of a new file already did (`_entry_durable` set at creation)."""
        os.fsync(self.fd)
        self._unsynced = False
        self._rec_unsynced = False
        if not self._entry_durable:
            self._syncs.sync(STAGING_KEY, self._sfd)
            self._entry_durable = True

    def _to_file_record(self, data: bytes, durable: bool) -> None:
        """Leave xattr mode: the record becomes a file (which wins over a stale attribute at
        recovery, so the attribute is removed only after)."""
        self._xrec = False
        if durable and self._unsynced:
            os.fdatasync(self.fd)
            self._unsynced = False
        self._write_file_record(data, durable, first=True)
        try:
            os.removexattr(self.fd, REC_XATTR)
        except OSError:
            pass

    def _write_file_record(self, data: bytes, durable: bool, first: bool) -> None:
        tmp = self.record_name if first else self.record_name + ".tmp"
        flags = os.O_EXCL if first else os.O_TRUNC
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | flags | os.O_CLOEXEC, 0o600,
                     dir_fd=self._sfd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if not first:
            os.rename(tmp, self.record_name, src_dir_fd=self._sfd, dst_dir_fd=self._sfd)
        if durable:
            self._syncs.sync(STAGING_KEY, self._sfd)

    def drop_record_xattr(self) -> None:
        """Just published (renamed): a new file's record attribute goes. A crash before this
        leaves a published file with a stale (hidden) record, never a staged file without one."""
        if self._xrec:
            try:
                os.removexattr(self.fd, REC_XATTR)
            except OSError:
                pass
