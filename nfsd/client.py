"""A small blocking NFSv4 client on the server's own XDR declarations.

Used by the tests (every operation, including malformed and hostile ones) and by scripts. It is
deliberately literal: `compound([...])` sends exactly the operations given; `call([...])` puts
SEQUENCE in front for NFSv4.1+ and raises `NfsError` on a failed operation. Helpers build the
common operation sequences (open/create, write, close, readdir, ...).
"""

from __future__ import annotations

import os
import struct

from .attrs import from_words, to_words
from .rpc.client import RpcClient
from .rpc.message import AuthSys
from .xdr import decode, encode, nfs4 as x

NFS_PROGRAM, NFS_V4 = 100003, 4
ANON = x.stateid4(0, bytes(12))

# Attributes most helpers ask for.
BASIC = (x.FATTR4_TYPE, x.FATTR4_CHANGE, x.FATTR4_SIZE, x.FATTR4_FILEID, x.FATTR4_MODE,
         x.FATTR4_NUMLINKS, x.FATTR4_OWNER, x.FATTR4_OWNER_GROUP, x.FATTR4_TIME_MODIFY)


class NfsError(Exception):
    def __init__(self, status: int, op: str, results=None):
        super().__init__(f"{op}: {status_name(status)}")
        self.status = status
        self.op = op
        self.results = results


def status_name(status: int) -> str:
    return x.nfsstat4.names.get(status, str(status))


def op(name: str, *args, **kw):
    """One nfs_argop4: op("PUTFH", fh), op("GETATTR", [words]), op("GETFH")."""
    num = getattr(x, "OP_" + name)
    at = x.OP_ARGS[num]
    if getattr(at, "_xdr", None) is None and not (args or kw):
        return x.nfs_argop4(num, None)
    if hasattr(at, "_xdr") and hasattr(at._xdr, "fields"):
        return x.nfs_argop4(num, at(*args, **kw))
    # typedef or enum arguments (e.g. SECINFO_NO_NAME's secinfo_style4)
    return x.nfs_argop4(num, args[0] if args else None)


def attr_request(*nums) -> list[int]:
    return to_words(nums)


def decode_attrs(fattr) -> dict[int, object]:
    """fattr4 -> {attribute number: value}."""
    out = {}
    p = 0
    m = fattr.attr_vals
    for n in from_words(fattr.attrmask):
        v, p = x.ATTRS[n][1].dec(m, p)
        out[n] = v
    if p != len(m):
        raise ValueError("trailing bytes in attr_vals")
    return out


def op_status(result) -> int:
    """The nfsstat4 of one operation's result (a union's tag, or a struct's first field)."""
    tag = getattr(result, "tag", None)
    if tag is not None:
        return tag
    return getattr(result, type(result).__slots__[0])


def encode_op(argop) -> bytes:
    """One nfs_argop4 as bytes (to build malformed COMPOUNDs by hand)."""
    return encode(x.nfs_argop4, argop)


def compound_bytes(ops, tag: bytes = b"", minor: int = 1, nops: int | None = None) -> bytes:
    """COMPOUND4args as bytes. `ops` are nfs_argop4 values or already encoded bytes;
    `nops` overrides the operation count written (for hostile requests)."""
    body = b"".join(o if isinstance(o, (bytes, bytearray)) else encode_op(o) for o in ops)
    n = len(tag)
    head = struct.pack(">I", n) + tag + bytes(-n & 3)
    return head + struct.pack(">II", minor, len(ops) if nops is None else nops) + body


def encode_attrs(values: dict[int, object]):
    b = bytearray()
    for n in sorted(values):
        x.ATTRS[n][1].enc(b, values[n])
    return x.fattr4(to_words(values), bytes(b))


