"""Client and session operations over a real socket: EXCHANGE_ID, CREATE_SESSION, SEQUENCE slot
rules and reply cache, DESTROY_SESSION, DESTROY_CLIENTID, BIND_CONN_TO_SESSION,
RECLAIM_COMPLETE, TEST_STATEID, FREE_STATEID, SECINFO_NO_NAME (RFC 8881 sections 18.35-18.51)."""

from __future__ import annotations

import os
import struct

import pytest

from nfsd.client import ANON, NfsClient, NfsError, compound_bytes, op, op_status
from nfsd.xdr import decode, nfs4 as x


@pytest.fixture
def fresh(server):
    """A new client identity with a session (destroyed afterwards)."""
    c = NfsClient(*server.address).mount()
    yield c
    try:
        c.destroy()
    finally:
        c.close()


def exchange(c, flags=0, owner=None, verifier=None):
    a = x.EXCHANGE_ID4args(x.client_owner4(verifier or c.verifier, owner or c.owner), flags,
                           x.state_protect4_a(x.SP4_NONE, None), [])
    return c.compound([x.nfs_argop4(x.OP_EXCHANGE_ID, a)]).resarray[0].value


def create_session_op(clientid, seq, slots=4, maxops=16):
    chan = x.channel_attrs4(0, 1 << 20, 1 << 20, 64 * 1024, maxops, slots, [])
    back = x.channel_attrs4(0, 4096, 4096, 0, 2, 1, [])
    return x.nfs_argop4(x.OP_CREATE_SESSION, x.CREATE_SESSION4args(
        clientid, seq, 0, chan, back, 0x40000000, [x.callback_sec_parms4(x.AUTH_NONE, None)]))


def seq_op(c, seqid, slot=0, cachethis=False, sessionid=None):
    return op("SEQUENCE", sessionid or c.sessionid, seqid, slot, c.nslots - 1, cachethis)


# ---------------------------------------------------------------- EXCHANGE_ID
def test_exchange_id_same_owner_and_verifier_returns_same_clientid(fresh):
    r = exchange(fresh)
    assert r.tag == x.NFS4_OK
    assert r.value.eir_clientid == fresh.clientid
    assert r.value.eir_flags & x.EXCHGID4_FLAG_CONFIRMED_R
    assert r.value.eir_flags & x.EXCHGID4_FLAG_USE_NON_PNFS


def test_exchange_id_unconfirmed_has_no_confirmed_flag(server):
    with NfsClient(*server.address) as c:
        r = exchange(c)
        assert r.tag == x.NFS4_OK
        assert not r.value.eir_flags & x.EXCHGID4_FLAG_CONFIRMED_R


def test_exchange_id_update_of_unknown_owner_is_noent(server):
    with NfsClient(*server.address) as c:
        r = exchange(c, flags=x.EXCHGID4_FLAG_UPD_CONFIRMED_REC_A, owner=b"never-seen-" + os.urandom(4).hex().encode())
        assert r.tag == x.NFS4ERR_NOENT


def test_exchange_id_update_of_confirmed_owner(fresh):
    r = exchange(fresh, flags=x.EXCHGID4_FLAG_UPD_CONFIRMED_REC_A)
    assert r.tag == x.NFS4_OK and r.value.eir_clientid == fresh.clientid
    r = exchange(fresh, flags=x.EXCHGID4_FLAG_UPD_CONFIRMED_REC_A, verifier=b"otherver")
    assert r.tag == x.NFS4ERR_NOT_SAME


@pytest.mark.parametrize("flags", [x.EXCHGID4_FLAG_CONFIRMED_R, 0x00000800, 0x10000000, 0x8,
                                   x.EXCHGID4_FLAG_USE_NON_PNFS | 0x200])
def test_exchange_id_bad_flags_is_inval(server, flags):
    with NfsClient(*server.address) as c:
        assert exchange(c, flags=flags).tag == x.NFS4ERR_INVAL


