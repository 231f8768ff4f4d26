"""Limits with clear errors (connections, clients, sessions and slots, opens per client, idle
connections) and a full disk: NOSPC, nothing published damaged, other files go on. Servers
are `nfsd serve`'s `build()` in this process (tests/inproc.py) with the setting under test."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import subprocess

import pytest

from nfsd.client import NfsClient, op
from nfsd.rpc.client import RpcConnectionClosed
from nfsd.xdr import nfs4 as x
from inproc import InProcessServer
from test_write_once import status, wait_for


@pytest.fixture
def serve(reactor_thread):
    """`serve(directory, **config)`: a started in-process server, stopped (and checked for
    tracebacks) at the end."""
    started = []

    def start(directory, **config):
        srv = InProcessServer(reactor_thread, directory, **config).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()
    for srv in started:
        srv.check()


def test_client_limit(tmp_path, serve):
    srv = serve(tmp_path / "e", max_clients=3)
    cs = [NfsClient(*srv.address).mount() for _ in range(3)]
    extra = NfsClient(*srv.address)
    assert status(extra.exchange_id) == x.NFS4ERR_DELAY
    c40 = NfsClient(*srv.address, minor=0)
    assert status(c40.setclientid) == x.NFS4ERR_RESOURCE
    cs[0].destroy()
    extra.mount()  # room again
    assert "client limit (3) reached" in srv.text()


def test_session_and_slot_limits(server):
    """16 sessions per client (the 17th CREATE_SESSION gets NOSPC; destroying one makes
    room); a session asks for 1,000 slots and gets 64."""
    c = NfsClient(*server.address)
    try:
        c.exchange_id()
        first = c.create_session(slots=1000)
        assert first.csr_fore_chan_attrs.ca_maxrequests == 64
        ids = [first.csr_sessionid] + [c.create_session().csr_sessionid for _ in range(15)]
        assert len(set(ids)) == 16
        assert status(c.create_session) == x.NFS4ERR_NOSPC
        r = c.compound([op("DESTROY_SESSION", ids[0])]).resarray[0].value
        assert r.dsr_status == x.NFS4_OK
        c.create_session()
    finally:
        c.close()


def test_open_limit_per_client(tmp_path, serve):
    export = tmp_path / "e"
    srv = serve(export, max_opens_per_client=4)
    for i in range(6):
        (export / f"f{i}").write_bytes(b"x")
    c = NfsClient(*srv.address).mount()
    opened = [c.open(c.root(), b"f%d" % i, access=x.OPEN4_SHARE_ACCESS_READ) for i in range(4)]
    assert status(c.open, c.root(), b"f4", access=x.OPEN4_SHARE_ACCESS_READ) == x.NFS4ERR_NOSPC
    other = NfsClient(*srv.address).mount()  # the limit is per client
    other.open(other.root(), b"f4", access=x.OPEN4_SHARE_ACCESS_READ)
    fh, sid, _ = opened[0]
    c.close_file(fh, sid)
    c.open(c.root(), b"f5", access=x.OPEN4_SHARE_ACCESS_READ)


def test_connection_limit(tmp_path, serve):
    srv = serve(tmp_path / "e", max_connections=2)
    a = NfsClient(*srv.address)
    b = NfsClient(*srv.address)
    a.null(), b.null()
    third = socket.create_connection(srv.address, timeout=10)
    assert third.recv(1) == b""  # refused: closed at once
    third.close()
    assert "2 connections open (limit)" in srv.text()
    a.close()
    wait_for(lambda: srv.call(lambda: len(srv.factory.protocols)) == 1, what="a's close")
    NfsClient(*srv.address).null()  # a slot is free again
    b.null()


def test_idle_timeout(tmp_path, serve):
    srv = serve(tmp_path / "e", idle_timeout=0.2)
    a = NfsClient(*srv.address)
    a.null()
    # idle connections are closed by the server (the read returns EOF)
    a.rpc.sock.settimeout(30)
    assert a.rpc.sock.recv(1) == b""
    with pytest.raises((RpcConnectionClosed, OSError)):
        a.null()
    a.reconnect()
    a.null()


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_gives_nospc_and_damages_nothing(small_fs, serve):
    export = small_fs / "export"
    srv = serve(export)
    try:
        c = NfsClient(*srv.address).mount()
        root = c.root()
        keep = os.urandom(1 << 20)
        c.create_file(root, b"published", keep)
        fh2, sid2, _ = c.open(root, b"doomed", create=True)  # under construction before
        fh, sid, _ = c.open(root, b"filler", create=True)
        chunk = os.urandom(256 * 1024)
        err = None
        for i in range(64):
            try:
                c.write(fh, sid, i * len(chunk), chunk, stable=x.FILE_SYNC4)
            except Exception as e:  # noqa: BLE001
                err = e
                break
        assert err is not None and getattr(err, "status", None) == x.NFS4ERR_NOSPC, err
        # the published file is intact
        assert hashlib.sha256((export / "published").read_bytes()).digest() == \
            hashlib.sha256(keep).digest()
        assert c.read_all(c.lookup("published")) == keep
        # on the full disk: a new file cannot be created (NOSPC), but removing a file under
        # construction works (that is how space is given back)
        assert status(c.open, root, b"new", create=True) == x.NFS4ERR_NOSPC
        c.remove(root, b"doomed")
        c.close_file(fh2, sid2)
        # the writer closes: what was acknowledged is published; removing it frees the space,
        # and other files are written and published as usual
        c.close_file(fh, sid)
        got = (export / "filler").read_bytes()
        # every acknowledged byte; the failed WRITE may have left part of its range
        assert got[:len(chunk) * i] == chunk * i and len(got) <= len(chunk) * (i + 1)
        c.remove(root, b"filler")
        c.create_file(root, b"after", b"still working")
        assert (export / "after").read_bytes() == b"still working"
        assert srv.alive()
    finally:
        srv.stop()  # before the file system goes


def test_commit_on_a_full_disk_answers_nospc(small_fs, serve):
    """A sync that fails in the worker thread (here: the staging record of a new version
    cannot be rewritten on a full disk) answers the backend's status, not SERVERFAULT, and
    the file is written and published once there is space again."""
    export = small_fs / "export"
    srv = serve(export)
    try:
        c = NfsClient(*srv.address).mount()
        root = c.root()
        c.create_file(root, b"f", b"a" * 4096)
        fh, sid, _ = c.open(root, b"f")  # a new version: its record is a file in staging
        c.write(fh, sid, 0, b"b" * 4096)  # UNSTABLE: fills a page, marks the record dirty
        filler = small_fs / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC
        finally:
            os.close(fd)
        assert status(c.commit, fh) == x.NFS4ERR_NOSPC
        assert "SERVERFAULT" not in srv.text() and "Traceback" not in srv.text()
        filler.unlink()
        c.commit(fh)
        c.close_file(fh, sid)
        assert (export / "f").read_bytes() == b"b" * 4096
    finally:
        srv.stop()
