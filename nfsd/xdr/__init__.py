"""XDR (RFC 4506): declarations in `dsl`, compiled by `compiler`, protocols in `rpc` and `nfs4`."""

import struct as _struct

from .compiler import Out, zero
from .errors import XdrError

__all__ = ["Out", "XdrError", "decode", "decode_from", "encode", "zero"]


def _decl(t):
    return getattr(t, "_xdr", t)


def encode(t, value) -> bytes:
    """Encode `value` as type `t` (a generated class or a declaration)."""
    b = bytearray()
    try:
        _decl(t).enc(b, value)
    except (_struct.error, AttributeError, TypeError) as e:
        raise XdrError(f"cannot encode {value!r}: {e}") from None
    return bytes(b)


def decode_from(t, data, pos=0):
    """Decode a value of type `t` from `data` at `pos`; returns (value, next position)."""
    try:
        return _decl(t).dec(data, pos)
    except _struct.error as e:
        raise XdrError(f"truncated: {e}") from None


def decode(t, data):
    """Decode a value of type `t` that must fill `data` exactly."""
    value, pos = decode_from(t, data, 0)
    if pos != len(data):
        raise XdrError(f"{len(data) - pos} trailing bytes")
    return value
