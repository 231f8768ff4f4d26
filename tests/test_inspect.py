"""`nfsd inspect`: read-only view of unfinished files and clients, with exit statuses.

The server is the in-process harness over a real directory (`harness(directory=...)`, a
LocalBackend writing `.nfsd/` as `nfsd serve` does) on a fake clock, so a file is retired
by advancing time past its client's lease; `nfsd inspect` is the real command."""

from __future__ import annotations

import json
import subprocess
import sys

from nfsd.xdr import nfs4 as x


def inspect(export, *args):
    r = subprocess.run([sys.executable, "-m", "nfsd", "inspect", str(export), *args],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def test_inspect_lists_active_and_retired_files_and_clients(tmp_path, harness):
    export = tmp_path / "export"
    h = harness(directory=export)  # lease 90 s, a housekeeping tick every 5 s
    quiet = h.mount(owner=b"quiet-client")
    fh, sid, _ = quiet.open(quiet.root(), b"abandoned.bin", create=True)
    quiet.write(fh, sid, 0, b"x" * 1000, stable=x.FILE_SYNC4)
    h.advance(95)  # quiet's lease ran out at the last tick: its file is retired
    assert len(h.events("retire")) == 1
    busy = h.mount(owner=b"busy-client")
    d = busy.mkdir(busy.root(), b"dir")
    fh2, sid2, _ = busy.open(d, b"inprogress.txt", create=True)
    busy.write(fh2, sid2, 0, b"hello", stable=x.FILE_SYNC4)
    h.advance(5)  # the next tick writes the status snapshot with the busy client
    rc, out, _ = inspect(export, "--json")
    st = json.loads(out)
    assert rc == 0 and st["server_running"] and st["problems"] == []
    files = {f["name"]: f for f in st["files"]}
    assert files["/dir/inprogress.txt"]["state"] == "active"
    assert files["/dir/inprogress.txt"]["staged_size"] == 5
    assert files["/dir/inprogress.txt"]["client"] == "busy-client"
    assert files["/abandoned.bin"]["state"] == "retired"
    assert files["/abandoned.bin"]["staged_size"] == 1000
    owners = {c["owner"]: c for c in st["status"]["clients"]}
    assert "quiet-client" not in owners  # its lease is over
    assert owners["busy-client"]["lease"] == "active" and owners["busy-client"]["writing"] == 1
    rc, out, _ = inspect(export)
    assert rc == 0 and "inprogress.txt" in out and "retired" in out
    busy.close_file(fh2, sid2)


def test_inspect_reports_problems_with_exit_status_3(tmp_path, harness):
    export = tmp_path / "export"
    harness(directory=export).stop()  # a state directory as a server leaves it
    (export / ".nfsd" / "staging" / "0123456789abcdef.rec").write_text("{not json")
    rc, out, _ = inspect(export)
    assert rc == 3 and "unreadable record" in out
    rc, out, _ = inspect(export, "--json")
    assert rc == 3 and json.loads(out)["problems"]


def test_inspect_exit_statuses_for_unreadable_and_usage(tmp_path):
    assert inspect(tmp_path / "missing")[0] == 1
    r = subprocess.run([sys.executable, "-m", "nfsd", "inspect"], capture_output=True, timeout=60)
    assert r.returncode == 2
