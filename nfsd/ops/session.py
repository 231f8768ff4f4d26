"""NFSv4.1 client and session operations (RFC 8881 sections 18.35-18.51)."""

from __future__ import annotations

import struct

from backend import interface as bi
from backend.interface import SetAttrs

from ..compound import Encoded
from ..errors import NFS4Error
from ..state.model import ChannelAttrs
from ..xdr import nfs4 as x

# Flags a client may send in EXCHANGE_ID (RFC 8881 section 18.35.3).
EXCHGID_FLAGS_A = (
    x.EXCHGID4_FLAG_SUPP_MOVED_REFER | x.EXCHGID4_FLAG_SUPP_MOVED_MIGR
    | x.EXCHGID4_FLAG_BIND_PRINC_STATEID | x.EXCHGID4_FLAG_MASK_PNFS
    | x.EXCHGID4_FLAG_UPD_CONFIRMED_REC_A
)
CREATE_SESSION_FLAGS = (x.CREATE_SESSION4_FLAG_PERSIST | x.CREATE_SESSION4_FLAG_CONN_BACK_CHAN
                        | x.CREATE_SESSION4_FLAG_CONN_RDMA)

IMPL_ID = None


def principal(ctx):
    """The identity a client record is bound to (AUTH_SYS: the uid as sent)."""
    c = ctx.call.cred
    return (1, c.uid) if c is not None else (0, None)


def op_exchange_id(ctx, a):
    store = ctx.server.store
    # SUPP_FENCE_OPS (RFC 7862) is not accepted either: this server has no fencing, and
    # Linux nfsd refuses it the same way.
    if a.eia_flags & ~EXCHGID_FLAGS_A:
        raise NFS4Error(x.NFS4ERR_INVAL)
    how = a.eia_state_protect.tag
    if how == x.SP4_MACH_CRED:
        # Machine-credential protection needs an integrity-protected RPC flavor.
        raise NFS4Error(x.NFS4ERR_INVAL)
    if how == x.SP4_SSV:
        raise NFS4Error(x.NFS4ERR_ENCR_ALG_UNSUPP)
    owner = a.eia_clientowner.co_ownerid
    verifier = a.eia_clientowner.co_verifier
    client, flags = store.exchange_id(owner, verifier, a.eia_flags, principal(ctx), ctx.minor)
    if a.eia_client_impl_id:
        client.impl_id = a.eia_client_impl_id[0]
    srv = ctx.server
    return x.EXCHANGE_ID4res(x.NFS4_OK, x.EXCHANGE_ID4resok(
        eir_clientid=client.clientid,
        eir_sequenceid=(client.cs_sequence + 1) & 0xFFFFFFFF,
        eir_flags=flags | x.EXCHGID4_FLAG_USE_NON_PNFS,
        eir_state_protect=x.state_protect4_r(x.SP4_NONE, None),
        eir_server_owner=x.server_owner4(0, srv.owner_major),
        eir_server_scope=srv.scope,
        eir_server_impl_id=[x.nfs_impl_id4(b"nfsd.invalid", b"nfsd write-once server",
                                           x.nfstime4(0, 0))],
    ))


def _chan(c) -> ChannelAttrs:
    return ChannelAttrs(c.ca_headerpadsize, c.ca_maxrequestsize, c.ca_maxresponsesize,
                        c.ca_maxresponsesize_cached, c.ca_maxoperations, c.ca_maxrequests)


def _chan_out(c: ChannelAttrs):
    return x.channel_attrs4(c.headerpadsize, c.maxrequestsize, c.maxresponsesize,
                            c.maxresponsesize_cached, c.maxoperations, c.maxrequests, [])