def test_exchange_id_new_verifier_replaces_the_client(server):
    owner = b"reboot-" + os.urandom(4).hex().encode()
    with NfsClient(*server.address, owner=owner) as a:
        a.mount()
        old_sessionid = a.sessionid
        with NfsClient(*server.address, owner=owner) as b:  # same owner, new boot verifier
            b.mount()
            assert b.clientid != a.clientid
            # The old incarnation's session is gone.
            res = a.compound([seq_op(a, a.seqid + 1, sessionid=old_sessionid)])
            assert res.status == x.NFS4ERR_BADSESSION
            b.destroy()


# ---------------------------------------------------------------- CREATE_SESSION
def test_create_session_misordered_and_replay(server):
    with NfsClient(*server.address) as c:
        r = exchange(c)
        cid, seq = r.value.eir_clientid, r.value.eir_sequenceid
        res = c.compound([create_session_op(cid, seq + 1)])
        assert res.status == x.NFS4ERR_SEQ_MISORDERED
        first = c.compound([create_session_op(cid, seq)])
        assert first.status == x.NFS4_OK
        again = c.compound([create_session_op(cid, seq)])
        assert again.status == x.NFS4_OK
        s1 = first.resarray[0].value.value
        s2 = again.resarray[0].value.value
        assert s1.csr_sessionid == s2.csr_sessionid and s2.csr_sequence == seq
        # A replay does not make a second session: the next sequence makes a new one.
        third = c.compound([create_session_op(cid, seq + 1)])
        assert third.status == x.NFS4_OK
        assert third.resarray[0].value.value.csr_sessionid != s1.csr_sessionid
        # Going back further is misordered.
        res = c.compound([create_session_op(cid, seq - 1)])
        assert res.status == x.NFS4ERR_SEQ_MISORDERED
        for s in (s1, third.resarray[0].value.value):
            assert c.compound([op("DESTROY_SESSION", s.csr_sessionid)]).status == x.NFS4_OK
        assert c.compound([op("DESTROY_CLIENTID", cid)]).status == x.NFS4_OK


def test_create_session_unknown_clientid(server):
    with NfsClient(*server.address) as c:
        res = c.compound([create_session_op(0x1234_5678_9ABC_DEF0, 1)])
        assert res.status == x.NFS4ERR_STALE_CLIENTID


def test_create_session_negotiates_limits(server):
    with NfsClient(*server.address) as c:
        c.exchange_id()
        s = c.create_session(slots=1000, maxops=1000)
        assert 1 <= s.csr_fore_chan_attrs.ca_maxrequests <= 1000
        assert 1 <= s.csr_fore_chan_attrs.ca_maxoperations <= 1000
        c.call([op("PUTROOTFH")])
        c.destroy()


# ---------------------------------------------------------------- SEQUENCE
def test_sequence_replay_with_cachethis_is_byte_identical(fresh):
    root = fresh.root()
    seqid = fresh.seqid + 1
    fresh.seqid = seqid
    args = compound_bytes([seq_op(fresh, seqid, cachethis=True), op("PUTFH", root),
                           op("GETATTR", [1 << x.FATTR4_CHANGE | 1 << x.FATTR4_SIZE])], tag=b"cached")
    first = fresh.raw_compound(args)
    second = fresh.raw_compound(args)
    assert second == first
    # The replay was not executed again: the slot still expects seqid + 1.
    fresh.call([op("PUTROOTFH")])


def test_sequence_replay_of_a_state_changing_request_is_not_reexecuted(fresh, server):
    root = fresh.root()
    name = b"replayed-mkdir"
    seqid = fresh.seqid + 1
    fresh.seqid = seqid
    args = compound_bytes([seq_op(fresh, seqid, cachethis=True), op("PUTFH", root),
                           op("CREATE", x.createtype4(x.NF4DIR, None), name, x.fattr4([], b""))])
    first = fresh.raw_compound(args)
    assert fresh.raw_compound(args) == first  # not EXIST: the cached reply
    assert os.path.isdir(os.path.join(server.directory, "replayed-mkdir"))


def test_sequence_cachethis_reply_too_big_to_cache(fresh):
    fh = fresh.create_file(fresh.root(), b"too-big-to-cache", os.urandom(200_000))
    res = fresh.compound([fresh.sequence_op(cachethis=True), op("PUTFH", fh),
                          op("READ", ANON, 0, 150_000)])
    assert res.status == x.NFS4ERR_REP_TOO_BIG_TO_CACHE


