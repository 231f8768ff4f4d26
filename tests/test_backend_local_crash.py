"""LocalBackend after a crash: kill -9 with files staged and in the middle of a publish
(finished at start-up), versions whose base a local program changed while the server was
down (quarantined), and unreadable records (reported by `problems()`, never fatal)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from backend import interface as I
from backend.local import LocalBackend
from backend_local_util import REPO, V1, V2, new_file, read_all
from backend_local_util import b, export, mk  # noqa: F401 (fixtures)


CRASH_CHILD = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {repo!r})
    from backend.local import LocalBackend
    b = LocalBackend({export!r}, record_xattrs={xattrs!r})
    r = b.root()
    s = b.create_staged(r, b"crash", b"v", 0o644, None, None, False, {{"k": "v"}})
    s.write(0, b"durable")
    s.sync()
    s.write(7, b" (maybe)")
    f = b.lookup(r, b"pub")
    v = b.stage_version(f, b"v", False, {{}})
    v.write(0, b"NEW")
    if {mode!r} == "mid-publish":
        # die after the rename, before the handle database moves the id to the new inode
        def die(*a):
            os.kill(os.getpid(), 9)
        LocalBackend._newer_ctime = staticmethod(die)
        b.publish(v)
    print("ready", flush=True)
    sys.stdin.read()
""")


@pytest.mark.parametrize("xattrs", [True, False], ids=["record-in-xattr", "record-file"])
@pytest.mark.parametrize("mode", ["staged", "mid-publish"])
def test_kill_9_recovery(tmp_path, mode, xattrs):
    export = tmp_path / "e"
    b = LocalBackend(export)
    f = new_file(b, b.root(), b"pub", b"old content")
    b.close()
    code = CRASH_CHILD.format(repo=REPO, export=str(export), mode=mode, xattrs=xattrs)
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as p:
        if mode == "staged":
            assert p.stdout.readline() == b"ready\n"
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    assert p.returncode == -9
    b = LocalBackend(export)
    try:
        assert b.problems() == []
        staged = {s.handle: s for s in b.list_staged()}
        new = [s for s in staged.values() if s.is_new]
        assert len(new) == 1 and new[0].record == {"k": "v"}
        assert new[0].read(0, 7)[0] == b"durable"
        if mode == "staged":
            assert f in staged
            assert read_all(b, f) == b"old content"
        else:  # the publish was finished at start-up
            assert f not in staged
            assert read_all(b, f) == b"NEW content"
            assert b.lookup(b.root(), b"pub") == f
        b.publish(new[0])
        assert b.read(b.lookup(b.root(), b"crash"), 0, 7)[0] == b"durable"
    finally:
        b.close()


def test_recovered_version_with_changed_base_is_quarantined(mk, b, export):
    r = b.root()
    f = new_file(b, r, b"f", b"0123456789")
    v = b.stage_version(f, V1, False, {})
    v.write(0, b"ab")
    v.sync()
    full = b.stage_version(f, V2, False, {})
    full.write(0, b"ABCDEFGHIJ")  # covers the whole base: needs no base after restart
    full.sync()
    b.close()
    (export / "f").write_bytes(b"changed!!!")  # a local program rewrites it while we are down
    b2 = mk()
    st = {x.viewer: x for x in b2.list_staged()}
    assert st[V1].quarantined and st[V1].record["quarantined"]
    with pytest.raises(I.IOFailure):
        b2.publish(st[V1])
    assert st[V2].quarantined is None
    b2.publish(st[V2])
    assert (export / "f").read_bytes() == b"ABCDEFGHIJ"
    b2.discard(st[V1])
    assert b2.list_staged() == []


def test_corrupt_record_is_reported_not_fatal(mk, b, export):
    r = b.root()
    s = b.create_staged(r, b"good", V1, 0o644, None, None, False, {})
    s.write(0, b"ok")
    s.sync()
    t = b.create_staged(r, b"bad", V1, 0o644, None, None, False, {})
    t.sync()
    b.close()
    staging = export / ".nfsd" / "staging"
    (staging / f"{t.id}.rec").write_bytes(b"{not json")
    (staging / "deadbeef.rec").write_bytes(json.dumps({"v": 1, "id": "other"}).encode())
    (staging / "orphan.data").write_bytes(b"no record")
    (staging / "x.rec.tmp").write_bytes(b"half written")
    bad_attr = None
    try:
        (staging / "attr.data").write_bytes(b"unreadable record")
        os.setxattr(staging / "attr.data", "user.nfsd.staging-record", b"{not json")
        bad_attr = str(staging / "attr.data")
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
    b2 = mk()
    assert [x.handle for x in b2.list_staged()] == [s.handle]
    probs = dict(b2.problems())
    assert str(staging / f"{t.id}.rec") in probs
    assert str(staging / "deadbeef.rec") in probs
    if bad_attr is not None:
        assert bad_attr in probs and os.path.exists(bad_attr)  # kept for the operator
    assert not (staging / "orphan.data").exists()
    assert not (staging / "x.rec.tmp").exists()
    b2.publish(b2.list_staged()[0])
    assert (export / "good").read_bytes() == b"ok"
