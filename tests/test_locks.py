"""Byte-range locks (LOCK, LOCKT, LOCKU) across clients and owners, for 4.1 and 4.0, and share
reservations (OPEN deny modes), over real sockets (the module's in-process `server`). Locks
ending with the lease: tests/test_crash_and_lease.py::test_rule7_locks_go_away_with_the_lease."""

from __future__ import annotations

import pytest

from nfsd.client import NfsClient, op
from nfsd.xdr import nfs4 as x
from test_write_once import status

ALL = (1 << 64) - 1
RW = x.OPEN4_SHARE_ACCESS_BOTH
RD = x.OPEN4_SHARE_ACCESS_READ


class Locker:
    """A client with one open of a file and helpers that run LOCK/LOCKT/LOCKU on it."""

    def __init__(self, server, name, minor=1, access=RW, owner=b"lock-owner"):
        self.c = NfsClient(*server.address, minor=minor).mount()
        root = self.c.root()
        # The file is created (and published) first, then opened by each locker.
        self.fh, self.osid, _ = self.c.open(root, name, create=True, access=access)
        self.c.close_file(self.fh, self.osid)
        self.fh, self.osid, _ = self.c.open(root, name, access=access)
        self.owner = owner
        self.lsid = None
        self.lseq = 0

    def lock(self, kind, offset, length):
        c = self.c
        if self.lsid is None:
            oseq = c.next_seqid(b"open-owner") if c.minor == 0 else 0
            locker = x.locker4(True, x.open_to_lock_owner4(oseq, self.osid, 0,
                                                           x.lock_owner4(c.clientid, self.owner)))
        else:
            self.lseq += 1
            locker = x.locker4(False, x.exist_lock_owner4(self.lsid, self.lseq if c.minor == 0 else 0))
        r = c.call([op("PUTFH", self.fh), op("LOCK", kind, False, offset, length, locker)], check=False)
        res = r[-1]
        if res.tag == x.NFS4_OK:
            self.lsid = res.value.lock_stateid
        elif self.lsid is None and c.minor == 0:
            pass
        return res

    def unlock(self, offset, length):
        self.lseq += 1
        r = self.c.call([op("PUTFH", self.fh),
                         op("LOCKU", x.WRITE_LT, self.lseq if self.c.minor == 0 else 0, self.lsid,
                            offset, length)], check=False)[-1]
        if r.tag == x.NFS4_OK:
            self.lsid = r.value
        return r

    def test(self, kind, offset, length, owner=None):
        return self.c.call([op("PUTFH", self.fh),
                            op("LOCKT", kind, offset, length,
                               x.lock_owner4(self.c.clientid, owner or self.owner))], check=False)[-1]


@pytest.mark.parametrize("minor", [0, 1])
def test_conflicts_across_clients_with_denied_description(server, minor):
    a = Locker(server, b"f%d" % minor, minor)
    b = Locker(server, b"f%d" % minor, minor)
    assert a.lock(x.WRITE_LT, 100, 50).tag == x.NFS4_OK
    r = b.lock(x.WRITE_LT, 120, 10)
    assert r.tag == x.NFS4ERR_DENIED
    d = r.value
    assert (d.offset, d.length, d.locktype) == (100, 50, x.WRITE_LT)
    assert d.owner.owner == b"lock-owner" and d.owner.clientid == a.c.clientid
    assert b.lock(x.READ_LT, 120, 10).tag == x.NFS4ERR_DENIED
    assert b.lock(x.WRITE_LT, 150, 10).tag == x.NFS4_OK  # adjacent: no conflict
    t = b.test(x.WRITE_LT, 0, ALL)
    assert t.tag == x.NFS4ERR_DENIED
    assert a.unlock(100, 50).tag == x.NFS4_OK
    assert b.lock(x.WRITE_LT, 120, 10).tag == x.NFS4_OK


def test_read_locks_share_write_locks_exclude(server):
    a = Locker(server, b"shared")
    b = Locker(server, b"shared")
    assert a.lock(x.READ_LT, 0, 100).tag == x.NFS4_OK
    assert b.lock(x.READ_LT, 50, 100).tag == x.NFS4_OK
    assert b.test(x.WRITE_LT, 0, 10).tag == x.NFS4ERR_DENIED
    assert b.test(x.READ_LT, 0, 10).tag == x.NFS4_OK


