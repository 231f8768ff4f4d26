"""`nfsd inspect`: read-only view of unfinished files and clients, with exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys

from nfsd.client import NfsClient
from nfsd.xdr import nfs4 as x
from server_proc import ServerProcess
from test_write_once import staged_files, wait_for


def inspect(export, *args):
    r = subprocess.run([sys.executable, "-m", "nfsd", "inspect", str(export), *args],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def test_inspect_lists_active_and_retired_files_and_clients(tmp_path):
    export = tmp_path / "export"
    srv = ServerProcess(export, "--lease-time", "2").start()
    try:
        quiet = NfsClient(*srv.address, owner=b"quiet-client").mount()
        fh, sid, _ = quiet.open(quiet.root(), b"abandoned.bin", create=True)
        quiet.write(fh, sid, 0, b"x" * 1000, stable=x.FILE_SYNC4)
        wait_for(lambda: "retired" in srv.text(), what="retirement")
        busy = NfsClient(*srv.address, owner=b"busy-client").mount()
        d = busy.mkdir(busy.root(), b"dir")
        fh2, sid2, _ = busy.open(d, b"inprogress.txt", create=True)
        busy.write(fh2, sid2, 0, b"hello", stable=x.FILE_SYNC4)

        def snapshot():
            rc, out, _ = inspect(export, "--json")
            st = json.loads(out)
            owners = {c["owner"] for c in (st["status"] or {}).get("clients", [])}
            return (rc, st) if "busy-client" in owners else None
        rc, st = wait_for(snapshot, what="status snapshot with the busy client")
        assert rc == 0 and st["server_running"] and st["problems"] == []
        files = {f["name"]: f for f in st["files"]}
        assert files["/dir/inprogress.txt"]["state"] == "active"
        assert files["/dir/inprogress.txt"]["staged_size"] == 5
        assert files["/dir/inprogress.txt"]["client"] == "busy-client"
        assert files["/abandoned.bin"]["state"] == "retired"
        assert files["/abandoned.bin"]["staged_size"] == 1000
        busy_c = [c for c in st["status"]["clients"] if c["owner"] == "busy-client"][0]
        assert busy_c["lease"] == "active" and busy_c["writing"] == 1
        rc, out, _ = inspect(export)
        assert rc == 0 and "inprogress.txt" in out and "retired" in out
        busy.close_file(fh2, sid2)
    finally:
        srv.stop()


def test_inspect_reports_problems_with_exit_status_3(tmp_path):
    export = tmp_path / "export"
    srv = ServerProcess(export).start()
    srv.stop()
    (export / ".nfsd" / "staging" / "0123456789abcdef.rec").write_text("{not json")
    rc, out, _ = inspect(export)
    assert rc == 3 and "unreadable record" in out
    rc, out, _ = inspect(export, "--json")
    assert rc == 3 and json.loads(out)["problems"]


def test_inspect_exit_statuses_for_unreadable_and_usage(tmp_path):
    assert inspect(tmp_path / "missing")[0] == 1
    r = subprocess.run([sys.executable, "-m", "nfsd", "inspect"], capture_output=True, timeout=60)
    assert r.returncode == 2
    _ = staged_files
