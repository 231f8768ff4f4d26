"""NFSv4.2 operations: ALLOCATE, DEALLOCATE, SEEK, READ_PLUS (RFC 7862 sections 15.1, 15.4,
15.11, 15.10) and the extended attribute operations GETXATTR, SETXATTR, LISTXATTRS, REMOVEXATTR
(RFC 8276 section 8.4). COPY and CLONE are in copy.py.

All of them exist only in minor version 2: in a 4.1 COMPOUND they answer NOTSUPP (4.0 never gets
here: its COMPOUND stops at an operation number it does not have).

Write-once (docs/semantics.md): ALLOCATE and DEALLOCATE change content, so they follow WRITE's
rule 1: only through an open with write access, and only that open's staging version; the special
stateids get OPENMODE (LOCKED when a share deny conflicts). SEEK looks at the version READ with
the same stateid would read, and READ_PLUS reads that version in data and hole segments.
Extended attributes are metadata (rule 5): they change in place, on the published object, or on
the staging object of a file under construction (visible only to its client), and a new version
takes them over when it is published.
"""
from __future__ import annotations

from backend import interface as bi

from .. import access, attrs
from ..errors import NFS4Error, status_of
from ..state.model import Delegation
from ..xdr import nfs4 as x
from .common import NAME_MAX, change_info, drop_setid, getattr_, require, require_rw, viewer
from .io import _io_state, _regular, read_version, writer_state

READ, WRITE = x.OPEN4_SHARE_ACCESS_READ, x.OPEN4_SHARE_ACCESS_WRITE
LIST_OVERHEAD = 8 + 4 + 4  # LISTXATTRS4resok without names: cookie, array length, eof

# Backend errors with a status of their own in these operations (before `status_of`'s mapping).
_STATUS = (
    (bi.NoXattr, x.NFS4ERR_NOXATTR),
    (bi.XattrTooBig, x.NFS4ERR_XATTR2BIG),
    (bi.NotSupported, x.NFS4ERR_NOTSUPP),
    (bi.PastEnd, x.NFS4ERR_NXIO),
)


def _call(fn, *args):
    """Call a backend method, mapping its errors to NFS4Error (the 4.2 ones first)."""
    try:
        return fn(*args)
    except bi.BackendError as e:
        for cls, status in _STATUS:
            if isinstance(e, cls):
                raise NFS4Error(status) from None
        raise NFS4Error(status_of(e)) from None


def _current_fh(ctx):
    """The current filehandle, for an NFSv4.2 operation: NOTSUPP in a 4.1 COMPOUND."""
    if ctx.minor < 2:
        raise NFS4Error(x.NFS4ERR_NOTSUPP)
    return ctx.fh()


# ------------------------------------------------------------------ ALLOCATE, DEALLOCATE
def _range(offset: int, length: int) -> None:
    """A byte range to allocate or punch: empty -> INVAL; past 2^64 -> INVAL; past the largest
    file -> FBIG (as fallocate(2) answers, and READ/WRITE do at MAX_FILESIZE)."""
    if length == 0 or offset + length > 1 << 64:
        raise NFS4Error(x.NFS4ERR_INVAL)
    if offset + length > attrs.MAX_FILESIZE:
        raise NFS4Error(x.NFS4ERR_FBIG)


def _writer_staging(ctx, fh, stateid):
    """The staging version an ALLOCATE/DEALLOCATE may change: WRITE's rules (rule 1)."""
    _regular(ctx, fh)
    st = writer_state(ctx, fh, stateid)
    drop_setid(ctx, fh)
    return st.staging


def _durable(ctx, stg, res):
    """Answered once the change is on disk, as a FILE_SYNC4 WRITE (the client has no COMMIT
    for it)."""
    return ctx.server.sync(stg).addCallback(lambda _: res)


def op_allocate(ctx, a):
    fh = _current_fh(ctx)
    stg = _writer_staging(ctx, fh, a.aa_stateid)
    _range(a.aa_offset, a.aa_length)
    _call(stg.allocate, a.aa_offset, a.aa_length)
    return _durable(ctx, stg, x.ALLOCATE4res(x.NFS4_OK))


