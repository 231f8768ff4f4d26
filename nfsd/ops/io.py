"""Opens and file content: OPEN, OPEN_DOWNGRADE, CLOSE, READ, WRITE, COMMIT (RFC 8881
sections 18.16-18.22, 18.32; delegations granted at OPEN: deleg.py).

This is where the write-once rules meet the protocol: an open with write access gets a private
staging version (new file or copy-on-write version), WRITE/COMMIT touch only that version, and
CLOSE (or OPEN_DOWNGRADE dropping write) of that open publishes it. See docs/semantics.md.
"""

from __future__ import annotations

from twisted.internet import defer

from backend import interface as bi
from backend.interface import Kind

from .. import access, attrs
from ..compound import is_deferred
from ..errors import NFS4Error, status_of
from ..exports import FileRef
from ..state.lifecycle import Publishing
from ..state.model import Delegation, LockState, OpenState
from ..xdr import nfs4 as x
from .common import (
    call,
    change_info,
    check_cred,
    check_name,
    dir_attrs,
    drop_setid,
    getattr_,
    require_rw,
)
from .deleg import delegation
from .namespace import _new_owner

READ, WRITE = x.OPEN4_SHARE_ACCESS_READ, x.OPEN4_SHARE_ACCESS_WRITE
INVALID_STATEID = x.stateid4(0xFFFFFFFF, bytes(12))
NO_DELEGATION = x.open_delegation4(x.OPEN_DELEGATE_NONE, None)
WANT_MASK = 0xFF00  # OPEN4_SHARE_ACCESS_WANT_* (4.1)


def _sid(st):
    return x.stateid4(st.seqid, st.other)


def _client(ctx, clientid=None):
    if ctx.minor == 0:
        c = ctx.server.store.client40(clientid)
        ctx.client = c
        ctx.call.conn.state["client40"] = c
        return c
    c = ctx.client
    if c is None:
        raise NFS4Error(x.NFS4ERR_STALE_CLIENTID)
    return c


def sequenced(ctx, owner, seqid, opnum, body):
    """NFSv4.0: run `body` as the owner's next request, or replay its last one (RFC 7530
    section 9.1.3). NFSv4.1 has no owner seqids (the session slot does this)."""
    if ctx.minor:
        return body()
    store = ctx.server.store
    saved = store.seqid_check(owner, seqid, opnum)
    if saved is not None:
        _, status, outcome, fh = saved
        if fh is not None:
            ctx.cfh = fh
        if status:
            raise NFS4Error(status, outcome)
        return outcome
    try:
        res = body()
    except NFS4Error as e:
        store.seqid_done(owner, seqid, opnum, e.status, e.res)
        raise
    if is_deferred(res):  # done, but the reply waits for the disk (CLOSE's publish)
        fh = ctx.cfh

        def done(r):
            store.seqid_done(owner, seqid, opnum, 0, r, fh)
            return r

        def failed(f):
            e = f.check(NFS4Error) and f.value
            if e:
                store.seqid_done(owner, seqid, opnum, e.status, e.res)
            return f
        return res.addCallbacks(done, failed)
    store.seqid_done(owner, seqid, opnum, 0, res, ctx.cfh)
    return res


def _file_kind_error(ctx, a):
    if a.kind == Kind.DIR:
        return x.NFS4ERR_ISDIR
    if a.kind == Kind.LNK:
        return x.NFS4ERR_SYMLINK
    # RFC 7530 16.16.6 asks 4.0 servers for SYMLINK here (as Linux nfsd answers).
    return x.NFS4ERR_WRONG_TYPE if ctx.minor else x.NFS4ERR_SYMLINK


