"""The bytes of one regular-file version, as pages, so that versions can share them.

A version's content is `size` plus a dict page index -> page. A page is PAGE immutable bytes
(data) or None (reserved by `allocate` but never written: reads as zeros and is a hole for
`seek`, as an unwritten extent is on ext4). A missing page is a hole. Bytes of the last page
beyond `size` are always zeros, so growing the size needs no work.

Pages are never changed in place, only replaced, so `copy()` (copy-on-write for
`stage_version`) copies the page dict, not the bytes: a 1 GiB file with a small change costs
what the change costs, and a published version that someone pinned is never disturbed.
"""

from __future__ import annotations

from .. import interface as I

PAGE = 4096
MAX_SIZE = (1 << 63) - 1  # the largest size NFSv4 can express (an offset is a signed 64-bit)
_ZERO = bytes(PAGE)
_HOLE = object()


class Pages:
    """Content of one version; the caller checks arguments (offsets >= 0 and so on)."""

    __slots__ = ("size", "pages")

    def __init__(self, size: int = 0, pages: dict | None = None):
        self.size = size
        self.pages: dict[int, bytes | None] = {} if pages is None else pages

    def copy(self) -> "Pages":
        return Pages(self.size, dict(self.pages))

    def used(self) -> int:
        """Bytes allocated: written and reserved pages."""
        return len(self.pages) * PAGE

    def read(self, offset: int, count: int) -> bytes:
        end = min(offset + count, self.size)
        if offset >= end:
            return b""
        out = bytearray(end - offset)
        pages = self.pages
        for i in range(offset // PAGE, (end - 1) // PAGE + 1):
            page = pages.get(i)
            if page:
                start = i * PAGE
                a, b = max(offset, start), min(end, start + PAGE)
                out[a - offset:b - offset] = page[a - start:b - start]
        return bytes(out)

    def write(self, offset: int, data: memoryview) -> None:
        end = offset + len(data)
        pages = self.pages
        for i in range(offset // PAGE, (end - 1) // PAGE + 1):
            start = i * PAGE
            a, b = max(offset, start), min(end, start + PAGE)
            piece = data[a - offset:b - offset]
            if b - a == PAGE:
                pages[i] = bytes(piece)
            else:
                old = pages.get(i) or _ZERO
                pages[i] = old[:a - start] + piece + old[b - start:]
        if end > self.size:
            self.size = end

    def truncate(self, size: int) -> None:
        if size < self.size:
            keep = -(-size // PAGE)  # pages that still hold bytes below the new size
            for i in [i for i in self.pages if i >= keep]:
                del self.pages[i]
            self._zero(size, keep * PAGE)
        self.size = size

    def allocate(self, offset: int, length: int) -> None:
        pages = self.pages
        for i in range(offset // PAGE, (offset + length - 1) // PAGE + 1):
            pages.setdefault(i, None)
        self.size = max(self.size, offset + length)

    def deallocate(self, offset: int, end: int) -> None:
        """Punch [offset, end) (end <= size): whole pages go, partial ones are zeroed."""
        first, last = -(-offset // PAGE), end // PAGE  # whole pages: [first, last)
        if first > last:  # within one page
            self._zero(offset, end)
            return
        for i in range(first, last):
            self.pages.pop(i, None)
        self._zero(offset, first * PAGE)
        self._zero(last * PAGE, end)

    def share(self, src: "Pages", src_offset: int, dst_offset: int, count: int) -> None:
        """CLONE: [dst_offset, +count) takes src's pages of [src_offset, +count), shared (both
        offsets page-aligned; count whole pages, or up to src's end where the range then ends
        at or past this version's end: the last page's bytes past src's end are zeros)."""
        end = dst_offset + count
        if src_offset % PAGE or dst_offset % PAGE or \
                (count % PAGE and (src_offset + count != src.size or end < self.size)):
            raise I.Invalid("clone range not aligned")
        s0, d0 = src_offset // PAGE, dst_offset // PAGE
        for k in range(-(-count // PAGE)):
            page = src.pages.get(s0 + k, _HOLE)
            if page is _HOLE:
                self.pages.pop(d0 + k, None)
            else:
                self.pages[d0 + k] = page
        if end > self.size:
            self.size = end

    def _zero(self, a: int, b: int) -> None:
        """Zero [a, b), which lies within one page, if that page holds data."""
        if a >= b:
            return
        i, start = a // PAGE, a // PAGE * PAGE
        page = self.pages.get(i)
        if page:
            self.pages[i] = page[:a - start] + bytes(b - a) + page[b - start:]

    def seek(self, offset: int, what: I.Content) -> tuple[int, bool]:
        """`Staging.seek`: the first data (or hole) at or after offset; (size, True) if none."""
        if offset < 0:
            raise I.Invalid("negative offset")
        if offset >= self.size:
            raise I.PastEnd(f"{offset} >= {self.size}")
        i = offset // PAGE
        if what == I.Content.DATA:
            found = [j for j, page in self.pages.items() if page is not None and j >= i]
            pos = max(offset, min(found) * PAGE) if found else self.size
        else:
            while self.pages.get(i) is not None:
                i += 1
            pos = max(offset, i * PAGE)
        return (pos, False) if pos < self.size else (self.size, True)
