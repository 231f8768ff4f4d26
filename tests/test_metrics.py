"""`nfsd serve --metrics ADDR:PORT`: Prometheus counters, histograms and gauges (nfsd/metrics.py)."""

from __future__ import annotations

import os
import re
import urllib.request

import pytest

from backend.fsinfo import fsync_persists_new_entry
from nfsd.client import NfsClient, NfsError
from nfsd.metrics import BUCKETS, Metrics, parse_address
from nfsd.xdr import nfs4 as x

from server_proc import ServerProcess

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402


def _scrape(port) -> dict:
    """{(sample name, frozenset(labels)): value}"""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _v(m, name, **labels):
    return m.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def served(tmp_path):
    """A server with metrics on a port of its choosing: it prints the address before it says
    it is serving (the readiness line ServerProcess waits for), so it is known at once."""
    srv = ServerProcess(tmp_path / "export", "--metrics", "127.0.0.1:0").start()
    try:
        m = re.search(r"nfsd: metrics on http://127\.0\.0\.1:(\d+)/metrics\n", srv.text())
        assert m, srv.text()
        yield srv, int(m.group(1))
    finally:
        srv.stop()


def test_counters_histograms_and_gauges_move(served, tmp_path):
    srv, mport = served
    before = _scrape(mport)
    assert _v(before, "nfsd_clients") == 0
    assert _v(before, "process_resident_memory_bytes") > 0

    c = NfsClient(*srv.address).mount()
    try:
        root = c.root()
        fh, sid, _ = c.open(root, b"f", create=True)
        c.write(fh, sid, 0, b"x" * 5000, stable=x.FILE_SYNC4)  # finishes in a thread
        during = _scrape(mport)
        assert _v(during, "nfsd_clients") == 1
        assert _v(during, "nfsd_sessions") == 1
        assert _v(during, "nfsd_connections") == 1
        assert _v(during, "nfsd_open_files") == 1
        assert _v(during, "nfsd_open_states") == 1
        assert _v(during, "nfsd_files_under_construction") == 1
        assert _v(during, "nfsd_retired_files") == 0
        c.close_file(fh, sid)
        data, _ = c.read(fh)
        assert len(data) == 5000
        with pytest.raises(NfsError):
            c.lookup("no-such-name")
        after = _scrape(mport)
    finally:
        c.close()

    assert _v(after, "nfsd_files_under_construction") == 0
    # the publish (CLOSE) asked for one directory fsync, and so did the new file's staging
    # entry (FILE_SYNC write) unless the file's own fsync covers it (ext4, xfs, btrfs);
    # none was shared (one client)
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        entry = 0 if fsync_persists_new_entry(fd) else 1
    finally:
        os.close(fd)
    asked = _v(after, "nfsd_directory_fsync_requests_total") - \
        _v(before, "nfsd_directory_fsync_requests_total")
    done = _v(after, "nfsd_directory_fsyncs_total") - _v(before, "nfsd_directory_fsyncs_total")
    assert asked == done == 1 + entry
    assert _v(after, "nfsd_fsync_seconds") > 0
    assert _v(after, "nfsd_open_files") == 0
    assert _v(after, "nfsd_written_bytes_total") == 5000
    assert _v(after, "nfsd_read_bytes_total") == 5000
    for op in ("EXCHANGE_ID", "CREATE_SESSION", "OPEN", "WRITE", "CLOSE", "READ", "LOOKUP"):
        assert _v(after, "nfsd_operations_total", op=op) >= 1, op
        assert _v(after, "nfsd_operation_seconds_count", op=op) == \
            _v(after, "nfsd_operations_total", op=op)
        assert _v(after, "nfsd_operation_seconds_bucket", op=op, le="+Inf") == \
            _v(after, "nfsd_operations_total", op=op)
        assert _v(after, "nfsd_operation_seconds_sum", op=op) > 0
    # one SEQUENCE per 4.1 COMPOUND after the session exists
    assert _v(after, "nfsd_operations_total", op="SEQUENCE") >= 6
    assert _v(after, "nfsd_operation_errors_total", op="LOOKUP", status="NFS4ERR_NOENT") == 1
    assert _v(after, "nfsd_compounds_total", status="NFS4ERR_NOENT") == 1
    assert _v(after, "nfsd_compounds_total", status="NFS4_OK") >= 6
    # buckets are cumulative
    les = [repr(b) for b in BUCKETS] + ["+Inf"]
    counts = [_v(after, "nfsd_operation_seconds_bucket", op="PUTFH", le=le) for le in les]
    assert counts == sorted(counts) and counts[-1] >= 3


def test_op_done_counts_without_a_server():
    class Run:
        t = 0.0

    clock = iter([0.002, 0.0021, 10.0]).__next__
    m = Metrics(server=None, clock=clock)
    r = Run()
    m.op_done(r, x.OP_PUTFH, 0, None)  # 2 ms
    m.op_done(r, x.OP_GETATTR, 0, None)  # 0.1 ms
    m.op_done(r, x.OP_LOOKUP, x.NFS4ERR_NOENT, None)  # ~10 s
    assert sum(m.hist[x.OP_PUTFH][:-1]) == 1
    assert m.hist[x.OP_PUTFH][BUCKETS.index(0.0025)] == 1
    assert m.hist[x.OP_GETATTR][BUCKETS.index(0.0001)] == 1
    assert m.hist[x.OP_LOOKUP][BUCKETS.index(10.0)] == 1
    assert m.errors == {(x.OP_LOOKUP, x.NFS4ERR_NOENT): 1}


def test_parse_address():
    assert parse_address("127.0.0.1:9100") == ("127.0.0.1", 9100)
    assert parse_address("9100") == ("127.0.0.1", 9100)
    assert parse_address("[::1]:9100") == ("::1", 9100)
    assert parse_address("0.0.0.0:0") == ("0.0.0.0", 0)
    with pytest.raises(ValueError):
        parse_address("host:notaport")
