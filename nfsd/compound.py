"""COMPOUND: the loop that runs a request's operations in order (RFC 8881 section 2.6 / 16.2).

Operations are decoded one at a time, just before they run, so an unknown operation number
stops the request with OP_ILLEGAL (its arguments cannot be skipped) and a bad argument with
BADXDR, with the results of the operations before it. Processing stops at the first error.
A handler is `handler(ctx, args) -> result`; it may also return a Deferred (disk work done in
a thread), and the loop resumes when it fires. Every operation number has an explicit entry in
`HANDLERS` (`ops.unsupported` for the ones this server does not implement).

For NFSv4.1+ the SEQUENCE rules live here too: which operations may start a COMPOUND, the
slot's reply cache (a retransmission gets the cached encoded reply), and the session limits.
"""

from __future__ import annotations

import logging
import operator
import struct

from twisted.internet import defer

from .errors import NFS4Error
from .exports import FileRef
from .drc import IN_PROGRESS
from .rpc.server import DropReply, GarbageArgs
from .xdr import Out, XdrError, zero
from .xdr import nfs4 as x

log = logging.getLogger("nfsd.compound")

_U = struct.Struct(">I")
_HDR = struct.Struct(">I")
_deferred_types: dict[type, bool] = {}


def is_deferred(v) -> bool:
    """isinstance(v, Deferred), without Deferred's ABC instance check for every result."""
    t = type(v)
    known = _deferred_types.get(t)
    if known is None:
        known = _deferred_types[t] = issubclass(t, defer.Deferred)
    return known


# Minor version 0 has no sessions; this bounds its COMPOUNDs (4.1 uses the session's limit).
MAX_OPS_NO_SESSION = 128
SUPPORTED_MINORS = (0, 1, 2)

# NFSv4.0 operations whose replies the duplicate request cache keeps (see nfsd/drc.py).
NON_IDEMPOTENT = frozenset({
    x.OP_CREATE, x.OP_REMOVE, x.OP_RENAME, x.OP_LINK, x.OP_SETATTR,
})

# Operations allowed to start a 4.1 COMPOUND without SEQUENCE, if alone (RFC 8881 18.35.3 ...).
SESSIONLESS = frozenset({
    x.OP_EXCHANGE_ID, x.OP_CREATE_SESSION, x.OP_DESTROY_SESSION, x.OP_DESTROY_CLIENTID,
    x.OP_BIND_CONN_TO_SESSION,
})
# Operations that exist only in NFSv4.0 (NOTSUPP in 4.1+, RFC 8881 section 18).
ONLY_40 = frozenset({
    x.OP_SETCLIENTID, x.OP_SETCLIENTID_CONFIRM, x.OP_RENEW, x.OP_OPEN_CONFIRM,
    x.OP_RELEASE_LOCKOWNER,
})
# Operations that change nothing a later GETATTR could see: Ctx.memo survives them.
MEMO_KEEPS = frozenset({
    x.OP_SEQUENCE, x.OP_PUTFH, x.OP_PUTROOTFH, x.OP_PUTPUBFH, x.OP_LOOKUP, x.OP_GETATTR,
    x.OP_GETFH, x.OP_SAVEFH, x.OP_RESTOREFH, x.OP_ACCESS,
})
FIRST_41 = 40  # operations numbered from here on are NFSv4.1 and later
# Operations that `_gate` lets through without a look once SEQUENCE has opened a session
# (anything but SEQUENCE itself, ILLEGAL and the 4.0-only operations).
IN_SESSION = frozenset(set(x.OP_NAMES) - {x.OP_SEQUENCE, x.OP_ILLEGAL} - ONLY_40)


class Encoded:
    """An operation result already in XDR (the result's whole encoding, status first), for
    handlers that write large replies directly (READDIR). `tag` is its status, as for the
    generated union results."""

    __slots__ = ("tag", "data")

    def __init__(self, status: int, data: bytes):
        self.tag = status
        self.data = data


