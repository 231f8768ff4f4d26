"""NFSv4.2 server-side copy (COPY, CLONE, OFFLOAD_STATUS, OFFLOAD_CANCEL) and READ_PLUS, and
their write-once rules (docs/semantics.md, "COPY and CLONE").

The in-process harness (tests/harness/): the memory backend, whose CLONE shares pages, a fake
clock, and worker-thread work that runs before a request's reply reaches the test. A copy's
steps run in worker threads, so within one COMPOUND an asynchronous copy has certainly not
finished yet: the operations after COPY in the same COMPOUND (OFFLOAD_STATUS, OFFLOAD_CANCEL,
WRITE, CLOSE, with COPY's stateid as the current stateid) meet it running, without any timing.
"""

from __future__ import annotations

import pytest

from harness import status
from nfsd.client import NfsError, op
from nfsd.xdr import nfs4 as x

RW = x.OPEN4_SHARE_ACCESS_BOTH
RD = x.OPEN4_SHARE_ACCESS_READ
CURRENT = x.stateid4(1, bytes(12))  # the current stateid (RFC 8881 16.2.3.1.2)
PAGE = 4096


def pattern(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(n))


def published(c, name: bytes, data: bytes) -> bytes:
    return c.create_file(c.root(), name, data)


def copy_op(src_sid, dst_sid, src_off=0, dst_off=0, count=0, sync=True):
    return op("COPY", src_sid, dst_sid, src_off, dst_off, count, True, sync, [])


def copy(c, sfh, ssid, dfh, dsid, *rest, **kw):
    """COPY from sfh to dfh; returns COPY4resok."""
    r = c.call([op("PUTFH", sfh), op("SAVEFH"), op("PUTFH", dfh),
                copy_op(ssid, dsid, *rest, **kw)])
    return r[-1].value


def clone(c, sfh, ssid, dfh, dsid, src_off=0, dst_off=0, count=0):
    return c.call([op("PUTFH", sfh), op("SAVEFH"), op("PUTFH", dfh),
                   op("CLONE", ssid, dsid, src_off, dst_off, count)])


def read_with(c, fh, sid, n=1 << 22) -> bytes:
    return c.read_all(fh, sid, chunk=n)


def test_copy_into_a_new_file_is_invisible_until_close_and_whole_after(harness):
    h = harness()
    a, b = h.mount(minor=2), h.mount(minor=2)
    src = pattern(100_000)
    sfh = published(a, b"src", src)
    dfh, dsid, _ = a.open(a.root(), b"dst", create=True)
    ok = copy(a, sfh, x.stateid4(0, bytes(12)), dfh, dsid)  # anonymous stateid reads as READ
    assert ok.cr_response.wr_count == len(src) and ok.cr_response.wr_callback_id == []
    assert ok.cr_requirements.cr_synchronous
    assert ok.cr_response.wr_writeverf == h.server.write_verifier
    assert status(b.lookup, "dst") == x.NFS4ERR_NOENT  # rule 2: another client sees nothing
    assert read_with(a, dfh, dsid) == src  # the copying client reads its staged version
    a.close_file(dfh, dsid)
    assert read_with(b, b.lookup("dst"), x.stateid4(0, bytes(12))) == src
    assert h.server.copies.bytes_copied == len(src)


def test_copy_into_a_copy_on_write_version_readers_see_the_old_until_close(harness):
    h = harness()
    a, b = h.mount(minor=2), h.mount(minor=2)
    src, old = pattern(50_000, 1), pattern(80_000, 2)
    sfh = published(a, b"src", src)
    dfh = published(a, b"dst", old)
    bfh = b.lookup("dst")
    _, rsid, _ = b.open(b.root(), b"dst", access=RD, owner=b"reader")
    _, dsid, _ = a.open(a.root(), b"dst", access=RW)
    _, ssid, _ = a.open(a.root(), b"src", access=RD, owner=b"src-reader")
    ok = copy(a, sfh, ssid, dfh, dsid, 1000, 30_000, 20_000)
    assert ok.cr_response.wr_count == 20_000
    expected = old[:30_000] + src[1000:21_000] + old[50_000:]
    assert read_with(b, bfh, rsid) == old  # rule 4: the published version until CLOSE
    assert read_with(a, dfh, dsid) == expected
    a.close_file(dfh, dsid)
    assert read_with(b, bfh, rsid) == expected  # whole, at once
    # A copy past the source's end stops there (as copy_file_range and knfsd); count 0 = to
    # the end; an offset past the end is INVAL.
    _, dsid, _ = a.open(a.root(), b"dst", access=RW)
    assert copy(a, sfh, ssid, dfh, dsid, 40_000, 0, 1 << 30).cr_response.wr_count == 10_000
    assert copy(a, sfh, ssid, dfh, dsid, 45_000, 0, 0).cr_response.wr_count == 5_000
    assert status(copy, a, sfh, ssid, dfh, dsid, 50_001, 0, 1) == x.NFS4ERR_INVAL
    a.close_file(dfh, dsid)
    assert read_with(b, bfh, rsid) == src[45_000:] * 2 + expected[10_000:]