class NfsClient:
    """One client identity (owner + boot verifier) with one session (4.1+) on one connection."""

    def __init__(self, host: str, port: int, minor: int = 1, uid: int = 0, gid: int = 0,
                 gids=(), owner: bytes | None = None, verifier: bytes | None = None,
                 timeout: float = 20.0, machinename: bytes = b"testclient", source=None,
                 connect=None):
        self.host, self.port, self.minor = host, port, minor
        self.timeout = timeout
        self.source = source  # (address, port) to connect from
        # connect(): a new connected RpcClient (here and at every reconnect); by default a TCP
        # connection to host:port. tests/harness/ passes one that joins an in-process server.
        self._connect = connect or (lambda: RpcClient(self.host, self.port, timeout=self.timeout,
                                                      source=self.source))
        self.rpc = self._connect()
        self.cred = AuthSys(0, machinename, uid, gid, tuple(gids))
        self.owner = owner or b"nfsd-test-" + os.urandom(8).hex().encode()
        self.verifier = verifier or os.urandom(8)
        self.clientid = None
        self.sessionid = None
        self.seqid = 0
        self.slot = 0
        self.cs_seq = None
        self.nslots = 1
        self.seqids: dict[bytes, int] = {}  # 4.0: last seqid used per open-owner
        self.recalls: list = []  # (stateid, fh) of every CB_RECALL received
        self.answer_recalls = True  # reply NFS4_OK to CB_RECALL (the test returns it)
        self.offloads: list = []  # CB_OFFLOAD4args of every CB_OFFLOAD received
        self.rpc.call_handler = self._callback

    # ------------------------------------------------------------------ transport
    def close(self):
        self.rpc.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def reconnect(self):
        self.rpc.close()
        self.rpc = self._connect()
        self.rpc.call_handler = self._callback

    def _callback(self, record):
        """Answer the server's callbacks on this connection (4.1 back channel)."""
        return answer_callback(record, self)

    def poll(self):
        """Process callbacks that have arrived (a harmless call: PUTROOTFH)."""
        self.call([op("PUTROOTFH")])

    def null(self) -> bytes:
        return self.rpc.call(NFS_PROGRAM, NFS_V4, 0, b"", cred=self.cred)

    def raw_compound(self, args_bytes: bytes) -> bytes:
        return self.rpc.call(NFS_PROGRAM, NFS_V4, 1, args_bytes, cred=self.cred)

    def compound(self, ops, tag: bytes = b"", minor: int | None = None):
        """Send exactly these operations; returns the decoded COMPOUND4res."""
        args = x.COMPOUND4args(tag, self.minor if minor is None else minor, list(ops))
        return decode(x.COMPOUND4res, self.raw_compound(encode(x.COMPOUND4args, args)))

    # ------------------------------------------------------------------ sessions
    def sequence_op(self, cachethis=False, seqid=None, slot=None):
        if seqid is None:
            self.seqid += 1
            seqid = self.seqid
        return op("SEQUENCE", self.sessionid, seqid, self.slot if slot is None else slot,
                  self.nslots - 1, cachethis)

    def call(self, ops, check=True, cachethis=False):
        """Run operations (after SEQUENCE for 4.1+); returns the list of their results."""
        ops = list(ops)
        if self.minor >= 1:
            ops.insert(0, self.sequence_op(cachethis))
        res = self.compound(ops)
        results = [r.value for r in res.resarray]
        if self.minor >= 1:
            results = results[1:] if res.resarray and res.resarray[0].tag == x.OP_SEQUENCE else results
        if check and res.status != x.NFS4_OK:
            failed = res.resarray[-1].tag if res.resarray else x.OP_ILLEGAL
            raise NfsError(res.status, x.OP_NAMES.get(failed, str(failed)), results)
        return results

    def try_call(self, ops, cachethis=False):
        """Like `call` but never raises: returns (COMPOUND status, results after SEQUENCE)."""
        ops = list(ops)
        if self.minor >= 1:
            ops.insert(0, self.sequence_op(cachethis))
        res = self.compound(ops)
        results = [r.value for r in res.resarray]
        if self.minor >= 1 and res.resarray and res.resarray[0].tag == x.OP_SEQUENCE:
            results = results[1:]
        return res.status, results

    def exchange_id(self, flags=0, verifier=None, owner=None):
        a = x.EXCHANGE_ID4args(
            x.client_owner4(verifier or self.verifier, owner or self.owner), flags,
            x.state_protect4_a(x.SP4_NONE, None), [])
        res = self.compound([x.nfs_argop4(x.OP_EXCHANGE_ID, a)])
        r = res.resarray[0].value
        if r.tag != x.NFS4_OK:
            raise NfsError(r.tag, "EXCHANGE_ID")
        self.clientid = r.value.eir_clientid
        self.cs_seq = r.value.eir_sequenceid
        return r.value

    def create_session(self, slots=8, maxops=16, back_channel=False, sec=None):
        chan = x.channel_attrs4(0, 1 << 20 | 4096, 1 << 20 | 4096, 64 * 1024, maxops, slots, [])
        back = x.channel_attrs4(0, 4096, 4096, 0, 2, 1, [])
        flags = x.CREATE_SESSION4_FLAG_CONN_BACK_CHAN if back_channel else 0
        a = x.CREATE_SESSION4args(self.clientid, self.cs_seq, flags, chan, back, 0x40000000,
                                  sec or [x.callback_sec_parms4(x.AUTH_NONE, None)])
        res = self.compound([x.nfs_argop4(x.OP_CREATE_SESSION, a)])
        r = res.resarray[0].value
        if r.tag != x.NFS4_OK:
            raise NfsError(r.tag, "CREATE_SESSION")
        self.cs_seq = (self.cs_seq + 1) & 0xFFFFFFFF
        self.sessionid = r.value.csr_sessionid
        self.nslots = r.value.csr_fore_chan_attrs.ca_maxrequests
        self.seqid = 0
        return r.value

    def setclientid(self, verifier=None, owner=None, callback=None):
        cb = callback or x.cb_client4(0x40000000, x.netaddr4(b"tcp", b"127.0.0.1.0.0"))
        a = x.SETCLIENTID4args(x.nfs_client_id4(verifier or self.verifier, owner or self.owner), cb, 1)
        r = self.compound([x.nfs_argop4(x.OP_SETCLIENTID, a)], minor=0).resarray[0].value
        if r.tag != x.NFS4_OK:
            raise NfsError(r.tag, "SETCLIENTID", [r])
        return r.value

    def setclientid_confirm(self, clientid, confirm):
        r = self.compound([op("SETCLIENTID_CONFIRM", clientid, confirm)], minor=0)
        if r.status != x.NFS4_OK:
            raise NfsError(r.status, "SETCLIENTID_CONFIRM")
        self.clientid = clientid

    def next_seqid(self, owner: bytes) -> int:
        """4.0: the seqid for the owner's next sequenced request."""
        n = (self.seqids.get(owner, 0) + 1) & 0xFFFFFFFF
        self.seqids[owner] = n
        return n

    def mount(self, back_channel=False):
        """Establish client (and session) and finish reclaiming (nothing to reclaim).
        back_channel: offer this connection for callbacks (then the client may be given
        read delegations, and answers CB_RECALL, see `recalls`)."""
        if self.minor == 0:
            ok = self.setclientid()
            self.setclientid_confirm(ok.clientid, ok.setclientid_confirm)
            return self
        self.exchange_id()
        self.create_session(back_channel=back_channel)
        self.call([op("RECLAIM_COMPLETE", False)], check=False)
        return self

    def destroy(self):
        if self.sessionid is not None:
            self.compound([op("DESTROY_SESSION", self.sessionid)])
            self.sessionid = None
        if self.clientid is not None:
            self.compound([op("DESTROY_CLIENTID", self.clientid)])

    # ------------------------------------------------------------------ helpers
    def root(self) -> bytes:
        return self.call([op("PUTROOTFH"), op("GETFH")])[-1].value.object

    def lookup(self, path: str | bytes, base: bytes | None = None) -> bytes:
        ops = [op("PUTROOTFH")] if base is None else [op("PUTFH", base)]
        for comp in _components(path):
            ops.append(op("LOOKUP", comp))
        ops.append(op("GETFH"))
        return self.call(ops)[-1].value.object

    def getattr(self, fh: bytes, attrs=BASIC) -> dict:
        r = self.call([op("PUTFH", fh), op("GETATTR", attr_request(*attrs))])[-1]
        return decode_attrs(r.value.obj_attributes)

    def open(self, dirfh: bytes, name: bytes, access=x.OPEN4_SHARE_ACCESS_BOTH,
             deny=x.OPEN4_SHARE_DENY_NONE, create=False, how=x.UNCHECKED4, attrs=None,
             verifier=b"verifier", owner=b"open-owner", claim=None):
        """OPEN by name in dirfh; returns (filehandle, stateid, OPEN4resok)."""
        if create:
            if how in (x.UNCHECKED4, x.GUARDED4):
                ch = x.createhow4(how, encode_attrs(attrs or {x.FATTR4_MODE: 0o644}))
            elif how == x.EXCLUSIVE4:
                ch = x.createhow4(how, verifier)
            else:
                ch = x.createhow4(how, x.creatverfattr(verifier, encode_attrs(attrs or {})))
            openhow = x.openflag4(x.OPEN4_CREATE, ch)
        else:
            openhow = x.openflag4(x.OPEN4_NOCREATE, None)
        if claim is None:
            claim = x.open_claim4(x.CLAIM_NULL, name)
        seqid = self.next_seqid(owner) if self.minor == 0 else 0
        a = x.OPEN4args(seqid, access, deny, x.open_owner4(self.clientid or 0, owner), openhow, claim)
        r = self.call([op("PUTFH", dirfh), x.nfs_argop4(x.OP_OPEN, a), op("GETFH")])
        ok = r[1].value
        fh, sid = r[2].value.object, ok.stateid
        if ok.rflags & x.OPEN4_RESULT_CONFIRM:
            r = self.call([op("PUTFH", fh), op("OPEN_CONFIRM", sid, self.next_seqid(owner))])
            sid = r[-1].value.open_stateid
        return fh, sid, ok

    def open_fh(self, fh: bytes, access=x.OPEN4_SHARE_ACCESS_READ, owner=b"open-owner",
                deny=x.OPEN4_SHARE_DENY_NONE):
        if self.minor == 0:  # no CLAIM_FH in 4.0: open by name from the parent
            raise NotImplementedError("open_fh needs NFSv4.1")
        a = x.OPEN4args(0, access, deny, x.open_owner4(self.clientid or 0, owner),
                        x.openflag4(x.OPEN4_NOCREATE, None), x.open_claim4(x.CLAIM_FH, None))
        r = self.call([op("PUTFH", fh), x.nfs_argop4(x.OP_OPEN, a)])
        return r[1].value.stateid

    def create_file(self, dirfh: bytes, name: bytes, data: bytes = b"", mode=0o644, **kw):
        """OPEN(create) + WRITE + CLOSE; returns the new file's filehandle."""
        fh, sid, _ = self.open(dirfh, name, create=True, attrs={x.FATTR4_MODE: mode}, **kw)
        if data:
            self.write(fh, sid, 0, data, stable=x.FILE_SYNC4)
        self.close_file(fh, sid)
        return fh

    def write(self, fh, stateid, offset, data, stable=x.UNSTABLE4):
        return self.call([op("PUTFH", fh), op("WRITE", stateid, offset, stable, data)])[-1].value

    def read(self, fh, stateid=ANON, offset=0, count=1 << 20):
        r = self.call([op("PUTFH", fh), op("READ", stateid, offset, count)])[-1].value
        return bytes(r.data), r.eof

    def read_all(self, fh, stateid=ANON, chunk=1 << 20) -> bytes:
        out = bytearray()
        while True:
            data, eof = self.read(fh, stateid, len(out), chunk)
            out += data
            if eof or not data:
                return bytes(out)

    def commit(self, fh):
        return self.call([op("PUTFH", fh), op("COMMIT", 0, 0)])[-1].value

    def close_file(self, fh, stateid, owner=b"open-owner"):
        seqid = self.next_seqid(owner) if self.minor == 0 else 0
        return self.call([op("PUTFH", fh), op("CLOSE", seqid, stateid)])[-1]

    def mkdir(self, dirfh: bytes, name: bytes, mode=0o755) -> bytes:
        r = self.call([op("PUTFH", dirfh),
                       op("CREATE", x.createtype4(x.NF4DIR, None), name,
                          encode_attrs({x.FATTR4_MODE: mode})), op("GETFH")])
        return r[-1].value.object

    def symlink(self, dirfh: bytes, name: bytes, target: bytes) -> bytes:
        r = self.call([op("PUTFH", dirfh),
                       op("CREATE", x.createtype4(x.NF4LNK, target), name,
                          encode_attrs({x.FATTR4_MODE: 0o777})), op("GETFH")])
        return r[-1].value.object

    def readlink(self, fh: bytes) -> bytes:
        return self.call([op("PUTFH", fh), op("READLINK")])[-1].value.link

    def remove(self, dirfh: bytes, name: bytes):
        return self.call([op("PUTFH", dirfh), op("REMOVE", name)])[-1]

    def rename(self, sdir: bytes, sname: bytes, ddir: bytes, dname: bytes):
        return self.call([op("PUTFH", sdir), op("SAVEFH"), op("PUTFH", ddir),
                          op("RENAME", sname, dname)])[-1]

    def link(self, fh: bytes, dirfh: bytes, name: bytes):
        return self.call([op("PUTFH", fh), op("SAVEFH"), op("PUTFH", dirfh), op("LINK", name)])[-1]

    def setattr(self, fh: bytes, values: dict, stateid=ANON):
        return self.call([op("PUTFH", fh), op("SETATTR", stateid, encode_attrs(values))])[-1]

    def readdir(self, dirfh: bytes, attrs=(x.FATTR4_FILEID,), maxcount=32768) -> list:
        """Every entry as (name, cookie, {attr: value}), following cookies to the end."""
        out = []
        cookie, verf = 0, bytes(8)
        while True:
            r = self.call([op("PUTFH", dirfh),
                           op("READDIR", cookie, verf, maxcount, maxcount, attr_request(*attrs))])[-1]
            ok = r.value
            verf = ok.cookieverf
            for e in ok.reply.entries:
                out.append((e.name, e.cookie, decode_attrs(e.attrs)))
                cookie = e.cookie
            if ok.reply.eof:
                return out
            if not ok.reply.entries:
                raise RuntimeError("READDIR made no progress")