def test_sequence_replay_without_cachethis(fresh):
    seqid = fresh.seqid + 1
    fresh.seqid = seqid
    res = fresh.compound([seq_op(fresh, seqid), op("PUTROOTFH")])
    assert res.status == x.NFS4_OK
    res = fresh.compound([seq_op(fresh, seqid), op("PUTROOTFH")])
    assert res.status == x.NFS4ERR_RETRY_UNCACHED_REP
    assert [r.tag for r in res.resarray] == [x.OP_SEQUENCE]


def test_sequence_seqid_gap_is_misordered(fresh):
    res = fresh.compound([seq_op(fresh, fresh.seqid + 2), op("PUTROOTFH")])
    assert res.status == x.NFS4ERR_SEQ_MISORDERED
    res = fresh.compound([seq_op(fresh, fresh.seqid - 1 if fresh.seqid > 1 else 0xFFFFFFFF)])
    assert res.status == x.NFS4ERR_SEQ_MISORDERED
    fresh.call([op("PUTROOTFH")])  # the slot is still usable in order


def test_sequence_first_use_of_a_slot_must_be_seqid_1(fresh):
    assert fresh.nslots > 1
    assert fresh.compound([seq_op(fresh, 0, slot=1)]).status == x.NFS4ERR_SEQ_MISORDERED
    assert fresh.compound([seq_op(fresh, 2, slot=1)]).status == x.NFS4ERR_SEQ_MISORDERED
    assert fresh.compound([seq_op(fresh, 1, slot=1)]).status == x.NFS4_OK


def test_sequence_slot_beyond_table(fresh):
    res = fresh.compound([seq_op(fresh, 1, slot=fresh.nslots)])
    assert res.status == x.NFS4ERR_BADSLOT
    res = fresh.compound([seq_op(fresh, 1, slot=0xFFFFFFFF)])
    assert res.status == x.NFS4ERR_BADSLOT


def test_sequence_unknown_session(fresh):
    res = fresh.compound([seq_op(fresh, 1, sessionid=os.urandom(16)), op("PUTROOTFH")])
    assert res.status == x.NFS4ERR_BADSESSION
    assert [(r.tag, op_status(r.value)) for r in res.resarray] == [(x.OP_SEQUENCE, x.NFS4ERR_BADSESSION)]


def test_sequence_reply_fields(fresh):
    seqid = fresh.seqid + 1
    fresh.seqid = seqid
    r = fresh.compound([seq_op(fresh, seqid)]).resarray[0].value
    assert r.tag == x.NFS4_OK
    ok = r.value
    assert ok.sr_sessionid == fresh.sessionid and ok.sr_sequenceid == seqid and ok.sr_slotid == 0
    assert ok.sr_highest_slotid == fresh.nslots - 1


# ---------------------------------------------------------------- DESTROY_SESSION / CLIENTID
def test_destroy_session(server):
    with NfsClient(*server.address) as c:
        c.mount()
        sid = c.sessionid
        assert c.compound([op("DESTROY_SESSION", sid)]).status == x.NFS4_OK
        assert c.compound([seq_op(c, c.seqid + 1, sessionid=sid)]).status == x.NFS4ERR_BADSESSION
        assert c.compound([op("DESTROY_SESSION", sid)]).status == x.NFS4ERR_BADSESSION
        c.sessionid = None
        assert c.compound([op("DESTROY_CLIENTID", c.clientid)]).status == x.NFS4_OK


def test_destroy_session_inside_its_own_sequence(server):
    with NfsClient(*server.address) as c:
        c.mount()
        res = c.compound([c.sequence_op(), op("DESTROY_SESSION", c.sessionid)])
        assert res.status == x.NFS4_OK
        assert c.compound([c.sequence_op()]).status == x.NFS4ERR_BADSESSION


