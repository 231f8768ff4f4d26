"""Extended attributes (user namespace, names without "user."); skipped on a backend whose
statfs says it stores none."""

from __future__ import annotations


import pytest

from backend import interface as I

from .util import V1, V2, mkdir, new_file, rewrite, staged

How = I.XattrHow


def test_round_trip_on_a_published_file(xbackend):
    b = xbackend
    f = new_file(b, b.root(), b"f", b"x")
    assert b.listxattr(f) == []
    with pytest.raises(I.NoXattr):
        b.getxattr(f, b"k")
    before, after = b.setxattr(f, b"k", b"v", How.CREATE)
    assert after > before and b.getattr(f).change == after
    assert b.getxattr(f, b"k") == b"v"
    with pytest.raises(I.Exists):
        b.setxattr(f, b"k", b"w", How.CREATE)
    with pytest.raises(I.NoXattr):
        b.setxattr(f, b"missing", b"w", How.REPLACE)
    b.setxattr(f, b"k", b"w", How.REPLACE)
    b.setxattr(f, b"a", b"")  # EITHER: created
    b.setxattr(f, b"a", b"\0binary\xff")  # EITHER: replaced
    assert b.listxattr(f) == [b"a", b"k"]  # sorted
    assert b.getxattr(f, b"k") == b"w" and b.getxattr(f, b"a") == b"\0binary\xff"
    c = b.getattr(f).change
    before, after = b.removexattr(f, b"a")
    assert before == c and after > before and b.listxattr(f) == [b"k"]
    with pytest.raises(I.NoXattr):
        b.removexattr(f, b"a")
    with pytest.raises(I.NoXattr):
        b.getxattr(f, b"a")


def test_names_and_values_are_checked(xbackend):
    b = xbackend
    f = new_file(b, b.root(), b"f")
    for bad in (b"", b"a\0b"):
        with pytest.raises(I.Invalid):
            b.getxattr(f, bad)
        with pytest.raises(I.Invalid):
            b.setxattr(f, bad, b"v")
    with pytest.raises(I.NameTooLong):
        b.setxattr(f, b"n" * (I.XATTR_NAME_MAX + 1), b"v")
    b.setxattr(f, b"n" * I.XATTR_NAME_MAX, b"v")
    assert b.getxattr(f, b"n" * I.XATTR_NAME_MAX) == b"v"
    with pytest.raises(I.XattrTooBig):
        b.setxattr(f, b"big", bytes(I.XATTR_SIZE_MAX + 1))
    assert b.listxattr(f) == [b"n" * I.XATTR_NAME_MAX]


def test_directories_have_them_symlinks_and_special_files_do_not(xbackend):
    b = xbackend
    r = b.root()
    d = mkdir(b, r, b"d")
    b.setxattr(d, b"k", b"dir")
    assert b.getxattr(d, b"k") == b"dir" and b.listxattr(d) == [b"k"]
    ln = b.symlink(r, b"l", b"d", 0o777, None, None)
    fifo = b.mknod(r, b"p", I.Kind.FIFO, (0, 0), 0o644, None, None)
    for h in (ln, fifo):
        assert b.listxattr(h) == []
        with pytest.raises(I.NoXattr):
            b.getxattr(h, b"k")
        with pytest.raises(I.Permission):  # Linux keeps user.* off them
            b.setxattr(h, b"k", b"v")
        with pytest.raises(I.Permission):
            b.removexattr(h, b"k")
    assert b.listxattr(d) == [b"k"]  # the symlink's target was never touched


def test_a_file_under_construction_keeps_them_on_its_staging(xbackend):
    b = xbackend
    r = b.root()
    t = staged(b, r, b"t")
    b.setxattr(t.handle, b"k", b"staged", viewer=V1)
    assert b.getxattr(t.handle, b"k", V1) == b"staged"
    assert b.listxattr(t.handle, V1) == [b"k"]
    for op in (lambda: b.getxattr(t.handle, b"k", V2), lambda: b.listxattr(t.handle, V2),
               lambda: b.setxattr(t.handle, b"x", b"y", viewer=V2),
               lambda: b.removexattr(t.handle, b"k", V2)):
        with pytest.raises(I.Stale):  # for other clients it does not exist
            op()
    b.publish(t)
    assert b.getxattr(t.handle, b"k") == b"staged" and b.getxattr(t.handle, b"k", V2) == b"staged"


def test_a_new_version_takes_the_published_versions_attributes_at_publish(xbackend):
    b = xbackend
    r = b.root()
    f = new_file(b, r, b"f", b"x")
    b.setxattr(f, b"k", b"v")
    s = b.stage_version(f, V1, False, {})
    s.write(0, b"new")
    b.setxattr(f, b"later", b"1")  # in place on the published version, while s is staged
    b.removexattr(f, b"k")
    b.publish(s)
    assert b.listxattr(f) == [b"later"] and b.getxattr(f, b"later") == b"1"
    rewrite(b, f, b"again")
    assert b.listxattr(f) == [b"later"]


def test_removed_objects_have_none(xbackend):
    b = xbackend
    r = b.root()
    f = new_file(b, r, b"f")
    d = mkdir(b, r, b"d")
    b.remove(r, b"f")
    b.remove(r, b"d")
    for h in (f, d):
        with pytest.raises(I.Stale):
            b.getxattr(h, b"k")
        with pytest.raises(I.Stale):
            b.setxattr(h, b"k", b"v")


def test_they_survive_a_restart(xbackend, reopen):
    b = xbackend
    r = b.root()
    f = new_file(b, r, b"f")
    b.setxattr(f, b"k", b"v")
    b.setxattr(r, b"root", b"yes")
    b2 = reopen(b)
    assert b2.getxattr(f, b"k") == b"v" and b2.listxattr(r) == [b"root"]


def test_the_change_values_returned_are_getattrs(xbackend):
    """Also for a directory just changed by the server (a reserved name, then a publish)."""
    b = xbackend
    d = mkdir(b, b.root(), b"d")
    for i in range(3):
        s = staged(b, d, b"f%d" % i)
        c = b.getattr(d).change
        before, after = b.setxattr(d, b"k", b"%d" % i)
        assert before == c and after == b.getattr(d).change and after > before
        b.publish(s)
        c = b.getattr(d).change
        before, after = b.removexattr(d, b"k")
        assert before == c and after == b.getattr(d).change and after > before


def test_a_value_the_backend_cannot_store_is_too_big(xbackend):
    """XattrTooBig is the answer for a value the file system cannot store (XATTR2BIG), not
    NoSpace: nothing else would fit either, however much space is free (ext4 answers ENOSPC
    for a value bigger than its attribute block)."""
    b = xbackend
    f = new_file(b, b.root(), b"f")
    value = bytes(range(256)) * (I.XATTR_SIZE_MAX // 256)
    try:
        b.setxattr(f, b"big", value)
    except I.XattrTooBig:
        assert b.listxattr(f) == []
    else:
        assert b.getxattr(f, b"big") == value
