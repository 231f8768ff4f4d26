"""Record marking (nfsd.rpc.framing), sans-IO, and call/reply headers (nfsd.rpc.message)."""

import struct
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nfsd.rpc.framing import LAST_FRAGMENT, RecordReader, RecordTooLarge, frame
from nfsd.rpc import message as m
from nfsd.xdr import XdrError, decode, decode_from, encode
from nfsd.xdr import rpc


def marker(length, last=True):
    return struct.pack(">I", (LAST_FRAGMENT if last else 0) | length)


def fragments(record, sizes):
    """`record` cut into fragments of the given sizes (the rest in the last one)."""
    out, pos = [], 0
    for s in sizes:
        out.append(marker(s, last=False) + record[pos:pos + s])
        pos += s
    out.append(marker(len(record) - pos) + record[pos:])
    return b"".join(out)


def feed_all(reader, pieces):
    out = []
    for p in pieces:
        out.extend(bytes(r) for r in reader.feed(p))
    return out


# ---------------------------------------------------------------------------- reader


def test_single_record():
    r = RecordReader(100)
    assert feed_all(r, [marker(5) + b"hello"]) == [b"hello"]
    assert r.pending == 0


def test_records_are_memoryviews_not_tied_to_reused_buffers():
    r = RecordReader(100)
    buf = bytearray(marker(3) + b"abc" + marker(2))
    out = r.feed(buf)
    buf[4:7] = b"XYZ"  # the caller reuses its buffer
    buf[:] = b""
    out += r.feed(b"de")
    assert all(isinstance(x, memoryview) for x in out)
    assert [bytes(x) for x in out] == [b"abc", b"de"]


def test_split_at_every_byte():
    stream = marker(5) + b"hello" + fragments(b"multi-fragment record", [3, 0, 7]) + marker(0) + marker(1) + b"x"
    expected = [b"hello", b"multi-fragment record", b"", b"x"]
    for i in range(len(stream) + 1):
        for j in range(i, len(stream) + 1):
            r = RecordReader(1000)
            assert feed_all(r, [stream[:i], stream[i:j], stream[j:]]) == expected, (i, j)
            assert r.pending == 0


def test_one_byte_at_a_time():
    stream = fragments(b"0123456789", [1, 2, 3]) + marker(4) + b"abcd"
    r = RecordReader(100)
    assert feed_all(r, [stream[i:i + 1] for i in range(len(stream))]) == [b"0123456789", b"abcd"]


def test_zero_length_fragments_and_records():
    r = RecordReader(10)
    stream = marker(0, last=False) * 5 + marker(0) + marker(0, last=False) + marker(2) + b"ok"
    assert feed_all(r, [stream]) == [b"", b"ok"]


def test_many_records_in_one_feed():
    recs = [bytes([i % 256]) * (i % 7) for i in range(500)]
    stream = b"".join(marker(len(x)) + x for x in recs)
    assert feed_all(RecordReader(10), [stream]) == recs


def test_small_records_are_copied_large_ones_shared():
    small = marker(4) + b"tiny"
    big = marker(1000) + bytes(1000)
    r = RecordReader(2000)
    out = r.feed(small + big)
    assert out[0].obj is not out[1].obj  # the small record has a buffer of its own
    assert bytes(out[1]) == bytes(1000)


def test_record_limit_is_inclusive():
    r = RecordReader(8)
    assert feed_all(r, [fragments(b"12345678", [4])]) == [b"12345678"]


def test_fragment_header_over_limit_rejected():
    r = RecordReader(8)
    with pytest.raises(RecordTooLarge):
        r.feed(marker(9))
    with pytest.raises(RecordTooLarge):  # the reader stays broken
        r.feed(marker(1) + b"x")


def test_sum_of_fragments_over_limit_rejected_at_the_header():
    r = RecordReader(8)
    assert r.feed(marker(5, last=False) + b"12345") == []
    with pytest.raises(RecordTooLarge):
        r.feed(marker(4, last=False))