def op_open(ctx, a):
    # Close-to-open: this OPEN sees what any CLOSE before it published, on any server of a
    # shared backend (and the GETATTR after it, the change that goes with it).
    if ctx.cfh is not None:
        call(ctx.cfh.backend.barrier)
    client = _client(ctx, a.owner.clientid)
    store = ctx.server.store
    owner = store.open_owner(client, a.owner.owner)
    if ctx.minor == 0 and not owner.confirmed and owner.last_seqid is not None \
            and a.seqid != owner.last_seqid:
        store.reset_unconfirmed(owner)  # its first OPEN was never confirmed
    return sequenced(ctx, owner, a.seqid, x.OP_OPEN, lambda: _open(ctx, a, client, owner))


def _open(ctx, a, client, owner):
    store = ctx.server.store
    share = a.share_access & 0xFF
    want = a.share_access & WANT_MASK
    if share not in (READ, WRITE, READ | WRITE) or a.share_deny & ~3:
        raise NFS4Error(x.NFS4ERR_INVAL)
    if a.share_access & ~(0xFF | WANT_MASK | 0x30000):
        raise NFS4Error(x.NFS4ERR_INVAL)
    claim = a.claim.tag
    grace = store.in_grace()
    if claim == x.CLAIM_PREVIOUS:
        if not grace or not client.may_reclaim:
            raise NFS4Error(x.NFS4ERR_NO_GRACE)
        if client.reclaim_complete:
            raise NFS4Error(x.NFS4ERR_NO_GRACE)
    elif claim in (x.CLAIM_NULL, x.CLAIM_FH):
        if grace or (ctx.minor >= 1 and not client.reclaim_complete):
            raise NFS4Error(x.NFS4ERR_GRACE)
    elif claim in (x.CLAIM_DELEGATE_CUR, x.CLAIM_DELEG_CUR_FH):
        # An open the client did locally under its delegation, told to the server while it
        # returns the delegation: checked below against that delegation.
        if claim == x.CLAIM_DELEGATE_CUR and ctx.minor:
            raise NFS4Error(x.NFS4ERR_NOTSUPP)
        if claim == x.CLAIM_DELEG_CUR_FH and not ctx.minor:
            raise NFS4Error(x.NFS4ERR_INVAL)
    elif claim in (x.CLAIM_DELEGATE_PREV, x.CLAIM_DELEG_PREV_FH):
        # Delegations are not kept across a client's restart: nothing to reclaim.
        raise NFS4Error(x.NFS4ERR_RECLAIM_BAD)
    else:
        raise NFS4Error(x.NFS4ERR_INVAL)
    deleg_sid = None
    if claim == x.CLAIM_DELEGATE_CUR:
        deleg_sid = a.claim.value.delegate_stateid
    elif claim == x.CLAIM_DELEG_CUR_FH:
        deleg_sid = a.claim.value
    fh = ctx.fh()
    be = fh.backend
    v = store.viewer(client)
    cred = ctx.cred
    created = None  # a new staging object made by this OPEN
    truncate = False
    set_size = None  # a size given in the create attributes
    cinfo = None
    attrset = []
    handle = None
    if claim in (x.CLAIM_NULL, x.CLAIM_DELEGATE_CUR):
        d = dir_attrs(ctx, fh)
        name = check_name(a.claim.value if claim == x.CLAIM_NULL else a.claim.value.file,
                          ctx.minor)
        if not access.allowed(cred, d, access.X):
            raise NFS4Error(x.NFS4ERR_ACCESS)
        try:
            handle = be.lookup(fh.handle, name, v)
        except bi.NotFound:
            handle = None
        except bi.BackendError as e:
            raise NFS4Error(status_of(e)) from None
        if a.openhow.tag == x.OPEN4_CREATE and claim == x.CLAIM_NULL:
            how = a.openhow.value
            mode = how.tag
            new = None
            verifier = None
            if mode in (x.UNCHECKED4, x.GUARDED4):
                new = attrs.decode(how.value, ctx.minor)
            elif mode == x.EXCLUSIVE4:
                verifier = how.value
            elif mode == x.EXCLUSIVE4_1:
                if ctx.minor == 0:
                    raise NFS4Error(x.NFS4ERR_INVAL)
                verifier = how.value.cva_verf
                new = attrs.decode(how.value.cva_attrs, ctx.minor)
            if new is None:
                new = attrs.NewAttrs({}, [])
            if handle is not None:
                if mode == x.GUARDED4:
                    raise NFS4Error(x.NFS4ERR_EXIST)
                if verifier is not None:
                    if be.create_verifier(handle) != verifier:
                        raise NFS4Error(x.NFS4ERR_EXIST)
                elif new.values.get(x.FATTR4_SIZE) == 0 and share & WRITE:
                    # UNCHECKED4 on an existing file ignores the attributes except a size of 0
                    # (O_CREAT|O_TRUNC), RFC 7530 section 16.16.5.
                    truncate = True
                    attrset.append(x.FATTR4_SIZE)
            else:
                require_rw(ctx, fh)
                if not access.allowed(cred, d, access.W | access.X):
                    raise NFS4Error(x.NFS4ERR_ACCESS)
                set_size = new.values.get(x.FATTR4_SIZE) or None
                if set_size is not None and set_size > attrs.MAX_FILESIZE:
                    raise NFS4Error(x.NFS4ERR_FBIG)
                uid, gid = _new_owner(ctx, d, new)
                mode_bits = new.values.get(x.FATTR4_MODE, 0o644) & 0o7777
                created = call(be.create_staged, fh.handle, name, v, mode_bits, uid, gid,
                               mode != x.UNCHECKED4, store.owner_record(owner), verifier)
                handle = created.handle
                attrset += [n for n in new.numbers
                            if n in (x.FATTR4_MODE, x.FATTR4_OWNER, x.FATTR4_OWNER_GROUP, x.FATTR4_SIZE)]
                after = getattr_(ctx, fh)
                cinfo = change_info(d.change, after.change)
        elif handle is None:
            raise NFS4Error(x.NFS4ERR_NOENT)
        if cinfo is None:
            cinfo = change_info(d.change, d.change)
    else:  # CLAIM_FH, CLAIM_PREVIOUS, CLAIM_DELEG_CUR_FH: the current filehandle is the file
        if a.openhow.tag == x.OPEN4_CREATE and claim != x.CLAIM_PREVIOUS:
            raise NFS4Error(x.NFS4ERR_INVAL)
        handle = fh.handle
        cinfo = change_info(0, 0)
    if deleg_sid is not None:
        dl = store.find_state(client, deleg_sid, handle, ctx.minor)
        if not isinstance(dl, Delegation) or dl.client is not client:
            raise NFS4Error(x.NFS4ERR_BAD_STATEID)
    try:
        fa = created.attrs() if created is not None else \
            getattr_(ctx, FileRef(fh.export, handle), v)
    except NFS4Error as e:
        if e.status == x.NFS4ERR_STALE and claim in (x.CLAIM_NULL, x.CLAIM_DELEGATE_CUR):
            # removed by another server between the look-up and now: the client asks again
            raise NFS4Error(x.NFS4ERR_DELAY) from None
        raise
    if fa.kind != Kind.REG:
        raise NFS4Error(_file_kind_error(ctx, fa))
    if share & WRITE:
        require_rw(ctx, fh)
    if created is None and claim != x.CLAIM_PREVIOUS:
        # The mode decides, as for open(2): no owner override (the creating OPEN needs none,
        # and what it grants lasts as long as the open, docs/semantics.md).
        need = (access.R if share & READ else 0) | (access.W if share & WRITE else 0)
        if not access.allowed(cred, fa, need):
            raise NFS4Error(x.NFS4ERR_ACCESS)
    if created is None and (share & WRITE or a.share_deny & READ) and \
            store.recall_conflicts(handle, client):
        # Another client holds a read delegation: it is being recalled; try again soon.
        raise NFS4Error(x.NFS4ERR_DELAY)
    try:
        st = store.open_file(owner, handle, fh.export, share, a.share_deny)
    except NFS4Error:
        if created is not None:
            be.discard(created)
        raise
    if st.uid is None:
        st.uid = ctx.cred.uid
    files = store.unfinished
    try:
        if created is not None:
            files.start(st, created, created=True)  # rules 1, 2
        elif share & WRITE and st.staging is None:
            # Another open-owner of the machine creating this file shares its version (borrow);
            # the same incarnation writes again what it left retired or before a restart
            # (resume, rules 7, 8); else a new copy-on-write version (rules 1, 4).
            if files.borrow(st) or files.resume(st):
                if truncate:
                    call(st.staging.truncate, 0)
            else:
                try:
                    stg = be.stage_version(handle, v, truncate, store.owner_record(owner))
                except bi.Stale:  # removed by another server since the look-up: ask again
                    raise NFS4Error(x.NFS4ERR_DELAY if claim == x.CLAIM_NULL
                                    else x.NFS4ERR_STALE) from None
                except bi.BackendError as e:
                    raise NFS4Error(status_of(e)) from None
                files.start(st, stg, created=False)
        elif truncate:
            if st.staging is None:
                raise NFS4Error(x.NFS4ERR_INVAL)
            call(st.staging.truncate, 0)
        if truncate:
            drop_setid(ctx, FileRef(fh.export, handle))
        if set_size and st.staging is not None:
            call(st.staging.truncate, set_size)
    except NFS4Error:
        if not st.access_modes - {share}:
            files.abandon(st)
            store.close_open(st)
        raise
    ctx.cfh = FileRef(fh.export, handle)
    if created is not None and not share & WRITE:
        # Created by an open that cannot write: nothing can make it grow, so it is done now
        # (published at once, empty, as open(O_CREAT|O_RDONLY) makes it locally; rule 3).
        pending = call(files.finish, st, True)
        if isinstance(pending, Publishing):  # storage whose publish waits: a worker thread
            def published(event):
                pending.done(event)
                return _opened(ctx, st, owner, client, claim, want, False, cinfo, attrset)

            def failed(f):  # the OPEN did not happen (the client may send it again)
                files.abandon(st)
                store.close_open(st)
                return f
            return ctx.server.in_thread(call, pending.run).addCallbacks(published, failed)
        created = None
    return _opened(ctx, st, owner, client, claim, want, created is not None, cinfo, attrset)


