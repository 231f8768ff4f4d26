"""Errors: bad names, bad handles, wrong kinds of object; each as interface.py names it."""

from __future__ import annotations

import pytest

from backend import interface as I

from .util import V1, mkdir, new_file, staged

BAD_NAMES = [b"", b".", b"..", b"a/b", b"a\0b", b"/"]


def name_ops(b, r, name):
    """Every operation that takes a name in directory `r`, with `name` (`r` holds a file
    "some-file" for the ones that need an object)."""
    f = b.lookup(r, b"some-file")
    return [
        lambda: b.lookup(r, name), lambda: b.lookup_attrs(r, name),
        lambda: b.mkdir(r, name, 0o755, None, None),
        lambda: b.symlink(r, name, b"t", 0o777, None, None),
        lambda: b.mknod(r, name, I.Kind.FIFO, (0, 0), 0o644, None, None),
        lambda: b.remove(r, name), lambda: b.remove(r, name, V1),
        lambda: b.rename(r, name, r, b"x"), lambda: b.rename(r, b"some-file", r, name),
        lambda: b.link(f, r, name), lambda: staged(b, r, name),
    ]


@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_names_that_cannot_be_entries(backend, bad):
    new_file(backend, backend.root(), b"some-file")
    for op in name_ops(backend, backend.root(), bad):
        with pytest.raises(I.InvalidName):
            op()


def test_names_longer_than_name_max(backend):
    r = backend.root()
    new_file(backend, r, b"some-file")
    mkdir(backend, r, b"n" * I.NAME_MAX)
    assert backend.lookup(r, b"n" * I.NAME_MAX)
    for op in name_ops(backend, r, b"n" * (I.NAME_MAX + 1)):
        with pytest.raises(I.NameTooLong):
            op()


def test_malformed_and_foreign_handles(backend, storage, tmp_path):
    r = backend.root()
    for bad in (b"", b"short", r + b"\0", bytes(I.HANDLE_MAX + 1)):
        with pytest.raises(I.BadHandle):
            backend.getattr(bad)
    # a well-formed handle of another export, or of an object that never existed
    other = storage.sibling(tmp_path / "other").open()
    try:
        foreign = other.root()
        unknown = r[:-1] + bytes([r[-1] ^ 0x55])
        for h in (foreign, unknown):
            for op in (lambda: backend.getattr(h), lambda: backend.lookup(h, b"x"),
                       lambda: backend.read(h, 0, 1), lambda: backend.parent(h)):
                with pytest.raises(I.Stale):
                    op()
    finally:
        other.close()


def test_directory_operations_on_what_is_not_a_directory(backend):
    r = backend.root()
    f = new_file(backend, r, b"f")
    ln = backend.symlink(r, b"l", b"f", 0o777, None, None)
    t = staged(backend, r, b"t")
    for h in (f, ln, t.handle):
        for op in (lambda: backend.lookup(h, b"x"), lambda: mkdir(backend, h, b"x"),
                   lambda: backend.remove(h, b"x"), lambda: backend.rename(h, b"x", r, b"y"),
                   lambda: backend.rename(r, b"f", h, b"y"), lambda: staged(backend, h, b"x"),
                   lambda: backend.link(f, h, b"x"), lambda: list(backend.readdir(h, 0))):
            with pytest.raises(I.NotDir):
                op()


def test_missing_names(backend):
    r = backend.root()
    for op in (lambda: backend.lookup(r, b"nope"), lambda: backend.remove(r, b"nope"),
               lambda: backend.rename(r, b"nope", r, b"x")):
        with pytest.raises(I.NotFound):
            op()


def test_files_under_construction_are_not_published_objects(backend):
    r = backend.root()
    t = staged(backend, r, b"t")
    for op in (lambda: backend.read(t.handle, 0, 1), lambda: backend.open_version(t.handle),
               lambda: backend.stage_version(t.handle, V1, False, {}),
               lambda: backend.link(t.handle, r, b"x")):
        with pytest.raises(I.Invalid):
            op()
    with pytest.raises(I.NotSymlink):
        backend.readlink(t.handle)


def test_records_must_be_json(backend):
    r = backend.root()
    with pytest.raises(I.Invalid):
        staged(backend, r, b"t", record={"x": object()})
    s = staged(backend, r, b"u")
    s.set_record({"x": {1, 2}})
    with pytest.raises(I.Invalid):
        s.sync()
    s.set_record({"x": [1, 2]})
    s.sync()