def op_create_session(ctx, a):
    store = ctx.server.store
    if a.csa_flags & ~CREATE_SESSION_FLAGS:
        raise NFS4Error(x.NFS4ERR_INVAL)
    # ca_rdma_ird (0 or 1 entries) only matters on RDMA transports: ignored on TCP.
    session, replay = store.create_session(
        a.csa_clientid, a.csa_sequence, a.csa_flags, _chan(a.csa_fore_chan_attrs),
        _chan(a.csa_back_chan_attrs), a.csa_cb_program, principal(ctx))
    if replay is not None:
        return replay
    session.cb_sec = a.csa_sec_parms
    session.conns.add(ctx.call.conn)
    if session.flags & x.CREATE_SESSION4_FLAG_CONN_BACK_CHAN:
        session.back_conns.append(ctx.call.conn)
    res = x.CREATE_SESSION4res(x.NFS4_OK, x.CREATE_SESSION4resok(
        csr_sessionid=session.sessionid,
        csr_sequence=a.csa_sequence,
        csr_flags=session.flags,
        csr_fore_chan_attrs=_chan_out(session.fore),
        csr_back_chan_attrs=_chan_out(session.back),
    ))
    session.client.cs_reply = res
    ctx.server.log_client(session.client, "session created")
    return res


def op_sequence(ctx, a):
    store = ctx.server.store
    session = store.sessions.get(a.sa_sessionid)
    if session is None:
        raise NFS4Error(x.NFS4ERR_BADSESSION)
    if ctx.reqsize > session.fore.maxrequestsize:
        raise NFS4Error(x.NFS4ERR_REQ_TOO_BIG)
    if ctx.nops > session.fore.maxoperations:
        raise NFS4Error(x.NFS4ERR_TOO_MANY_OPS)
    session, slot, replay = store.sequence(a.sa_sessionid, a.sa_sequenceid, a.sa_slotid,
                                           a.sa_highest_slotid)
    if replay:
        if slot.cached:
            ctx.replay = slot.reply
            return None
        raise NFS4Error(x.NFS4ERR_RETRY_UNCACHED_REP)
    ctx.session = session
    ctx.slot = slot
    ctx.client = session.client
    ctx.cachethis = a.sa_cachethis
    session.conns.add(ctx.call.conn)
    top = len(session.slots) - 1
    flags = 0
    if session.client.revoked_delegs:
        flags |= x.SEQ4_STATUS_RECALLABLE_STATE_REVOKED
    if session.flags & x.CREATE_SESSION4_FLAG_CONN_BACK_CHAN and \
            not any(not c.closed for c in session.back_conns):
        flags |= x.SEQ4_STATUS_CB_PATH_DOWN_SESSION
    # SEQUENCE4res, status NFS4_OK, packed in one go (it starts every 4.1 COMPOUND).
    return Encoded(x.NFS4_OK, _SEQ_OK.pack(x.NFS4_OK, session.sessionid, a.sa_sequenceid,
                                           a.sa_slotid, top, top, flags))


# SEQUENCE4res with NFS4_OK: status, sr_sessionid (16 bytes), sequenceid, slotid,
# highest_slotid, target_highest_slotid, status_flags (RFC 8881 section 18.46.2).
_SEQ_OK = struct.Struct(">I16sIIIII")


def op_destroy_session(ctx, a):
    store = ctx.server.store
    session = store.sessions.get(a.dsa_sessionid)
    if session is None:
        raise NFS4Error(x.NFS4ERR_BADSESSION)
    if ctx.session is not None and ctx.session is not session and \
            ctx.session.client is not session.client:
        raise NFS4Error(x.NFS4ERR_BADSESSION)
    store.destroy_session(a.dsa_sessionid)
    return x.DESTROY_SESSION4res(x.NFS4_OK)


def op_destroy_clientid(ctx, a):
    store = ctx.server.store
    if ctx.session is not None and ctx.session.client.clientid == a.dca_clientid:
        raise NFS4Error(x.NFS4ERR_CLIENTID_BUSY)
    client = store.clients.get(a.dca_clientid)
    store.destroy_clientid(a.dca_clientid)
    if client is not None:
        ctx.server.log_client(client, "client destroyed")
    return x.DESTROY_CLIENTID4res(x.NFS4_OK)