def _opened(ctx, st, owner, client, claim, want, creating, cinfo, attrset):
    """OPEN's answer once the open stands: its stateid, flags and delegation."""
    if st.pin is None and not creating:
        try:
            st.pin = ctx.cfh.backend.open_version(st.fh)
        except bi.BackendError:
            st.pin = None
    sid = _sid(st)
    ctx.set_stateid(sid)
    rflags = x.OPEN4_RESULT_LOCKTYPE_POSIX
    if ctx.minor:
        rflags |= x.OPEN4_RESULT_PRESERVE_UNLINKED
    elif not owner.confirmed:
        rflags |= x.OPEN4_RESULT_CONFIRM
    deleg = delegation(ctx, client, st, claim, want, creating) or NO_DELEGATION
    return x.OPEN4res(x.NFS4_OK, x.OPEN4resok(sid, cinfo, rflags, attrs.to_words(attrset), deleg))


def open_state(ctx, stateid, fh, unconfirmed_ok=False, generation=True) -> OpenState:
    st = ctx.server.store.find_state(ctx.client, ctx.stateid(stateid), fh.handle, ctx.minor,
                                     unconfirmed_ok, generation)
    if not isinstance(st, OpenState):
        raise NFS4Error(x.NFS4ERR_BAD_STATEID)
    return st