class Ctx:
    """Per-COMPOUND state passed to every operation handler."""

    __slots__ = (
        "server", "call", "cred", "raw_cred", "minor", "session", "slot", "client", "_cfh",
        "sfh", "cur_sid", "saved_sid", "cachethis", "replay", "tag", "nops", "opindex",
        "reqsize", "drc_key", "nonidem", "host", "port", "_cred_for", "opts", "memo",
    )

    def __init__(self, server, call, cred, minor, tag, nops, reqsize):
        self.server = server
        self.call = call
        self.raw_cred = cred  # as the client sent it
        self.cred = cred  # after the export's squashing (set with the current filehandle)
        self.opts = None  # the export options for this client on the current filehandle
        self._cred_for = None
        conn = call.conn
        self.host = conn.peer_host if conn is not None else None
        self.port = conn.peer_port if conn is not None else 0
        self.minor = minor
        self.session = None
        self.slot = None
        self.client = None
        self._cfh: FileRef | None = None
        self.sfh: FileRef | None = None
        self.cur_sid = None
        self.saved_sid = None
        self.cachethis = False
        self.replay = None
        self.tag = tag
        self.nops = nops
        self.opindex = 0
        self.reqsize = reqsize
        self.drc_key = None
        self.nonidem = False
        # (FileRef, Attrs) that the last LOOKUP or PUTFH found, for a LOOKUP or GETATTR right
        # after it in this COMPOUND (one statx instead of two); dropped before any operation
        # that is not in MEMO_KEEPS, so nothing that changes a file ever sees it.
        self.memo = None

    @property
    def cfh(self):
        return self._cfh

    @cfh.setter
    def cfh(self, fh):
        self._cfh = fh
        if fh is not None and fh.export is not self._cred_for:
            e = fh.export
            self._cred_for = e
            opts = self.opts = e.options_for(self.host)
            self.cred = opts.squash(self.raw_cred) if opts is not None else self.raw_cred

    def enter(self, fh):
        """Make `fh` current after checking that this client may use its export at all
        (PUTFH, PUTROOTFH, LOOKUP into an export, ...): ACCESS otherwise, never data."""
        opts = fh.export.options_for(self.host)
        if opts is None or (opts.secure and self.port >= 1024):
            raise NFS4Error(x.NFS4ERR_ACCESS)
        self.cfh = fh

    def options(self, export):
        return export.options_for(self.host)

    def fh(self) -> FileRef:
        """The current filehandle, or NOFILEHANDLE."""
        fh = self.cfh
        if fh is None:
            raise NFS4Error(x.NFS4ERR_NOFILEHANDLE)
        return fh

    def set_stateid(self, sid):
        """Operations that return a stateid make it the current stateid (4.1)."""
        self.cur_sid = sid

    def stateid(self, sid):
        """Resolve the special 'current stateid' (seqid 1, other zero) of RFC 8881 16.2.3.1.2."""
        if sid.seqid == 1 and sid.other == bytes(12) and self.minor > 0:
            if self.cur_sid is None:
                raise NFS4Error(x.NFS4ERR_BAD_STATEID)
            return self.cur_sid
        return sid


def _status_getter(opnum):
    """`f(result) -> nfsstat4`: a union's tag, or a struct's first field."""
    from .xdr import dsl
    from .xdr.compiler import _resolve

    decl = _resolve(getattr(x.OP_RES[opnum], "_xdr", x.OP_RES[opnum]))
    if isinstance(decl, dsl.Union):
        return operator.attrgetter("tag")
    return operator.attrgetter(decl.fields[0][0])  # (Encoded results are unions: READDIR)