def test_clone_into_a_new_file_and_into_a_version(harness):
    h = harness()
    a, b = h.mount(minor=2), h.mount(minor=2)
    src = pattern(5 * PAGE + 100, 3)
    sfh = published(a, b"src", src)
    _, ssid, _ = a.open(a.root(), b"src", access=RD, owner=b"src-reader")
    attrs = a.getattr(sfh, (x.FATTR4_CLONE_BLKSIZE,))
    assert attrs[x.FATTR4_CLONE_BLKSIZE] == PAGE
    dfh, dsid, _ = a.open(a.root(), b"new", create=True)
    clone(a, sfh, ssid, dfh, dsid)  # count 0: the whole file, its unaligned end included
    assert status(b.lookup, "new") == x.NFS4ERR_NOENT
    assert read_with(a, dfh, dsid) == src
    a.close_file(dfh, dsid)
    assert b.read_all(b.lookup("new")) == src
    old = pattern(8 * PAGE, 4)
    vfh = published(a, b"version", old)
    _, vsid, _ = a.open(a.root(), b"version", access=RW)
    clone(a, sfh, ssid, vfh, vsid, PAGE, 4 * PAGE, 2 * PAGE)
    expected = old[:4 * PAGE] + src[PAGE:3 * PAGE] + old[6 * PAGE:]
    assert b.read_all(vfh) == old
    assert read_with(a, vfh, vsid) == expected
    # Alignment (RFC 7862 15.13.3): offsets and count in clone_blksize units, except a count
    # that ends at the source's end; a range past the source's end is INVAL.
    for so, do, n in ((1, 0, PAGE), (0, 1, PAGE), (0, 0, PAGE + 1), (0, 0, 6 * PAGE)):
        assert status(clone, a, sfh, ssid, vfh, vsid, so, do, n) == x.NFS4ERR_INVAL
    a.close_file(vfh, vsid)
    assert b.read_all(vfh) == expected
    assert h.server.copies.clones == 2


def test_async_copy_tells_its_end_with_cb_offload_and_offload_status(harness):
    h = harness(copy_async=64 * 1024)
    a, b = h.mount(minor=2, back_channel=True), h.mount(minor=2)
    h.server.copies.step = 64 * 1024
    src = pattern(300_000, 5)
    sfh = published(a, b"src", src)
    dfh, dsid, _ = a.open(a.root(), b"dst", create=True)
    r = a.call([op("PUTFH", sfh), op("SAVEFH"), op("PUTFH", dfh),
                copy_op(x.stateid4(0, bytes(12)), dsid, sync=False),
                op("OFFLOAD_STATUS", CURRENT)])
    resp = r[3].value.cr_response
    assert not r[3].value.cr_requirements.cr_synchronous
    (csid,) = resp.wr_callback_id
    assert resp.wr_writeverf == h.server.write_verifier
    running = r[4].value
    assert running.osr_complete == [] and running.osr_count < len(src)  # not over yet
    a.poll()
    (cb,) = a.offloads
    assert cb.coa_fh == dfh and cb.coa_stateid == csid
    assert cb.coa_offload_info.tag == x.NFS4_OK
    assert cb.coa_offload_info.value.wr_count == len(src)
    assert cb.coa_offload_info.value.wr_writeverf == h.server.write_verifier
    done = a.call([op("PUTFH", dfh), op("OFFLOAD_STATUS", csid)])[-1].value
    assert done.osr_complete == [x.NFS4_OK] and done.osr_count == len(src)
    assert status(b.lookup, "dst") == x.NFS4ERR_NOENT
    a.commit(dfh)
    a.close_file(dfh, dsid)
    assert b.read_all(b.lookup("dst")) == src
    # Another client's stateid for OFFLOAD_STATUS: BAD_STATEID.
    assert status(b.call, [op("PUTFH", dfh), op("OFFLOAD_STATUS", csid)]) == \
        x.NFS4ERR_BAD_STATEID


