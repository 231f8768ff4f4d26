"""The local backend: the storage interface (`backend/interface.py`) over a local directory,
with write-once files.

Published files live in the export directory as ordinary files; a file being written lives in
the state directory until it is published by one `rename(2)`, so readers only ever see whole
versions. `LocalBackend(export_dir, state_dir=None, **options)` (options: backend.py); its
staging objects are `LocalStaging` (staging.py). What the files are for an operator:
docs/operations.md ("State directory"); the rules clients see: docs/semantics.md.

On disk::

    DIR/                      the export (what clients see)
    DIR/.nfsd/                state dir (default; never visible to clients; same file system)
        lock                  flock'ed while a LocalBackend runs (one server per state dir)
        handles.db            SQLite (WAL, synchronous=NORMAL): object id -> inode, generation,
                              (parent id, name) hint, kind, EXCLUSIVE4 verifier (handles.py)
        handles.db-wal/-shm   SQLite's
        staging/<sid>.data    content of an unpublished version (the inode that gets published)
        staging/<sid>.rec     its record (record.py), unless it is an attribute of the .data
        staging/<sid>.rec.tmp a record being replaced (removed at start-up)

Crash safety: `rename` is the only step that changes what is published. A staging object's
record is on disk from its creation (durable from its first `sync()`); before a version's
rename the record names the target; start-up finishes a publish whose rename happened and
resumes everything else as unpublished (recovery.py).

One concern per module (each module's text says which of its methods take the lock):

    backend.py    LocalBackend: construction, close, the lock (`_Guard`); composed of the mixins
    resolver.py   handles -> nodes, directory fds, finding objects (after local renames too)
    registry.py   the staging objects, and the transient names of files under construction
    namespace.py  GETATTR, LOOKUP, parent, READLINK, SETATTR, STATFS
    dirops.py     MKDIR, SYMLINK, MKNOD, REMOVE, RENAME, LINK
    dirchange.py  a directory's `change` attribute when the server changes the directory
    listing.py    READDIR, and its cache of sorted listings and unchanged entries
    readers.py    READ, SEEK, open_version, and the cache of open published versions
    xattrs.py     extended attributes
    publish.py    create_staged, stage_version, publish (and its directory fsync)
    recovery.py   staging objects resumed at start-up
    staging.py    LocalStaging: a private version and its data path
    copy.py       server-side copy and clone into a staging version (COPY, CLONE)
    overlay.py    copy-on-write extents over the published version, where reflink is missing
    record.py     the staging record: JSON in a .rec file or in an attribute of the data file
    linux.py      every Linux-specific call (statx, O_PATH, /proc/self/fd, fallocate, ...)
    common.py     small helpers all of them use
"""

from __future__ import annotations

import sys
import types

from .backend import LocalBackend
from .common import RACY_NS, check_name  # noqa: F401
from .linux import FICLONE, UNFILLED_MIN, fallocate, fstatx_key, statx_key, statx_keys  # noqa: F401
from .listing import cookie_of
from .record import REC_XATTR, read_record_xattr  # noqa: F401
from .staging import LocalStaging

__all__ = ["LocalBackend", "LocalStaging", "cookie_of", "check_name"]

_fallocate, _UNFILLED_MIN = fallocate, UNFILLED_MIN  # their names in the one-module local.py
_RENAMED = {"_fallocate": "fallocate", "_UNFILLED_MIN": "UNFILLED_MIN"}


class _Package(types.ModuleType):
    """`backend.local` was one module, and tests replace its globals (`monkeypatch.setattr(
    backend.local, "RACY_NS", -1)`) to change what the backend does: a name set here is also
    set in every module of the package that uses it (under its new name, see `_RENAMED`)."""

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        there = _RENAMED.get(name, name)
        prefix = __name__ + "."
        for mod_name, mod in list(sys.modules.items()):
            if mod_name.startswith(prefix) and there in vars(mod):
                setattr(mod, there, value)


sys.modules[__name__].__class__ = _Package
