"""Byte-range locks: LOCK, LOCKT, LOCKU (RFC 8881 sections 18.10-18.12, RFC 7530 16.10-16.12).

Locks say who may lock what; they are independent of staging (docs/semantics.md). NFSv4.0
sequencing: a LOCK for a new lock-owner is sequenced on the open-owner (open_seqid) and starts
the lock-owner at lock_seqid; other LOCKs and LOCKUs are sequenced on the lock-owner.
"""

from __future__ import annotations

from backend.interface import Kind

from ..errors import NFS4Error
from ..state import locks as L
from ..state.model import LockState, OpenState
from ..xdr import nfs4 as x
from .common import call, getattr_
from .io import sequenced

_KIND = {x.READ_LT: L.READ, x.READW_LT: L.READ, x.WRITE_LT: L.WRITE, x.WRITEW_LT: L.WRITE}


def _span(offset, length):
    sp = L.span(offset, length)
    if sp is None:
        raise NFS4Error(x.NFS4ERR_INVAL)
    return sp


def _denied(ls, rng, res_cls):
    s, e, k = rng
    d = x.LOCK4denied(s, L.length_of(s, e), x.WRITE_LT if k == L.WRITE else x.READ_LT,
                      x.lock_owner4(ls.owner.client.clientid, ls.owner.owner))
    return NFS4Error(x.NFS4ERR_DENIED, res_cls(x.NFS4ERR_DENIED, d))


def _denied_elsewhere(rng, res_cls):
    """DENIED by a lock held through another server sharing the storage (its owner is not
    ours to name)."""
    s, e, write = rng
    d = x.LOCK4denied(s, L.length_of(s, e), x.WRITE_LT if write else x.READ_LT,
                      x.lock_owner4(0, b"another frontend"))
    return NFS4Error(x.NFS4ERR_DENIED, res_cls(x.NFS4ERR_DENIED, d))


def _regular(ctx, fh):
    a = getattr_(ctx, fh)
    if a.kind != Kind.REG:
        raise NFS4Error(x.NFS4ERR_ISDIR if a.kind == Kind.DIR else x.NFS4ERR_INVAL)


def _grace(ctx, reclaim: bool, client):
    store = ctx.server.store
    if reclaim:
        if not store.in_grace() or not client.may_reclaim or client.reclaim_complete:
            raise NFS4Error(x.NFS4ERR_NO_GRACE)
    elif store.in_grace():
        raise NFS4Error(x.NFS4ERR_GRACE)


def op_lock(ctx, a):
    fh = ctx.fh()
    call(fh.backend.barrier)  # what was written under the lock before it shows (any server)
    store = ctx.server.store
    kind = _KIND[a.locktype]
    start, end = _span(a.offset, a.length)
    if a.locker.tag:  # a new lock-owner, from an open
        ol = a.locker.value
        ost = store.find_state(ctx.client, ctx.stateid(ol.open_stateid), fh.handle, ctx.minor,
                               generation=ctx.minor > 0)
        if not isinstance(ost, OpenState):
            raise NFS4Error(x.NFS4ERR_BAD_STATEID)
        client = ost.client
        if ctx.minor == 0 and ol.lock_owner.clientid != client.clientid:
            raise NFS4Error(x.NFS4ERR_STALE_CLIENTID if store.is_stale_clientid(
                ol.lock_owner.clientid) else x.NFS4ERR_BAD_STATEID)

        def body():
            if ctx.minor == 0:
                store.check_generation(ost, ol.open_stateid, 0)
            lo = store.lock_owner(client, ol.lock_owner.owner)
            ls = lo.states.get(fh.handle)
            fresh = ls is None or ls.closed
            ls = store.lock_state(lo, ost)
            try:
                res = _lock(ctx, a, ls, kind, start, end, client)
            except NFS4Error:
                if fresh:  # a lock-owner whose first lock failed holds no stateid
                    store.drop_lock_state(ls)
                raise
            if ctx.minor == 0:
                lo.last_seqid = ol.lock_seqid
                lo.last_reply = (x.OP_LOCK, 0, res, ctx.cfh)
            return res
        return sequenced(ctx, ost.owner, ol.open_seqid, x.OP_LOCK, body)
    el = a.locker.value
    ls = store.find_state(ctx.client, ctx.stateid(el.lock_stateid), fh.handle, ctx.minor,
                          generation=ctx.minor > 0)
    if not isinstance(ls, LockState):
        raise NFS4Error(x.NFS4ERR_BAD_STATEID)

    def body():
        if ctx.minor == 0:
            store.check_generation(ls, el.lock_stateid, 0)
        return _lock(ctx, a, ls, kind, start, end, ls.client)
    return sequenced(ctx, ls.owner, el.lock_seqid, x.OP_LOCK, body)


def _lock(ctx, a, ls, kind, start, end, client):
    store = ctx.server.store
    _grace(ctx, a.reclaim, client)
    _regular(ctx, ctx.fh())
    need = x.OPEN4_SHARE_ACCESS_WRITE if kind == L.WRITE else x.OPEN4_SHARE_ACCESS_READ
    if not ls.open.access & need:
        raise NFS4Error(x.NFS4ERR_OPENMODE)
    c = store.lock_conflict(ls.fh, ls.owner, start, end, kind)
    if c is not None:
        raise _denied(c[0], c[1], x.LOCK4res)
    elsewhere = store.set_lock(ls, start, end, kind)
    if elsewhere is not None:
        raise _denied_elsewhere(elsewhere, x.LOCK4res)
    sid = x.stateid4(ls.seqid, ls.other)
    ctx.set_stateid(sid)
    return x.LOCK4res(x.NFS4_OK, x.LOCK4resok(sid))


def op_lockt(ctx, a):
    fh = ctx.fh()
    store = ctx.server.store
    kind = _KIND[a.locktype]
    start, end = _span(a.offset, a.length)
    if ctx.minor == 0:
        client = store.client40(a.owner.clientid)
    else:
        client = ctx.client
    _regular(ctx, fh)
    if store.in_grace():
        raise NFS4Error(x.NFS4ERR_GRACE)
    lo = client.lock_owners.get(a.owner.owner)
    c = store.lock_conflict(fh.handle, lo if lo is not None else object(), start, end, kind)
    if c is not None:
        raise _denied(c[0], c[1], x.LOCKT4res)
    elsewhere = store.shared_lock_conflict(fh.handle, start, end, kind)
    if elsewhere is not None:
        raise _denied_elsewhere(elsewhere, x.LOCKT4res)
    return x.LOCKT4res(x.NFS4_OK, None)


def op_locku(ctx, a):
    fh = ctx.fh()
    store = ctx.server.store
    if a.locktype not in _KIND:
        raise NFS4Error(x.NFS4ERR_INVAL)
    ls = store.find_state(ctx.client, ctx.stateid(a.lock_stateid), fh.handle, ctx.minor,
                          generation=ctx.minor > 0)
    if not isinstance(ls, LockState):
        raise NFS4Error(x.NFS4ERR_BAD_STATEID)

    def body():
        if ctx.minor == 0:
            store.check_generation(ls, a.lock_stateid, 0)
        start, end = _span(a.offset, a.length)
        store.unlock(ls, start, end)
        sid = x.stateid4(ls.seqid, ls.other)
        ctx.set_stateid(sid)
        return x.LOCKU4res(x.NFS4_OK, sid)
    return sequenced(ctx, ls.owner, a.seqid, x.OP_LOCKU, body)


HANDLERS = {
    x.OP_LOCK: op_lock,
    x.OP_LOCKT: op_lockt,
    x.OP_LOCKU: op_locku,
}