def test_destroy_clientid_busy_with_sessions(server):
    with NfsClient(*server.address) as c:
        c.mount()
        assert c.compound([op("DESTROY_CLIENTID", c.clientid)]).status == x.NFS4ERR_CLIENTID_BUSY
        # Inside a SEQUENCE of one of its own sessions: busy too.
        res = c.compound([c.sequence_op(), op("DESTROY_CLIENTID", c.clientid)])
        assert res.status == x.NFS4ERR_CLIENTID_BUSY
        c.compound([op("DESTROY_SESSION", c.sessionid)])
        c.sessionid = None
        assert c.compound([op("DESTROY_CLIENTID", c.clientid)]).status == x.NFS4_OK
        assert c.compound([op("DESTROY_CLIENTID", c.clientid)]).status == x.NFS4ERR_STALE_CLIENTID
        # The client's records are gone: CREATE_SESSION for it is refused.
        assert c.compound([create_session_op(c.clientid, c.cs_seq)]).status == x.NFS4ERR_STALE_CLIENTID


def test_destroy_unknown_clientid(server):
    with NfsClient(*server.address) as c:
        assert c.compound([op("DESTROY_CLIENTID", 42)]).status == x.NFS4ERR_STALE_CLIENTID


# ---------------------------------------------------------------- BIND_CONN_TO_SESSION
@pytest.mark.parametrize("d,expect", [(x.CDFC4_FORE, x.CDFS4_FORE), (x.CDFC4_BACK, x.CDFS4_BACK),
                                      (x.CDFC4_FORE_OR_BOTH, x.CDFS4_BOTH),
                                      (x.CDFC4_BACK_OR_BOTH, x.CDFS4_BOTH)])
def test_bind_conn_to_session_from_a_new_connection(fresh, d, expect):
    fresh.reconnect()
    r = fresh.compound([op("BIND_CONN_TO_SESSION", fresh.sessionid, d, False)]).resarray[0].value
    assert r.tag == x.NFS4_OK
    assert r.value.bctsr_sessid == fresh.sessionid and r.value.bctsr_dir == expect
    fresh.call([op("PUTROOTFH")])


def test_bind_conn_to_unknown_session(fresh):
    r = fresh.compound([op("BIND_CONN_TO_SESSION", os.urandom(16), x.CDFC4_FORE, False)])
    assert r.status == x.NFS4ERR_BADSESSION


def test_bind_conn_bad_direction_is_badxdr(fresh):
    body = struct.pack(">I", x.OP_BIND_CONN_TO_SESSION) + fresh.sessionid + struct.pack(">II", 5, 0)
    res = decode(x.COMPOUND4res, fresh.raw_compound(compound_bytes([body])))
    assert res.status == x.NFS4ERR_BADXDR


def test_bind_conn_not_alone(fresh):
    res = fresh.compound([op("BIND_CONN_TO_SESSION", fresh.sessionid, x.CDFC4_FORE, False),
                          op("PUTROOTFH")])
    assert res.status == x.NFS4ERR_NOT_ONLY_OP


# ---------------------------------------------------------------- RECLAIM_COMPLETE
def test_reclaim_complete_twice(fresh):
    # mount() already sent one.
    status, _ = fresh.try_call([op("RECLAIM_COMPLETE", False)])
    assert status == x.NFS4ERR_COMPLETE_ALREADY


def test_reclaim_complete_once_on_a_new_client(server):
    with NfsClient(*server.address) as c:
        c.exchange_id()
        c.create_session()
        assert c.try_call([op("RECLAIM_COMPLETE", False)])[0] == x.NFS4_OK
        assert c.try_call([op("RECLAIM_COMPLETE", False)])[0] == x.NFS4ERR_COMPLETE_ALREADY
        # rca_one_fs applies to one file system and does not end the client's reclaims.
        assert c.try_call([op("PUTROOTFH"), op("RECLAIM_COMPLETE", True)])[0] == x.NFS4_OK
        c.destroy()


# ---------------------------------------------------------------- TEST_STATEID / FREE_STATEID
def test_test_stateid(fresh, server):
    root = fresh.root()
    fh, sid, _ = fresh.open(root, b"teststateid-" + os.urandom(4).hex().encode(), create=True)
    bogus = x.stateid4(1, os.urandom(12))
    r = fresh.call([op("TEST_STATEID", [sid, x.stateid4(0, sid.other), ANON, bogus])])[0]
    codes = r.value.tsr_status_codes
    assert codes[0] == x.NFS4_OK and codes[1] == x.NFS4_OK
    assert codes[2] == x.NFS4ERR_BAD_STATEID
    assert codes[3] in (x.NFS4ERR_BAD_STATEID, x.NFS4ERR_STALE_STATEID)
    fresh.close_file(fh, sid)
    r = fresh.call([op("TEST_STATEID", [sid])])[0]
    assert r.value.tsr_status_codes == [x.NFS4ERR_BAD_STATEID]


