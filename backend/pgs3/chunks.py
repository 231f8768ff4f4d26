"""Versions as chunks: reading them, finding their holes, and making one from a file under
construction.

A version of S bytes is pieces of CHUNK bytes. Piece i is one object (`chunks[i]`: key and
segments), or zeros where it has none (a hole). An object holds only the data of its piece:
its `segments` [(offset in the piece, length)] are stored back to back, everything else in the
piece reads as zeros; holes are found at HOLE (64 KiB) granularity. A new version made from a
published one (`Base`) names the same objects for every piece nobody wrote, so copy-on-write
costs what was written, and a sparse file takes what its data takes.

A new file written in order does not wait for all of its uploads at CLOSE: a piece the writer
has gone past is uploaded at once in the background (`early`), and publish takes that object
if nothing wrote the piece since (`Early.epoch`); otherwise it uploads the piece again and the
early object is left to gc (its key was queued before the upload, as every key is).

A version of at most INLINE bytes has no object: its piece's bytes are in the database with
its chunk row (the "key" of such a piece is those bytes). A small file then costs one
transaction to publish and nothing in the object store.
"""

from __future__ import annotations

import bisect
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .. import interface as I

HOLE = 64 << 10
INLINE = 64 << 10  # versions up to this size keep their bytes in the database
_ZERO = bytes(HOLE)


@dataclass
class Base:
    """A published version: id, size, {piece index: (object key, segments)}; the key of a
    piece kept in the database (INLINE) is its bytes."""

    vid: int
    size: int
    chunks: dict = field(default_factory=dict)

    def used(self) -> int:
        return sum(n for _, segs in self.chunks.values() for _, n in segs)


def _find(segs, within: int):
    """(index of the segment holding `within` or the first after it, its object offset)."""
    starts = [s for s, _ in segs]
    j = bisect.bisect_right(starts, within) - 1
    if j >= 0 and within < segs[j][0] + segs[j][1]:
        return j
    return j + 1


def read_range(backend, base: Base, offset: int, count: int, nowait: bool) -> bytes:
    """Bytes [offset, offset+count) of `base`, clipped at its size; WouldBlock with `nowait`
    if a piece is not in the block cache."""
    if offset < 0 or count < 0:
        raise I.Invalid("negative offset or count")
    chunk = backend.chunk
    end = min(base.size, offset + count)
    out = []
    pos = offset
    while pos < end:
        i = pos // chunk
        top = min((i + 1) * chunk, end)
        c = base.chunks.get(i)
        if c is None:
            out.append(bytes(top - pos))
            pos = top
            continue
        key, segs = c
        total = sum(n for _, n in segs)
        while pos < top:
            within = pos - i * chunk
            j = _find(segs, within)
            if j >= len(segs) or segs[j][0] > within:  # zeros up to the next segment
                nxt = i * chunk + (segs[j][0] if j < len(segs) else chunk)
                stop = min(top, nxt)
                out.append(bytes(stop - pos))
                pos = stop
                continue
            s, n = segs[j]
            stop = min(top, i * chunk + s + n)
            at = sum(m for _, m in segs[:j]) + within - s
            if isinstance(key, bytes):  # kept in the database
                data = key[at:at + stop - pos]
                if len(data) < stop - pos:
                    raise I.IOFailure("a piece is shorter than its segments say")
                out.append(data)
                pos = stop
                continue
            fetch = None if nowait else (lambda off, k, key=key: backend.objects.get(key, off, k))
            data = backend.cache.read(key, total, at, stop - pos, fetch)
            if data is None:
                raise I.WouldBlock()
            if len(data) < stop - pos:
                raise I.IOFailure(f"object {key} is shorter than its segments say")
            out.append(data)
            pos = stop
    return out[0] if len(out) == 1 else b"".join(out)