def test_upgrade_downgrade_split_and_merge(server):
    a = Locker(server, b"ranges")
    b = Locker(server, b"ranges")
    assert a.lock(x.READ_LT, 0, 100).tag == x.NFS4_OK
    assert a.lock(x.WRITE_LT, 40, 20).tag == x.NFS4_OK  # upgrade the middle: split
    assert b.test(x.READ_LT, 0, 40).tag == x.NFS4_OK
    assert b.test(x.READ_LT, 45, 1).tag == x.NFS4ERR_DENIED
    assert a.lock(x.READ_LT, 40, 20).tag == x.NFS4_OK  # downgrade: merged back into one read
    assert b.test(x.READ_LT, 45, 1).tag == x.NFS4_OK
    assert a.unlock(30, 40).tag == x.NFS4_OK  # unlock the middle: split into two
    assert b.lock(x.WRITE_LT, 35, 30).tag == x.NFS4_OK
    assert b.test(x.WRITE_LT, 10, 1, owner=b"other").tag == x.NFS4ERR_DENIED


def test_invalid_ranges_and_modes(server):
    a = Locker(server, b"inval")
    assert a.lock(x.WRITE_LT, 0, 0).tag == x.NFS4ERR_INVAL
    assert a.lock(x.WRITE_LT, ALL, 2).tag == x.NFS4ERR_INVAL
    assert a.lock(x.WRITE_LT, 10, ALL).tag == x.NFS4_OK  # to the end of the file
    r = Locker(server, b"inval", access=RD, owner=b"reader")
    assert r.lock(x.WRITE_LT, 0, 1).tag == x.NFS4ERR_OPENMODE
    # Closing with locks held is refused; after unlocking it works.
    assert status(a.c.close_file, a.fh, a.osid) == x.NFS4ERR_LOCKS_HELD
    assert a.unlock(0, ALL).tag == x.NFS4_OK
    a.c.close_file(a.fh, a.osid)


def test_lock_released_when_client_reboots(server):
    a = Locker(server, b"reboot")
    assert a.lock(x.WRITE_LT, 0, ALL).tag == x.NFS4_OK
    again = NfsClient(*server.address, owner=a.c.owner).mount()  # new verifier
    b = Locker(server, b"reboot")
    assert b.lock(x.WRITE_LT, 0, 1).tag == x.NFS4_OK
    again.close()


def test_share_deny_across_clients_and_downgrade(server):
    a = NfsClient(*server.address).mount()
    b = NfsClient(*server.address).mount()
    fh = a.create_file(a.root(), b"deny", b"x")
    a.open(a.root(), b"deny", access=RD)  # so that READ/DENY_NONE is a mode to go back to
    _, sid, _ = a.open(a.root(), b"deny", access=RW, deny=x.OPEN4_SHARE_DENY_WRITE)
    assert status(b.open, b.root(), b"deny", access=RW) == x.NFS4ERR_SHARE_DENIED
    _, bsid, _ = b.open(b.root(), b"deny", access=RD)
    assert status(a.open, a.root(), b"deny", access=RD, deny=x.OPEN4_SHARE_DENY_READ,
                  owner=b"other") == x.NFS4ERR_SHARE_DENIED
    # OPEN_DOWNGRADE to read, deny none: b may now open for write.
    a.call([op("PUTFH", fh), op("OPEN_DOWNGRADE", sid, 0, RD, x.OPEN4_SHARE_DENY_NONE)])
    _, wsid, _ = b.open(b.root(), b"deny", access=RW, owner=b"w")
    # A downgrade may not widen, nor go to a mode the open never had.
    r = a.call([op("PUTFH", fh), op("OPEN_DOWNGRADE", x.stateid4(0, sid.other), 0, RW, 0)], check=False)
    assert r[-1].tag == x.NFS4ERR_INVAL
    r = a.call([op("PUTFH", fh), op("OPEN_DOWNGRADE", x.stateid4(0, sid.other), 0,
                                    x.OPEN4_SHARE_ACCESS_WRITE, 0)], check=False)
    assert r[-1].tag == x.NFS4ERR_INVAL
    b.close_file(fh, wsid, owner=b"w")