def op_deallocate(ctx, a):
    fh = _current_fh(ctx)
    stg = _writer_staging(ctx, fh, a.da_stateid)
    _range(a.da_offset, a.da_length)
    _call(stg.deallocate, a.da_offset, a.da_length)
    return _durable(ctx, stg, x.DEALLOCATE4res(x.NFS4_OK))


# ------------------------------------------------------------------ SEEK
def op_seek(ctx, a):
    """The next data or hole at or after sa_offset in the version READ would read: NXIO from
    the end on; not found (or the virtual hole at the end): sr_eof with the size."""
    fh = _current_fh(ctx)
    _regular(ctx, fh)
    st = _io_state(ctx, a.sa_stateid, fh)
    if isinstance(st, Delegation):
        st = None  # a read delegation reads the published version
    stg = read_version(ctx, st, fh)
    what = bi.Content(a.sa_what)
    if stg is not None:
        pos, eof = _call(stg.seek, a.sa_offset, what)
    else:
        try:
            pos, eof = _call(fh.backend.seek, fh.handle, a.sa_offset, what)
        except NFS4Error as e:
            if e.status != x.NFS4ERR_STALE or st is None or st.pin is None:
                raise
            pos, eof = _call(st.pin.seek, a.sa_offset, what)  # removed while open
    return x.SEEK4res(x.NFS4_OK, x.seek_res4(eof, pos))


# ------------------------------------------------------------------ READ_PLUS
READ_PLUS_OVERHEAD = 4 + 4 + 4  # status, eof, array length
DATA_SEGMENT, HOLE_SEGMENT = 4 + 8 + 4 + 3, 4 + 8 + 8  # a segment's XDR bytes besides its data


def op_read_plus(ctx, a):
    """READ with holes: the data and hole segments (SEEK_DATA / SEEK_HOLE) of the version READ
    with the same stateid reads, from rpa_offset, at most rpa_count bytes of it, bounded by the
    session's reply size. Read in a worker thread from one pinned view of that version."""
    fh = _current_fh(ctx)
    _regular(ctx, fh)
    st = _io_state(ctx, a.rpa_stateid, fh)
    if isinstance(st, Delegation):
        st = stg = None  # a read delegation reads the published version
    else:
        stg = read_version(ctx, st, fh)
    budget = min(ctx.server.max_read_reply(ctx), attrs.MAX_RW + 4096) - READ_PLUS_OVERHEAD
    count = min(a.rpa_count, attrs.MAX_RW, budget - DATA_SEGMENT)
    pin = None
    if stg is not None:
        version = stg
    else:
        try:
            version = pin = fh.backend.open_version(fh.handle)
        except bi.Stale:
            if st is None or st.pin is None:
                raise NFS4Error(x.NFS4ERR_STALE) from None
            version = st.pin  # removed while open
        except bi.BackendError as e:
            raise NFS4Error(status_of(e)) from None

    def segments():
        try:
            return _segments(version, a.rpa_offset, max(count, 0), budget)
        finally:
            if pin is not None:
                pin.close()
    return ctx.server.in_thread(_call, segments)


def _segments(version, offset: int, count: int, budget: int):
    size = version.attrs().size
    out = []
    pos, end = offset, min(offset + count, size)
    used = 0
    while pos < end:
        try:
            data_at = version.seek(pos, bi.Content.DATA)[0]
        except bi.PastEnd:
            data_at = size
        if data_at > pos:  # a hole up to data_at (or the end of the file)
            if used + HOLE_SEGMENT > budget:
                break
            stop = min(data_at, end)
            out.append(x.read_plus_content(x.NFS4_CONTENT_HOLE, x.data_info4(pos, stop - pos)))
            used += HOLE_SEGMENT
            pos = stop
            continue
        try:
            hole_at = version.seek(pos, bi.Content.HOLE)[0]
        except bi.PastEnd:
            hole_at = size
        n = min(hole_at, end) - pos
        n = min(n, budget - used - DATA_SEGMENT)
        if n <= 0:
            break
        data, _ = version.read(pos, n)
        if not data:
            break
        out.append(x.read_plus_content(x.NFS4_CONTENT_DATA, x.data4(pos, data)))
        used += DATA_SEGMENT + len(data)
        pos += len(data)
    return x.READ_PLUS4res(x.NFS4_OK, x.read_plus_res4(pos >= size, out))


