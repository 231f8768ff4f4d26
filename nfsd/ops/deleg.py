"""Read delegations: which OPEN gets one (`delegation`), and DELEGRETURN (RFC 8881 sections
10.4, 18.6). Recalls, revocation and their timeouts are the state store's."""

from __future__ import annotations

from ..errors import NFS4Error
from ..state.model import Delegation
from ..xdr import nfs4 as x

READ, WRITE = x.OPEN4_SHARE_ACCESS_READ, x.OPEN4_SHARE_ACCESS_WRITE


# An ACE that grants nothing by itself: the client asks ACCESS (as Linux nfsd answers).
_NO_ACE = x.nfsace4(x.ACE4_ACCESS_ALLOWED_ACE_TYPE, 0, 0, b"")


def delegation(ctx, client, st, claim, want, created):
    """A read delegation when nothing stands in the way; else why not (4.1 with WANT flags).

    Never a write delegation: a client holding one may keep the file open without telling the
    server, and the server must see the CLOSE to publish (docs/semantics.md)."""
    store = ctx.server.store
    if ctx.minor == 0:
        want = 0  # no WANT flags (and no OPEN_DELEGATE_NONE_EXT) in NFSv4.0
    kind = want & 0xFF00
    if kind == x.OPEN4_SHARE_ACCESS_WANT_NO_DELEG:
        return _no_deleg(x.WND4_NOT_WANTED)
    if kind == x.OPEN4_SHARE_ACCESS_WANT_CANCEL:
        return _no_deleg(x.WND4_CANCELLED)
    if not ctx.server.delegations or claim not in (x.CLAIM_NULL, x.CLAIM_FH):
        return _no_deleg(x.WND4_NOT_SUPP_FTYPE) if want else None
    if kind == x.OPEN4_SHARE_ACCESS_WANT_WRITE_DELEG:
        return _no_deleg(x.WND4_NOT_SUPP_FTYPE)
    fh = st.fh
    if st.access != READ or st.deny or created or store.in_grace():
        return _no_deleg(x.WND4_CONTENTION) if want else None
    if store.delegation_of(client, fh) is not None:
        return _no_deleg(x.WND4_CONTENTION) if want else None
    if store.unfinished.writing(fh) or \
            any(other.access & WRITE for other in store.opens_by_file.get(fh, ())):
        return _no_deleg(x.WND4_CONTENTION) if want else None
    if store.deleg_blocked(fh) or \
            any(d.recalled_at is not None for d in store.delegs_by_file.get(fh, ())):
        return _no_deleg(x.WND4_CONTENTION) if want else None
    if not ctx.server.callbacks.usable(client):
        return _no_deleg(x.WND4_RESOURCE) if want else None
    d = store.grant_delegation(client, fh, ctx.cfh.wire)
    return x.open_delegation4(x.OPEN_DELEGATE_READ, x.open_read_delegation4(
        x.stateid4(d.seqid, d.other), False, _NO_ACE))


def _no_deleg(why):
    if why in (x.WND4_CONTENTION, x.WND4_RESOURCE):
        return x.open_delegation4(x.OPEN_DELEGATE_NONE_EXT, x.open_none_delegation4(why, False))
    return x.open_delegation4(x.OPEN_DELEGATE_NONE_EXT, x.open_none_delegation4(why, None))


def op_delegreturn(ctx, a):
    fh = ctx.fh()
    store = ctx.server.store
    d = store.find_state(ctx.client, ctx.stateid(a.deleg_stateid), fh.handle, ctx.minor)
    if not isinstance(d, Delegation):
        raise NFS4Error(x.NFS4ERR_BAD_STATEID)
    store.return_delegation(d)
    return x.DELEGRETURN4res(x.NFS4_OK)


HANDLERS = {
    x.OP_DELEGRETURN: op_delegreturn,
}
