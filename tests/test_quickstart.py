"""`nfsd serve DIR`'s defaults (docs/exports.md, the quick start): who may mount, root squashed,
reserved source ports, the start-up line that says so, and the flags that widen or narrow it."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys

import pytest

from nfsd.client import NfsClient, NfsError
from nfsd.localnet import local_networks
from nfsd.xdr import nfs4 as x
from server_proc import ServerProcess

SQUASHED = "rw,root_squash,anonuid=65534,anongid=65534,secure"


def export_lines(srv):
    return [l.split("nfsd: export: ", 1)[1] for l in srv.text().splitlines()
            if l.startswith("nfsd: export: ")]


def privileged(srv, **kw):
    """A client on a reserved source port (the tests run as root), as a kernel client is."""
    for port in range(1000, 700, -1):
        try:
            return NfsClient(*srv.address, source=("127.0.0.1", port), **kw).mount()
        except OSError:
            continue
    pytest.skip("no free reserved port")


def test_the_defaults_are_this_hosts_networks_root_squashed_secure(export):
    export.chmod(0o1777)
    srv = ServerProcess(export, trusted=False).start()
    try:
        [line] = export_lines(srv)
        path, rules = line.split("\t")
        assert path == str(export)
        words = rules.split(" ")
        assert f"127.0.0.0/8({SQUASHED})" in words and f"::1/128({SQUASHED})" in words
        assert {w.split("(")[0] for w in words} == {str(n) for n in local_networks()}
        # an ordinary client program (port above 1023) gets nothing
        with NfsClient(*srv.address) as c:
            c.mount()
            with pytest.raises(NfsError) as e:
                c.root()
            assert e.value.status == x.NFS4ERR_ACCESS
        # a kernel-like client does; its root is nobody here
        c = privileged(srv)
        c.create_file(c.root(), b"by-root", b"x")
        st = os.stat(export / "by-root")
        assert (st.st_uid, st.st_gid) == (65534, 65534)
        with pytest.raises(NfsError) as e:
            c.setattr(c.lookup("by-root"), {x.FATTR4_OWNER: b"0"})
        assert e.value.status == x.NFS4ERR_PERM
        c.close()
        u = privileged(srv, uid=1000, gid=1000)
        u.create_file(u.root(), b"by-user", b"y")
        assert os.stat(export / "by-user").st_uid == 1000
        u.close()
    finally:
        srv.stop()


def test_flags_widen_and_narrow_it(export):
    srv = ServerProcess(export, "--allow", "127.0.0.1", "--allow", "10.0.0.0/8", "--ro",
                        "--no-root-squash", "--insecure", trusted=False).start()
    try:
        assert export_lines(srv) == [f"{export}\t127.0.0.1(ro,no_root_squash,insecure) "
                                     "10.0.0.0/8(ro,no_root_squash,insecure)"]
        c = NfsClient(*srv.address).mount()
        with pytest.raises(NfsError) as e:
            c.create_file(c.root(), b"f")
        assert e.value.status == x.NFS4ERR_ROFS
        c.close()
        # 127.0.0.2 is not in the list: the export does not exist for it
        with NfsClient(*srv.address, source=("127.0.0.2", 0)) as o:
            o.mount()
            with pytest.raises(NfsError) as e:
                o.root()
            assert e.value.status == x.NFS4ERR_ACCESS
    finally:
        srv.stop()
    srv = ServerProcess(export, "--allow", "*", "--anonuid", "1234", "--anongid", "4321",
                        trusted=False).start()
    try:
        assert export_lines(srv) == [f"{export}\t*(rw,root_squash,anonuid=1234,anongid=4321,secure)"]
    finally:
        srv.stop()


@pytest.mark.parametrize("args,message", [
    (["--exports", "/dev/null", "--allow", "*"], "for `nfsd serve DIR`"),
    (["DIR", "--allow", "example.com"], "not an address"),
    (["DIR", "--anonuid", "-1"], "--anonuid"),
])
def test_bad_quick_start_flags_are_refused(tmp_path, args, message):
    args = [str(tmp_path) if a == "DIR" else a for a in args]
    r = subprocess.run([sys.executable, "-m", "nfsd", "serve", *args, "--port", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode in (1, 2) and message in r.stderr and "Traceback" not in r.stderr


def test_local_networks_are_on_link_routes_and_loopback(tmp_path):
    (tmp_path / "route").write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"     # default via gw
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"     # 192.0.2.0/24
        "eth1\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n"     # 10.0.0.0/8
        "eth1\t0000A8C0\t0101A8C0\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0\n"     # via a router
        "ppp0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n")    # default via device
    (tmp_path / "route6").write_text(
        "fd000000000000000000000000000000 40 " + "0" * 32 + " 00 " + "0" * 32 +
        " 00000100 00000001 00000000 00000001     eth0\n"
        "00000000000000000000000000000000 00 " + "0" * 32 + " 00 fd000000000000000000000000000001"
        " 00000400 00000002 00000000 00000003     eth0\n"
        "fd000000000000000000000000000002 80 " + "0" * 32 + " 00 " + "0" * 32 +
        " 00000000 00000003 00000000 80200001     eth0\n"
        "ff000000000000000000000000000000 08 " + "0" * 32 + " 00 " + "0" * 32 +
        " 00000100 00000003 00000000 00000001     eth0\n")
    nets = local_networks(str(tmp_path / "route"), str(tmp_path / "route6"))
    assert nets == [ipaddress.ip_network(n) for n in
                    ("10.0.0.0/8", "127.0.0.0/8", "192.0.2.0/24", "::1/128", "fd00::/64")]
    assert local_networks(str(tmp_path / "none"), str(tmp_path / "none6")) == \
        [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
