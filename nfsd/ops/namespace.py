"""Directory operations: CREATE, REMOVE, RENAME, LINK, READLINK, READDIR (RFC 8881 sections
18.4, 18.9, 18.23, 18.24, 18.25, 18.26)."""

from __future__ import annotations

import struct

from backend import interface as bi
from backend.interface import Kind

from .. import access, attrs
from ..compound import Encoded
from ..errors import NFS4Error
from ..exports import FH_VERSION, FileRef
from ..xdr import nfs4 as x
from .common import call, change_info, check_name, dir_attrs, getattr_, require, require_rw, viewer
from .attrs import source

_KINDS = {
    x.NF4DIR: Kind.DIR, x.NF4LNK: Kind.LNK, x.NF4BLK: Kind.BLK, x.NF4CHR: Kind.CHR,
    x.NF4SOCK: Kind.SOCK, x.NF4FIFO: Kind.FIFO,
}


def _new_owner(ctx, d, new):
    """uid/gid/mode for a new object: the caller's identity, the directory's group if setgid."""
    cred = ctx.cred
    uid, gid = cred.uid, cred.gid
    if d.mode & 0o2000:
        gid = d.gid
    v = new.values
    if x.FATTR4_OWNER in v:
        o = attrs.parse_owner(v[x.FATTR4_OWNER])
        if o != uid and not cred.root:
            raise NFS4Error(x.NFS4ERR_PERM)
        uid = o
    if x.FATTR4_OWNER_GROUP in v:
        g = attrs.parse_group(v[x.FATTR4_OWNER_GROUP])
        if g != gid and not (cred.root or cred.in_group(g)):
            raise NFS4Error(x.NFS4ERR_PERM)
        gid = g
    return uid, gid


def op_create(ctx, a):
    fh = ctx.fh()
    d = dir_attrs(ctx, fh)
    kind = _KINDS.get(a.objtype.tag)
    if kind is None:
        raise NFS4Error(x.NFS4ERR_BADTYPE)
    name = check_name(a.objname, ctx.minor)
    require_rw(ctx, fh)
    new = attrs.decode(a.createattrs, ctx.minor)
    if x.FATTR4_SIZE in new.values:
        raise NFS4Error(x.NFS4ERR_INVAL)
    require(ctx, d, access.W | access.X)
    uid, gid = _new_owner(ctx, d, new)
    mode = new.values.get(x.FATTR4_MODE, 0o777 if kind in (Kind.DIR, Kind.LNK) else 0o644) & 0o7777
    be = fh.backend
    if kind == Kind.DIR:
        h = call(be.mkdir, fh.handle, name, mode, uid, gid)
    elif kind == Kind.LNK:
        target = a.objtype.value
        if not target or b"\0" in target:
            raise NFS4Error(x.NFS4ERR_INVAL)
        h = call(be.symlink, fh.handle, name, target, mode, uid, gid)
    else:
        rdev = (0, 0)
        if kind in (Kind.BLK, Kind.CHR):
            sd = a.objtype.value
            rdev = (sd.specdata1, sd.specdata2)
        h = call(be.mknod, fh.handle, name, kind, rdev, mode, uid, gid)
    after = getattr_(ctx, fh)
    done = [n for n in new.numbers if n in (x.FATTR4_MODE, x.FATTR4_OWNER, x.FATTR4_OWNER_GROUP)]
    # Times given at creation are applied after the object exists.
    from backend.interface import SetAttrs

    times = SetAttrs()
    for n, f in ((x.FATTR4_TIME_ACCESS_SET, "atime_ns"), (x.FATTR4_TIME_MODIFY_SET, "mtime_ns")):
        t = new.values.get(n)
        if t is not None:
            setattr(times, f, ctx.server.now_ns() if t.tag == x.SET_TO_SERVER_TIME4
                    else t.value.seconds * 1_000_000_000 + t.value.nseconds)
            done.append(n)
    if times.atime_ns is not None or times.mtime_ns is not None:
        call(be.setattr, h, times)
    ctx.cfh = FileRef(fh.export, h)
    ctx.cur_sid = None
    return x.CREATE4res(x.NFS4_OK, x.CREATE4resok(change_info(d.change, after.change),
                                                  attrs.to_words(done)))