def test_close_during_a_copy_waits_for_it_and_publishes_the_whole_file(harness):
    h = harness(copy_async=PAGE)
    a, b = h.mount(minor=2, back_channel=True), h.mount(minor=2)
    h.server.copies.step = 8 * PAGE
    src = pattern(200_000, 6)
    sfh = published(a, b"src", src)
    dfh, dsid, _ = a.open(a.root(), b"dst", create=True)
    st, _ = a.try_call([op("PUTFH", sfh), op("SAVEFH"), op("PUTFH", dfh),
                        copy_op(x.stateid4(0, bytes(12)), dsid, sync=False),
                        op("WRITE", dsid, 0, x.UNSTABLE4, b"x")])
    assert st == x.NFS4ERR_DELAY  # a copy writes that version now: one at a time
    r = a.call([op("PUTFH", sfh), op("SAVEFH"), op("PUTFH", dfh),
                copy_op(x.stateid4(0, bytes(12)), dsid, sync=False),
                op("CLOSE", 0, dsid)])
    assert b.read_all(b.lookup("dst")) == src  # never half a file


def test_offload_cancel_stops_the_copy_and_forgets_it(harness):
    h = harness(copy_async=PAGE)
    a = h.mount(minor=2, back_channel=True)
    h.server.copies.step = 4 * PAGE
    src = pattern(100 * PAGE, 7)
    sfh = published(a, b"src", src)
    dfh, dsid, _ = a.open(a.root(), b"dst", create=True)
    r = a.call([op("PUTFH", sfh), op("SAVEFH"), op("PUTFH", dfh),
                copy_op(x.stateid4(0, bytes(12)), dsid, sync=False),
                op("OFFLOAD_CANCEL", CURRENT)])
    (csid,) = r[3].value.cr_response.wr_callback_id
    a.poll()
    assert a.offloads == []  # a cancelled copy is not reported
    assert status(a.call, [op("PUTFH", dfh), op("OFFLOAD_STATUS", csid)]) == \
        x.NFS4ERR_BAD_STATEID
    staged = read_with(a, dfh, dsid)
    assert len(staged) < len(src) and src.startswith(staged)  # stopped after one step
    assert h.server.copies.running_async() == 0
    assert status(a.call, [op("PUTFH", dfh), op("OFFLOAD_CANCEL", csid)]) == \
        x.NFS4ERR_BAD_STATEID
    a.close_file(dfh, dsid)


def test_async_copies_over_the_limit_or_without_a_back_channel_run_synchronously(harness):
    h = harness(copy_async=PAGE, max_async_copies=1)
    a, n = h.mount(minor=2, back_channel=True), h.mount(minor=2)
    src = pattern(10 * PAGE)
    sfh = published(a, b"src", src)
    d1, s1, _ = a.open(a.root(), b"d1", create=True)
    d2, s2, _ = a.open(a.root(), b"d2", create=True)
    h.server.copies.step = PAGE
    r = a.call([op("PUTFH", sfh), op("SAVEFH"), op("PUTFH", d1),
                copy_op(x.stateid4(0, bytes(12)), s1, sync=False),
                op("PUTFH", d2), copy_op(x.stateid4(0, bytes(12)), s2, sync=False)])
    assert not r[3].value.cr_requirements.cr_synchronous
    assert r[5].value.cr_requirements.cr_synchronous  # the second: over the limit of one
    assert r[5].value.cr_response.wr_count == len(src)
    d3, s3, _ = n.open(n.root(), b"d3", create=True)
    ok = copy(n, sfh, x.stateid4(0, bytes(12)), d3, s3, sync=False)
    assert ok.cr_requirements.cr_synchronous and ok.cr_response.wr_count == len(src)


