"""COMPOUND over a real socket: tag, stop-at-first-error, OP_ILLEGAL, BADXDR, minor versions,
the 4.1 SEQUENCE ordering rules, session limits, 4.0-only and unimplemented operations
(RFC 8881 sections 2.10.6, 15.1, 16.2.3, 18.46)."""

from __future__ import annotations

import struct

import pytest

from nfsd.client import NfsClient, compound_bytes, encode_op, op, op_status
from nfsd.xdr import decode, nfs4 as x


def raw(client, ops, tag=b"", minor=1, nops=None):
    """Send hand-built COMPOUND bytes; returns the decoded COMPOUND4res."""
    return decode(x.COMPOUND4res, client.raw_compound(compound_bytes(ops, tag, minor, nops)))


def ops_of(res):
    return [(r.tag, op_status(r.value)) for r in res.resarray]


def test_tag_is_echoed_on_success_and_error(client):
    tag = "étiquette-42".encode()
    res = client.compound([client.sequence_op(), op("PUTROOTFH")], tag=tag)
    assert res.status == x.NFS4_OK and res.tag == tag
    res = client.compound([op("PUTROOTFH")], tag=b"odd-length-tag")
    assert res.status == x.NFS4ERR_OP_NOT_IN_SESSION and res.tag == b"odd-length-tag"


def test_processing_stops_at_first_error_with_results_so_far(client):
    res = client.compound([client.sequence_op(), op("PUTROOTFH"), op("LOOKUP", b"no-such-name"),
                           op("GETFH"), op("GETATTR", [1])])
    assert res.status == x.NFS4ERR_NOENT
    assert ops_of(res) == [(x.OP_SEQUENCE, 0), (x.OP_PUTROOTFH, 0), (x.OP_LOOKUP, x.NFS4ERR_NOENT)]


def test_unknown_opnum_gives_op_illegal(client):
    res = raw(client, [encode_op(client.sequence_op()), encode_op(op("PUTROOTFH")),
                       struct.pack(">I", 9999), encode_op(op("GETFH"))])
    assert res.status == x.NFS4ERR_OP_ILLEGAL
    assert ops_of(res) == [(x.OP_SEQUENCE, 0), (x.OP_PUTROOTFH, 0),
                           (x.OP_ILLEGAL, x.NFS4ERR_OP_ILLEGAL)]
    # An opnum in the gap below the first operation (0, 1, 2) is illegal too.
    for bad in (0, 1, 2, 0xFFFFFFFF):
        res = raw(client, [encode_op(client.sequence_op()), struct.pack(">I", bad)])
        assert ops_of(res)[-1] == (x.OP_ILLEGAL, x.NFS4ERR_OP_ILLEGAL), bad


def test_truncated_arguments_give_badxdr(client):
    lookup = encode_op(op("LOOKUP", b"a-rather-long-name"))
    res = raw(client, [encode_op(client.sequence_op()), encode_op(op("PUTROOTFH")), lookup[:-6]])
    assert res.status == x.NFS4ERR_BADXDR
    assert ops_of(res) == [(x.OP_SEQUENCE, 0), (x.OP_PUTROOTFH, 0), (x.OP_LOOKUP, x.NFS4ERR_BADXDR)]


def test_count_larger_than_the_operations_sent_gives_badxdr(client):
    res = raw(client, [encode_op(client.sequence_op()), encode_op(op("PUTROOTFH"))], nops=3)
    assert res.status == x.NFS4ERR_BADXDR
    assert ops_of(res)[:2] == [(x.OP_SEQUENCE, 0), (x.OP_PUTROOTFH, 0)]
    assert len(res.resarray) == 3


@pytest.mark.parametrize("minor", [3, 4, 0xFFFFFFFF])
def test_unsupported_minor_version(client, minor):
    res = raw(client, [encode_op(op("PUTROOTFH"))], tag=b"mv", minor=minor)
    assert res.status == x.NFS4ERR_MINOR_VERS_MISMATCH
    assert res.resarray == [] and res.tag == b"mv"


@pytest.mark.parametrize("name", ["GETFH", "SAVEFH", "LOOKUPP", "READLINK", "GETATTR"])
def test_no_current_filehandle(client, name):
    a = op(name, [1]) if name == "GETATTR" else op(name)
    res = client.compound([client.sequence_op(), a])
    assert res.status == x.NFS4ERR_NOFILEHANDLE
    assert ops_of(res)[-1][1] == x.NFS4ERR_NOFILEHANDLE


def test_operation_without_sequence(client):
    res = client.compound([op("PUTROOTFH"), op("GETFH")])
    assert res.status == x.NFS4ERR_OP_NOT_IN_SESSION
    assert ops_of(res) == [(x.OP_PUTROOTFH, x.NFS4ERR_OP_NOT_IN_SESSION)]


