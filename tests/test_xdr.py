"""The XDR compiler and the NFSv4 declarations: round trips, hostile input, vectors, coverage."""

import struct
import time
import tracemalloc

import pytest

from nfsd.xdr.compiler import _resolve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nfsd.xdr import XdrError, decode, decode_from, dsl, encode, nfs4
from nfsd.xdr.dsl import (
    Array,
    Bool,
    Hyper,
    Int,
    LinkedList,
    Opaque,
    Optional,
    Spec,
    String,
    UHyper,
    UInt,
    VarArray,
    VarOpaque,
    Void,
)

# ------------------------------------------------------------------------------ strategies
SMALL_BYTES = 12  # longest opaque/string drawn
SMALL_LIST = 3  # longest array/list drawn

_INT_RANGES = {
    "i": (-(2**31), 2**31 - 1),
    "I": (0, 2**32 - 1),
    "q": (-(2**63), 2**63 - 1),
    "Q": (0, 2**64 - 1),
}
_strategies: dict = {}


def strategy_for(t) -> st.SearchStrategy:
    """A strategy for values of any dsl type (declarations or classes), sizes kept small."""
    t = getattr(t, "_xdr", t)
    s = _strategies.get(id(t))
    if s is None:
        s = _strategies[id(t)] = _build(t)
    return s


def _build(t):
    if isinstance(t, dsl._Prim):
        lo, hi = _INT_RANGES[t.code]
        return st.integers(lo, hi)
    if t is Bool:
        return st.booleans()
    if t is Void:
        return st.none()
    if isinstance(t, dsl.Enum):
        return st.sampled_from(sorted(t.values))
    if isinstance(t, dsl.Typedef):
        return strategy_for(t.target)
    if isinstance(t, Opaque):
        return st.binary(min_size=t.length, max_size=t.length)
    if isinstance(t, VarOpaque):  # and String
        return st.binary(max_size=SMALL_BYTES if t.max is None else min(SMALL_BYTES, t.max))
    if isinstance(t, Array):
        return st.lists(strategy_for(t.elem), min_size=t.length, max_size=t.length)
    if isinstance(t, (VarArray, LinkedList)):
        most = SMALL_LIST if t.max is None else min(SMALL_LIST, t.max)
        return st.lists(strategy_for(t.elem), max_size=most)
    if isinstance(t, Optional):
        return st.none() | strategy_for(t.elem)
    if isinstance(t, dsl.Struct):
        return st.builds(t.cls, *[strategy_for(ft) for _, ft in t.fields])
    if isinstance(t, dsl.Union):
        arms = [st.builds(t.cls, st.just(tag), strategy_for(at)) for tag, (_, at) in t.arms.items()]
        others = _other_tags(t)
        if t.default is not None and others is not None:
            arms.append(st.builds(t.cls, others, strategy_for(t.default[1])))
        return st.one_of(arms)
    raise TypeError(f"no strategy for {t!r}")


def _other_tags(u):
    """Discriminant values that no arm names (they take the default arm), or None if none exist."""
    disc = u.disc
    while isinstance(disc, dsl.Typedef):
        disc = disc.target
    if isinstance(disc, dsl.Enum):
        rest = sorted(disc.values - set(u.arms))
        return st.sampled_from(rest) if rest else None
    if disc is Bool:
        rest = sorted({0, 1} - set(u.arms))
        return st.sampled_from(rest) if rest else None
    lo, hi = _INT_RANGES[disc.code]
    return st.integers(lo, hi).filter(lambda v: v not in u.arms)


# -------------------------------------------------------------------- extra test declarations
# Parts of the notation NFSv4 does not use (Optional, Array, signed and default-armed unions, ...).
_t = Spec("xdr_test")
_point = _t.struct("point", [("x", Int), ("y", Hyper)])
_t.typedef("two_points", Array(_point, 2))
_t.typedef("three_words", Array(UInt, 3))
_t.typedef("three_bytes", Opaque(3))
_t.union("signed_choice", Int, {1: ("p", _point), -1: Void}, default=("other", UHyper))
_t.union("bool_choice", Bool, {True: ("p", _point)}, default=Void)
_t.struct("bag", [
    ("maybe", Optional(_point)),
    ("chain", LinkedList(_point, 4)),
    ("name", String(5)),
    ("hypers", VarArray(Hyper, 3)),
    ("flag", Bool),
    ("tag3", Opaque(3)),
    ("payload", VarOpaque(view=True)),
    ("nothing", Void),
])
_t.struct("empty", [])
TEST_TYPES = _t.compile()