def finish_write(ctx, st: OpenState, visible):
    """The open stops writing (rule 3, `UnfinishedFiles.finish`): its version is published (or
    dropped if nothing changed), then `visible()` makes the operation's state change. Returns
    None, or a Deferred the operation's reply waits for:

    * local storage: the new version is visible at once; the Deferred fires once the publish
      is durable too (the directory's fsync, in a worker thread, shared with other publishes
      into that directory that arrive at the same time). If that fsync fails, the operation
      answers the error (NFS4ERR_IO) while the version stays published and the change stands.
    * storage whose publish waits (an object store, `Publishing`): the publish runs in a
      worker thread and `visible()` only after it succeeded; if it fails (NFS4ERR_DELAY while
      a dependency is down), nothing changed and the client may send the operation again."""
    durable = call(ctx.server.store.unfinished.finish, st)
    if isinstance(durable, Publishing):
        def published(event):
            durable.done(event)
            visible()
        return ctx.server.in_thread(call, durable.run).addCallback(published)
    visible()
    return None if durable is None else ctx.server.in_thread(call, durable)


def op_close(ctx, a):
    fh = ctx.fh()
    try:
        st = open_state(ctx, a.open_stateid, fh, unconfirmed_ok=True, generation=ctx.minor > 0)
    except NFS4Error as e:
        st = ctx.server.store.closed_state(a.open_stateid.other) if ctx.minor == 0 else None
        if st is None or e.status != x.NFS4ERR_BAD_STATEID:
            raise
    return sequenced(ctx, st.owner, a.seqid, x.OP_CLOSE, lambda: _close(ctx, st, a.open_stateid))