def test_copy_and_clone_errors(harness):
    h = harness()
    a, b = h.mount(minor=2), h.mount(minor=2)
    anon = x.stateid4(0, bytes(12))
    sfh = published(a, b"src", pattern(3 * PAGE))
    dfh, dsid, _ = a.open(a.root(), b"dst", create=True)
    _, rsid, _ = a.open(a.root(), b"src", access=RD, owner=b"reader")
    pfh = published(a, b"published", b"p")
    _, psid, _ = a.open(a.root(), b"published", access=RW, owner=b"p-writer")
    for fn in (copy, clone):
        # bad stateids: made up, another client's, the anonymous one for the destination
        assert status(fn, a, sfh, x.stateid4(1, dsid.other[:4] + b"\1" * 8), dfh, dsid) == \
            x.NFS4ERR_BAD_STATEID
        assert status(fn, b, sfh, anon, pfh, psid) == x.NFS4ERR_BAD_STATEID
        assert status(fn, b, sfh, anon, dfh, dsid) == x.NFS4ERR_STALE  # a's new file
        assert status(fn, a, sfh, anon, dfh, anon) == x.NFS4ERR_OPENMODE
        # a read-only destination (an open without write access)
        assert status(fn, a, sfh, anon, sfh, rsid) == x.NFS4ERR_OPENMODE
        # overlapping ranges of one file
        _, wsid, _ = a.open(a.root(), b"src", access=RW, owner=b"writer")
        assert status(fn, a, sfh, wsid, sfh, wsid, 0, PAGE, 2 * PAGE) == x.NFS4ERR_INVAL
        a.close_file(sfh, wsid, owner=b"writer")
    # no saved filehandle
    assert status(a.call, [op("PUTFH", dfh), copy_op(anon, dsid)]) == x.NFS4ERR_NOFILEHANDLE
    # a source under construction by another client: STALE, like any access to it
    bfh, bsid, _ = b.open(b.root(), b"b-new", create=True)
    b.write(bfh, bsid, 0, b"private")
    assert status(copy, a, bfh, anon, dfh, dsid) == x.NFS4ERR_STALE
    assert status(clone, a, bfh, anon, dfh, dsid) == x.NFS4ERR_STALE
    # ... while its own client copies from it (it reads what it wrote)
    b_dfh, b_dsid, _ = b.open(b.root(), b"b-copy", create=True)
    assert copy(b, bfh, bsid, b_dfh, b_dsid).cr_response.wr_count == 7
    # a directory
    assert status(copy, a, a.root(), anon, dfh, dsid) == x.NFS4ERR_ISDIR
    # inter-server copy and COPY_NOTIFY: not supported
    st, _ = a.try_call([op("PUTFH", sfh), op("SAVEFH"), op("PUTFH", dfh),
                        op("COPY", anon, dsid, 0, 0, 0, True, True,
                           [x.netloc4(x.NL4_NAME, b"elsewhere")])])
    assert st == x.NFS4ERR_NOTSUPP
    assert status(a.call, [op("PUTFH", sfh), op("COPY_NOTIFY", anon,
                                                 x.netloc4(x.NL4_NAME, b"elsewhere"))]) == \
        x.NFS4ERR_NOTSUPP
    a.close_file(dfh, dsid)


def test_copy_operations_are_4_2_only_and_off_with_no_server_copy(harness):
    h = harness()
    a41 = h.mount(minor=1)
    sfh = published(a41, b"src", b"abc")
    dfh, dsid, _ = a41.open(a41.root(), b"dst", create=True)
    anon = x.stateid4(0, bytes(12))
    assert status(copy, a41, sfh, anon, dfh, dsid) == x.NFS4ERR_NOTSUPP
    assert status(clone, a41, sfh, anon, dfh, dsid) == x.NFS4ERR_NOTSUPP
    h2 = harness(server_copy=False)
    a = h2.mount(minor=2)
    sfh = published(a, b"src", b"abc")
    dfh, dsid, _ = a.open(a.root(), b"dst", create=True)
    assert status(copy, a, sfh, anon, dfh, dsid) == x.NFS4ERR_NOTSUPP
    assert status(clone, a, sfh, anon, dfh, dsid) == x.NFS4ERR_NOTSUPP
    a.close_file(dfh, dsid)
    assert a.read_all(a.lookup("dst")) == b""


def read_plus(c, fh, sid, offset, count):
    r = c.call([op("PUTFH", fh), op("READ_PLUS", sid, offset, count)])[-1].value
    segs = []
    for s in r.rpr_contents:
        if s.tag == x.NFS4_CONTENT_DATA:
            segs.append(("data", s.value.d_offset, bytes(s.value.d_data)))
        else:
            segs.append(("hole", s.value.di_offset, s.value.di_length))
    return r.rpr_eof, segs


