"""The stock Linux kernel NFS client (in QEMU) mounts the server and does ordinary file work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from server_proc import ServerProcess

pytestmark = pytest.mark.vm  # boots a VM: `python -m pytest -m "not vm"` leaves it out

HERE = Path(__file__).parent / "kernel"
WORK = Path(os.environ.get("LC_WORK", "/tmp/linux-client"))
REQUIRE = os.environ.get("NFSD_KERNEL_TESTS") == "require"


def _unavailable(why: str):
    if REQUIRE:
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="session")
def vm():
    if not shutil.which("qemu-system-x86_64"):
        _unavailable("qemu-system-x86_64 not installed (apt-get install qemu-system-x86 busybox-static)")
    if not shutil.which("busybox"):
        _unavailable("busybox not installed (apt-get install busybox-static)")
    if not (WORK / "out" / "vmlinuz").exists() or not (WORK / "out" / "initramfs.cpio.gz").exists():
        r = subprocess.run(["bash", str(HERE / "build.sh")], env=dict(os.environ, LC_WORK=str(WORK)),
                           capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            _unavailable("building the client VM failed:\n" + r.stderr[-3000:])
    return WORK


def lc_run(port: int, vers: str, workload: str, timeout: int = 600, extra=()):
    cmd = [sys.executable, str(HERE / "lc-run"), "--port", str(port), "--vers", vers, "--path", "/",
           "--workload", str(HERE / "workloads" / workload), "--quiet", "--timeout", str(timeout),
           "--work", str(WORK), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)


@pytest.mark.parametrize("vers", ["4.0", "4.1", "4.2"])
def test_smoke(vm, tmp_path, vers):
    export = tmp_path / "export"
    srv = ServerProcess(export).start()
    try:
        r = lc_run(srv.port, vers, "smoke")
    finally:
        srv.stop()
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"smoke on NFSv{vers} failed:\n{out[-4000:]}\n--- server log ---\n{srv.text()[-4000:]}"
    assert "@@LC SMOKE pass=" in out and " fail=0" in out
    # Nothing the client wrote is left unpublished: every CLOSE published its file.
    leftovers = [p for p in (export / ".nfsd" / "staging").iterdir()] if (export / ".nfsd" / "staging").exists() else []
    assert leftovers == [], leftovers


@pytest.mark.parametrize("vers", ["4.0", "4.2"])
def test_two_process_lockf_conflict(vm, tmp_path, vers):
    if not os.path.exists("/usr/bin/python3"):
        _unavailable("/usr/bin/python3 is needed in the guest (--hostroot): apt-get install python3")
    srv = ServerProcess(tmp_path / "export").start()
    try:
        r = lc_run(srv.port, vers, "lockf", extra=("--hostroot", "--mem", "1G"))
    finally:
        srv.stop()
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"{out[-4000:]}\n--- server ---\n{srv.text()[-3000:]}"
    assert "@@LC PASS conflicting lock refused" in out and "@@LC PASS granted after unlock" in out


def test_smoke_through_an_exports_file(vm, tmp_path):
    """`nfsd serve --exports FILE`: the Linux client mounts one export below the pseudo root."""
    data = tmp_path / "srv" / "data"
    data.mkdir(parents=True)
    (tmp_path / "srv" / "other").mkdir()
    exports = tmp_path / "exports"
    exports.write_text(f"{data} 127.0.0.1(rw,no_root_squash,insecure)\n"
                       f"{tmp_path}/srv/other *(ro,insecure)\n")
    srv = ServerProcess(None, "--exports", str(exports)).start()
    try:
        cmd = [sys.executable, str(HERE / "lc-run"), "--port", str(srv.port), "--vers", "4.1",
               "--path", str(data), "--workload", str(HERE / "workloads" / "smoke"), "--quiet",
               "--timeout", "600", "--work", str(WORK)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=660)
    finally:
        srv.stop()
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"{out[-4000:]}\n--- server ---\n{srv.text()[-3000:]}"
    assert " fail=0" in out