def _close(ctx, st, sid=None):
    if sid is not None and ctx.minor == 0:
        ctx.server.store.check_generation(st, sid, 0)
    if st.closed:
        raise NFS4Error(x.NFS4ERR_BAD_STATEID)
    if st.locks and any(ls.ranges for ls in st.locks.values()):
        raise NFS4Error(x.NFS4ERR_LOCKS_HELD)
    copying = ctx.server.copies.idle(st.staging)
    if copying is not None:  # a server-side copy into it runs: it finishes first
        return copying.addCallback(lambda _: _close(ctx, st))
    durable = finish_write(ctx, st, lambda: ctx.server.store.close_open(st))

    def result(_=None):
        return x.CLOSE4res(x.NFS4_OK, INVALID_STATEID if ctx.minor else _sid(st))
    return result() if durable is None else durable.addCallback(result)


def op_open_confirm(ctx, a):
    fh = ctx.fh()
    st = open_state(ctx, a.open_stateid, fh, unconfirmed_ok=True, generation=False)

    def confirm():
        ctx.server.store.check_generation(st, a.open_stateid, ctx.minor)
        if st.owner.confirmed:
            raise NFS4Error(x.NFS4ERR_BAD_STATEID)
        st.owner.confirmed = True
        st.seqid = (st.seqid + 1) & 0xFFFFFFFF or 1
        return x.OPEN_CONFIRM4res(x.NFS4_OK, x.OPEN_CONFIRM4resok(_sid(st)))
    return sequenced(ctx, st.owner, a.seqid, x.OP_OPEN_CONFIRM, confirm)


def op_open_downgrade(ctx, a):
    fh = ctx.fh()
    st = open_state(ctx, a.open_stateid, fh, generation=ctx.minor > 0)
    return sequenced(ctx, st.owner, a.seqid, x.OP_OPEN_DOWNGRADE, lambda: _downgrade(ctx, st, a))


