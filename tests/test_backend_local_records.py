"""LocalBackend's staging records: where user extended attributes are stored, a new file's
record is an attribute of its data file (user.nfsd.staging-record), otherwise (or when it is
too big) a `.rec` file beside it; clients never see the attribute."""

from __future__ import annotations

import json
import os

import pytest

from backend import interface as I
from backend_local_util import b, export, mk, xb  # noqa: F401 (fixtures)
from backend_local_util import V1, staging_files


def test_new_files_record_lives_on_its_data_file(xb, mk, export):
    """Where user xattrs are stored, a new file's staging record is an attribute of its data
    file (one fsync makes both durable): no .rec file; clients never see or change it; it is
    gone from the published file; the backend finds it again after a restart."""
    b = xb
    r = b.root()
    s = b.create_staged(r, b"n", V1, 0o644, None, None, False, {"k": "v"})
    s.write(0, b"data")
    s.sync()
    assert staging_files(export) == [f"{s.id}.data"]
    raw = os.getxattr(export / ".nfsd" / "staging" / f"{s.id}.data", "user.nfsd.staging-record")
    assert json.loads(raw)["record"] == {"k": "v"}
    b.setxattr(s.handle, b"mine", b"1", viewer=V1)
    assert b.listxattr(s.handle, V1) == [b"mine"]
    with pytest.raises(I.NoXattr):
        b.getxattr(s.handle, b"nfsd.staging-record", V1)
    with pytest.raises(I.Permission):
        b.setxattr(s.handle, b"nfsd.staging-record", b"forged", viewer=V1)
    with pytest.raises(I.Permission):
        b.removexattr(s.handle, b"nfsd.staging-record", viewer=V1)
    b.close()
    b2 = mk()
    (t,) = b2.list_staged()
    assert (t.handle, t.record, t.read(0, 10)) == (s.handle, {"k": "v"}, (b"data", True))
    t.set_record({"k": "w"})
    t.sync()
    b2.close()
    b3 = mk()
    (t,) = b3.list_staged()
    assert t.record == {"k": "w"}
    b3.publish(t)
    assert os.listxattr(export / "n") == ["user.mine"]
    assert (export / "n").read_bytes() == b"data" and staging_files(export) == []


def test_record_too_big_for_an_attribute_moves_to_a_file(xb, mk, export):
    b = xb
    s = b.create_staged(b.root(), b"n", V1, 0o644, None, None, False, {})
    s.write(0, b"data")
    big = {"pad": "x" * (I.XATTR_SIZE_MAX + 1)}  # no file system takes a value this big
    s.set_record(big)
    s.sync()
    assert staging_files(export) == [f"{s.id}.data", f"{s.id}.rec"]
    assert os.listxattr(export / ".nfsd" / "staging" / f"{s.id}.data") == []
    s.set_record({"k": "small"})  # stays a file from now on
    s.sync()
    assert staging_files(export) == [f"{s.id}.data", f"{s.id}.rec"]
    b.close()
    b2 = mk()
    (t,) = b2.list_staged()
    assert t.record == {"k": "small"} and b2.problems() == []
    b2.publish(t)
    assert (export / "n").read_bytes() == b"data"


def test_a_new_files_record_attribute_is_written_once_and_synced_with_its_data(xb, mk, export):
    """The record set at creation is what the first FILE_SYNC write needs: that sync is one
    fsync of the data file, the attribute is not written again; a changed record is."""
    b = xb
    s = b.create_staged(b.root(), b"n", V1, 0o644, None, None, False, {"k": 1})
    path = export / ".nfsd" / "staging" / f"{s.id}.data"
    first = os.getxattr(path, "user.nfsd.staging-record")
    s.write(0, b"data")
    s.sync()
    assert os.getxattr(path, "user.nfsd.staging-record") == first  # not rewritten
    s.set_record({"k": 2})
    s.sync()
    assert json.loads(os.getxattr(path, "user.nfsd.staging-record"))["record"] == {"k": 2}
    b.close()
    b2 = mk()
    (t,) = b2.list_staged()
    assert t.record == {"k": 2} and b2.problems() == []
    b2.publish(t)
    assert (export / "n").read_bytes() == b"data"


def test_stale_record_attribute_left_by_a_crash_in_publish_is_hidden(xb, mk, export):
    """A crash between the publish rename and the attribute's removal leaves the record on
    the published file: clients do not see it and a new version does not copy it."""
    b = xb
    r = b.root()
    s = b.create_staged(r, b"n", V1, 0o644, None, None, False, {})
    s.write(0, b"data")
    b.publish(s)
    os.setxattr(export / "n", "user.nfsd.staging-record", b"{}")  # what the crash leaves
    os.setxattr(export / "n", "user.k", b"v")
    f = b.lookup(r, b"n")
    assert b.listxattr(f) == [b"k"]
    v = b.stage_version(f, V1, False, {})
    v.write(0, b"DATA")
    b.publish(v)
    assert os.listxattr(export / "n") == ["user.k"]