def op_remove(ctx, a):
    fh = ctx.fh()
    d = dir_attrs(ctx, fh)
    name = check_name(a.target, ctx.minor)
    require_rw(ctx, fh)
    be = fh.backend
    v = viewer(ctx)
    victim, va = call(be.lookup_attrs, fh.handle, name, v)
    _may_delete(ctx, d, va)
    if ctx.server.store.in_grace():
        # A reclaim may still need this name (as Linux nfsd does during grace).
        raise NFS4Error(x.NFS4ERR_GRACE)
    if ctx.server.store.recall_conflicts(victim, ctx.client):
        raise NFS4Error(x.NFS4ERR_DELAY)  # another client's delegation is being recalled
    call(be.remove, fh.handle, name, v)
    after = getattr_(ctx, fh)
    return x.REMOVE4res(x.NFS4_OK, x.REMOVE4resok(change_info(d.change, after.change)))


def _may_delete(ctx, d, victim):
    """Removing or replacing an entry of directory `d`: write and search permission on `d`
    (ACCESS), and in a sticky directory ownership of the entry or of `d` (PERM, as Linux
    answers EPERM)."""
    if not access.may_delete(ctx.cred, d):
        raise NFS4Error(x.NFS4ERR_ACCESS)
    if access.sticky_denies(ctx.cred, d, victim):
        raise NFS4Error(x.NFS4ERR_PERM)


def op_rename(ctx, a):
    src = ctx.sfh
    if src is None:
        raise NFS4Error(x.NFS4ERR_NOFILEHANDLE)
    dst = ctx.fh()
    sd = dir_attrs(ctx, src)
    dd = dir_attrs(ctx, dst)
    oldname = check_name(a.oldname, ctx.minor)
    newname = check_name(a.newname, ctx.minor)
    if src.export is not dst.export:
        raise NFS4Error(x.NFS4ERR_XDEV)
    require_rw(ctx, dst)
    be = dst.backend
    v = viewer(ctx)
    # one call each (a name and its attributes together): with several frontends, the entry
    # may go between a look-up and a getattr, and that is NOENT, not a stale handle
    moving, ma = call(be.lookup_attrs, src.handle, oldname, v)
    _may_delete(ctx, sd, ma)
    require(ctx, dd, access.W | access.X)
    if ma.kind == Kind.DIR and src.handle != dst.handle:
        # A directory moved to another parent has its '..' rewritten: it needs write
        # permission on itself too (as rename(2) does).
        require(ctx, ma, access.W)
    try:
        target, ta = be.lookup_attrs(dst.handle, newname, v)
    except bi.Unavailable:
        raise NFS4Error(x.NFS4ERR_DELAY) from None
    except bi.BackendError:  # an absent target is the common case; rename decides the rest
        target = None
    if target is not None and target != moving:
        _may_delete(ctx, dd, ta)
    if ctx.server.store.in_grace():
        raise NFS4Error(x.NFS4ERR_GRACE)
    store = ctx.server.store
    if store.recall_conflicts(moving, ctx.client) or \
            (target is not None and store.recall_conflicts(target, ctx.client)):
        raise NFS4Error(x.NFS4ERR_DELAY)
    call(be.rename, src.handle, oldname, dst.handle, newname, v)
    sa = getattr_(ctx, src)
    da = getattr_(ctx, dst)
    return x.RENAME4res(x.NFS4_OK, x.RENAME4resok(change_info(sd.change, sa.change),
                                                  change_info(dd.change, da.change)))


def op_link(ctx, a):
    src = ctx.sfh
    if src is None:
        raise NFS4Error(x.NFS4ERR_NOFILEHANDLE)
    dst = ctx.fh()
    dd = dir_attrs(ctx, dst)
    name = check_name(a.newname, ctx.minor)
    if src.export is not dst.export:
        raise NFS4Error(x.NFS4ERR_XDEV)
    sa = getattr_(ctx, src)
    if sa.kind == Kind.DIR:
        raise NFS4Error(x.NFS4ERR_ISDIR)
    require_rw(ctx, dst)
    require(ctx, dd, access.W | access.X)
    if ctx.server.store.recall_conflicts(src.handle, ctx.client):
        raise NFS4Error(x.NFS4ERR_DELAY)
    call(dst.backend.link, src.handle, dst.handle, name)
    after = getattr_(ctx, dst)
    return x.LINK4res(x.NFS4_OK, x.LINK4resok(change_info(dd.change, after.change)))


def op_readlink(ctx, a):
    fh = ctx.fh()
    at = getattr_(ctx, fh)
    if at.kind != Kind.LNK:
        raise NFS4Error(x.NFS4ERR_INVAL)
    return x.READLINK4res(x.NFS4_OK, x.READLINK4resok(call(fh.backend.readlink, fh.handle)))


