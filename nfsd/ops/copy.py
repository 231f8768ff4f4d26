"""NFSv4.2 server-side copy: COPY, CLONE, OFFLOAD_STATUS, OFFLOAD_CANCEL (RFC 7862 sections
15.2, 15.13, 15.9, 15.8). COPY_NOTIFY and inter-server copies answer NOTSUPP (the default for
COPY_NOTIFY; a COPY naming a source server here).

Both copy operations take the source from the saved filehandle with a stateid used as READ uses
it (the version READ would read: the open's or its machine's staging version, else the
published one, pinned for the copy's length), and the destination from the current filehandle
with a stateid used as WRITE uses it: only an open with write access, and only its staging
version changes (rule 1), invisible to others until its CLOSE. The running copies and their
tie to CLOSE and to the lifecycle are `nfsd/copies.py`; docs/semantics.md has the rules.
"""

from __future__ import annotations

from backend import interface as bi

from .. import attrs
from ..copies import Copy
from ..errors import NFS4Error, status_of
from ..state.model import Delegation
from ..xdr import nfs4 as x
from .common import call, drop_setid
from .io import _io_state, _regular, read_version, writer_state

WRITE = x.OPEN4_SHARE_ACCESS_WRITE


def _enabled(ctx):
    """The current and saved filehandles of a COPY or CLONE, if this server copies at all."""
    if ctx.minor < 2 or not ctx.server.copies.enabled:
        raise NFS4Error(x.NFS4ERR_NOTSUPP)
    dfh = ctx.fh()
    if ctx.sfh is None:
        raise NFS4Error(x.NFS4ERR_NOFILEHANDLE)
    return ctx.sfh, dfh


def _source(ctx, sfh, stateid):
    """(version to read, pin to close after, staging it is or None): READ's rules."""
    _regular(ctx, sfh)
    st = _io_state(ctx, stateid, sfh)
    if isinstance(st, Delegation):
        st = stg = None  # a read delegation reads the published version
    else:
        stg = read_version(ctx, st, sfh)
    if stg is not None:
        return stg, None, stg
    try:
        pin = sfh.backend.open_version(sfh.handle)
    except bi.Stale:
        if st is None or st.pin is None:
            raise NFS4Error(x.NFS4ERR_STALE) from None
        return st.pin, None, None  # removed while open: the open's own pin
    except bi.BackendError as e:
        raise NFS4Error(status_of(e)) from None
    return pin, pin, None


def _destination(ctx, dfh, stateid):
    """The open whose staging version receives the bytes: WRITE's rules (rule 1)."""
    _regular(ctx, dfh)
    return writer_state(ctx, dfh, stateid)


def _count(src, offset: int, count: int, exact: bool) -> int:
    """The bytes to copy from `offset`: count 0 is "to the end of the source" (RFC 7862);
    past the end: INVAL for the offset; for the count, INVAL with `exact` (CLONE), else the
    copy stops at the end (as copy_file_range(2) and knfsd do)."""
    size = call(src.attrs).size
    if offset > size:
        raise NFS4Error(x.NFS4ERR_INVAL)
    if count == 0:
        return size - offset
    if offset + count > size:
        if exact:
            raise NFS4Error(x.NFS4ERR_INVAL)
        return size - offset
    return count


def _checked(ctx, sfh, dfh, a_src, a_dst, count):
    if a_dst + count > attrs.MAX_FILESIZE:
        raise NFS4Error(x.NFS4ERR_FBIG)
    if sfh == dfh and count and a_src < a_dst + count and a_dst < a_src + count:
        raise NFS4Error(x.NFS4ERR_INVAL)  # overlapping ranges of one file


def _opened(ctx, sfh, dfh, src_sid, dst_sid):
    """Source and destination, both checked; the caller closes `pin` on failure."""
    src, pin, src_stg = _source(ctx, sfh, src_sid)
    try:
        st = _destination(ctx, dfh, dst_sid)
        if src_stg is not None and src_stg is not st.staging and \
                ctx.server.copies.busy(src_stg):
            raise NFS4Error(x.NFS4ERR_DELAY)
    except BaseException:
        if pin is not None:
            pin.close()
        raise
    return src, pin, src_stg, st


