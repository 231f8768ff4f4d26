"""The Linux kernel client (in QEMU) against POSIX permission rules, the quick start's defaults,
and a read delegation revoked while its machine is frozen (docs/semantics.md, docs/exports.md)."""

from __future__ import annotations

import os
import signal

import pytest

from nfsd.client import NfsClient, NfsError
from nfsd.xdr import nfs4 as x
from server_proc import ServerProcess
from test_kernel_client import _unavailable, lc_run
from test_kernel_client import vm as vm  # noqa: F401 - the fixture, shared
from test_kernel_writeonce import finish, qemu_of, start_vm
from test_write_once import wait_for

pytestmark = pytest.mark.vm  # boots a VM: `python -m pytest -m "not vm"` leaves it out


def _need_guest_python():
    if not os.path.exists("/usr/bin/python3"):
        _unavailable("/usr/bin/python3 is needed in the guest (--hostroot): apt-get install python3")


def test_posix_permissions_as_root_and_two_users(vm, export):
    """Set-id bits, sticky directories, chown, a write open outliving its mode, the parent's
    times after a create: as root and as users 1001 and 1002 of the client machine, with the
    client's default attribute caching (the directory times are what the creator's cache
    shows)."""
    _need_guest_python()
    srv = ServerProcess(export).start()
    try:
        r = lc_run(srv.port, "4.2", "perms", extra=("--hostroot", "--mem", "1G"))
    finally:
        srv.stop()
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "@@LC PERMS fail=0" in out, \
        "\n".join(l for l in out.splitlines() if "@@LC" in l) + "\n" + srv.text()[-3000:]
    assert "Traceback" not in srv.text()


def test_quick_start_squashes_root_and_lets_users_write(vm, export):
    """`nfsd serve DIR` as the README starts it (its defaults: this host's networks, root
    squashed, reserved ports), DIR made world-writable as the README says; the guest connects
    from a reserved port like any kernel client (tests/kernel/lc-run's relay)."""
    _need_guest_python()
    os.chmod(export, 0o1777)
    srv = ServerProcess(export, trusted=False).start()
    try:
        assert f"nfsd: export: {export}\t127.0.0.0/8(rw,root_squash,anonuid=65534," \
               f"anongid=65534,secure)" in srv.text()
        r = lc_run(srv.port, "4.2", "quickstart", extra=("--hostroot", "--mem", "1G"))
    finally:
        srv.stop()
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "@@LC QUICKSTART fail=0" in out, \
        "\n".join(l for l in out.splitlines() if "@@LC" in l) + "\n" + srv.text()[-3000:]
    st = os.stat(export / "by-root")
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert os.stat(export / "by-user").st_uid == 1001


def test_a_frozen_machines_read_delegation_is_revoked_and_it_recovers(vm, export):
    (export / "deleg.txt").write_text("old\n")
    srv = ServerProcess(export, *(["-v"] if os.environ.get("DBG") else [])).start()
    try:
        p = start_vm(srv.port, "revoke")
        wait_for(lambda: (export / "marker1").exists() or p.poll() is not None, 600, "marker1")
        assert (export / "marker1").exists(), finish(p)[1]
        qemu = qemu_of(p)
        os.kill(qemu, signal.SIGSTOP)
        try:
            c = NfsClient(*srv.address).mount()
            root = c.root()

            def opened():
                try:
                    return c.open(root, b"deleg.txt", access=x.OPEN4_SHARE_ACCESS_BOTH)
                except NfsError as e:
                    assert e.status == x.NFS4ERR_DELAY, e  # recalled, not yet revoked
                    return None
            fh, sid, _ = wait_for(opened, 60, "the delegation to be revoked")
            c.setattr(fh, {x.FATTR4_SIZE: 0}, stateid=sid)
            c.write(fh, sid, 0, b"new\n", stable=x.FILE_SYNC4)
            c.close_file(fh, sid)
            c.close()
            assert "revoked: not returned" in srv.text()
        finally:
            os.kill(qemu, signal.SIGCONT)
        (export / "ack1").touch()
        rc, out = finish(p)
        if os.environ.get("DBG"):
            open("/tmp/frozen-server.log", "w").write(srv.text() + out)
        assert rc == 0 and "@@LC PASS revoked" in out, out[-3000:] + srv.text()[-4000:]
        assert (export / "deleg.txt").read_text() == "new\n"
    finally:
        srv.stop()
    assert "Traceback" not in srv.text()
