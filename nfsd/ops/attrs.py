"""Attribute operations: GETATTR, SETATTR, VERIFY, NVERIFY, ACCESS (RFC 8881 sections 18.1,
18.7, 18.15, 18.30, 18.31)."""

from __future__ import annotations

import struct

from backend.interface import Kind, SetAttrs

from .. import access, attrs
from ..compound import Encoded
from ..errors import NFS4Error
from ..state.model import LockState
from ..xdr import nfs4 as x
from .common import call, check_cred, drop_setid, getattr_, require_rw, viewer


def source(ctx, fh, a):
    be = fh.backend
    return attrs.AttrSource(a, fh.wire, be.fsid(), ctx.server.store.lease_time,
                            lambda: be.statfs(fh.handle), ctx.minor,
                            ctx.server.exports.mounted_on(fh))


def op_getattr(ctx, a):
    fh = ctx.fh()
    req = a.attr_request
    attrs.check_gettable(req)
    at = getattr_(ctx, fh)
    plan = attrs.plan(req, ctx.minor)
    if plan.needs_fs:  # file system statistics: current at every request
        return x.GETATTR4res(x.NFS4_OK, x.GETATTR4resok(attrs.encode(req, source(ctx, fh, at))))
    # The reply depends only on the Attrs, the plan, the filehandle, the lease time and the
    # export table (an export root's mounted_on_fileid); a backend hands out the same Attrs
    # object while the object is unchanged, so the encoded reply is kept on it (Attrs.memo).
    key = (plan, fh.wire, ctx.server.store.lease_time, ctx.server.exports)
    m = at.memo
    if m is not None and m[0] == key:
        return m[1]
    src = source(ctx, fh, at)
    out = bytearray(_OK_WORDS[len(plan.words)].pack(x.NFS4_OK, len(plan.words), *plan.words))
    vals = plan.values(src)
    out += _U32.pack(len(vals))
    out += vals
    res = Encoded(x.NFS4_OK, bytes(out))
    at.memo = (key, res)
    return res


_U32 = struct.Struct(">I")
_OK_WORDS = [struct.Struct(">II" + "I" * n) for n in range(4)]  # status, bitmap4


def _set_size(ctx, fh, cur, size, st):
    """Content change by SETATTR: through the open's staging, or a new version at once."""
    if cur.kind != Kind.REG:
        raise NFS4Error(x.NFS4ERR_ISDIR if cur.kind == Kind.DIR else x.NFS4ERR_INVAL)
    if size > attrs.MAX_FILESIZE:
        raise NFS4Error(x.NFS4ERR_FBIG)
    store = ctx.server.store
    if isinstance(st, LockState):
        st = st.open
    if st is not None:
        # Through an open with write access: like WRITE (ftruncate on a descriptor keeps what
        # OPEN granted, even after the mode changed; docs/semantics.md).
        if not st.access & x.OPEN4_SHARE_ACCESS_WRITE or st.staging is None:
            raise NFS4Error(x.NFS4ERR_OPENMODE)
        check_cred(ctx, st, fh, access.W)
        if ctx.server.copies.busy(st.staging):
            raise NFS4Error(x.NFS4ERR_DELAY)  # a server-side copy writes it now
        drop_setid(ctx, fh)
        call(st.staging.truncate, size)
        return
    if store.in_grace():
        raise NFS4Error(x.NFS4ERR_GRACE)
    if not access.allowed(ctx.cred, cur, access.W):
        raise NFS4Error(x.NFS4ERR_ACCESS)
    drop_setid(ctx, fh)
    # The caller's own file under construction: change its staged version.
    mine = store.unfinished.staging_of(fh.handle, ctx.client)
    if mine is not None:
        if ctx.server.copies.busy(mine):
            raise NFS4Error(x.NFS4ERR_DELAY)
        call(mine.truncate, size)
        return
    be = fh.backend
    stg = call(be.stage_version, fh.handle, viewer(ctx) or b"", size == 0,
               {"state": "active", "kind": "setattr"})
    try:
        if size:
            call(stg.truncate, size)
        if getattr(be, "publish_blocks", False):  # storage whose publish waits: a thread
            def failed(f):
                be.discard(stg)
                return f
            return ctx.server.in_thread(call, be.publish, stg).addErrback(failed)
        call(be.publish, stg)
    except NFS4Error:
        be.discard(stg)
        raise
    return None