ALL_DECLARATIONS = list(nfs4.spec.types) + list(_t.types)

def _name(t) -> str:
    return getattr(t, "_xdr", t).name


SETTINGS = dict(
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("decl", ALL_DECLARATIONS, ids=_name)
@settings(max_examples=10, **SETTINGS)
@given(data=st.data())
def test_round_trip_every_declaration(decl, data):
    value = data.draw(strategy_for(decl))
    wire = encode(decl, value)
    assert len(wire) % 4 == 0
    assert decode(decl, wire) == value
    again = decode(decl, memoryview(wire))  # payload fields come back as views of the input
    assert again == value
    assert encode(decl, again) == wire


MESSAGES = [
    nfs4.COMPOUND4args,
    nfs4.COMPOUND4res,
    nfs4.CB_COMPOUND4args,
    nfs4.CB_COMPOUND4res,
    nfs4.fattr4,
    nfs4.READDIR4res,
]


@pytest.mark.parametrize("decl", MESSAGES, ids=_name)
@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
def test_round_trip_messages(decl, data):
    value = data.draw(strategy_for(decl))
    wire = encode(decl, value)
    assert decode(decl, wire) == value
    assert encode(decl, decode(decl, wire)) == wire


# --------------------------------------------------------------------------- hostile input
HOSTILE_TARGETS = [
    nfs4.COMPOUND4args,
    nfs4.COMPOUND4res,
    nfs4.CB_COMPOUND4args,
    nfs4.CB_COMPOUND4res,
    nfs4.fattr4,
    nfs4.nfs_argop4,
    nfs4.nfs_resop4,
    nfs4.dirlist4,
    nfs4.fattr4_fs_locations_info,
    TEST_TYPES.bag,
]


def _decodes_or_xdr_error(t, data):
    try:
        decode(t, data)
    except XdrError:
        pass


@settings(max_examples=200, **SETTINGS)
@given(st.binary(max_size=256))
def test_random_bytes_raise_only_xdr_error(data):
    for t in HOSTILE_TARGETS:
        _decodes_or_xdr_error(t, data)
        _decodes_or_xdr_error(t, memoryview(data))


@pytest.mark.parametrize("decl", HOSTILE_TARGETS, ids=_name)
@settings(max_examples=25, **SETTINGS)
@given(data=st.data())
def test_every_truncation_is_rejected(decl, data):
    wire = encode(decl, data.draw(strategy_for(decl)))
    for n in range(len(wire)):
        with pytest.raises(XdrError):
            decode(decl, wire[:n])
        with pytest.raises(XdrError):
            decode_from(decl, memoryview(wire)[:n])


EDGE_WORDS = [0, 1, 2, 3, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


@pytest.mark.parametrize("decl", HOSTILE_TARGETS, ids=_name)
@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_corrupted_words_raise_only_xdr_error(decl, data):
    wire = bytearray(encode(decl, data.draw(strategy_for(decl))))
    if not wire:
        return
    for _ in range(3):
        at = data.draw(st.integers(0, len(wire) // 4 - 1)) * 4
        word = data.draw(st.sampled_from(EDGE_WORDS) | st.integers(0, 2**32 - 1))
        wire[at:at + 4] = struct.pack(">I", word)
        _decodes_or_xdr_error(decl, bytes(wire))


def test_missing_padding_is_truncation():
    assert decode_from(nfs4.nfs_fh4, b"\0\0\0\x01a\0\0\0") == (b"a", 8)
    for cut in (b"\0\0\0\x01a", b"\0\0\0\x01a\0\0"):
        with pytest.raises(XdrError):
            decode_from(nfs4.nfs_fh4, cut)
    assert decode_from(TEST_TYPES.three_bytes, b"abc\0") == (b"abc", 4)
    with pytest.raises(XdrError):
        decode_from(TEST_TYPES.three_bytes, b"abc")  # opaque[3] needs its pad byte


def test_nonzero_bool_and_bad_tags_rejected():
    with pytest.raises(XdrError):
        decode(nfs4.change_info4, struct.pack(">IQQ", 2, 0, 0))
    with pytest.raises(XdrError):
        decode(nfs4.nfs_argop4, struct.pack(">I", 2))  # opnum 2 does not exist
    with pytest.raises(XdrError):
        decode(nfs4.open_claim4, struct.pack(">I", 7))  # no default arm
    with pytest.raises(XdrError):
        decode(nfs4.locker4, struct.pack(">I", 2))  # bool discriminant
    with pytest.raises(XdrError):
        encode(nfs4.nfs_argop4, nfs4.nfs_argop4(2, None))


def _huge_count(prefix: bytes) -> bytes:
    return prefix + b"\xff\xff\xff\xff" + bytes(16)


@pytest.mark.parametrize(
    "decl, data",
    [
        (nfs4.COMPOUND4args, _huge_count(struct.pack(">II", 0, 1))),  # tag "", minorversion, count
        (nfs4.COMPOUND4res, _huge_count(struct.pack(">II", 0, 0))),
        (nfs4.CB_COMPOUND4args, _huge_count(struct.pack(">III", 0, 1, 0))),
        (nfs4.bitmap4, _huge_count(b"")),
        (nfs4.pathname4, _huge_count(b"")),
        (nfs4.nfs_fh4, _huge_count(b"")),
        (nfs4.attrlist4, _huge_count(b"")),
        (nfs4.fattr4, _huge_count(b"")),
        (nfs4.TEST_STATEID4args, _huge_count(b"")),
    ],
    ids=lambda x: getattr(getattr(x, "_xdr", x), "name", None) or "data",
)
def test_huge_count_rejected_without_allocating(decl, data):
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        with pytest.raises(XdrError):
            decode(decl, data)
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.05
    assert peak < 64 * 1024


# ---------------------------------------------------------------------------- declared maxima
def test_bounded_opaque_over_maximum_rejected():
    encode(nfs4.nfs_fh4, b"x" * 128)
    with pytest.raises(XdrError):
        encode(nfs4.nfs_fh4, b"x" * 129)
    assert decode(nfs4.nfs_fh4, struct.pack(">I", 128) + b"x" * 128) == b"x" * 128
    with pytest.raises(XdrError):
        decode(nfs4.nfs_fh4, struct.pack(">I", 129) + b"x" * 132)


def test_owner_over_opaque_limit_rejected():
    ok = nfs4.state_owner4(clientid=7, owner=b"o" * 1024)
    wire = encode(nfs4.state_owner4, ok)
    with pytest.raises(XdrError):
        encode(nfs4.state_owner4, ok._replace(owner=b"o" * 1025))
    with pytest.raises(XdrError):
        decode(nfs4.state_owner4, wire[:8] + struct.pack(">I", 1025) + b"o" * 1028)


def test_array_over_maximum_rejected():
    impl = nfs4.nfs_impl_id4(b"example.org", b"nfsd", nfs4.nfstime4(0, 0))
    args = nfs4.EXCHANGE_ID4args(
        nfs4.client_owner4(bytes(8), b"me"), 0, nfs4.state_protect4_a(nfs4.SP4_NONE), [impl]
    )
    encode(nfs4.EXCHANGE_ID4args, args)
    with pytest.raises(XdrError):
        encode(nfs4.EXCHANGE_ID4args, args._replace(eia_client_impl_id=[impl, impl]))
    stateid = encode(nfs4.stateid4, nfs4.stateid4(1, bytes(12)))
    two_ids = struct.pack(">I", 2) + stateid * 2 + struct.pack(">QI", 5, nfs4.FILE_SYNC4) + bytes(8)
    with pytest.raises(XdrError):
        decode(nfs4.write_response4, two_ids)
    with pytest.raises(XdrError):
        encode(nfs4.authsys_parms, nfs4.authsys_parms(0, b"host", 0, 0, list(range(17))))
    with pytest.raises(XdrError):
        encode(nfs4.authsys_parms, nfs4.authsys_parms(0, b"h" * 256, 0, 0, []))
    with pytest.raises(XdrError):
        five = [TEST_TYPES.point(0, 0)] * 5  # LinkedList(point, 4)
        encode(TEST_TYPES.bag, TEST_TYPES.bag(None, five, b"", [], False, b"abc", b"", None))


def test_fixed_opaque_of_wrong_length_rejected():
    with pytest.raises(XdrError):
        encode(nfs4.stateid4, nfs4.stateid4(1, bytes(11)))
    with pytest.raises(XdrError):
        encode(nfs4.verifier4, bytes(9))


# ------------------------------------------------------------------------------ wire vectors
def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_vector_stateid():
    sid = nfs4.stateid4(seqid=0x01020304, other=bytes(range(12)))
    wire = h("01020304 00010203 04050607 08090a0b")
    assert encode(nfs4.stateid4, sid) == wire
    assert decode(nfs4.stateid4, wire) == sid


def test_vector_compound_putrootfh_getfh_getattr():
    args = nfs4.COMPOUND4args(
        tag=b"ab",
        minorversion=1,
        argarray=[
            nfs4.nfs_argop4(nfs4.OP_PUTROOTFH, None),
            nfs4.nfs_argop4(nfs4.OP_GETFH, None),
            nfs4.nfs_argop4(nfs4.OP_GETATTR, nfs4.GETATTR4args([0x0010011A, 0x00B0A23A])),
        ],
    )
    wire = h(
        "00000002 61620000"  # tag "ab", padded
        "00000001"  # minorversion
        "00000003"  # three operations
        "00000018"  # OP_PUTROOTFH
        "0000000a"  # OP_GETFH
        "00000009 00000002 0010011a 00b0a23a"  # OP_GETATTR, bitmap of two words
    )
    assert encode(nfs4.COMPOUND4args, args) == wire
    assert decode(nfs4.COMPOUND4args, wire) == args


def test_vector_compound_res_with_error():
    res = nfs4.COMPOUND4res(
        status=nfs4.NFS4ERR_NOENT,
        tag=b"",
        resarray=[
            nfs4.nfs_resop4(nfs4.OP_PUTROOTFH, nfs4.PUTROOTFH4res(nfs4.NFS4_OK)),
            nfs4.nfs_resop4(nfs4.OP_LOOKUP, nfs4.LOOKUP4res(nfs4.NFS4ERR_NOENT)),
            nfs4.nfs_resop4(nfs4.OP_GETFH, nfs4.GETFH4res(nfs4.NFS4ERR_NOFILEHANDLE, None)),
        ],
    )
    wire = h("00000002 00000000 00000003 00000018 00000000 0000000f 00000002 0000000a 00002724")
    assert encode(nfs4.COMPOUND4res, res) == wire
    assert decode(nfs4.COMPOUND4res, wire) == res


def test_vector_dirlist_linked_list():
    listing = nfs4.dirlist4(
        entries=[
            nfs4.entry4(cookie=3, name=b"a", attrs=nfs4.fattr4([], b"")),
            nfs4.entry4(cookie=4, name=b"bc", attrs=nfs4.fattr4([1], b"\0\0\0\1")),
        ],
        eof=True,
    )
    wire = h(
        "00000001"  # entries: value follows
        "00000000 00000003 00000001 61000000 00000000 00000000"  # cookie, "a", empty fattr4
        "00000001"  # nextentry: value follows
        "00000000 00000004 00000002 62630000 00000001 00000001 00000004 00000001"
        "00000000"  # nextentry: none
        "00000001"  # eof
    )
    assert encode(nfs4.dirlist4, listing) == wire
    assert decode(nfs4.dirlist4, wire) == listing
    assert encode(nfs4.dirlist4, nfs4.dirlist4([], False)) == h("00000000 00000000")


def test_vector_fattr4_from_attribute_table():
    size_t, mode_t = nfs4.ATTRS[nfs4.FATTR4_SIZE][1], nfs4.ATTRS[nfs4.FATTR4_MODE][1]
    vals = encode(size_t, 4096) + encode(mode_t, 0o644)
    mask = [1 << nfs4.FATTR4_SIZE, 1 << (nfs4.FATTR4_MODE - 32)]
    attrs = nfs4.fattr4(attrmask=mask, attr_vals=vals)
    wire = h("00000002 00000010 00000002 0000000c 00000000 00001000 000001a4")
    assert encode(nfs4.fattr4, attrs) == wire


def test_vector_write_payload_is_a_view():
    args = nfs4.WRITE4args(nfs4.stateid4(0, bytes(12)), 8, nfs4.UNSTABLE4, b"hello")
    wire = h("00000000" + "00" * 12 + "00000000 00000008 00000000 00000005 68656c6c 6f000000")
    assert encode(nfs4.WRITE4args, args) == wire
    buf = memoryview(bytearray(wire))
    decoded = decode(nfs4.WRITE4args, buf)
    assert isinstance(decoded.data, memoryview) and decoded.data.obj is buf.obj
    assert decoded.data == b"hello"


def test_vector_unions_on_bool_enum_and_uint():
    assert encode(nfs4.settime4, nfs4.settime4(nfs4.SET_TO_SERVER_TIME4)) == h("00000000")
    t = nfs4.settime4(nfs4.SET_TO_CLIENT_TIME4, nfs4.nfstime4(-1, 5))
    assert encode(nfs4.settime4, t) == h("00000001 ffffffff ffffffff 00000005")
    lk = nfs4.locker4(False, nfs4.exist_lock_owner4(nfs4.stateid4(2, bytes(12)), 9))
    wire = h("00000000 00000002" + "00" * 12 + "00000009")
    assert encode(nfs4.locker4, lk) == wire
    assert decode(nfs4.locker4, wire) == lk
    gss = nfs4.rpcsec_gss_info(b"\x2a", 0, nfs4.RPC_GSS_SVC_NONE)
    sec = [nfs4.secinfo4(nfs4.AUTH_SYS), nfs4.secinfo4(nfs4.RPCSEC_GSS, gss)]
    wire = h("00000002 00000001 00000006 00000001 2a000000 00000000 00000001")
    assert encode(nfs4.SECINFO4resok, sec) == wire
    assert decode(nfs4.SECINFO4resok, wire) == sec
    info = nfs4.offload_info4(nfs4.NFS4ERR_IO, 77)  # non-void default arm
    assert encode(nfs4.offload_info4, info) == h("00000005 00000000 0000004d")


# ------------------------------------------------------------------------------ completeness
def test_every_operation_has_args_and_result():
    opnums = set(nfs4.nfs_opnum4.values)
    assert opnums == set(nfs4.OP_ARGS) == set(nfs4.OP_RES) == set(nfs4.OP_NAMES)
    assert sorted(opnums - {nfs4.OP_ILLEGAL}) == list(range(3, 76))
    assert nfs4.OP_ARGS[nfs4.OP_OPEN] is nfs4.OPEN4args
    assert nfs4.OP_ARGS[nfs4.OP_PUTROOTFH] is Void
    assert nfs4.OP_ARGS[nfs4.OP_ILLEGAL] is Void
    assert nfs4.OP_RES[nfs4.OP_ILLEGAL] is nfs4.ILLEGAL4res
    assert nfs4.OP_ARGS[nfs4.OP_SECINFO_NO_NAME] is nfs4.SECINFO_NO_NAME4args
    assert nfs4.OP_NAMES[nfs4.OP_OPEN] == "OPEN" and nfs4.OP_NAMES[10044] == "ILLEGAL"
    for opnum, args in nfs4.OP_ARGS.items():  # names and types agree
        name = nfs4.OP_NAMES[opnum]
        assert args is Void or getattr(args, "_xdr", args).name == f"{name}4args"
        assert getattr(nfs4.OP_RES[opnum], "_xdr", nfs4.OP_RES[opnum]).name == f"{name}4res"


def test_every_callback_operation_has_args_and_result():
    opnums = set(nfs4.nfs_cb_opnum4.values)
    assert opnums == set(nfs4.CB_OP_ARGS) == set(nfs4.CB_OP_RES) == set(nfs4.CB_OP_NAMES)
    assert sorted(opnums - {nfs4.OP_CB_ILLEGAL}) == list(range(3, 16))
    assert nfs4.CB_OP_NAMES[nfs4.OP_CB_SEQUENCE] == "CB_SEQUENCE"
    assert nfs4.CB_OP_ARGS[nfs4.OP_CB_ILLEGAL] is Void
    assert nfs4.CB_OP_RES[nfs4.OP_CB_ILLEGAL] is nfs4.CB_ILLEGAL4res


def test_every_attribute_constant_has_an_entry():
    consts = {k: v for k, v in nfs4.spec.consts.items() if k.startswith("FATTR4_")}
    assert sorted(consts.values()) == list(range(83))  # 0 .. FATTR4_XATTR_SUPPORT
    assert set(nfs4.ATTRS) == set(consts.values())
    for const, num in consts.items():
        name, decl = nfs4.ATTRS[num]
        assert const == "FATTR4_" + name.upper()
        exported = getattr(nfs4, f"fattr4_{name}")
        # typedefs of structs are exported as the struct's class
        assert decl is exported or exported._xdr is _resolve(decl)
        assert decl.name == f"fattr4_{name}"
    assert nfs4.ATTRS[nfs4.FATTR4_CHANGE_ATTR_TYPE][0] == "change_attr_type"
    last = (nfs4.FATTR4_SEC_LABEL, nfs4.FATTR4_MODE_UMASK, nfs4.FATTR4_XATTR_SUPPORT)
    assert last == (80, 81, 82)


def test_status_codes_of_all_minor_versions():
    codes = nfs4.nfsstat4.names
    assert codes[0] == "NFS4_OK" and codes[10044] == "NFS4ERR_OP_ILLEGAL"
    assert codes[10087] == "NFS4ERR_DELEG_REVOKED" and codes[10094] == "NFS4ERR_OFFLOAD_NO_REQS"
    assert codes[10096] == "NFS4ERR_XATTR2BIG"
    assert 19 not in codes and 10073 not in codes


def test_program_numbers():
    assert (nfs4.NFS4_PROGRAM, nfs4.NFS_V4, nfs4.NFSPROC4_COMPOUND) == (100003, 4, 1)
    assert (nfs4.NFS4_CALLBACK, nfs4.NFS_CB, nfs4.CB_COMPOUND) == (0x40000000, 1, 1)


def test_no_declaration_is_recursive():
    def children(t):
        if isinstance(t, dsl.Typedef):
            return [t.target]
        if isinstance(t, (Array, VarArray, Optional, LinkedList)):
            return [t.elem]
        if isinstance(t, dsl.Struct):
            return [ft for _, ft in t.fields]
        if isinstance(t, dsl.Union):
            return [at for _, at in t.arms.values()] + ([t.default[1]] if t.default else [])
        return []

    def visit(t, path):
        assert id(t) not in path, f"recursive type through {t.name}"
        for c in children(t):
            visit(c, path | {id(t)})

    for decl in nfs4.spec.types:
        visit(decl, frozenset())


def test_the_generated_code_can_be_read(tmp_path):
    """`python -m nfsd.xdr nfs4 -o FILE`: the encoders and decoders the compiler runs, as one
    module a reader can open (every declared type has both)."""
    import subprocess
    import sys

    out = tmp_path / "nfs4_generated.py"
    subprocess.run([sys.executable, "-m", "nfsd.xdr", "nfs4", "-o", str(out)], check=True,
                   timeout=60)
    src = out.read_text()
    compile(src, str(out), "exec")  # valid Python
    for t in nfs4.spec.types:
        assert f"def enc_{t.name}(" in src and f"def dec_{t.name}(" in src