def test_test_stateid_of_another_client_is_bad(fresh, server):
    root = fresh.root()
    fh, sid, _ = fresh.open(root, b"other-" + os.urandom(4).hex().encode(), create=True)
    with NfsClient(*server.address) as other:
        other.mount()
        r = other.call([op("TEST_STATEID", [sid])])[0]
        assert r.value.tsr_status_codes == [x.NFS4ERR_BAD_STATEID]
        other.destroy()
    fresh.close_file(fh, sid)


def test_free_stateid_of_an_open_is_locks_held(fresh):
    root = fresh.root()
    fh, sid, _ = fresh.open(root, b"freeopen-" + os.urandom(4).hex().encode(), create=True)
    status, _ = fresh.try_call([op("FREE_STATEID", sid)])
    assert status == x.NFS4ERR_LOCKS_HELD
    fresh.close_file(fh, sid)
    status, _ = fresh.try_call([op("FREE_STATEID", sid)])
    assert status == x.NFS4ERR_BAD_STATEID


def test_free_stateid_of_a_special_stateid_is_bad_stateid(fresh):
    status, _ = fresh.try_call([op("FREE_STATEID", ANON)])
    assert status == x.NFS4ERR_BAD_STATEID


def test_free_stateid_unknown(fresh):
    status, _ = fresh.try_call([op("FREE_STATEID", x.stateid4(1, os.urandom(12)))])
    assert status in (x.NFS4ERR_BAD_STATEID, x.NFS4ERR_STALE_STATEID)


# ---------------------------------------------------------------- SECINFO_NO_NAME
def test_secinfo_no_name_current_fh(fresh):
    status, res = fresh.try_call([op("PUTROOTFH"), op("SECINFO_NO_NAME", x.SECINFO_STYLE4_CURRENT_FH)])
    assert status == x.NFS4_OK
    flavors = [s.tag for s in res[1].value]
    assert x.AUTH_SYS in flavors
    # SECINFO_NO_NAME consumes the current filehandle.
    status, res = fresh.try_call([op("PUTROOTFH"), op("SECINFO_NO_NAME", x.SECINFO_STYLE4_CURRENT_FH),
                                  op("GETFH")])
    assert status == x.NFS4ERR_NOFILEHANDLE


def test_secinfo_no_name_parent(fresh, server):
    os.makedirs(os.path.join(server.directory, "secinfo-sub"), exist_ok=True)
    status, _ = fresh.try_call([op("PUTROOTFH"), op("SECINFO_NO_NAME", x.SECINFO_STYLE4_PARENT)])
    assert status == x.NFS4ERR_NOENT
    status, _ = fresh.try_call([op("PUTROOTFH"), op("LOOKUP", b"secinfo-sub"),
                                op("SECINFO_NO_NAME", x.SECINFO_STYLE4_PARENT)])
    assert status == x.NFS4_OK


def test_secinfo_no_name_without_filehandle(fresh):
    status, _ = fresh.try_call([op("SECINFO_NO_NAME", x.SECINFO_STYLE4_CURRENT_FH)])
    assert status == x.NFS4ERR_NOFILEHANDLE


def test_secinfo_by_name(fresh, server):
    os.makedirs(os.path.join(server.directory, "secinfo-named"), exist_ok=True)
    status, res = fresh.try_call([op("PUTROOTFH"), op("SECINFO", b"secinfo-named")])
    assert status == x.NFS4_OK
    status, _ = fresh.try_call([op("PUTROOTFH"), op("SECINFO", b"absent-name")])
    assert status == x.NFS4ERR_NOENT


def test_calls_after_errors_keep_working(fresh):
    with pytest.raises(NfsError):
        fresh.call([op("PUTROOTFH"), op("LOOKUP", b"nope")])
    assert fresh.root()