def _error_result_factory(opnum):
    """Build `f(status) -> result` for an operation's result type."""
    from .xdr import dsl
    from .xdr.compiler import _resolve

    rt = x.OP_RES[opnum]
    decl = _resolve(getattr(rt, "_xdr", rt))
    rt = decl.cls if isinstance(decl, (dsl.Union, dsl.Struct)) else rt

    if isinstance(decl, dsl.Union):
        def make(status, decl=decl, cls=rt):
            arm = decl.arms.get(status)
            if arm is None:
                arm = decl.default
            if arm is None or arm[1] is dsl.Void:
                return cls(status, None)
            return cls(status, zero(arm[1]))
        return make
    if isinstance(decl, dsl.Struct):
        first = decl.fields[0][0]

        def make(status, decl=decl, first=first):
            v = zero(decl)
            setattr(v, first, status)
            return v
        return make
    raise TypeError(f"unexpected result type for op {opnum}")


class Compound:
    """Runs COMPOUND procedures for one server (program 100003 version 4, procedure 1)."""

    def __init__(self, server, handlers: dict):
        self.server = server
        missing = [n for n in x.OP_NAMES if n not in handlers and n != x.OP_ILLEGAL]
        if missing:
            raise ValueError(f"no handler for operations {missing}")
        self.handlers = handlers
        self.dec_args = {}
        for opnum, at in x.OP_ARGS.items():
            decl = getattr(at, "_xdr", at)
            self.dec_args[opnum] = decl.dec
        self.enc_res = {opnum: getattr(rt, "_xdr", rt).enc for opnum, rt in x.OP_RES.items()}
        self.err_res = {opnum: _error_result_factory(opnum) for opnum in x.OP_RES}
        self.status_of = {opnum: _status_getter(opnum) for opnum in x.OP_RES}
        self.trace = log.isEnabledFor(logging.DEBUG)
        self.metrics = None  # nfsd.metrics.Metrics with --metrics (set by the server)

    # ------------------------------------------------------------------ entry point
    def run(self, call, cred):
        """Returns the encoded COMPOUND4res as a list of chunks, or a Deferred of one."""
        m = call.args
        try:
            tag, p = _dec_opaque(m, 0)
            minor, nops = struct.unpack_from(">II", m, p)
        except (XdrError, struct.error):
            raise GarbageArgs() from None
        p += 8
        if minor not in SUPPORTED_MINORS or minor not in self.server.minors:
            return self._encode(x.NFS4ERR_MINOR_VERS_MISMATCH, tag, [])
        ctx = Ctx(self.server, call, cred, minor, tag, nops, len(m))
        if minor == 0:
            drc = self.server.drc
            key = drc.key(call)
            cached = drc.lookup(key)
            if cached is IN_PROGRESS:
                raise DropReply()
            if cached is not None:
                return cached
            drc.begin(key)
            ctx.drc_key = key
            c = call.conn.state.get("client40")
            if c is not None and not c.expired:
                ctx.client = c
        run = _Run(ctx, m, p, nops)
        if self.metrics is not None:
            run.t = self.metrics.start()
        try:
            self._loop(run)
        except BaseException:
            if ctx.drc_key is not None:
                self.server.drc.finish(ctx.drc_key, None, False)
            raise
        if run.deferred is not None:
            return run.deferred
        return run.reply

    # ------------------------------------------------------------------ the loop
    def _loop(self, r: "_Run"):
        ctx = r.ctx
        m = r.m
        handlers = self.handlers
        dec_args = self.dec_args
        status_of = self.status_of
        metrics = self.metrics
        results = r.results
        i, n, pos = r.i, r.n, r.pos
        v40 = ctx.minor == 0
        while i < n:
            try:
                opnum, = _U.unpack_from(m, pos)
            except struct.error:
                results.append((x.OP_ILLEGAL, self.err_res[x.OP_ILLEGAL](x.NFS4ERR_BADXDR)))
                return self._finish(r)
            if i >= MAX_OPS_NO_SESSION and ctx.session is None:
                # Too long for a COMPOUND without a session: that operation gets RESOURCE.
                if opnum not in self.err_res:
                    opnum = x.OP_ILLEGAL
                results.append((opnum, self.err_res[opnum](
                    x.NFS4ERR_RESOURCE if v40 else x.NFS4ERR_TOO_MANY_OPS)))
                return self._finish(r)
            dec = dec_args.get(opnum)
            if v40 and FIRST_41 <= opnum != x.OP_ILLEGAL:
                dec = None  # not an NFSv4.0 operation
            if dec is None:
                results.append((x.OP_ILLEGAL, self.err_res[x.OP_ILLEGAL](x.NFS4ERR_OP_ILLEGAL)))
                return self._finish(r)
            try:
                args, pos = dec(m, pos + 4)
            except (XdrError, struct.error):
                results.append((opnum, self.err_res[opnum](x.NFS4ERR_BADXDR)))
                return self._finish(r)
            r.i, r.pos = i, pos
            ctx.opindex = i
            if opnum not in MEMO_KEEPS:
                ctx.memo = None
            if i == 0 or ctx.session is None or opnum not in IN_SESSION:
                status = self._gate(ctx, opnum, r)
                if status:
                    results.append((opnum, self.err_res[opnum](status)))
                    return self._finish(r)
            try:
                res = handlers[opnum](ctx, args)
            except NFS4Error as e:
                res = e.res if e.res is not None else self.err_res[opnum](e.status)
            except Exception:  # noqa: BLE001 - a bug must not take the connection down
                log.exception("operation %s failed", x.OP_NAMES.get(opnum, opnum))
                res = self.err_res[opnum](x.NFS4ERR_SERVERFAULT)
            deferred = _deferred_types.get(type(res))
            if deferred is None:
                deferred = is_deferred(res)
            if deferred:
                r.pending_op = opnum
                if r.deferred is None:
                    r.deferred = defer.Deferred()
                res.addCallbacks(self._resume, self._resume_error, callbackArgs=(r,),
                                 errbackArgs=(r,))
                return
            if ctx.replay is not None:  # SEQUENCE found a retransmission
                r.reply = ctx.replay
                if r.deferred is not None:
                    r.deferred.callback(r.reply)
                return
            results.append((opnum, res))
            i += 1
            r.i = i
            status = status_of[opnum](res)
            if metrics is not None:
                metrics.op_done(r, opnum, status, res)
            if status:
                return self._finish(r)
        self._finish(r)

    def _resume(self, res, r):
        opnum = r.pending_op
        r.results.append((opnum, res))
        r.i += 1
        status = self.status_of[opnum](res)
        if self.metrics is not None:
            self.metrics.op_done(r, opnum, status, res)
        if status:
            self._finish(r)
        else:
            self._loop(r)

    def _resume_error(self, failure, r):
        opnum = r.pending_op
        if failure.check(NFS4Error):
            e = failure.value
            res = e.res if e.res is not None else self.err_res[opnum](e.status)
        else:
            log.error("operation %s failed: %s", x.OP_NAMES.get(opnum, opnum),
                      failure.getTraceback())
            res = self.err_res[opnum](x.NFS4ERR_SERVERFAULT)
        r.results.append((opnum, res))
        r.i += 1
        if self.metrics is not None:
            self.metrics.op_done(r, opnum, self.status_of[opnum](res), res)
        self._finish(r)

    def _gate(self, ctx: Ctx, opnum: int, r: "_Run") -> int:
        """Minor-version and session ordering rules; returns an error status or 0."""
        if ctx.minor == 0:
            if opnum in NON_IDEMPOTENT:
                ctx.nonidem = True
            return 0
        if opnum == x.OP_ILLEGAL:
            return x.NFS4ERR_OP_ILLEGAL
        if opnum in ONLY_40:
            return x.NFS4ERR_NOTSUPP
        if r.i == 0:
            if opnum == x.OP_SEQUENCE:
                return 0
            if opnum in SESSIONLESS:
                return x.NFS4ERR_NOT_ONLY_OP if r.n > 1 else 0
            return x.NFS4ERR_OP_NOT_IN_SESSION
        if opnum == x.OP_SEQUENCE:
            return x.NFS4ERR_SEQUENCE_POS
        if ctx.session is None and opnum not in SESSIONLESS:
            return x.NFS4ERR_OP_NOT_IN_SESSION
        return 0

    def _finish(self, r: "_Run"):
        ctx = r.ctx
        status = 0
        if r.results:
            opnum, last = r.results[-1]
            status = self.status_of[opnum](last)
        if self.metrics is not None:
            self.metrics.compound_done(status)
        if self.trace:  # nfsd serve -v: one line per request
            log.debug("%s:%s v4.%d %s -> %s", ctx.host, ctx.port, ctx.minor,
                      " ".join(x.OP_NAMES.get(o, str(o)) for o, _ in r.results),
                      x.nfsstat4.names.get(status, status))
        reply = self._encode(status, ctx.tag, r.results)
        if ctx.session is not None:
            reply = self._limit(ctx, r.results, reply)
        slot = ctx.slot
        if slot is not None:
            slot.busy = False
            if ctx.cachethis:
                slot.reply = [b"".join(bytes(c) for c in reply)]
                slot.cached = True
        if ctx.drc_key is not None:
            self.server.drc.finish(ctx.drc_key, reply, ctx.nonidem)
        r.reply = reply
        if r.deferred is not None:
            r.deferred.callback(reply)

    def _limit(self, ctx: Ctx, results, reply):
        """RFC 8881 2.10.6.4 / 18.46.3: a reply larger than the session's ca_maxresponsesize
        (or, with sa_cachethis, ca_maxresponsesize_cached) ends at the operation that made it
        too big, with NFS4ERR_REP_TOO_BIG (_TO_CACHE)."""
        fore = ctx.session.fore
        limit, err = fore.maxresponsesize, x.NFS4ERR_REP_TOO_BIG
        if ctx.cachethis and fore.maxresponsesize_cached < limit:
            limit, err = fore.maxresponsesize_cached, x.NFS4ERR_REP_TOO_BIG_TO_CACHE
        if sum(len(c) for c in reply) <= limit:
            return reply
        k = len(results)
        for k in range(1, len(results) + 1):
            if sum(len(c) for c in self._encode(0, ctx.tag, results[:k])) > limit:
                break
        opnum = results[k - 1][0]
        del results[k - 1:]
        results.append((opnum, self.err_res[opnum](err)))
        return self._encode(err, ctx.tag, results)

    def _encode(self, status: int, tag: bytes, results):
        body = Out()
        enc_res = self.enc_res
        for i, (opnum, res) in enumerate(results):
            mark = len(body)
            body += _U.pack(opnum)
            try:
                if type(res) is Encoded:
                    body += res.data
                else:
                    enc_res[opnum](body, res)
            except Exception:  # noqa: BLE001 - a handler built a bad result: a server bug
                log.exception("cannot encode the result of %s", x.OP_NAMES.get(opnum, opnum))
                del body[mark + 4:]
                body.splices[:] = [sp for sp in body.splices if sp[0] <= mark]
                status = x.NFS4ERR_SERVERFAULT
                enc_res[opnum](body, self.err_res[opnum](status))
                results = results[:i + 1]
                break
        head = bytearray(_HDR.pack(status))
        n = len(tag)
        head += _U.pack(n)
        head += tag
        if n & 3:
            head += bytes(4 - (n & 3))
        head += _U.pack(len(results))
        return [head, *body.chunks()]


class _Run:
    __slots__ = ("ctx", "m", "pos", "n", "i", "results", "deferred", "pending_op", "reply", "t")

    def __init__(self, ctx, m, pos, n):
        self.ctx = ctx
        self.m = m
        self.pos = pos
        self.n = n
        self.i = 0
        self.results = []
        self.deferred = None
        self.pending_op = None
        self.reply = None
        self.t = 0.0  # with metrics: when the last operation ended


def _dec_opaque(m, p):
    n, = _U.unpack_from(m, p)
    e = p + 4 + n
    if e > len(m):
        raise XdrError("truncated")
    return bytes(m[p + 4:e]), e + (-n & 3)