def answer_callback(record, client):
    """The reply record to one callback CALL: CB_NULL, or CB_COMPOUND with CB_SEQUENCE and
    CB_RECALL or CB_OFFLOAD (recorded in client.recalls, client.offloads); other callback
    operations get NOTSUPP."""
    from .rpc.message import parse_call, reply_success

    call = parse_call(record)
    if call.proc == 0:
        return reply_success(call.xid)
    args = decode(x.CB_COMPOUND4args, bytes(call.args))
    results = []
    status = x.NFS4_OK
    for a in args.argarray:
        if a.tag == x.OP_CB_SEQUENCE:
            s = a.value
            r = x.CB_SEQUENCE4res(x.NFS4_OK, x.CB_SEQUENCE4resok(
                s.csa_sessionid, s.csa_sequenceid, s.csa_slotid, s.csa_highest_slotid,
                s.csa_highest_slotid))
        elif a.tag == x.OP_CB_RECALL:
            client.recalls.append((a.value.stateid, a.value.fh, call.cred))
            r = x.CB_RECALL4res(x.NFS4_OK)
        elif a.tag == x.OP_CB_OFFLOAD:
            client.offloads.append(a.value)
            r = x.CB_OFFLOAD4res(x.NFS4_OK)
        else:
            status = x.NFS4ERR_NOTSUPP
            results.append(x.nfs_cb_resop4(a.tag, x.CB_GETATTR4res(status, None))
                           if a.tag == x.OP_CB_GETATTR else x.nfs_cb_resop4(x.OP_CB_ILLEGAL,
                                                                             x.CB_ILLEGAL4res(status)))
            break
        results.append(x.nfs_cb_resop4(a.tag, r))
    res = x.CB_COMPOUND4res(status, args.tag, results)
    return reply_success(call.xid) + encode(x.CB_COMPOUND4res, res)


def _components(path):
    if isinstance(path, str):
        path = path.encode()
    return [c for c in path.split(b"/") if c]



_ = struct