# ------------------------------------------------------------------ extended attributes
def _xattr_name(name: bytes) -> bytes:
    """An xattrkey4 (a component4, without the "user." prefix, RFC 8276 section 8.2): empty,
    NUL or not UTF-8 -> INVAL, over NAME_MAX -> NAMETOOLONG."""
    if not name or b"\0" in name:
        raise NFS4Error(x.NFS4ERR_INVAL)
    if len(name) > NAME_MAX:
        raise NFS4Error(x.NFS4ERR_NAMETOOLONG)
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        raise NFS4Error(x.NFS4ERR_INVAL) from None
    return name


def _may_change(ctx, fh):
    require_rw(ctx, fh)
    require(ctx, getattr_(ctx, fh), access.W)


def op_getxattr(ctx, a):
    fh = _current_fh(ctx)
    name = _xattr_name(a.gxa_name)
    require(ctx, getattr_(ctx, fh), access.R)
    value = _call(fh.backend.getxattr, fh.handle, name, viewer(ctx))
    return x.GETXATTR4res(x.NFS4_OK, value)


def op_setxattr(ctx, a):
    fh = _current_fh(ctx)
    name = _xattr_name(a.sxa_key)
    if len(a.sxa_value) > bi.XATTR_SIZE_MAX:
        raise NFS4Error(x.NFS4ERR_XATTR2BIG)
    _may_change(ctx, fh)
    before, after = _call(fh.backend.setxattr, fh.handle, name, a.sxa_value,
                          bi.XattrHow(a.sxa_option), viewer(ctx))
    return x.SETXATTR4res(x.NFS4_OK, change_info(before, after))


def op_removexattr(ctx, a):
    fh = _current_fh(ctx)
    name = _xattr_name(a.rxa_name)
    _may_change(ctx, fh)
    before, after = _call(fh.backend.removexattr, fh.handle, name, viewer(ctx))
    return x.REMOVEXATTR4res(x.NFS4_OK, change_info(before, after))


def op_listxattrs(ctx, a):
    """Names in a stable (sorted) order; the cookie is the index of the next one. lxa_maxcount
    bounds the whole LISTXATTRS4resok; TOOSMALL when not even one remaining name fits."""
    fh = _current_fh(ctx)
    require(ctx, getattr_(ctx, fh), access.R)
    names = _call(fh.backend.listxattr, fh.handle, viewer(ctx))
    limit = min(a.lxa_maxcount, ctx.server.max_read_reply(ctx))
    if limit < LIST_OVERHEAD:
        raise NFS4Error(x.NFS4ERR_TOOSMALL)
    i = min(a.lxa_cookie, len(names))
    used = LIST_OVERHEAD
    out = []
    while i < len(names):
        size = 4 + ((len(names[i]) + 3) & ~3)
        if used + size > limit:
            break
        used += size
        out.append(names[i])
        i += 1
    eof = i == len(names)
    if not out and not eof:
        raise NFS4Error(x.NFS4ERR_TOOSMALL)
    return x.LISTXATTRS4res(x.NFS4_OK, x.LISTXATTRS4resok(i, out, eof))


HANDLERS = {
    x.OP_ALLOCATE: op_allocate,
    x.OP_DEALLOCATE: op_deallocate,
    x.OP_SEEK: op_seek,
    x.OP_READ_PLUS: op_read_plus,
    x.OP_GETXATTR: op_getxattr,
    x.OP_SETXATTR: op_setxattr,
    x.OP_LISTXATTRS: op_listxattrs,
    x.OP_REMOVEXATTR: op_removexattr,
}
