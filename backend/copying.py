"""The default server-side copy (`Staging.copy_from`): the source's bytes read and written
into the destination staging version in COPY_CHUNK pieces, its holes kept as holes (punched
where the destination has content there and can punch, else written as zeros)."""

from __future__ import annotations

from .interface import Content, NotSupported, PastEnd

COPY_CHUNK = 1 << 20  # the default copy's read/write size


def copy_by_writing(dst, src, src_offset: int, dst_offset: int, count: int) -> int:
    """Copy [src_offset, src_offset+count) of version `src` (a pinned published version or
    a staging object: anything with read, seek, attrs) to dst_offset of this version, as
    WRITEs of those bytes would; stops where `src` ends. Returns the bytes copied. This
    default reads and writes in COPY_CHUNK pieces; the source's holes are not read: they
    become holes (DEALLOCATE where this version has content there, else just the size)."""
    end = min(src_offset + count, src.attrs().size)
    if src_offset >= end:
        return 0
    delta = dst_offset - src_offset
    pos = src_offset
    while pos < end:
        try:
            data_at, _ = src.seek(pos, Content.DATA)
        except PastEnd:
            data_at = end
        data_at = min(data_at, end)
        if data_at > pos:  # a hole [pos, data_at)
            zero_range(dst, pos + delta, data_at - pos)
            pos = data_at
            continue
        try:
            hole_at = min(src.seek(pos, Content.HOLE)[0], end)
        except PastEnd:
            hole_at = end
        while pos < hole_at:
            data, _ = src.read(pos, min(COPY_CHUNK, hole_at - pos))
            if not data:
                pos = hole_at
                break
            dst.write(pos + delta, data)
            pos += len(data)
    if dst.size() < end + delta:
        dst.truncate(end + delta)
    return end - src_offset

def zero_range(dst, offset: int, length: int) -> None:
    """[offset, offset+length) reads as zeros afterwards (a source hole copied)."""
    inside = min(offset + length, dst.size()) - offset
    if inside <= 0:
        return
    try:
        dst.deallocate(offset, inside)
    except NotSupported:
        zeros = bytes(min(COPY_CHUNK, inside))
        done = 0
        while done < inside:
            n = min(len(zeros), inside - done)
            dst.write(offset + done, zeros[:n])
            done += n
