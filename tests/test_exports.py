"""Exports: the exports file, the pseudo root, host lists, ro/rw, squashing, secure ports,
reload on SIGHUP, and access control by AUTH_SYS identity, over real sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from nfsd.client import NfsClient, NfsError, op
from nfsd.exports import ExportsError, parse_exports
from nfsd.rpc.message import AuthSys
from nfsd.xdr import nfs4 as x
from inproc import InProcessServer
from server_proc import ServerProcess
from test_write_once import status, wait_for

OTHER_HOST = "127.0.0.2"  # a loopback address outside the export lists


def write_exports(path, text):
    path.write_text(text)
    return path


def check(path, process=False):
    """`nfsd exports check PATH`: (exit status, output). In this process unless `process`
    (the command's own code either way; a process costs half a second)."""
    if process:
        r = subprocess.run([sys.executable, "-m", "nfsd", "exports", "check", str(path)],
                           capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout + r.stderr
    import contextlib
    import io

    from nfsd.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(["exports", "check", str(path)])
    return rc, out.getvalue()


# ---------------------------------------------------------------- the file
@pytest.mark.parametrize("line,reason", [
    ("{d} *(rw,bogus)", "unknown option 'bogus'"),
    ("{d}/missing *(rw)", "no such directory"),
    ("{d} somehost.example(rw)", "host names are not resolved"),
    ("{d} @group(rw)", "netgroups are not supported"),
    ("{d} *(rw,sec=krb5)", "sec=krb5 is not supported"),
    ("{d} *(rw,anonuid=x)", "anonuid needs a number"),
    ("relative *(rw)", "must be absolute"),
    ("{d}", "no clients"),
    ("{d} *(rw", "unbalanced parenthesis"),
])
def test_bad_exports_files_name_the_line(tmp_path, line, reason):
    d = tmp_path / "d"
    d.mkdir()
    f = write_exports(tmp_path / "exports", "# comment\n\n" + line.format(d=d) + "\n")
    with pytest.raises(ExportsError) as e:
        parse_exports(str(f))
    assert e.value.line == 3 and reason in str(e.value)
    rc, out = check(f)
    assert rc == 1 and ":3:" in out and reason in out


def test_overlapping_and_duplicate_exports_are_refused(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    f = write_exports(tmp_path / "exports", f"{tmp_path}/a *(ro)\n{tmp_path}/a/b *(ro)\n")
    with pytest.raises(ExportsError, match="inside"):
        parse_exports(str(f))
    f = write_exports(tmp_path / "exports", f"{tmp_path}/a *(ro)\n{tmp_path}/a 1.2.3.4(rw)\n")
    with pytest.raises(ExportsError, match="exported twice"):
        parse_exports(str(f))


def test_serve_refuses_a_bad_exports_file_with_the_line(tmp_path):
    f = write_exports(tmp_path / "exports", f"{tmp_path} *(rw,nosuchoption)\n")
    r = subprocess.run([sys.executable, "-m", "nfsd", "serve", "--exports", str(f), "--port", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and ":1:" in r.stderr and "nosuchoption" in r.stderr


def test_serve_on_a_port_in_use_says_so(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for extra in ([], ["--metrics", f"127.0.0.1:{port}"]):
            main_port = str(port) if not extra else "0"
            r = subprocess.run([sys.executable, "-m", "nfsd", "serve", str(tmp_path / "d"),
                                "--bind", "127.0.0.1", "--port", main_port, *extra],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 1, r.stderr
            assert f"127.0.0.1:{port}" in r.stderr and "in use" in r.stderr, r.stderr
            assert "Traceback" not in r.stderr


def test_good_file_check_and_defaults(tmp_path):
    (tmp_path / "data").mkdir()
    f = write_exports(tmp_path / "exports",
                      f"{tmp_path}/data -rw,insecure 10.0.0.0/8(root_squash) 127.0.0.1(no_root_squash) \\\n"
                      "   ::1 *(ro)\n")
    rc, out = check(f, process=True)
    assert rc == 0, out
    e = parse_exports(str(f))[0]
    assert [m.text for m, _ in e.rules] == ["10.0.0.0/8", "127.0.0.1", "::1", "*"]
    assert e.options_for("10.1.2.3").rw and e.options_for("10.1.2.3").root_squash
    assert not e.options_for("127.0.0.1").root_squash
    assert not e.options_for("192.0.2.1").rw  # * (ro)
    assert e.options_for("::ffff:127.0.0.1") is not None


# ---------------------------------------------------------------- serving exports
@pytest.fixture
def tree(tmp_path):
    for p in ("srv/data", "srv/lab", "srv/ro", "srv/private", "srv/secure"):
        (tmp_path / p).mkdir(parents=True)
    (tmp_path / "srv/data/hello.txt").write_text("hello")
    (tmp_path / "srv/ro/readme").write_text("read only")
    os.chmod(tmp_path / "srv/data", 0o777)
    os.chmod(tmp_path / "srv/private", 0o777)
    return tmp_path


def exports_text(t):
    return (f"{t}/srv/data 127.0.0.1(rw,no_root_squash,insecure)\n"
            f"{t}/srv/lab 127.0.0.1(rw,all_squash,anonuid=4321,anongid=4322,insecure)\n"
            f"{t}/srv/ro *(ro,insecure)\n"
            f"{t}/srv/private {OTHER_HOST}(rw,insecure)\n"
            f"{t}/srv/secure 127.0.0.1(rw,no_root_squash)\n")


@pytest.fixture
def served(tree, reactor_thread):
    """`nfsd serve --exports FILE` in this process (tests/inproc.py)."""
    f = write_exports(tree / "exports", exports_text(tree))
    srv = InProcessServer(reactor_thread, None, exports_file=str(f)).start()
    yield srv, tree, f
    srv.stop()
    srv.check()


@pytest.fixture
def served_process(tree):
    """`nfsd serve --exports FILE` as a process, for what needs one (SIGHUP)."""
    f = write_exports(tree / "exports", exports_text(tree))
    srv = ServerProcess(None, "--exports", str(f)).start()
    yield srv, tree, f
    srv.stop()
    assert "Traceback" not in srv.text(), srv.text()


def mount(srv, **kw):
    return NfsClient(*srv.address, **kw).mount()


def names(c, fh):
    return sorted(n for n, _, _ in c.readdir(fh))


def test_pseudo_root_shows_the_exports_this_client_may_use(served):
    srv, t, _ = served
    c = mount(srv)
    path = [comp for comp in str(t).split("/") if comp]
    fh = c.root()
    for comp in path:
        assert names(c, fh) == [comp.encode()]
        fh = c.lookup(comp, base=fh)
    fh = c.lookup("srv", base=fh)
    # private is for 127.0.0.2 only: this client does not see it
    assert names(c, fh) == [b"data", b"lab", b"ro", b"secure"]
    data = c.lookup(f"{t}/srv/data")
    assert c.read_all(c.lookup("hello.txt", base=data)) == b"hello"
    # the export root is another file system (the Linux client mounts it on the way)
    fs_pseudo = c.getattr(fh, (x.FATTR4_FSID,))[x.FATTR4_FSID]
    fs_data = c.getattr(data, (x.FATTR4_FSID,))[x.FATTR4_FSID]
    assert fs_pseudo != fs_data
    # the pseudo file system cannot be changed
    assert status(c.mkdir, fh, b"new") == x.NFS4ERR_ROFS
    # LOOKUPP climbs out of an export into the pseudo file system
    up = c.call([op("PUTFH", data), op("LOOKUPP"), op("GETFH")])[-1].value.object
    assert up == fh


def test_client_outside_the_host_list_gets_no_data(served):
    srv, t, _ = served
    insider = mount(srv, source=(OTHER_HOST, 0))
    private = insider.lookup(f"{t}/srv/private")
    insider.create_file(private, b"secret", b"for 127.0.0.2 only")
    secret = insider.lookup("secret", base=private)
    outsider = mount(srv)
    assert status(outsider.lookup, f"{t}/srv/private") == x.NFS4ERR_NOENT
    # a captured filehandle does not help
    assert status(outsider.read, secret) == x.NFS4ERR_ACCESS
    assert status(outsider.getattr, private) == x.NFS4ERR_ACCESS


def test_read_only_export_refuses_every_change(served):
    srv, t, _ = served
    c = mount(srv)
    ro = c.lookup(f"{t}/srv/ro")
    f = c.lookup("readme", base=ro)
    assert c.read_all(f) == b"read only"
    assert status(c.mkdir, ro, b"d") == x.NFS4ERR_ROFS
    assert status(c.open, ro, b"new", create=True) == x.NFS4ERR_ROFS
    assert status(c.open, ro, b"readme", access=x.OPEN4_SHARE_ACCESS_BOTH) == x.NFS4ERR_ROFS
    assert status(c.remove, ro, b"readme") == x.NFS4ERR_ROFS
    assert status(c.setattr, f, {x.FATTR4_MODE: 0o600}) == x.NFS4ERR_ROFS
    assert status(c.rename, ro, b"readme", ro, b"other") == x.NFS4ERR_ROFS
    assert status(c.link, f, ro, b"hard") == x.NFS4ERR_ROFS
    acc = c.call([op("PUTFH", f), op("ACCESS", x.ACCESS4_MODIFY | x.ACCESS4_READ)])[-1].value
    assert acc.access == x.ACCESS4_READ
    assert (t / "srv/ro/readme").read_text() == "read only"


def test_squashing(served):
    srv, t, _ = served
    root = mount(srv)  # uid 0
    data = root.lookup(f"{t}/srv/data")
    root.create_file(data, b"by-root", b"x")
    assert os.stat(t / "srv/data/by-root").st_uid == 0  # no_root_squash
    user = mount(srv, uid=1000, gid=1000)
    lab = user.lookup(f"{t}/srv/lab")
    os.chmod(t / "srv/lab", 0o777)
    user.create_file(lab, b"by-user", b"y")
    st = os.stat(t / "srv/lab/by-user")
    assert (st.st_uid, st.st_gid) == (4321, 4322)  # all_squash with anonuid/anongid


def test_secure_export_wants_a_privileged_port(served):
    srv, t, _ = served
    c = mount(srv)
    assert status(c.lookup, f"{t}/srv/secure") == x.NFS4ERR_ACCESS
    for port in range(700, 1000):  # the test runs as root: bind a reserved source port
        try:
            p = mount(srv, source=("127.0.0.1", port))
            break
        except OSError:
            continue
    else:
        pytest.skip("no free privileged port")
    fh = p.lookup(f"{t}/srv/secure")
    p.create_file(fh, b"ok", b"privileged")
    assert (t / "srv/secure/ok").read_text() == "privileged"


def test_reload_on_sighup_keeps_clients(served_process):
    srv, t, f = served_process
    c = mount(srv)
    data = c.lookup(f"{t}/srv/data")
    fh, sid, _ = c.open(data, b"kept-open", create=True)
    c.write(fh, sid, 0, b"across the reload")
    (t / "srv/new").mkdir()
    f.write_text(exports_text(t).replace("*(ro,insecure)", "*(rw,no_root_squash,insecure)")
                 + f"{t}/srv/new 127.0.0.1(rw,insecure)\n")
    srv.signal(signal.SIGHUP)
    wait_for(lambda: "exports reloaded" in srv.text(), what="reload")
    # the same session and open go on; the changed and the new export take effect
    c.close_file(fh, sid)
    assert (t / "srv/data/kept-open").read_text() == "across the reload"
    ro = c.lookup(f"{t}/srv/ro")
    c.create_file(ro, b"now-rw", b"z")
    assert c.lookup(f"{t}/srv/new")
    # a bad file is refused and the exports stay as they are
    f.write_text(f"{t}/srv/data *(rw,bad_option)\n")
    srv.signal(signal.SIGHUP)
    wait_for(lambda: "exports not reloaded" in srv.text(), what="refused reload")
    assert c.lookup(f"{t}/srv/new")
    assert srv.alive()


# ---------------------------------------------------------------- access control by identity
def test_mode_bits_apply_through_hard_links_and_to_files_under_construction(tmp_path,
                                                                            reactor_thread):
    export = tmp_path / "export"
    srv = InProcessServer(reactor_thread, export).start()
    try:
        root = mount(srv)
        r = root.root()
        root.setattr(r, {x.FATTR4_MODE: 0o777})
        root.create_file(r, b"private", b"root only", mode=0o600)
        root.link(root.lookup("private"), r, b"alias")
        user = mount(srv, uid=1000, gid=1000)
        assert status(user.read, user.lookup("alias")) == x.NFS4ERR_ACCESS
        assert status(user.open, user.root(), b"alias", access=x.OPEN4_SHARE_ACCESS_READ) == \
            x.NFS4ERR_ACCESS
        # a file under construction by root on the same machine keeps its mode for other uids
        fh, sid, _ = root.open(r, b"staged", create=True, attrs={x.FATTR4_MODE: 0o600})
        root.write(fh, sid, 0, b"secret")
        # uid 1000 on the same machine: the same client, another credential on the RPC
        machine_cred = root.cred
        root.cred = AuthSys(0, b"testclient", 1000, 1000, ())
        assert root.lookup("staged") == fh  # the machine sees its file under construction
        assert status(root.open, r, b"staged", access=x.OPEN4_SHARE_ACCESS_READ,
                      owner=b"uid1000") == x.NFS4ERR_ACCESS
        root.cred = machine_cred
        root.close_file(fh, sid)
        assert status(user.remove, user.root(), b"private") == x.NFS4_OK  # 0777 dir: allowed
        _ = NfsError
    finally:
        srv.stop()
    srv.check()