def op_setattr(ctx, a):
    fh = ctx.fh()
    require_rw(ctx, fh)
    new = attrs.decode(a.obj_attributes, ctx.minor)
    cur = getattr_(ctx, fh)
    store = ctx.server.store
    cred = ctx.cred
    v = new.values
    done = []
    size = v.get(x.FATTR4_SIZE)
    st = None
    if size is not None:
        st = store.find_state(ctx.client, ctx.stateid(a.stateid), fh.handle, ctx.minor)
    changes = SetAttrs()
    if x.FATTR4_MODE in v:
        if not access.is_owner(cred, cur):
            raise NFS4Error(x.NFS4ERR_PERM)
        mode = v[x.FATTR4_MODE] & 0o7777
        if not cred.root and not cred.in_group(cur.gid):
            mode &= ~0o2000
        changes.mode = mode
    if x.FATTR4_OWNER in v:
        uid = attrs.parse_owner(v[x.FATTR4_OWNER])
        if not access.may_chown(cred, cur, uid):
            raise NFS4Error(x.NFS4ERR_PERM)
        changes.uid = uid
    if x.FATTR4_OWNER_GROUP in v:
        gid = attrs.parse_group(v[x.FATTR4_OWNER_GROUP])
        if not access.may_chgrp(cred, cur, gid):
            raise NFS4Error(x.NFS4ERR_PERM)
        changes.gid = gid
    if (changes.uid is not None or changes.gid is not None) and cur.kind != Kind.DIR:
        # A change of owner or group clears the set-id bits (those of a mode set with it
        # too), whoever makes it, as Linux and knfsd do.
        changes.mode = access.without_setid(cur.mode if changes.mode is None else changes.mode)
        if changes.mode == cur.mode and x.FATTR4_MODE not in v:
            changes.mode = None
    now = None
    for n, field in ((x.FATTR4_TIME_ACCESS_SET, "atime_ns"), (x.FATTR4_TIME_MODIFY_SET, "mtime_ns")):
        if n not in v:
            continue
        t = v[n]
        if t.tag == x.SET_TO_SERVER_TIME4:
            if not (access.is_owner(cred, cur) or access.allowed(cred, cur, access.W)):
                raise NFS4Error(x.NFS4ERR_ACCESS)
            if now is None:
                now = ctx.server.now_ns()
            setattr(changes, field, now)
        else:
            if not access.is_owner(cred, cur):
                raise NFS4Error(x.NFS4ERR_PERM)
            if t.value.nseconds >= 1_000_000_000:
                raise NFS4Error(x.NFS4ERR_INVAL)
            setattr(changes, field, t.value.seconds * 1_000_000_000 + t.value.nseconds)
    if store.recall_conflicts(fh.handle, ctx.client):
        raise NFS4Error(x.NFS4ERR_DELAY)  # another client's delegation is being recalled
    def rest(_=None):
        if any(getattr(changes, f) is not None
               for f in ("mode", "uid", "gid", "atime_ns", "mtime_ns")):
            call(fh.backend.setattr, fh.handle, changes)
            done.extend(n for n in new.numbers if n != x.FATTR4_SIZE)
        return x.SETATTR4res(x.NFS4_OK, attrs.to_words(done))
    if size is not None:
        pending = _set_size(ctx, fh, cur, size, st)
        done.append(x.FATTR4_SIZE)
        if pending is not None:  # a new version published by storage that makes it wait
            return pending.addCallback(rest)
    return rest()


def _compare(ctx, a):
    fh = ctx.fh()
    attrs.check_gettable(a.obj_attributes.attrmask)
    new = attrs.decode(a.obj_attributes, ctx.minor, writable_only=False)
    supported = attrs.supported(ctx.minor)
    for n in new.numbers:
        if n not in supported or n not in attrs.GETTERS:
            raise NFS4Error(x.NFS4ERR_ATTRNOTSUPP)
        if n == x.FATTR4_RDATTR_ERROR:
            raise NFS4Error(x.NFS4ERR_INVAL)
    at = getattr_(ctx, fh)
    ours = attrs.encode(a.obj_attributes.attrmask, source(ctx, fh, at))
    return ours.attr_vals == bytes(a.obj_attributes.attr_vals)


def op_verify(ctx, a):
    if not _compare(ctx, a):
        raise NFS4Error(x.NFS4ERR_NOT_SAME)
    return x.VERIFY4res(x.NFS4_OK)


def op_nverify(ctx, a):
    if _compare(ctx, a):
        raise NFS4Error(x.NFS4ERR_SAME)
    return x.NVERIFY4res(x.NFS4_OK)


_ALL = (x.ACCESS4_READ | x.ACCESS4_LOOKUP | x.ACCESS4_MODIFY | x.ACCESS4_EXTEND
        | x.ACCESS4_DELETE | x.ACCESS4_EXECUTE)


_FOR_DIR = (x.ACCESS4_READ | x.ACCESS4_LOOKUP | x.ACCESS4_MODIFY | x.ACCESS4_EXTEND
            | x.ACCESS4_DELETE)
_FOR_OTHER = x.ACCESS4_READ | x.ACCESS4_MODIFY | x.ACCESS4_EXTEND | x.ACCESS4_EXECUTE
_XA = x.ACCESS4_XAREAD | x.ACCESS4_XAWRITE | x.ACCESS4_XALIST


def op_access(ctx, a):
    fh = ctx.fh()
    at = getattr_(ctx, fh)
    want = a.access
    # Only the bits that mean something for this type of object are reported as supported.
    supported = want & (_FOR_DIR if at.kind == Kind.DIR else _FOR_OTHER)
    bits = access.perm_bits(ctx.cred, at) if not ctx.cred.root else 7
    granted = 0
    is_dir = at.kind == Kind.DIR
    if bits & access.R:
        granted |= x.ACCESS4_READ
    opts = ctx.options(fh.export)
    if bits & access.W and opts is not None and opts.rw:
        granted |= x.ACCESS4_MODIFY | x.ACCESS4_EXTEND
        if is_dir:
            granted |= x.ACCESS4_DELETE
    if bits & access.X:
        if is_dir:
            granted |= x.ACCESS4_LOOKUP
        elif not ctx.cred.root or at.mode & 0o111:
            granted |= x.ACCESS4_EXECUTE
    if not is_dir:
        granted &= ~(x.ACCESS4_LOOKUP | x.ACCESS4_DELETE)
    else:
        granted &= ~x.ACCESS4_EXECUTE
    if ctx.minor >= 2:  # extended attributes (RFC 8276 section 8.4.1)
        supported |= want & _XA
        if bits & access.R:
            granted |= x.ACCESS4_XAREAD | x.ACCESS4_XALIST
        if bits & access.W and opts is not None and opts.rw:
            granted |= x.ACCESS4_XAWRITE
    return x.ACCESS4res(x.NFS4_OK, x.ACCESS4resok(supported, granted & supported))


HANDLERS = {
    x.OP_GETATTR: op_getattr,
    x.OP_SETATTR: op_setattr,
    x.OP_VERIFY: op_verify,
    x.OP_NVERIFY: op_nverify,
    x.OP_ACCESS: op_access,
}