# ------------------------------------------------------------------ COPY
def op_copy(ctx, a):
    sfh, dfh = _enabled(ctx)
    if a.ca_source_server:
        raise NFS4Error(x.NFS4ERR_NOTSUPP)  # inter-server copy
    src, pin, src_stg, st = _opened(ctx, sfh, dfh, a.ca_src_stateid, a.ca_dst_stateid)
    copies = ctx.server.copies
    try:
        count = _count(src, a.ca_src_offset, a.ca_count, exact=False)
        _checked(ctx, sfh, dfh, a.ca_src_offset, a.ca_dst_offset, count)
        drop_setid(ctx, dfh)
    except BaseException:
        if pin is not None:
            pin.close()
        raise
    uses = [st.staging] + ([src_stg] if src_stg is not None and src_stg is not st.staging else [])
    job = Copy(ctx.client, st, src, pin, dfh.wire, a.ca_src_offset, a.ca_dst_offset, count,
               uses)
    go_async = not a.ca_synchronous and count >= copies.async_min and \
        copies.may_go_async(ctx.client)
    copies.start(job, go_async)
    if go_async:
        # The copy's stateid is the current stateid (RFC 8881 16.2.3.1.2: an operation that
        # returns a stateid sets it), so OFFLOAD_STATUS / OFFLOAD_CANCEL may follow in the
        # same COMPOUND.
        ctx.set_stateid(job.stateid)
        return x.COPY4res(x.NFS4_OK, x.COPY4resok(
            x.write_response4([job.stateid], 0, x.UNSTABLE4, ctx.server.write_verifier),
            x.copy_requirements4(True, False)))

    def answer(job):
        if job.status != x.NFS4_OK:
            raise NFS4Error(job.status)
        return x.COPY4res(x.NFS4_OK, x.COPY4resok(copies.write_response(job, x.UNSTABLE4),
                                                  x.copy_requirements4(True, True)))
    return job.ended.addCallback(answer)


# ------------------------------------------------------------------ CLONE
def op_clone(ctx, a):
    sfh, dfh = _enabled(ctx)
    if sfh.export is not dfh.export:
        raise NFS4Error(x.NFS4ERR_XDEV)
    src, pin, src_stg, st = _opened(ctx, sfh, dfh, a.cl_src_stateid, a.cl_dst_stateid)
    copies = ctx.server.copies
    stg = st.staging
    try:
        bs = dfh.backend.clone_blksize
        if not bs:
            raise NFS4Error(x.NFS4ERR_NOTSUPP)
        size = call(src.attrs).size
        count = _count(src, a.cl_src_offset, a.cl_count, exact=True)
        so, do = a.cl_src_offset, a.cl_dst_offset
        # Aligned to clone_blksize; the count may end unaligned only at the source's end.
        if so % bs or do % bs or (count % bs and so + count != size):
            raise NFS4Error(x.NFS4ERR_INVAL)
        _checked(ctx, sfh, dfh, so, do, count)
        drop_setid(ctx, dfh)
    except BaseException:
        if pin is not None:
            pin.close()
        raise
    uses = [stg] + ([src_stg] if src_stg is not None and src_stg is not stg else [])
    for s in uses:
        copies.use(s)

    def cloned(_):
        copies.clones += 1
        return ctx.server.sync(stg)  # answered durable, as ALLOCATE (no COMMIT for it)

    def done(result):
        if pin is not None:
            pin.close()
        for s in uses:
            copies.release(s)
        return result

    d = ctx.server.in_thread(call, stg.clone_from, src, so, do, count)
    d.addCallback(cloned).addBoth(done)
    return d.addCallback(lambda _: x.CLONE4res(x.NFS4_OK))


# ------------------------------------------------------------------ OFFLOAD_STATUS, OFFLOAD_CANCEL
def _offload(ctx, stateid):
    if ctx.minor < 2:
        raise NFS4Error(x.NFS4ERR_NOTSUPP)
    ctx.fh()  # the destination file's handle (RFC 7862 15.9.3)
    return ctx.server.copies.find(ctx.client, stateid)


def op_offload_status(ctx, a):
    job = _offload(ctx, ctx.stateid(a.osa_stateid))
    complete = [] if job.status is None else [job.status]
    return x.OFFLOAD_STATUS4res(x.NFS4_OK, x.OFFLOAD_STATUS4resok(job.done, complete))


def op_offload_cancel(ctx, a):
    job = _offload(ctx, ctx.stateid(a.oca_stateid))
    ctx.server.copies.cancel(job)
    return x.OFFLOAD_CANCEL4res(x.NFS4_OK)


HANDLERS = {
    x.OP_COPY: op_copy,
    x.OP_CLONE: op_clone,
    x.OP_OFFLOAD_STATUS: op_offload_status,
    x.OP_OFFLOAD_CANCEL: op_offload_cancel,
}
