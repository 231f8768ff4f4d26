"""Byte-range lock arithmetic (POSIX semantics, RFC 8881 section 9): pure functions on ranges.

A lock-owner's locks on one file are a sorted list of disjoint `(start, end, kind)` with `end`
exclusive (`END` stands for "to the end of the file", the all-ones length) and `kind` READ or
WRITE. Setting a lock replaces whatever the same owner held in that range (upgrade, downgrade,
split); adjacent ranges of the same kind merge. Unlocking removes the range, splitting as needed.
"""

from __future__ import annotations

READ, WRITE = 1, 2
END = 1 << 64
ALL_ONES = (1 << 64) - 1


def span(offset: int, length: int) -> tuple[int, int] | None:
    """[start, end) of an NFS (offset, length), or None if invalid (length 0, or past 2^64)."""
    if length == 0:
        return None
    if length == ALL_ONES:
        return offset, END
    end = offset + length
    if end > END:
        return None
    return offset, end


def length_of(start: int, end: int) -> int:
    return ALL_ONES if end >= END else end - start


def _remove(ranges, start, end):
    out = []
    for s, e, k in ranges:
        if e <= start or s >= end:
            out.append((s, e, k))
            continue
        if s < start:
            out.append((s, start, k))
        if e > end:
            out.append((end, e, k))
    return out


def set_lock(ranges, start, end, kind):
    """The owner's ranges after locking [start, end) with `kind`."""
    out = _remove(ranges, start, end)
    out.append((start, end, kind))
    out.sort()
    merged = []
    for s, e, k in out:
        if merged and merged[-1][2] == k and merged[-1][1] >= s:
            ps, pe, _ = merged[-1]
            merged[-1] = (ps, max(pe, e), k)
        else:
            merged.append((s, e, k))
    return merged


def unlock(ranges, start, end):
    return _remove(ranges, start, end)


def conflict(ranges, start, end, kind):
    """The first of another owner's ranges that conflicts with locking [start, end) as kind."""
    for s, e, k in ranges:
        if s < end and start < e and (kind == WRITE or k == WRITE):
            return s, e, k
    return None
