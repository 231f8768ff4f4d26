"""RPC call headers in, reply headers out (RFC 5531), sans-IO.

Server side:

- `parse_call(record, cred_cache=None) -> Call` reads a call header with one precompiled
  `struct` for its fixed part and returns a `Call` whose `args` is a view of the procedure
  arguments. A record that cannot be accepted raises `CallError`, whose `reply` is the
  complete reply to send (bytes, without record marker), or None when the record must be
  dropped without an answer.
- `reply_*` build reply headers. They are precomputed from the declarations in
  `nfsd.xdr.rpc` at import; only the xid (and, for mismatches, the version range) is packed
  per reply. The success header is 24 bytes; the procedure's results follow it.

What is refused, and how (RFC 5531 sections 9 and 10; RFC 2203 for RPCSEC_GSS):

  record shorter than an xid ................. dropped
  msg_type is not CALL ....................... dropped
  rpcvers != 2 ............................... MSG_DENIED RPC_MISMATCH(2, 2)
  header truncated (after the xid) ........... MSG_ACCEPTED GARBAGE_ARGS
  credential body over 400 bytes ............. MSG_DENIED AUTH_ERROR AUTH_BADCRED
  verifier body over 400 bytes ............... MSG_DENIED AUTH_ERROR AUTH_BADVERF
  AUTH_NONE credential with a body ........... AUTH_BADCRED
  AUTH_SYS body malformed or not filled exactly AUTH_BADCRED
  other flavors, RPCSEC_GSS included ......... AUTH_BADCRED (the flavor is not supported here;
                                                a client cannot fix this by refreshing its
                                                credential, which AUTH_REJECTEDCRED or the
                                                RPCSEC_GSS_* codes would ask of it)
  verifier not an empty AUTH_NONE ............ AUTH_BADVERF (AUTH_NONE and AUTH_SYS calls carry
                                                an AUTH_NONE verifier)

Client side (tools and tests): `build_call` and `parse_reply`, which use the compiled
declarations directly; `RpcReplyError` describes a reply that is not SUCCESS.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ..xdr import XdrError, decode_from, encode
from ..xdr import rpc

__all__ = [
    "AuthSys",
    "Call",
    "CallError",
    "RpcReplyError",
    "SUCCESS_HEADER_SIZE",
    "build_call",
    "parse_call",
    "parse_reply",
    "reply_auth_error",
    "reply_garbage_args",
    "reply_proc_unavail",
    "reply_prog_mismatch",
    "reply_prog_unavail",
    "reply_rpc_mismatch",
    "reply_success",
    "reply_system_err",
]


class AuthSys(NamedTuple):
    """An AUTH_SYS credential (RFC 5531, appendix A); hashable, `gids` is a tuple."""

    stamp: int
    machinename: bytes
    uid: int
    gid: int
    gids: tuple = ()


class Call:
    """One RPC call: header fields, the procedure arguments and (on a server) the connection.

    `cred` is an `AuthSys` for AUTH_SYS calls and None for AUTH_NONE (the only flavors
    accepted); `flavor` is the credential flavor; `verifier` an `rpc.opaque_auth`; `offset`
    the position of the arguments in the record; `args` a memoryview of them; `conn` is set
    by the server (see `nfsd.rpc.server.Connection`).
    """

    __slots__ = ("xid", "rpcvers", "prog", "vers", "proc", "flavor", "cred", "verifier", "offset", "args", "conn")

    def __init__(self, xid, rpcvers, prog, vers, proc, flavor, cred, verifier, offset, args, conn=None):
        self.xid = xid
        self.rpcvers = rpcvers
        self.prog = prog
        self.vers = vers
        self.proc = proc
        self.flavor = flavor
        self.cred = cred
        self.verifier = verifier
        self.offset = offset
        self.args = args
        self.conn = conn

    def __repr__(self):
        return (
            f"Call(xid={self.xid:#x}, prog={self.prog}, vers={self.vers}, proc={self.proc}, "
            f"cred={self.cred!r}, args={len(self.args)} bytes)"
        )


class CallError(Exception):
    """A record that is not an acceptable call. `reply`: bytes to send, or None to drop it."""

    def __init__(self, reply: bytes | None, reason: str):
        super().__init__(reason)
        self.reply = reply
        self.reason = reason


# ---------------------------------------------------------------------------- replies

_XID = struct.Struct(">I")
_NULL_VERF = rpc.opaque_auth(rpc.AUTH_NONE, b"")


def _reply_tail(body) -> bytes:
    """Encoding of a REPLY rpc_msg with `body` (a reply_body), without its xid."""
    msg = rpc.rpc_msg(0, rpc.rpc_msg_body(rpc.REPLY, body))
    return encode(rpc.rpc_msg, msg)[4:]


def _accepted(stat, data=None):
    return rpc.reply_body(
        rpc.MSG_ACCEPTED,
        rpc.accepted_reply(_NULL_VERF, rpc.accepted_reply_data(stat, data)),
    )


def _denied(stat, data):
    return rpc.reply_body(rpc.MSG_DENIED, rpc.rejected_reply(stat, data))


def _fixed(tail: bytes):
    """A function xid -> reply, for replies where only the xid varies."""
    pack = struct.Struct(f">I{len(tail)}s").pack

    def build(xid: int) -> bytes:
        return pack(xid, tail)

    return build


def _ranged(tail: bytes):
    """A function (xid, low, high) -> reply, for a tail ending with a mismatch_info."""
    prefix = tail[:-8]
    pack = struct.Struct(f">I{len(prefix)}sII").pack

    def build(xid: int, low: int, high: int) -> bytes:
        return pack(xid, prefix, low, high)

    return build


_SUCCESS_TAIL = _reply_tail(_accepted(rpc.SUCCESS))
SUCCESS_HEADER_SIZE = 4 + len(_SUCCESS_TAIL)  # 24

reply_success = _fixed(_SUCCESS_TAIL)
reply_success.__doc__ = "Header of a SUCCESS reply (24 bytes, AUTH_NONE verifier); results follow."
reply_prog_unavail = _fixed(_reply_tail(_accepted(rpc.PROG_UNAVAIL)))
reply_proc_unavail = _fixed(_reply_tail(_accepted(rpc.PROC_UNAVAIL)))
reply_garbage_args = _fixed(_reply_tail(_accepted(rpc.GARBAGE_ARGS)))
reply_system_err = _fixed(_reply_tail(_accepted(rpc.SYSTEM_ERR)))
reply_prog_mismatch = _ranged(_reply_tail(_accepted(rpc.PROG_MISMATCH, rpc.mismatch_info(0, 0))))
_rpc_mismatch = _ranged(_reply_tail(_denied(rpc.RPC_MISMATCH, rpc.mismatch_info(0, 0))))
_AUTH_ERROR = {
    stat: _fixed(_reply_tail(_denied(rpc.AUTH_ERROR, stat))) for stat in rpc.auth_stat.values
}


def reply_rpc_mismatch(xid: int, low: int = rpc.RPC_VERSION, high: int = rpc.RPC_VERSION) -> bytes:
    """MSG_DENIED RPC_MISMATCH with the supported RPC version range."""
    return _rpc_mismatch(xid, low, high)


def reply_auth_error(xid: int, stat: int) -> bytes:
    """MSG_DENIED AUTH_ERROR with auth_stat `stat`."""
    try:
        return _AUTH_ERROR[stat](xid)
    except KeyError:
        raise ValueError(f"not an auth_stat: {stat!r}") from None


# ---------------------------------------------------------------------------- calls

# xid, msg_type, rpcvers, prog, vers, proc, credential flavor, credential length
_HEAD = struct.Struct(">IIIIIIII")
_HEAD2 = struct.Struct(">II")
_CALL = rpc.CALL
_AUTH_NONE = rpc.AUTH_NONE
_AUTH_SYS = rpc.AUTH_SYS
_MAX_AUTH = rpc.MAX_AUTH_BYTES
_dec_authsys = rpc.authsys_parms._xdr.dec
_CRED_CACHE_MAX = 64


def _short_header(record, n) -> CallError:
    """The error for a record shorter than the fixed part of a call header (n < 32)."""
    (xid,) = _XID.unpack_from(record, 0)
    if n >= 8:
        (mtype,) = _XID.unpack_from(record, 4)
        if mtype != _CALL:
            return CallError(None, "not a call")
        if n >= 12:
            (vers,) = _XID.unpack_from(record, 8)
            if vers != rpc.RPC_VERSION:
                return CallError(reply_rpc_mismatch(xid), f"rpc version {vers}")
    return CallError(reply_garbage_args(xid), "truncated call header")


def _authsys(body) -> AuthSys:
    """Decode an AUTH_SYS credential body, which must be filled exactly."""
    try:
        v, end = _dec_authsys(body, 0)
    except (XdrError, struct.error):
        raise ValueError("malformed AUTH_SYS credential") from None
    if end != len(body):
        raise ValueError("AUTH_SYS credential with trailing bytes")
    return AuthSys(v.stamp, v.machinename, v.uid, v.gid, tuple(v.gids))


def parse_call(record, cred_cache: dict | None = None) -> Call:
    """Parse the header of a call record (a bytes-like object); see the module docstring.

    `cred_cache`, a dict owned by the caller (typically one per connection), memoizes decoded
    AUTH_SYS credentials by their encoded body: clients repeat the same credential on every
    call. It is kept small by clearing it when full.
    """
    n = len(record)
    if n < 32:
        if n < 4:
            raise CallError(None, "record shorter than an xid")
        raise _short_header(record, n)
    xid, mtype, rpcvers, prog, vers, proc, flavor, clen = _HEAD.unpack_from(record, 0)
    if mtype != _CALL:
        raise CallError(None, "not a call")
    if rpcvers != 2:
        raise CallError(reply_rpc_mismatch(xid), f"rpc version {rpcvers}")
    if clen > _MAX_AUTH:
        raise CallError(reply_auth_error(xid, rpc.AUTH_BADCRED), "credential too long")
    vpos = 32 + ((clen + 3) & ~3)
    if vpos + 8 > n:
        raise CallError(reply_garbage_args(xid), "truncated credential")
    vflavor, vlen = _HEAD2.unpack_from(record, vpos)
    if vlen > _MAX_AUTH:
        raise CallError(reply_auth_error(xid, rpc.AUTH_BADVERF), "verifier too long")
    apos = vpos + 8 + ((vlen + 3) & ~3)
    if apos > n:
        raise CallError(reply_garbage_args(xid), "truncated verifier")

    if flavor == _AUTH_SYS:
        body = record[32:32 + clen]
        if cred_cache is not None:
            key = bytes(body)
            cred = cred_cache.get(key)
            if cred is None:
                try:
                    cred = _authsys(key)
                except ValueError as e:
                    raise CallError(reply_auth_error(xid, rpc.AUTH_BADCRED), str(e)) from None
                if len(cred_cache) >= _CRED_CACHE_MAX:
                    cred_cache.clear()
                cred_cache[key] = cred
        else:
            try:
                cred = _authsys(body)
            except ValueError as e:
                raise CallError(reply_auth_error(xid, rpc.AUTH_BADCRED), str(e)) from None
    elif flavor == _AUTH_NONE:
        if clen:
            raise CallError(reply_auth_error(xid, rpc.AUTH_BADCRED), "AUTH_NONE credential with a body")
        cred = None
    else:
        raise CallError(reply_auth_error(xid, rpc.AUTH_BADCRED), f"unsupported auth flavor {flavor}")
    if vflavor != _AUTH_NONE or vlen:
        raise CallError(reply_auth_error(xid, rpc.AUTH_BADVERF), f"verifier of flavor {vflavor}")

    if not isinstance(record, memoryview):
        record = memoryview(record)
    return Call(xid, rpcvers, prog, vers, proc, flavor, cred, _NULL_VERF, apos, record[apos:])


# ---------------------------------------------------------------------------- client side


class RpcReplyError(Exception):
    """A reply other than MSG_ACCEPTED/SUCCESS.

    Attributes: `xid`, `reply_stat`; for accepted replies `accept_stat`; for denied ones
    `reject_stat` and, for AUTH_ERROR, `auth_stat`; `low`/`high` for PROG_MISMATCH and
    RPC_MISMATCH. Attributes that do not apply are None.
    """

    def __init__(self, xid, reply_stat, accept_stat=None, reject_stat=None, auth_stat=None, low=None, high=None):
        self.xid = xid
        self.reply_stat = reply_stat
        self.accept_stat = accept_stat
        self.reject_stat = reject_stat
        self.auth_stat = auth_stat
        self.low = low
        self.high = high
        if accept_stat is not None:
            what = rpc.accept_stat.names.get(accept_stat, str(accept_stat))
        elif reject_stat == rpc.AUTH_ERROR:
            what = "AUTH_ERROR " + rpc.auth_stat.names.get(auth_stat, str(auth_stat))
        else:
            what = rpc.reject_stat.names.get(reject_stat, str(reject_stat))
        if low is not None:
            what += f" ({low}..{high})"
        super().__init__(f"xid {xid:#x}: {what}")


def _opaque_auth(cred) -> "rpc.opaque_auth":
    if cred is None:
        return _NULL_VERF
    if isinstance(cred, AuthSys):
        body = encode(rpc.authsys_parms, rpc.authsys_parms(cred.stamp, cred.machinename, cred.uid, cred.gid, list(cred.gids)))
        return rpc.opaque_auth(_AUTH_SYS, body)
    if isinstance(cred, rpc.opaque_auth):  # any flavor, as is (for tests of refusals)
        return cred
    raise TypeError(f"not a credential: {cred!r}")


def build_call(xid: int, prog: int, vers: int, proc: int, cred=None, verf=None, rpcvers: int = rpc.RPC_VERSION) -> bytes:
    """A call header (without record marker); the procedure arguments follow it.

    `cred`: None (AUTH_NONE), an `AuthSys`, or an `rpc.opaque_auth` sent as is; `verf`
    likewise (default: an empty AUTH_NONE verifier).
    """
    body = rpc.call_body(rpcvers, prog, vers, proc, _opaque_auth(cred), _opaque_auth(verf))
    return encode(rpc.rpc_msg, rpc.rpc_msg(xid, rpc.rpc_msg_body(_CALL, body)))


def parse_reply(record) -> tuple[int, memoryview]:
    """Decode a reply record: (xid, results) on SUCCESS, else raise `RpcReplyError`.

    Raises `XdrError` if the record is not a valid reply.
    """
    msg, pos = decode_from(rpc.rpc_msg, record, 0)
    if msg.body.tag != rpc.REPLY:
        raise XdrError("not a reply")
    rb = msg.body.value
    xid = msg.xid
    if rb.tag == rpc.MSG_ACCEPTED:
        data = rb.value.reply_data
        if data.tag == rpc.SUCCESS:
            return xid, memoryview(record)[pos:]
        if data.tag == rpc.PROG_MISMATCH:
            raise RpcReplyError(xid, rb.tag, accept_stat=data.tag, low=data.value.low, high=data.value.high)
        raise RpcReplyError(xid, rb.tag, accept_stat=data.tag)
    rr = rb.value
    if rr.tag == rpc.RPC_MISMATCH:
        raise RpcReplyError(xid, rb.tag, reject_stat=rr.tag, low=rr.value.low, high=rr.value.high)
    raise RpcReplyError(xid, rb.tag, reject_stat=rr.tag, auth_stat=rr.value)