_REPLY_OVERHEAD = 8 + 4 + 4  # READDIR4resok without entries: verifier, final list flag, eof
FH_VERSION_BYTE = bytes((FH_VERSION,))
_U32 = struct.Struct(">I")
_ENTRY_HEAD = struct.Struct(">IQI")  # list flag (TRUE), cookie, name length
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")  # by len & 3
_RDATTR_ERROR_BITMAP = _U32.pack(1) + _U32.pack(1 << x.FATTR4_RDATTR_ERROR)


def op_readdir(ctx, a):
    fh = ctx.fh()
    d = dir_attrs(ctx, fh)
    require(ctx, d, access.R)
    if a.cookie in (1, 2):
        raise NFS4Error(x.NFS4ERR_BAD_COOKIE)
    be = fh.backend
    verf = be.dir_verifier(fh.handle)
    if a.cookie != 0 and a.cookieverf != verf and a.cookieverf != bytes(8):
        raise NFS4Error(x.NFS4ERR_NOT_SAME)
    maxcount = a.maxcount
    limit = min(maxcount, ctx.server.max_readdir_reply(ctx))
    if limit < _REPLY_OVERHEAD:  # not even an empty listing fits
        raise NFS4Error(x.NFS4ERR_TOOSMALL)
    req = a.attr_request
    attrs.check_gettable(req)
    want_err = x.FATTR4_RDATTR_ERROR in attrs.requested_set(req)
    plan = attrs.plan(req, ctx.minor)
    used = _REPLY_OVERHEAD
    eof = True
    exports = ctx.server.exports
    pseudo = fh.export is exports.pseudo
    if pseudo:  # the directories above the exports: only what leads to this client's exports
        listing = [e for e in exports.readdir_pseudo(fh, ctx.host) if e.cookie > a.cookie]
    else:
        listing = call(be.readdir, fh.handle, a.cookie, viewer(ctx))
    lease = ctx.server.store.lease_time
    # One AttrSource for the whole listing (entries of one directory share the file system);
    # the pseudo file system's entries are export roots, each with its own.
    src = attrs.AttrSource(None, b"", be.fsid(), lease, lambda: be.statfs(fh.handle),
                           ctx.minor)
    values = plan.values
    # The reply is encoded here, entry by entry, straight into its bytes (an Encoded result):
    # no entry4/fattr4 objects for what may be thousands of entries. An entry's bytes depend
    # only on the entry and on (plan, fsid, lease) unless the plan asks for file system
    # statistics, so they are kept on the entry (DirEntry.memo): a backend that hands out an
    # unchanged entry again (the local backend's listing cache) has it encoded once.
    bitmap = _U32.pack(len(plan.words)) + b"".join(_U32.pack(w) for w in plan.words)
    memo_key = None if pseudo or plan.needs_fs else (plan, src.fsid, lease)
    out = bytearray(_U32.pack(x.NFS4_OK))
    out += verf
    n = 0
    for e in listing:
        m = e.memo
        if m is not None and memo_key is not None and m[0] == memo_key:
            piece = m[1]
        else:
            if pseudo:
                ref = exports.ref(e.handle)
                ebe = ref.backend
                src = attrs.AttrSource(None, b"", ebe.fsid(), lease,
                                       lambda ebe=ebe, h=e.handle: ebe.statfs(h), ctx.minor,
                                       exports.mounted_on(ref))
            src.a = e.attrs
            src.fh = FH_VERSION_BYTE + e.handle
            try:
                vals = values(src)
                bm = bitmap
            except NFS4Error as err:
                if not want_err:
                    raise
                bm, vals = _RDATTR_ERROR_BITMAP, _U32.pack(err.status)
            name = e.name
            nlen = len(name)
            piece = b"".join((_ENTRY_HEAD.pack(1, e.cookie, nlen), name, _PAD[nlen & 3], bm,
                              _U32.pack(len(vals)), vals))  # attr values: whole XDR units
            if memo_key is not None and bm is bitmap:
                e.memo = (memo_key, piece)
        if used + len(piece) > limit:
            eof = False
            break
        used += len(piece)
        n += 1
        out += piece
    if not n and not eof:
        raise NFS4Error(x.NFS4ERR_TOOSMALL)
    out += _U32.pack(0)  # end of the entry list
    out += _U32.pack(1 if eof else 0)
    return Encoded(x.NFS4_OK, bytes(out))


HANDLERS = {
    x.OP_CREATE: op_create,
    x.OP_REMOVE: op_remove,
    x.OP_RENAME: op_rename,
    x.OP_LINK: op_link,
    x.OP_READLINK: op_readlink,
    x.OP_READDIR: op_readdir,
}
_ = source
