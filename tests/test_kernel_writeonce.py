"""Whole-machine write-once cases with the real Linux client: a forked child, a crash (hard
reboot of the client machine) and silence (the machine frozen past its lease)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from server_proc import ServerProcess
from test_kernel_client import HERE, WORK
from test_kernel_client import vm as vm  # noqa: F401 - the fixture, shared
from test_write_once import staged_files, wait_for

pytestmark = pytest.mark.vm  # boots a VM: `python -m pytest -m "not vm"` leaves it out

OPTS = "actimeo=0,lookupcache=none"  # the guest polls for files the host creates


def start_vm(port, workload, vers="4.2", timeout=600):
    cmd = [sys.executable, str(HERE / "lc-run"), "--port", str(port), "--vers", vers, "--path", "/",
           "--workload", str(HERE / "workloads" / workload), "--quiet", "--timeout", str(timeout),
           "--work", str(WORK), "--opts", OPTS]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(p, timeout=600):
    out, _ = p.communicate(timeout=timeout)
    return p.returncode, out


def qemu_of(p) -> int:
    """The qemu process started by an lc-run process."""
    def find():
        for task in os.listdir(f"/proc/{p.pid}/task"):
            with open(f"/proc/{p.pid}/task/{task}/children") as f:
                for child in f.read().split():
                    with open(f"/proc/{child}/cmdline", "rb") as c:
                        if b"qemu-system" in c.read():
                            return int(child)
        return None
    return wait_for(find, what="qemu process")


def test_forked_child_exit_does_not_publish(vm, export):
    srv = ServerProcess(export).start()
    try:
        p = start_vm(srv.port, "fork")
        wait_for(lambda: (export / "marker1").exists() or p.poll() is not None, 600, "marker1")
        assert (export / "marker1").exists(), finish(p)[1]
        # The parent still has it open: not published, although a child process exited.
        assert not (export / "forked.txt").exists()
        assert len(staged_files(export)) == 1
        (export / "ack1").touch()
        rc, out = finish(p)
        assert rc == 0, out[-3000:] + srv.text()[-3000:]
        assert "@@LC PASS fork" in out
        assert (export / "forked.txt").read_text() == "parent-1\nchild\nparent-2\nparent-3\n"
    finally:
        srv.stop()


def test_client_crash_discards_unpublished_file(vm, export):
    srv = ServerProcess(export).start()
    try:
        p = start_vm(srv.port, "crash")
        wait_for(lambda: (export / "marker1").exists() or p.poll() is not None, 600, "marker1")
        assert (export / "marker1").exists(), finish(p)[1]
        (export / "ack1").touch()
        rc, out = finish(p)
        assert "@@LC PASS crashing" in out, out[-3000:]
        assert rc != 0  # the machine went down without powering off cleanly
        assert len(staged_files(export)) == 1  # kept until the client comes back
        assert not (export / "crashed.txt").exists()
        (export / "after-crash").touch()
        rc, out = finish(start_vm(srv.port, "crash"))
        assert rc == 0 and "@@LC PASS gone after reboot" in out, out[-3000:]
        assert staged_files(export) == []
        assert "rebooted: discarded unpublished file" in srv.text()
    finally:
        srv.stop()


def test_silent_machine_resumes_after_lease_expiry(vm, export):
    srv = ServerProcess(export, "--lease-time", "8").start()
    try:
        p = start_vm(srv.port, "silence")
        wait_for(lambda: (export / "marker1").exists() or p.poll() is not None, 600, "marker1")
        assert (export / "marker1").exists(), finish(p)[1]
        qemu = qemu_of(p)
        os.kill(qemu, signal.SIGSTOP)
        try:
            wait_for(lambda: "retired" in srv.text(), 120, "the lease to expire")
            assert not (export / "silent.txt").exists()
            assert len(staged_files(export)) == 1
        finally:
            os.kill(qemu, signal.SIGCONT)
        (export / "ack1").touch()
        rc, out = finish(p)
        assert rc == 0 and "@@LC PASS silence" in out, out[-3000:] + srv.text()[-4000:]
        assert (export / "silent.txt").read_text() == "before-silence\nafter-silence\n"
        assert staged_files(export) == []
    finally:
        srv.stop()
    _ = time