def test_4gib_announcement_allocates_nothing():
    r = RecordReader(1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(RecordTooLarge):
            r.feed(b"\xff\xff\xff\xff" + b"x" * 100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 10


def test_memory_grows_with_data_not_with_claims():
    r = RecordReader(1 << 30)
    tracemalloc.start()
    try:
        r.feed(marker(1 << 29) + b"x" * 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 10
    assert r.pending == 10


def test_large_record_in_many_pieces_is_linear():
    # 4 MiB in 4 KiB pieces: quadratic buffering would copy ~2 GiB and take seconds.
    payload = bytes(range(256)) * (4 << 12)
    stream = marker(len(payload)) + payload
    r = RecordReader(len(payload))
    out = []
    step = 4096
    for i in range(0, len(stream), step):
        out += r.feed(stream[i:i + step])
    assert len(out) == 1 and out[0] == payload


# ---------------------------------------------------------------------------- frame


def test_frame_does_not_copy_chunks():
    a, b = b"abc", memoryview(b"defgh")
    out = frame([a, b])
    assert out[0] == marker(8)
    assert out[1] is a and out[2] is b


def test_frame_then_read_round_trip():
    chunks = [b"x" * 3, bytearray(b"yy"), memoryview(b"zzzz")]
    assert feed_all(RecordReader(100), [b"".join(frame(chunks))]) == [b"xxxyyzzzz"]


# ---------------------------------------------------------------------------- properties

records_st = st.lists(st.binary(max_size=300), max_size=8)


@st.composite
def stream_and_cuts(draw):
    recs = draw(records_st)
    parts = []
    for rec in recs:
        sizes = []
        left = len(rec)
        for _ in range(draw(st.integers(0, 3))):
            s = draw(st.integers(0, left))
            sizes.append(s)
            left -= s
        parts.append(fragments(rec, sizes))
    stream = b"".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    return recs, stream, cuts


@settings(max_examples=300, derandomize=True, deadline=None)
@given(stream_and_cuts())
def test_property_any_fragmentation_any_split(case):
    recs, stream, cuts = case
    pieces, last = [], 0
    for c in cuts + [len(stream)]:
        pieces.append(stream[last:c])
        last = c
    r = RecordReader(300)
    assert feed_all(r, pieces) == recs
    assert r.pending == 0


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=6), st.integers(0, 400))
def test_property_limit(chunks, limit):
    rec = b"".join(chunks)
    r = RecordReader(limit)
    stream = b"".join(frame(chunks))
    if len(rec) > limit:
        with pytest.raises(RecordTooLarge):
            r.feed(stream)
    else:
        assert feed_all(r, [stream]) == [rec]


# ---------------------------------------------------------------------------- rpc messages


def test_success_header_matches_declarations():
    h = m.reply_success(0xDEADBEEF)
    assert len(h) == m.SUCCESS_HEADER_SIZE == 24
    msg = decode(rpc.rpc_msg, h)
    assert msg.xid == 0xDEADBEEF
    assert msg.body.tag == rpc.REPLY and msg.body.value.tag == rpc.MSG_ACCEPTED
    assert msg.body.value.value.reply_data.tag == rpc.SUCCESS


@pytest.mark.parametrize(
    "reply, expected",
    [
        (m.reply_prog_unavail(1), dict(accept_stat=rpc.PROG_UNAVAIL)),
        (m.reply_proc_unavail(1), dict(accept_stat=rpc.PROC_UNAVAIL)),
        (m.reply_garbage_args(1), dict(accept_stat=rpc.GARBAGE_ARGS)),
        (m.reply_system_err(1), dict(accept_stat=rpc.SYSTEM_ERR)),
        (m.reply_prog_mismatch(1, 3, 7), dict(accept_stat=rpc.PROG_MISMATCH, low=3, high=7)),
        (m.reply_rpc_mismatch(1), dict(reject_stat=rpc.RPC_MISMATCH, low=2, high=2)),
        (m.reply_auth_error(1, rpc.AUTH_TOOWEAK), dict(reject_stat=rpc.AUTH_ERROR, auth_stat=rpc.AUTH_TOOWEAK)),
    ],
)
def test_error_replies_match_declarations(reply, expected):
    decode(rpc.rpc_msg, reply)  # exactly one message, nothing after it
    with pytest.raises(m.RpcReplyError) as ei:
        m.parse_reply(reply)
    assert ei.value.xid == 1
    for k, v in expected.items():
        assert getattr(ei.value, k) == v


def test_parse_call_matches_declarations():
    cred = m.AuthSys(7, b"client.example", 1000, 100, (4, 24, 27))
    record = m.build_call(0x1234, 100003, 4, 1, cred) + b"ARGUMENTS"
    msg, pos = decode_from(rpc.rpc_msg, record)
    call = m.parse_call(record)
    cb = msg.body.value
    assert (call.xid, call.prog, call.vers, call.proc) == (msg.xid, cb.prog, cb.vers, cb.proc)
    assert call.offset == pos and bytes(call.args) == b"ARGUMENTS"
    assert call.flavor == rpc.AUTH_SYS and call.cred == cred
    assert call.verifier.flavor == rpc.AUTH_NONE and call.verifier.body == b""


def test_parse_call_auth_none_and_cache():
    record = m.build_call(1, 2, 3, 4)
    call = m.parse_call(record)
    assert call.cred is None and call.flavor == rpc.AUTH_NONE and len(call.args) == 0
    cache = {}
    cred = m.AuthSys(1, b"h", 0, 0, ())
    a = m.parse_call(m.build_call(1, 2, 3, 4, cred), cache)
    b = m.parse_call(m.build_call(2, 2, 3, 4, cred), cache)
    assert a.cred is b.cred and len(cache) == 1


def refusal(record):
    with pytest.raises(m.CallError) as ei:
        m.parse_call(record)
    return ei.value.reply


def reply_error(reply):
    with pytest.raises(m.RpcReplyError) as ei:
        m.parse_reply(reply)
    return ei.value


def authsys_body(**kw):
    v = dict(stamp=1, machinename=b"h", uid=0, gid=0, gids=[])
    v.update(kw)
    return encode(rpc.authsys_parms, rpc.authsys_parms(**v))


def test_refusals():
    assert refusal(b"") is None
    assert refusal(b"\0\0\1") is None
    reply = m.build_call(5, 1, 1, 1)
    assert refusal(reply[:4] + struct.pack(">I", rpc.REPLY) + reply[8:]) is None  # not a call
    assert refusal(reply[:8] + b"\0\0") is not None  # truncated after the xid
    assert reply_error(refusal(reply[:8])).accept_stat == rpc.GARBAGE_ARGS
    assert reply_error(refusal(reply[:30])).accept_stat == rpc.GARBAGE_ARGS
    assert reply_error(refusal(reply[:-2])).accept_stat == rpc.GARBAGE_ARGS
    e = reply_error(refusal(m.build_call(5, 1, 1, 1, rpcvers=3)))
    assert (e.reject_stat, e.low, e.high, e.xid) == (rpc.RPC_MISMATCH, 2, 2, 5)
    e = reply_error(refusal(m.build_call(5, 1, 1, 1, rpcvers=3)[:12]))
    assert e.reject_stat == rpc.RPC_MISMATCH


@pytest.mark.parametrize(
    "cred, verf, stat",
    [
        (rpc.opaque_auth(rpc.AUTH_SYS, b"\0\0\0\1"), None, rpc.AUTH_BADCRED),  # truncated
        (rpc.opaque_auth(rpc.AUTH_SYS, authsys_body() + b"\0\0\0\0"), None, rpc.AUTH_BADCRED),  # trailing
        (rpc.opaque_auth(rpc.AUTH_SYS, authsys_body(gids=list(range(16)))[:-4]), None, rpc.AUTH_BADCRED),
        (rpc.opaque_auth(rpc.AUTH_SYS, struct.pack(">II", 1, 256) + bytes(256 + 12)), None, rpc.AUTH_BADCRED),
        (rpc.opaque_auth(rpc.AUTH_SYS, struct.pack(">II", 1, 0) + struct.pack(">III", 0, 0, 17) + bytes(68)), None, rpc.AUTH_BADCRED),
        (rpc.opaque_auth(rpc.AUTH_NONE, b"junk"), None, rpc.AUTH_BADCRED),
        (rpc.opaque_auth(rpc.RPCSEC_GSS, b"\0" * 20), None, rpc.AUTH_BADCRED),
        (rpc.opaque_auth(rpc.AUTH_DH, b""), None, rpc.AUTH_BADCRED),
        (None, rpc.opaque_auth(rpc.RPCSEC_GSS, b"x" * 8), rpc.AUTH_BADVERF),
        (None, rpc.opaque_auth(rpc.AUTH_NONE, b"x"), rpc.AUTH_BADVERF),
    ],
)
def test_credential_refusals(cred, verf, stat):
    e = reply_error(refusal(m.build_call(9, 1, 1, 1, cred, verf)))
    assert (e.xid, e.reject_stat, e.auth_stat) == (9, rpc.AUTH_ERROR, stat)


def test_oversized_auth_bodies():
    good = m.build_call(9, 1, 1, 1)
    over = good[:28] + struct.pack(">I", 401) + bytes(404) + good[32:]
    assert reply_error(refusal(over)).auth_stat == rpc.AUTH_BADCRED
    over = good[:36] + struct.pack(">I", 0xFFFFFFFF)
    assert reply_error(refusal(over)).auth_stat == rpc.AUTH_BADVERF
    huge_cred = good[:28] + struct.pack(">I", 0xFFFFFFF0)
    assert reply_error(refusal(huge_cred)).auth_stat == rpc.AUTH_BADCRED


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.binary(max_size=120))
def test_property_parse_call_never_crashes(data):
    try:
        call = m.parse_call(data)
    except m.CallError as e:
        if e.reply is not None:
            decode(rpc.rpc_msg, e.reply)
    else:
        assert call.offset + len(call.args) == len(data)


def test_reply_auth_error_rejects_unknown_stat():
    with pytest.raises(ValueError):
        m.reply_auth_error(1, 99)


def test_xdr_error_for_non_reply():
    with pytest.raises(XdrError):
        m.parse_reply(m.build_call(1, 2, 3, 4))


def test_tiny_fragments_cost_their_bytes_not_an_object_each():
    """A record sent as 1-byte fragments (hostile but legal) must not hold an object per
    fragment while it is assembled: memory stays near the record's size. A 64 KiB record is
    plenty (an object per fragment would cost some 20 MB, 80 times the bound) and keeps the
    test quick under tracemalloc."""
    import tracemalloc

    size = 64 * 1024
    stream = b"".join(struct.pack(">I", 1) + b"x" for _ in range(size - 1))
    stream += struct.pack(">I", 0x80000001) + b"y"
    reader = RecordReader(1 << 20)
    tracemalloc.start()
    try:
        out = []
        for i in range(0, len(stream), 16384):
            out += reader.feed(stream[i:i + 16384])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(out) == 1 and bytes(out[0]) == b"x" * (size - 1) + b"y"
    assert peak < 4 * size, f"peak {peak} bytes for a {size}-byte record"