def test_read_plus_returns_data_and_hole_segments_of_the_version_read_reads(harness):
    h = harness()
    a, b = h.mount(minor=2), h.mount(minor=2)
    anon = x.stateid4(0, bytes(12))
    fh, sid, _ = a.open(a.root(), b"sparse", create=True)
    a.write(fh, sid, 0, b"a" * PAGE)
    a.write(fh, sid, 3 * PAGE, b"b" * 100)
    # the creating client reads its staged version; another client: STALE (rule 2)
    assert read_plus(a, fh, sid, 0, 1 << 20) == (True, [
        ("data", 0, b"a" * PAGE), ("hole", PAGE, 2 * PAGE), ("data", 3 * PAGE, b"b" * 100)])
    assert status(read_plus, b, fh, anon, 0, 10) == x.NFS4ERR_STALE
    a.close_file(fh, sid)
    # published: from the middle of a hole, bounded by the count
    assert read_plus(b, fh, anon, 2 * PAGE, PAGE + 10) == (False, [
        ("hole", 2 * PAGE, PAGE), ("data", 3 * PAGE, b"b" * 10)])
    assert read_plus(b, fh, anon, 3 * PAGE + 100, 10) == (True, [])
    assert read_plus(b, fh, anon, 1 << 40, 10) == (True, [])
    # READ_PLUS of the pieces is READ of the whole
    whole = bytearray()
    pos, eof = 0, False
    while not eof:
        eof, segs = read_plus(b, fh, anon, pos, 1000)
        for kind, off, v in segs:
            assert off == pos
            whole += v if kind == "data" else bytes(v)
            pos += len(v) if kind == "data" else v
    assert bytes(whole) == b.read_all(fh)
    a41 = h.mount(minor=1)
    assert status(read_plus, a41, fh, anon, 0, 10) == x.NFS4ERR_NOTSUPP


def test_a_copy_waits_for_nothing_when_empty_and_counts_metrics(harness):
    h = harness()
    a = h.mount(minor=2)
    sfh = published(a, b"empty", b"")
    dfh, dsid, _ = a.open(a.root(), b"dst", create=True)
    assert copy(a, sfh, x.stateid4(0, bytes(12)), dfh, dsid).cr_response.wr_count == 0
    a.close_file(dfh, dsid)
    assert a.read_all(a.lookup("dst")) == b""


@pytest.mark.parametrize("event", ["crash", "expire"])
def test_a_client_gone_mid_copy_stops_it_and_staging_follows_rules_6_and_7(harness, event):
    """The lifecycle acts on a version a copy writes only once the copy stopped: here the
    client's state goes while its copy is between two steps."""
    h = harness(copy_async=PAGE, lease_time=30)
    a = h.mount(minor=2, back_channel=True)
    h.server.copies.step = PAGE
    src = pattern(50 * PAGE, 8)
    sfh = published(a, b"src", src)
    dfh, dsid, _ = a.open(a.root(), b"dst", create=True)
    a.write(dfh, dsid, 0, b"acknowledged", stable=x.FILE_SYNC4)
    copies = h.server.copies
    seen = []

    def gone_after_first_step():
        # Runs on the event loop between the first and second step of the copy.
        store = h.store
        client = store.clients[a.clientid]
        seen.append(copies.busy(client.states[dsid.other].staging))
        if event == "crash":
            store.unfinished.crash(client.owner, client.verifier)
        else:
            store.expire_client(client)
    real = copies._stepped
    calls = []

    def stepped(copied, job, n):
        calls.append(copied)
        if len(calls) == 1:
            gone_after_first_step()
        return real(copied, job, n)
    copies._stepped = stepped
    a.call([op("PUTFH", sfh), op("SAVEFH"), op("PUTFH", dfh),
            copy_op(x.stateid4(0, bytes(12)), dsid, sync=False)])
    assert seen == [True] and len(calls) == 1  # it stopped after the step it was in
    assert copies.running_async() == 0
    if event == "crash":
        assert h.staged() == [] and h.events("discard")  # rule 6: discarded
    else:
        assert len(h.staged()) == 1 and h.events("retire")  # rule 7: retired, kept
        a.reconnect()
        a.exchange_id()
        a.create_session(back_channel=True)
        a.call([op("RECLAIM_COMPLETE", False)])
        fh2, sid2, _ = a.open(a.root(), b"dst", access=RW)  # the same incarnation resumes
        assert read_with(a, fh2, sid2) == src[:PAGE]  # the one step copied, kept
        a.close_file(fh2, sid2)
