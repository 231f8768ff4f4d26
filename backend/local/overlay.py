"""The copy-on-write overlay of a new version of a published file, where reflink is missing.

`stage_version` tries FICLONE (reflink, O(1) on btrfs/xfs). Otherwise the staging object keeps
the published version's fd open as the *base*, its data file is made sparse at the same size,
and it records which byte ranges were written ("extents", only below the *base limit*, which
truncation lowers). Reads take written ranges from the data file, the rest below the base limit
from the base, beyond it from the data file (holes read as zeros). A punched hole below the
limit counts as written (it reads as the data file's zeros, not the base). At publish `_fill`
copies the still-clean ranges' *data* segments (SEEK_DATA/SEEK_HOLE, copy_file_range) into the
data file, so a sparse 10 GB file with a small change costs what the change costs. The base is
let go as soon as nothing is read from it any more.

`CopyOnWrite` is a mixin of `LocalStaging` (one object: its `fd` is the data file). Its fields:
`_base_fd` (None: no base), `_base_ident` (the started-from version's inode, generation, size
and mtime, kept in the record), `_limit`, `_starts`/`_ends` (sorted, disjoint). A change of the
extents or the limit sets the record's `_rec_dirty` (the record holds them). No lock: the
staging object's callers serialize its data path.
"""

from __future__ import annotations

import bisect
import os

from .common import atime_ns, close_quiet, mtime_ns
from .linux import copy_range, data_ranges, fstatx


class CopyOnWrite:
    """Base fd, base limit and written extents of a staging object (see the module text)."""

    def _start_overlay(self, base_fd, base_ident, limit: int) -> None:
        self._base_fd = base_fd  # pinned published version (copy-on-write without reflink)
        self._base_ident = base_ident  # identity of the version we started from
        self._limit = limit  # below it, unwritten bytes come from the base
        self._starts: list[int] = []  # written extents below the limit, sorted, disjoint
        self._ends: list[int] = []

    def _resume_overlay(self, rec: dict, open_base) -> None:
        """At start-up: limit and extents from record `rec`, and the base again if it is
        still the version this one started from (`open_base(ident)` -> (fd, None) or (None,
        why not)); else the version is quarantined: it can never be published."""
        limit = int(rec.get("limit") or 0)
        extents = [(int(a), int(b)) for a, b in rec.get("extents") or ()]
        if limit <= 0:
            self._rec_dirty = False
            return
        self._starts = [a for a, _ in extents]
        self._ends = [b for _, b in extents]
        self._limit = limit
        if self._starts and self._starts[0] == 0 and self._ends[0] >= limit:
            self._release_base()
            return
        reason = "the file was removed"
        if not self.gone:
            fd, reason = open_base(self._base_ident or {})
            if fd is not None:
                self._base_fd = fd
                self._rec_dirty = False
                return
        self.quarantined = reason
        self.record["quarantined"] = reason

    def _mark(self, s: int, e: int) -> None:
        """[s, e) (below the limit) was written: read it from the data file from now on."""
        starts, ends = self._starts, self._ends
        i = bisect.bisect_left(ends, s)  # first extent ending at or after s (touching merges)
        j = bisect.bisect_right(starts, e)  # first extent starting after e
        if i < j:
            s = min(s, starts[i])
            e = max(e, ends[j - 1])
        elif i < len(starts) and starts[i] == s and ends[i] == e:
            return
        starts[i:j] = [s]
        ends[i:j] = [e]
        self._rec_dirty = True
        self._maybe_release_base()

    def _clip(self, size: int) -> None:
        j = bisect.bisect_left(self._starts, size)
        del self._starts[j:], self._ends[j:]
        if self._ends and self._ends[-1] > size:
            self._ends[-1] = size

    def _maybe_release_base(self) -> None:
        """Drop the base once nothing is read from it any more."""
        starts, ends = self._starts, self._ends
        if self._limit == 0 or (starts and starts[0] == 0 and ends[0] >= self._limit):
            self._release_base()

    def _release_base(self) -> None:
        close_quiet(self._base_fd)
        self._base_fd = None
        self._limit = 0
        self._starts, self._ends = [], []
        self._rec_dirty = True

    def _segments(self, a: int, b: int):
        """(start, end, from_base) pieces covering [a, b)."""
        starts, ends, limit = self._starts, self._ends, self._limit
        i = bisect.bisect_right(ends, a)
        n = len(starts)
        pos = a
        while pos < b:
            if i < n and starts[i] <= pos:
                e = min(ends[i], b)
                yield pos, e, False
                i += 1
            else:
                e = min(starts[i], b) if i < n else b
                if pos < limit:
                    m = min(e, limit)
                    yield pos, m, True
                    if m < e:
                        yield m, e, False
                else:
                    yield pos, e, False
            pos = e

    def _clean(self, a: int, b: int):
        """Unwritten ranges within [a, b)."""
        pos = a
        for s, e in zip(self._starts, self._ends):
            if e <= pos:
                continue
            if s >= b:
                break
            if s > pos:
                yield pos, s
            pos = max(pos, e)
        if pos < b:
            yield pos, b

    def _fill(self) -> None:
        """Copy what still comes from the base into the data file; afterwards no base."""
        base = self._base_fd
        if base is None:
            return
        st = fstatx(self.fd)
        for a, b in list(self._clean(0, self._limit)):
            for d, h in data_ranges(base, a, b):
                copy_range(base, self.fd, d, h)
        os.utime(self.fd, ns=(atime_ns(st), mtime_ns(st)))
        self._release_base()
        self._unsynced = True