def _downgrade(ctx, st, a):
    if ctx.minor == 0:
        ctx.server.store.check_generation(st, a.open_stateid, 0)
    share = a.share_access & 0xFF
    if share not in (READ, WRITE, READ | WRITE) or a.share_deny & ~3:
        raise NFS4Error(x.NFS4ERR_INVAL)
    store = ctx.server.store
    store.check_downgrade(st, share, a.share_deny)
    copying = ctx.server.copies.idle(st.staging) if not share & WRITE else None
    if copying is not None:  # a server-side copy into it runs: it finishes first
        return copying.addCallback(lambda _: _downgrade(ctx, st, a))
    if st.access & WRITE and not share & WRITE:
        durable = finish_write(ctx, st, lambda: store.downgrade(st, share, a.share_deny))
    else:
        store.downgrade(st, share, a.share_deny)
        durable = None

    def result(_=None):
        sid = _sid(st)
        ctx.set_stateid(sid)
        return x.OPEN_DOWNGRADE4res(x.NFS4_OK, x.OPEN_DOWNGRADE4resok(sid))
    return result() if durable is None else durable.addCallback(result)


def _io_state(ctx, stateid, fh):
    """The open behind a READ/WRITE stateid (None for the special stateids)."""
    st = ctx.server.store.find_state(ctx.client, ctx.stateid(stateid), fh.handle, ctx.minor)
    if isinstance(st, LockState):
        st = st.open
    if st is not None and ctx.minor == 0:
        ctx.client = st.client
    return st


def _read_deleg(ctx, fh, count, offset):
    """READ with a read delegation's stateid: the published version."""
    data, eof = call(fh.backend.read, fh.handle, offset, count)
    return x.READ4res(x.NFS4_OK, x.READ4resok(eof, data))


def _regular(ctx, fh, a=None):
    """READ, WRITE, COMMIT need a regular file: ISDIR for a directory, else INVAL (4.0) or
    WRONG_TYPE (4.1+)."""
    a = a or getattr_(ctx, fh)
    if a.kind != Kind.REG:
        if a.kind == Kind.DIR:
            raise NFS4Error(x.NFS4ERR_ISDIR)
        raise NFS4Error(x.NFS4ERR_WRONG_TYPE if ctx.minor else x.NFS4ERR_INVAL)
    return a


def _own_staging(store, handle, client):
    """The version a client's machine is writing of this file, if any (it reads what it wrote)."""
    return None if client is None else store.unfinished.staging_of(handle, client)


def read_version(ctx, st, fh):
    """What a stateid reads: the staging version its machine writes, or None for the published
    version. Checks read permission (special stateids: mode bits and share denies; opens: the
    open's access and the caller's identity)."""
    store = ctx.server.store
    if st is None:
        fa = _regular(ctx, fh)
        if not access.allowed(ctx.cred, fa, access.R):
            raise NFS4Error(x.NFS4ERR_ACCESS)
        if store.denied(fh.handle, READ):
            raise NFS4Error(x.NFS4ERR_LOCKED)
        return _own_staging(store, fh.handle, ctx.client)
    if st.access == 0:
        raise NFS4Error(x.NFS4ERR_OPENMODE)
    check_cred(ctx, st, fh, access.R)
    return st.staging or _own_staging(store, fh.handle, st.client)


def op_read(ctx, a):
    fh = ctx.fh()
    st = _io_state(ctx, a.stateid, fh)
    count = min(a.count, attrs.MAX_RW, ctx.server.max_read_reply(ctx))
    if a.offset >= attrs.MAX_FILESIZE:
        count = 0
    else:
        count = min(count, attrs.MAX_FILESIZE - a.offset)
    if isinstance(st, Delegation):
        return _read_deleg(ctx, fh, count, a.offset)
    stg = read_version(ctx, st, fh)
    if stg is not None:
        try:
            data, eof = stg.read(a.offset, count, True)
        except bi.WouldBlock:  # remote storage: wait for it in a worker thread, not here
            return ctx.server.in_thread(_read_staging, stg, a.offset, count)
        except bi.BackendError as e:
            raise NFS4Error(status_of(e)) from None
        return x.READ4res(x.NFS4_OK, x.READ4resok(eof, data))
    try:
        return _read_published(fh, st, a.offset, count, True)
    except bi.WouldBlock:
        # Not in the page cache: wait for the disk in a worker thread, not here.
        return ctx.server.in_thread(_read_published, fh, st, a.offset, count, False)


