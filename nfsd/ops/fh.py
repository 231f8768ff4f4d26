"""Filehandle operations: PUTROOTFH, PUTPUBFH, PUTFH, GETFH, SAVEFH, RESTOREFH, LOOKUP, LOOKUPP,
SECINFO, SECINFO_NO_NAME (RFC 8881 sections 18.13-18.29, 18.45)."""

from __future__ import annotations

from backend.interface import HANDLE_MAX, Kind

from ..errors import NFS4Error
from ..exports import FileRef
from ..xdr import nfs4 as x
from .common import call, check_name, dir_attrs, getattr_, require, viewer
from .. import access


def op_putrootfh(ctx, a):
    ctx.enter(ctx.server.exports.root())
    ctx.cur_sid = None
    return x.PUTROOTFH4res(x.NFS4_OK)


def op_putpubfh(ctx, a):
    ctx.enter(ctx.server.exports.root())
    ctx.cur_sid = None
    return x.PUTPUBFH4res(x.NFS4_OK)


def op_putfh(ctx, a):
    fh = ctx.server.exports.from_wire(a.object)
    if len(fh.handle) > HANDLE_MAX:
        # No backend makes handles this long: malformed, not stale (RFC 8881 15.1.2.1).
        raise NFS4Error(x.NFS4ERR_BADHANDLE)
    # STALE unless the object is live (or open). The attributes this finds are the ones a
    # GETATTR (or LOOKUP's directory check) right after it would fetch: kept in Ctx.memo.
    a = getattr_(ctx, fh)
    if _under_construction_elsewhere(ctx, fh):
        # Not published: for every other client it does not exist (docs/semantics.md rule 2).
        raise NFS4Error(x.NFS4ERR_STALE)
    ctx.enter(fh)  # a client outside the export's host list gets ACCESS, never data
    ctx.memo = (fh, a)
    ctx.cur_sid = None
    return x.PUTFH4res(x.NFS4_OK)


def _under_construction_elsewhere(ctx, fh) -> bool:
    """Is `fh` a new file, not yet published, that another client is creating?"""
    if ctx.client is None:
        # NFSv4.0 names no client in PUTFH: a client on a new connection may be its creator;
        # the operations that follow (with their stateids) decide.
        return False
    files = ctx.server.store.unfinished
    return bool(files.by_handle) and files.hidden(fh.handle, viewer(ctx))


def op_getfh(ctx, a):
    return x.GETFH4res(x.NFS4_OK, x.GETFH4resok(ctx.fh().wire))


def op_savefh(ctx, a):
    ctx.sfh = ctx.fh()
    ctx.saved_sid = ctx.cur_sid
    return x.SAVEFH4res(x.NFS4_OK)


def op_restorefh(ctx, a):
    if ctx.sfh is None:
        raise NFS4Error(x.NFS4ERR_RESTOREFH if ctx.minor == 0 else x.NFS4ERR_NOFILEHANDLE)
    ctx.cfh = ctx.sfh
    ctx.cur_sid = ctx.saved_sid
    return x.RESTOREFH4res(x.NFS4_OK)


def op_lookup(ctx, a):
    fh = ctx.fh()
    d = dir_attrs(ctx, fh)
    name = check_name(a.objname, ctx.minor)
    require(ctx, d, access.X)
    exports = ctx.server.exports
    e = fh.export
    if e is not exports.pseudo:  # within one export: straight to its backend
        h, a = call(e.backend.lookup_attrs, fh.handle, name, viewer(ctx))
        ref = ctx.cfh = FileRef(e, h)
    else:
        ref, a = exports.lookup_attrs(fh, name, ctx.host, viewer(ctx))
        if ref.export is e:
            ctx.cfh = ref
        else:
            ctx.enter(ref)  # from the pseudo file system into an export
    if a is not None:
        ctx.memo = (ref, a)  # for a LOOKUP or GETATTR that follows (see Ctx.memo)
    ctx.cur_sid = None
    return x.LOOKUP4res(x.NFS4_OK)


def op_lookupp(ctx, a):
    fh = ctx.fh()
    d = getattr_(ctx, fh)
    if d.kind != Kind.DIR:
        if d.kind == Kind.LNK and ctx.minor > 0:
            raise NFS4Error(x.NFS4ERR_SYMLINK)
        raise NFS4Error(x.NFS4ERR_NOTDIR)
    require(ctx, d, access.X)
    ref = ctx.server.exports.parent(fh)
    if ref is None:
        # The root of the namespace has no parent (RFC 8881 section 18.14.4).
        raise NFS4Error(x.NFS4ERR_NOENT)
    if ref.export is fh.export:
        ctx.cfh = ref
    else:
        ctx.enter(ref)
    ctx.cur_sid = None
    return x.LOOKUPP4res(x.NFS4_OK)


def _flavors():
    return [x.secinfo4(x.AUTH_SYS, None), x.secinfo4(x.AUTH_NONE, None)]


def op_secinfo(ctx, a):
    fh = ctx.fh()
    dir_attrs(ctx, fh)
    name = check_name(a.name, ctx.minor)
    call(fh.backend.lookup, fh.handle, name, viewer(ctx))
    ctx.cfh = None  # SECINFO consumes the current filehandle
    return x.SECINFO4res(x.NFS4_OK, _flavors())


def op_secinfo_no_name(ctx, a):
    fh = ctx.fh()
    if a not in (x.SECINFO_STYLE4_CURRENT_FH, x.SECINFO_STYLE4_PARENT):
        raise NFS4Error(x.NFS4ERR_INVAL)
    if a == x.SECINFO_STYLE4_PARENT:
        d = getattr_(ctx, fh)
        if d.kind != Kind.DIR:
            raise NFS4Error(x.NFS4ERR_NOTDIR)
        if fh.handle == fh.backend.root():
            raise NFS4Error(x.NFS4ERR_NOENT)
    ctx.cfh = None
    return x.SECINFO_NO_NAME4res(x.NFS4_OK, _flavors())


HANDLERS = {
    x.OP_PUTROOTFH: op_putrootfh,
    x.OP_PUTPUBFH: op_putpubfh,
    x.OP_PUTFH: op_putfh,
    x.OP_GETFH: op_getfh,
    x.OP_SAVEFH: op_savefh,
    x.OP_RESTOREFH: op_restorefh,
    x.OP_LOOKUP: op_lookup,
    x.OP_LOOKUPP: op_lookupp,
    x.OP_SECINFO: op_secinfo,
    x.OP_SECINFO_NO_NAME: op_secinfo_no_name,
}