def data_ranges(base: Base, chunk: int, a: int, b: int):
    """(start, end) ranges of `base` within [a, b) that hold data."""
    b = min(b, base.size)
    for i in range(a // chunk, (b + chunk - 1) // chunk):
        c = base.chunks.get(i)
        if c is None:
            continue
        for s, n in c[1]:
            lo, hi = max(a, i * chunk + s), min(b, i * chunk + s + n)
            if lo < hi:
                yield lo, hi


def seek(ranges, offset: int, size: int, what) -> tuple[int, bool]:
    """`Staging.seek` over data `ranges` (start, end), sorted, from `offset` on."""
    if offset < 0:
        raise I.Invalid("negative offset")
    if offset >= size:
        raise I.PastEnd(f"{offset} >= {size}")
    if what == I.Content.DATA:
        for s, e in ranges:
            if e > offset:
                return max(s, offset), False
        return size, True
    pos = offset
    for s, e in ranges:
        if s > pos:
            break
        pos = max(pos, e)
    return (size, True) if pos >= size else (pos, False)


def plan(staging, chunk: int):
    """What the new version is made of: [(index, reused (key, segments) or None, start, end)]
    for every piece that may hold data; reused pieces keep their object, the others are made
    from the staging's bytes (`upload`)."""
    size = staging.size()
    base = staging.base
    out = []
    for i in range((size + chunk - 1) // chunk):
        a, b = i * chunk, min((i + 1) * chunk, size)
        if base is not None and b <= staging.limit and not staging.written.overlaps(a, b):
            c = base.chunks.get(i)
            if c is None:
                continue  # the same hole
            if all(a + s + n <= b for s, n in c[1]):  # untouched: the same object
                out.append((i, c, a, b))
                continue
        out.append((i, None, a, b))
    return out


def segments(data) -> tuple[list, bytes]:
    """The non-zero HOLE blocks of a piece's bytes, merged: ([(offset, length)], their bytes
    back to back, the last one without its trailing zeros)."""
    mv = memoryview(data)
    segs = []
    for j in range(0, len(mv), HOLE):
        blk = mv[j:j + HOLE]
        if blk != _ZERO[:len(blk)]:
            if segs and segs[-1][0] + segs[-1][1] == j:
                segs[-1][1] += len(blk)
            else:
                segs.append([j, len(blk)])
    if not segs:
        return [], b""
    s, n = segs[-1]
    tail = bytes(mv[s:s + n]).rstrip(b"\0")
    segs[-1][1] = len(tail)
    body = b"".join([bytes(mv[s:s + n]) for s, n in segs[:-1]] + [tail])
    return [tuple(x) for x in segs], body


class Early:
    """Pieces of a new file uploaded while it is being written: {index: (epoch, future)}; a
    piece's epoch moves whenever it is written, truncated or punched."""

    def __init__(self):
        self.epochs: dict[int, int] = {}
        self.jobs: dict = {}

    def touched(self, a: int, b: int, chunk: int) -> None:
        """Bytes [a, b) changed: the early uploads of their pieces no longer count."""
        if a >= b:
            return
        for i in range(a // chunk, (b - 1) // chunk + 1):
            self.epochs[i] = self.epochs.get(i, 0) + 1
            self.jobs.pop(i, None)

    def passed(self, backend, staging, end: int) -> None:
        """The writer is at `end`: the piece just before it (and the one before that, if it
        was left) start uploading."""
        chunk = backend.chunk
        size = staging.size()
        if size <= INLINE:
            return
        pool = backend.uploads
        last = end // chunk - 1
        for i in (last - 1, last):
            if i < 0 or i in self.jobs or size < (i + 1) * chunk:
                continue
            epoch = self.epochs.get(i, 0)
            self.jobs[i] = (epoch, pool.submit(_upload_piece, backend, staging, i))

    def take(self, i: int):
        """(key, segments), None (a hole), or False: not uploaded early (or written since)."""
        job = self.jobs.get(i)
        if job is None or job[0] != self.epochs.get(i, 0):
            return False
        try:
            return job[1].result()
        except Exception:  # noqa: BLE001 - publish uploads it again
            return False


class Uploads:
    """The background uploads of one frontend: two threads, the pieces in line hold no
    memory until their turn (they are read from the spool then)."""

    def __init__(self, workers: int = 2):
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nfsd-upload")

    def submit(self, fn, *args):
        return self.pool.submit(fn, *args)

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


def _upload_piece(backend, staging, i: int):
    chunk = backend.chunk
    segs, body = segments(staging.materialize(i * chunk, (i + 1) * chunk))
    if not segs:
        return None
    key = backend.objects.new_key()
    backend.pending_keys([key])
    backend.objects.put(key, body)
    backend.cache.put_object(key, body)
    return key, tuple(segs)


def upload(backend, staging, pieces, workers: int = 4) -> dict:
    """Make and upload the pieces that are not reused (a worker thread; uploads in
    parallel). Returns {index: (key, segments)} of the new version, without holes; every new
    key is registered with gc first (`pending_keys`) so a publish cut short leaks nothing."""
    result = {i: c for i, c, _, _ in pieces if c is not None}
    todo = []
    small = staging.size() <= INLINE
    early = getattr(staging, "early", None)
    for i, c, a, b in pieces:
        if c is None:
            got = False if early is None or small else early.take(i)
            if got is not False:
                if got is not None:
                    result[i] = got
                continue
            segs, body = segments(staging.materialize(a, b))
            if small and segs:
                result[i] = (bytes(body), tuple(segs))
            elif segs:
                todo.append((i, segs, body))
    if not todo:
        return result
    keys = [backend.objects.new_key() for _ in todo]
    backend.pending_keys(keys)

    def put(job):
        (i, segs, body), key = job
        backend.objects.put(key, body)
        backend.cache.put_object(key, body)
        return i, (key, tuple(segs))
    if len(todo) == 1:
        done = [put((todo[0], keys[0]))]
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(todo))) as pool:
            done = list(pool.map(put, zip(todo, keys)))
    result.update(done)
    return result
