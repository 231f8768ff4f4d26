"""Server-side copy with the stock Linux client (NFSv4.2, --hostroot for coreutils): `cp` of a
256 MiB file is done by the server (COPY, or CLONE where the file system has reflink), the
bytes match; `cp --reflink=always` works where reflink is; a sparse file reads back the same."""

from __future__ import annotations

import re
import urllib.request

import pytest

from reflink import shared_bytes, xfs_reflink
from server_proc import ServerProcess
from test_kernel_client import _unavailable, lc_run
from test_kernel_client import vm as vm  # noqa: F401 - the fixture, shared

pytestmark = pytest.mark.vm  # boots a VM: `python -m pytest -m "not vm"` leaves it out

MIB = 1 << 20


def metrics(srv) -> dict[str, float]:
    m = re.search(r"nfsd: metrics on (http://127\.0\.0\.1:\d+/metrics)\n", srv.text())
    text = urllib.request.urlopen(m.group(1), timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def run_copy(export, *extra):
    srv = ServerProcess(export, "--metrics", "127.0.0.1:0", *extra).start()
    try:
        r = lc_run(srv.port, "4.2", "copy", timeout=900, extra=("--hostroot", "--mem", "1G"))
        out = r.stdout + r.stderr
        assert r.returncode == 0 and "@@LC PASS copy workload done" in out, \
            f"{out[-4000:]}\n--- server ---\n{srv.text()[-3000:]}"
        return out, metrics(srv)
    finally:
        srv.stop()


def test_cp_is_a_server_side_copy(vm, tmp_path):
    import shutil
    if not shutil.which("cp"):
        _unavailable("coreutils are needed in the guest (--hostroot)")
    export = tmp_path / "export"
    out, m = run_copy(export)
    assert "@@LC PASS cp bytes match" in out and "@@LC PASS sparse bytes match" in out
    assert m['nfsd_operations_total{op="COPY"}'] >= 1
    assert m["nfsd_copied_bytes_total"] >= 256 * MIB
    assert m.get('nfsd_written_bytes_total', 0) < 300 * MIB  # src only: dst never went through
    assert (export / "dst").read_bytes() == (export / "src").read_bytes()
    # this test's file system (ext4 here) has no reflink: --reflink=always is refused
    assert "@@LC REFLINK unsupported" in out or "@@LC PASS reflink bytes match" in out


@pytest.fixture
def xfs(tmp_path):
    with xfs_reflink(tmp_path / "xfs-image", size_mib=1024) as mnt:
        yield mnt


def test_cp_reflink_always_shares_blocks_on_xfs(vm, xfs):
    export = xfs / "export"
    out, m = run_copy(export)
    assert "@@LC PASS cp bytes match" in out and "@@LC PASS reflink bytes match" in out
    assert m['nfsd_operations_total{op="CLONE"}'] >= 2  # cp tries FICLONE first, then -r=always
    assert m["nfsd_clones_total"] >= 2
    for name in ("dst", "reflinked"):
        assert shared_bytes(export / name) == 256 * MIB
