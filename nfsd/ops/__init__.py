"""Operation handlers, one module per group; `handlers()` is the table COMPOUND dispatches on."""

from __future__ import annotations

from ..errors import NFS4Error
from ..xdr import nfs4 as x
from . import attrs, clients40, copy, deleg, fh, io, locks, namespace, session, v42


def unsupported(ctx, args):
    """An operation this server does not implement (RFC 8881 section 15.1.1.4: NOTSUPP)."""
    raise NFS4Error(x.NFS4ERR_NOTSUPP)


def illegal(ctx, args):
    raise NFS4Error(x.NFS4ERR_OP_ILLEGAL)


def handlers() -> dict:
    table = {}
    for mod in (session, clients40, fh, attrs, namespace, io, deleg, locks, v42, copy):
        for opnum, fn in mod.HANDLERS.items():
            if opnum in table:
                raise ValueError(f"operation {x.OP_NAMES[opnum]} has two handlers")
            table[opnum] = fn
    for opnum in x.OP_NAMES:
        table.setdefault(opnum, unsupported)
    table[x.OP_ILLEGAL] = illegal
    return table