def _read_published(fh, st, offset, count, nowait):
    try:
        data, eof = fh.backend.read(fh.handle, offset, count, nowait)
    except bi.WouldBlock:
        raise
    except bi.Stale:
        if st is None or st.pin is None:
            raise NFS4Error(x.NFS4ERR_STALE) from None
        data, eof = _read_pin(st.pin, offset, count, nowait)  # removed while open
    except bi.BackendError as e:
        raise NFS4Error(status_of(e)) from None
    return x.READ4res(x.NFS4_OK, x.READ4resok(eof, data))


def _read_pin(pin, offset, count, nowait):
    try:
        return pin.read(offset, count, nowait)
    except bi.WouldBlock:
        raise
    except bi.BackendError as e:
        raise NFS4Error(status_of(e)) from None


def _read_staging(stg, offset, count):
    data, eof = call(stg.read, offset, count)
    return x.READ4res(x.NFS4_OK, x.READ4resok(eof, data))


def writer_state(ctx, fh, stateid) -> OpenState:
    """The open whose staging version a WRITE, ALLOCATE, DEALLOCATE, COPY or CLONE changes
    (rule 1): a write open of this client, used with its opener's permission, and no
    server-side copy writing that version now (DELAY)."""
    st = _io_state(ctx, stateid, fh)
    if st is None:
        # Special stateids cannot write: content changes only through an open's staging.
        _regular(ctx, fh)
        if ctx.server.store.denied(fh.handle, WRITE):
            raise NFS4Error(x.NFS4ERR_LOCKED)
        raise NFS4Error(x.NFS4ERR_OPENMODE)
    if isinstance(st, Delegation) or not st.access & WRITE or st.staging is None:
        raise NFS4Error(x.NFS4ERR_OPENMODE)
    check_cred(ctx, st, fh, access.W)
    if ctx.server.copies.busy(st.staging):
        raise NFS4Error(x.NFS4ERR_DELAY)  # a server-side copy writes it now
    return st


def op_write(ctx, a):
    fh = ctx.fh()
    st = writer_state(ctx, fh, a.stateid)
    drop_setid(ctx, fh)
    data = a.data
    if a.offset + len(data) > attrs.MAX_FILESIZE:
        raise NFS4Error(x.NFS4ERR_FBIG)
    stg = st.staging
    n = call(stg.write, a.offset, data)
    srv = ctx.server
    if a.stable == x.UNSTABLE4:
        return x.WRITE4res(x.NFS4_OK, x.WRITE4resok(n, x.UNSTABLE4, srv.write_verifier))
    res = x.WRITE4res(x.NFS4_OK, x.WRITE4resok(n, x.FILE_SYNC4, srv.write_verifier))
    return srv.sync(stg).addCallback(lambda _: res)


def op_commit(ctx, a):
    fh = ctx.fh()
    _regular(ctx, fh)
    srv = ctx.server
    res = x.COMMIT4res(x.NFS4_OK, x.COMMIT4resok(srv.write_verifier))
    mine = srv.store.unfinished.stagings_of(fh.handle, ctx.client)
    if not mine:
        return res
    copying = [d for d in map(srv.copies.idle, mine) if d is not None]
    if copying:  # COMMIT covers what a running server-side copy writes: after it
        return defer.gatherResults(copying).addCallback(lambda _: op_commit(ctx, a))
    return srv.sync_all(mine).addCallback(lambda _: res)


HANDLERS = {
    x.OP_OPEN: op_open,
    x.OP_OPEN_DOWNGRADE: op_open_downgrade,
    x.OP_OPEN_CONFIRM: op_open_confirm,
    x.OP_CLOSE: op_close,
    x.OP_READ: op_read,
    x.OP_WRITE: op_write,
    x.OP_COMMIT: op_commit,
}