def op_reclaim_complete(ctx, a):
    if not a.rca_one_fs:
        ctx.server.store.reclaim_complete(ctx.client)
    return x.RECLAIM_COMPLETE4res(x.NFS4_OK)


def op_bind_conn_to_session(ctx, a):
    store = ctx.server.store
    session = store.sessions.get(a.bctsa_sessid)
    if session is None:
        raise NFS4Error(x.NFS4ERR_BADSESSION)
    d = a.bctsa_dir
    if d == x.CDFC4_FORE:
        out = x.CDFS4_FORE
    elif d == x.CDFC4_BACK:
        out = x.CDFS4_BACK
    elif d in (x.CDFC4_FORE_OR_BOTH, x.CDFC4_BACK_OR_BOTH):
        out = x.CDFS4_BOTH
    else:
        raise NFS4Error(x.NFS4ERR_INVAL)
    session.conns.add(ctx.call.conn)
    if out in (x.CDFS4_BACK, x.CDFS4_BOTH) and ctx.call.conn not in session.back_conns:
        session.back_conns.append(ctx.call.conn)
    store.renew(session.client)
    return x.BIND_CONN_TO_SESSION4res(x.NFS4_OK, x.BIND_CONN_TO_SESSION4resok(
        bctsr_sessid=session.sessionid, bctsr_dir=out, bctsr_use_conn_in_rdma_mode=False))


def op_backchannel_ctl(ctx, a):
    """New callback program and security for the session's back channel (RFC 8881 18.33)."""
    session = ctx.session
    session.cb_program = a.bca_cb_program
    session.cb_sec = a.bca_sec_parms
    return x.BACKCHANNEL_CTL4res(x.NFS4_OK)


def op_test_stateid(ctx, a):
    store = ctx.server.store
    codes = [store.stateid_status(ctx.client, sid) for sid in a.ts_stateids]
    return x.TEST_STATEID4res(x.NFS4_OK, x.TEST_STATEID4resok(codes))


def op_free_stateid(ctx, a):
    revoked = ctx.server.store.free_stateid(ctx.client, ctx.stateid(a.fsa_stateid))
    if revoked is not None:
        _changed_under(ctx, revoked)
    return x.FREE_STATEID4res(x.NFS4_OK)


def _changed_under(ctx, deleg):
    """The client lets go of a revoked read delegation: move the file's `change` (a ctime
    touch, nothing else changes), so it revalidates what it cached meanwhile. A Linux client
    woken after the revocation takes the attributes its DELEGRETURN's GETATTR brings while it
    still believes it holds the delegation, and would otherwise keep serving the file's old
    content from its cache (tests/test_kernel_posix.py)."""
    try:
        ref = ctx.server.exports.ref(deleg.fh)
        a = ref.backend.getattr(deleg.fh)
        ref.backend.setattr(deleg.fh, SetAttrs(mode=a.mode))
    except (NFS4Error, bi.BackendError):
        pass  # gone or no longer exported: nothing cached to revalidate


HANDLERS = {
    x.OP_EXCHANGE_ID: op_exchange_id,
    x.OP_CREATE_SESSION: op_create_session,
    x.OP_SEQUENCE: op_sequence,
    x.OP_DESTROY_SESSION: op_destroy_session,
    x.OP_DESTROY_CLIENTID: op_destroy_clientid,
    x.OP_RECLAIM_COMPLETE: op_reclaim_complete,
    x.OP_BIND_CONN_TO_SESSION: op_bind_conn_to_session,
    x.OP_TEST_STATEID: op_test_stateid,
    x.OP_BACKCHANNEL_CTL: op_backchannel_ctl,
    x.OP_FREE_STATEID: op_free_stateid,
}