def test_sequence_not_first(client):
    seq = client.sequence_op()
    res = client.compound([seq, op("PUTROOTFH"), seq])
    assert res.status == x.NFS4ERR_SEQUENCE_POS
    assert ops_of(res) == [(x.OP_SEQUENCE, 0), (x.OP_PUTROOTFH, 0),
                           (x.OP_SEQUENCE, x.NFS4ERR_SEQUENCE_POS)]


def test_exchange_id_not_alone_without_sequence(client):
    a = x.EXCHANGE_ID4args(x.client_owner4(b"v" * 8, b"not-only-op"), 0,
                           x.state_protect4_a(x.SP4_NONE, None), [])
    res = client.compound([x.nfs_argop4(x.OP_EXCHANGE_ID, a), op("PUTROOTFH")])
    assert res.status == x.NFS4ERR_NOT_ONLY_OP
    assert ops_of(res) == [(x.OP_EXCHANGE_ID, x.NFS4ERR_NOT_ONLY_OP)]


def test_empty_compound_is_ok(client):
    res = client.compound([], tag=b"empty")
    assert res.status == x.NFS4_OK and res.resarray == [] and res.tag == b"empty"


def test_too_many_operations_for_the_session(server):
    c = NfsClient(*server.address)
    c.exchange_id()
    c.create_session(maxops=4)
    try:
        seq = c.sequence_op()
        res = c.compound([seq] + [op("PUTROOTFH")] * 4)
        assert res.status == x.NFS4ERR_TOO_MANY_OPS
        assert ops_of(res) == [(x.OP_SEQUENCE, x.NFS4ERR_TOO_MANY_OPS)]
        # The slot did not advance: the same seqid works with an allowed number of ops.
        res = c.compound([seq] + [op("PUTROOTFH")] * 3)
        assert res.status == x.NFS4_OK and len(res.resarray) == 4
    finally:
        c.destroy()
        c.close()


@pytest.mark.parametrize("name,args", [
    ("SETCLIENTID_CONFIRM", (0, b"12345678")),
    ("RENEW", (0,)),
    ("OPEN_CONFIRM", (x.stateid4(0, bytes(12)), 1)),
    ("RELEASE_LOCKOWNER", (x.lock_owner4(0, b"lo"),)),
])
def test_nfs40_only_operations_are_notsupp_in_41(client, name, args):
    res = client.compound([client.sequence_op(), op("PUTROOTFH"), op(name, *args)])
    assert res.status == x.NFS4ERR_NOTSUPP
    assert ops_of(res)[-1] == (getattr(x, "OP_" + name), x.NFS4ERR_NOTSUPP)


def test_setclientid_is_notsupp_in_41(client):
    a = x.SETCLIENTID4args(x.nfs_client_id4(b"12345678", b"c40"), x.cb_client4(0, x.netaddr4(b"tcp", b"127.0.0.1.0.0")), 0)
    res = client.compound([client.sequence_op(), x.nfs_argop4(x.OP_SETCLIENTID, a)])
    assert res.status == x.NFS4ERR_NOTSUPP


def test_unimplemented_operations_are_notsupp(client):
    root = client.root()
    zero_sid = x.stateid4(0, bytes(12))
    layoutget = op("LAYOUTGET", False, x.LAYOUT4_NFSV4_1_FILES, x.LAYOUTIOMODE4_READ, 0,
                   1 << 20, 0, zero_sid, 4096)
    res = client.compound([client.sequence_op(), op("PUTFH", root), layoutget])
    assert res.status == x.NFS4ERR_NOTSUPP
    gdi = op("GETDEVICEINFO", bytes(16), x.LAYOUT4_NFSV4_1_FILES, 4096, [])
    res = client.compound([client.sequence_op(), gdi])
    assert res.status == x.NFS4ERR_NOTSUPP


def test_unimplemented_nfs42_op_is_notsupp(server):
    with NfsClient(*server.address, minor=2) as c:
        c.mount()
        try:
            root = c.root()
            res = c.compound([c.sequence_op(), op("PUTFH", root),
                              op("COPY_NOTIFY", x.stateid4(0, bytes(12)),
                                 x.netloc4(x.NL4_NAME, b"elsewhere"))])
            assert res.status == x.NFS4ERR_NOTSUPP
            assert ops_of(res)[-1] == (x.OP_COPY_NOTIFY, x.NFS4ERR_NOTSUPP)
        finally:
            c.destroy()


def test_minor_version_2_compound_works(server):
    with NfsClient(*server.address, minor=2) as c:
        c.mount()
        res = c.compound([c.sequence_op(), op("PUTROOTFH"), op("GETFH")], tag=b"v42")
        assert res.status == x.NFS4_OK and res.tag == b"v42"
        c.destroy()
