"""ONC RPC version 2 message types (RFC 5531, section 9), declared in the project's notation.

Every RPC message on the wire is an `rpc_msg`: a transaction id followed by a CALL body or a
REPLY body. A reply is either accepted (the call got past authentication: it carries a
verifier and a status, and on SUCCESS the procedure's results follow the header directly) or
denied (wrong RPC version, or the caller could not be authenticated).

The hot path (`nfsd.rpc.message`) parses call headers and emits reply headers with precomputed
`struct` layouts; its tests check those against the declarations below, which remain the one
description of the wire format.

`opaque_auth.flavor` is decoded as a plain unsigned number rather than as the `auth_flavor`
enum: flavors form an open registry (IANA), and a server must be able to read a credential of
a flavor it has never heard of in order to refuse it with AUTH_ERROR instead of failing to
decode the message.
"""

from .dsl import Spec, String, UInt, VarArray, VarOpaque, Void

spec = Spec("rpc")

RPC_VERSION = spec.const("RPC_VERSION", 2)
# Upper bound on the body of a credential or verifier (RFC 5531, section 8.2).
MAX_AUTH_BYTES = spec.const("MAX_AUTH_BYTES", 400)
# Limits of the AUTH_SYS credential (RFC 5531, appendix A).
MAX_MACHINE_NAME = spec.const("MAX_MACHINE_NAME", 255)
MAX_AUTHSYS_GIDS = spec.const("MAX_AUTHSYS_GIDS", 16)

# Authentication flavors (RFC 5531, section 8.2 and the IANA registry it creates).
spec.enum(
    "auth_flavor",
    [
        ("AUTH_NONE", 0),  # no authentication (also known as AUTH_NULL)
        ("AUTH_SYS", 1),  # uid, gid and groups asserted by the client (AUTH_UNIX)
        ("AUTH_SHORT", 2),  # a server-issued shorthand for an earlier AUTH_SYS credential
        ("AUTH_DH", 3),  # Diffie-Hellman (RFC 2695), obsolete
        ("RPCSEC_GSS", 6),  # GSS-API security (RFC 2203, RFC 5403)
    ],
)

spec.struct(
    "opaque_auth",
    [
        ("flavor", UInt),  # an auth_flavor; see the module docstring for why not the enum
        ("body", VarOpaque(MAX_AUTH_BYTES)),
    ],
)

# The body of an AUTH_SYS credential (RFC 5531, appendix A).
spec.struct(
    "authsys_parms",
    [
        ("stamp", UInt),  # arbitrary id chosen by the client
        ("machinename", String(MAX_MACHINE_NAME)),
        ("uid", UInt),
        ("gid", UInt),
        ("gids", VarArray(UInt, MAX_AUTHSYS_GIDS)),
    ],
)

spec.enum("msg_type", [("CALL", 0), ("REPLY", 1)])

spec.enum("reply_stat", [("MSG_ACCEPTED", 0), ("MSG_DENIED", 1)])

spec.enum(
    "accept_stat",
    [
        ("SUCCESS", 0),  # the procedure ran; its results follow
        ("PROG_UNAVAIL", 1),  # program not exported here
        ("PROG_MISMATCH", 2),  # program version not supported (range given)
        ("PROC_UNAVAIL", 3),  # no such procedure
        ("GARBAGE_ARGS", 4),  # arguments could not be decoded
        ("SYSTEM_ERR", 5),  # server-side failure (e.g. memory)
    ],
)

spec.enum(
    "reject_stat",
    [
        ("RPC_MISMATCH", 0),  # RPC version is not 2
        ("AUTH_ERROR", 1),  # caller not authenticated
    ],
)

spec.enum(
    "auth_stat",
    [
        ("AUTH_OK", 0),
        # failures decided by the server
        ("AUTH_BADCRED", 1),  # credential malformed / not acceptable
        ("AUTH_REJECTEDCRED", 2),  # client must begin a new session
        ("AUTH_BADVERF", 3),  # verifier malformed
        ("AUTH_REJECTEDVERF", 4),  # verifier expired or replayed
        ("AUTH_TOOWEAK", 5),  # refused for security reasons
        # failures decided by the client
        ("AUTH_INVALIDRESP", 6),  # bogus response verifier
        ("AUTH_FAILED", 7),  # reason unknown
        # Kerberos (AUTH_KERB) specific
        ("AUTH_KERB_GENERIC", 8),
        ("AUTH_TIMEEXPIRE", 9),
        ("AUTH_TKT_FILE", 10),
        ("AUTH_DECODE", 11),
        ("AUTH_NET_ADDR", 12),
        # RPCSEC_GSS (RFC 2203)
        ("RPCSEC_GSS_CREDPROBLEM", 13),  # no credentials for the user
        ("RPCSEC_GSS_CTXPROBLEM", 14),  # context problem: establish a new one
    ],
)

_C = spec.consts

spec.struct(
    "call_body",
    [
        ("rpcvers", UInt),  # must be RPC_VERSION
        ("prog", UInt),
        ("vers", UInt),
        ("proc", UInt),
        ("cred", spec.by_name["opaque_auth"]),
        ("verf", spec.by_name["opaque_auth"]),
        # the procedure's arguments follow
    ],
)

# Lowest and highest supported version, for PROG_MISMATCH and RPC_MISMATCH.
spec.struct("mismatch_info", [("low", UInt), ("high", UInt)])

# The part of an accepted reply that depends on its status. On SUCCESS the procedure's
# results follow on the wire (RFC 5531 writes `opaque results[0]`): they are not part of
# the header.
spec.union(
    "accepted_reply_data",
    spec.by_name["accept_stat"],
    {
        _C["SUCCESS"]: Void,
        _C["PROG_MISMATCH"]: ("mismatch_info", spec.by_name["mismatch_info"]),
    },
    default=Void,  # PROG_UNAVAIL, PROC_UNAVAIL, GARBAGE_ARGS, SYSTEM_ERR
)

spec.struct(
    "accepted_reply",
    [
        ("verf", spec.by_name["opaque_auth"]),
        ("reply_data", spec.by_name["accepted_reply_data"]),
    ],
)

spec.union(
    "rejected_reply",
    spec.by_name["reject_stat"],
    {
        _C["RPC_MISMATCH"]: ("mismatch_info", spec.by_name["mismatch_info"]),
        _C["AUTH_ERROR"]: ("stat", spec.by_name["auth_stat"]),
    },
)

spec.union(
    "reply_body",
    spec.by_name["reply_stat"],
    {
        _C["MSG_ACCEPTED"]: ("areply", spec.by_name["accepted_reply"]),
        _C["MSG_DENIED"]: ("rreply", spec.by_name["rejected_reply"]),
    },
)

spec.union(
    "rpc_msg_body",
    spec.by_name["msg_type"],
    {
        _C["CALL"]: ("cbody", spec.by_name["call_body"]),
        _C["REPLY"]: ("rbody", spec.by_name["reply_body"]),
    },
)

spec.struct("rpc_msg", [("xid", UInt), ("body", spec.by_name["rpc_msg_body"])])

_compiled = spec.compile("nfsd.xdr.gen_rpc")  # nfsd/xdr/gen_rpc.py, the generated code
globals().update({k: v for k, v in vars(_compiled).items() if not k.startswith("_")})
