"""A directory's `change` attribute, which must move whenever the server changes it.

`change` is the ctime. Clients decide from it whether a directory changed (the Linux client
even whether its OPEN created the file), but on kernels without multigrain timestamps two
changes within one tick of the coarse clock share a ctime. So after a change by the server
that left ctime where it was, `change` is reported as the previous value + 1 until ctime moves
on (`_bumps`, in memory only: after a restart ctime differs anyway). A change by the server
also drops the directory's cached listing (`_dir_changed`). (Listings are only cached once a
directory's mtime and ctime are 50 ms old, so a local change never leaves one stale; a
published version's `change` moves because publish waits for its ctime to pass the old one.)

A file under construction has no directory entry until it is published, yet its creator must
see the directory change at OPEN (change_info), as with a create: `_touch_dir` moves the
directory's mtime and ctime at once.

`DirChanges` is a mixin of `LocalBackend`; state: `_bumps` (directory id -> (ctime, change)).
Every method expects the backend lock (`_guard`) held.
"""

from __future__ import annotations

import os
import time

from .. import interface as I
from ..handles import Node
from .common import atime_ns, ctime_ns, mtime_ns
from .linux import HAVE_PROC_FD, fd_path, fstatx


class DirChanges:
    """Directory changes made by the server (see the module text; lock held)."""

    def _dir_changed(self, dir_id: int) -> None:
        """The server changed directory `dir_id`: its cached listing is out of date."""
        self._listings.drop(dir_id)

    def _bumped(self, a: I.Attrs) -> None:
        """A directory's `change` as `_changed_dir` moved it (lock held)."""
        b = self._bumps.get(a.fileid)
        if b is not None:
            if b[0] == a.ctime_ns:
                a.change = b[1]
            else:
                del self._bumps[a.fileid]  # ctime moved on: it is the change again

    def _changed_dir(self, node: Node, dfd: int, before: int) -> None:
        """The server just changed directory `node`, whose `change` was `before` (lock held).
        Clients decide from `change` whether a directory changed (the Linux client even
        whether its OPEN created the file), so it must differ from `before` although ctime,
        from the kernel's coarse clock, may not have moved: then `change` is reported as
        `before + 1` until ctime moves (in memory; after a restart ctime differs anyway)."""
        c = ctime_ns(fstatx(dfd))
        if c > before:
            self._bumps.pop(node.id, None)
            return
        self._bumps[node.id] = (c, before + 1)
        node.seen = None  # Attrs kept for these statx bytes are out of date
        if node.parent is not None:
            self._listings.drop(node.parent)  # ... and so is its entry in its parent's listing

    def _touch_dir(self, node: Node, dfd: int) -> None:
        """A new name is reserved in `node` (a file under construction): its mtime and ctime
        move now, as a create's do, so its creator sees the change (OPEN's change_info)."""
        if not HAVE_PROC_FD:  # pragma: no cover - Linux without /proc
            return
        before = self._node_attrs(node).change
        st = fstatx(dfd)
        os.utime(fd_path(dfd), ns=(atime_ns(st), max(time.time_ns(), mtime_ns(st) + 1)))
        self._changed_dir(node, dfd, before)
