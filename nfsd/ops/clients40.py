"""NFSv4.0 client operations: SETCLIENTID, SETCLIENTID_CONFIRM, RENEW, RELEASE_LOCKOWNER
(RFC 7530 sections 16.33, 16.34, 16.29, 16.37)."""

from __future__ import annotations

from ..errors import NFS4Error
from ..xdr import nfs4 as x
from .session import principal


def op_setclientid(ctx, a):
    store = ctx.server.store
    try:
        client = store.setclientid(a.client.id, a.client.verifier, principal(ctx),
                                   (a.callback.cb_program, a.callback.cb_location, a.callback_ident))
    except NFS4Error as e:
        if e.status == x.NFS4ERR_CLID_INUSE:
            # The callback address of the client already using this id (RFC 7530 16.33.4).
            raise NFS4Error(e.status, x.SETCLIENTID4res(e.status, x.netaddr4(b"tcp", b""))) from None
        raise
    # The server never delegates, so it never calls back: the address is only remembered.
    return x.SETCLIENTID4res(x.NFS4_OK, x.SETCLIENTID4resok(client.clientid, client.confirm_verifier))


def op_setclientid_confirm(ctx, a):
    store = ctx.server.store
    client = store.setclientid_confirm(a.clientid, a.setclientid_confirm, principal(ctx))
    ctx.call.conn.state["client40"] = client
    if ctx.server.delegations and client.callback is not None:
        ctx.server.callbacks.probe40(client)  # only the address the client gave
    ctx.server.log_client(client, "client confirmed (NFSv4.0)")
    return x.SETCLIENTID_CONFIRM4res(x.NFS4_OK)


def op_renew(ctx, a):
    client = ctx.server.store.renew_clientid(a.clientid)
    ctx.call.conn.state["client40"] = client
    return x.RENEW4res(x.NFS4_OK)


def op_release_lockowner(ctx, a):
    store = ctx.server.store
    client = store.client40(a.lock_owner.clientid)
    lo = client.lock_owners.get(a.lock_owner.owner)
    if lo is not None:
        if any(ls.ranges for ls in lo.states.values()):
            raise NFS4Error(x.NFS4ERR_LOCKS_HELD)
        store.release_lock_owner(lo)
    return x.RELEASE_LOCKOWNER4res(x.NFS4_OK)


HANDLERS = {
    x.OP_SETCLIENTID: op_setclientid,
    x.OP_SETCLIENTID_CONFIRM: op_setclientid_confirm,
    x.OP_RENEW: op_renew,
    x.OP_RELEASE_LOCKOWNER: op_release_lockowner,
}
