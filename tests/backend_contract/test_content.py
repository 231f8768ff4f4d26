"""Content: read, write, truncate, allocate, deallocate and seek, on staging and published
versions, and holes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from backend import interface as I

from .util import V1, mkdir, new_file, read_all, staged

CH = 64 * 1024  # many blocks of any file system: holes this size are exact everywhere
_names = itertools.count()


def fresh(b, data=b""):
    """A published file of its own (hypothesis runs many examples on one backend)."""
    return new_file(b, b.root(), b"f%d" % next(_names), data)


# --------------------------------------------------------------------------- a model
MODEL_OPS = hs.lists(hs.one_of(
    hs.tuples(hs.just("w"), hs.integers(0, 3000), hs.binary(min_size=1, max_size=700)),
    hs.tuples(hs.just("t"), hs.integers(0, 3000), hs.just(b"")),
    hs.tuples(hs.just("r"), hs.integers(0, 3200), hs.integers(0, 900)),
), max_size=12)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=hs.binary(max_size=2500), ops=MODEL_OPS, trunc=hs.booleans())
def test_a_version_behaves_as_a_posix_file(backend, base, ops, trunc):
    f = fresh(backend, base)
    s = backend.stage_version(f, V1, trunc, {})
    model = bytearray() if trunc else bytearray(base)
    for op, a, arg in ops:
        if op == "w":
            model.extend(bytes(max(0, a - len(model))))
            model[a:a + len(arg)] = arg
            assert s.write(a, memoryview(arg)) == len(arg)
        elif op == "t":
            model.extend(bytes(max(0, a - len(model))))
            del model[a:]
            s.truncate(a)
        else:
            data, eof = s.read(a, arg)
            assert data == bytes(model[a:a + arg])
            assert eof == (a + arg >= len(model) or a >= len(model))
        assert s.size() == len(model) == s.attrs().size
    assert s.read(0, 10_000)[0] == bytes(model)
    assert read_all(backend, f) == base  # not published yet
    backend.publish(s)
    assert read_all(backend, f) == bytes(model)


SPACE_OPS = hs.lists(hs.one_of(
    hs.tuples(hs.just("w"), hs.integers(0, 8), hs.integers(1, 2)),
    hs.tuples(hs.just("t"), hs.integers(0, 8), hs.just(0)),
    hs.tuples(hs.just("a"), hs.integers(0, 8), hs.integers(1, 3)),
    hs.tuples(hs.just("d"), hs.integers(0, 8), hs.integers(1, 3)),
), max_size=8)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=hs.lists(hs.booleans(), max_size=5), ops=SPACE_OPS)
def test_space_and_holes_behave_as_a_model(backend, base, ops):
    """In CH chunks: a base of data chunks (True) and holes, then writes, truncates, allocates
    and punched holes on a version; reads and SEEK agree with the model."""
    s = staged(backend, backend.root(), b"n%d" % next(_names))
    for i, full in enumerate(base):
        if full:
            s.write(i * CH, bytes([65 + i]) * CH)
    s.truncate(len(base) * CH)
    backend.publish(s)
    v = backend.stage_version(s.handle, V1, False, {})
    model = bytearray().join(bytes([65 + i]) * CH if full else bytes(CH)
                             for i, full in enumerate(base))
    for op, at, n in ops:
        a, e = at * CH, (at + n) * CH
        if op == "w":
            model.extend(bytes(max(0, e - len(model))))
            model[a:e] = b"w" * (e - a)
            v.write(a, b"w" * (e - a))
        elif op == "t":
            model.extend(bytes(max(0, a - len(model))))
            del model[a:]
            v.truncate(a)
        elif op == "a":
            model.extend(bytes(max(0, e - len(model))))
            v.allocate(a, e - a)
        else:
            model[a:min(e, len(model))] = bytes(max(0, min(e, len(model)) - a))
            v.deallocate(a, e - a)
        assert v.size() == len(model)
    assert v.read(0, len(model) + 1)[0] == bytes(model)
    check_seek(v.seek, model)
    backend.publish(v)
    assert read_all(backend, s.handle) == bytes(model)
    if model:
        check_seek(lambda at, what: backend.seek(s.handle, at, what), model)


def check_seek(seek, model):
    for at in range(0, len(model) + CH, CH // 2):
        if at >= len(model):
            for what in I.Content:
                with pytest.raises(I.PastEnd):
                    seek(at, what)
            continue
        d, eof = seek(at, I.Content.DATA)
        assert at <= d <= len(model) and not any(model[at:d])  # skipped only zeros
        assert d in (at, len(model)) or d % CH == 0  # data starts where a chunk does
        assert eof == (d == len(model))
        h, eof = seek(at, I.Content.HOLE)
        assert at <= h <= len(model) and eof == (h == len(model))
        assert h == len(model) or not model[h]  # a hole reads as zeros


# --------------------------------------------------------------------------- reads
def test_read_end_of_file_and_bad_arguments(backend):
    f = fresh(backend, b"0123456789")
    assert backend.read(f, 0, 4) == (b"0123", False)
    assert backend.read(f, 6, 4) == (b"6789", True)
    assert backend.read(f, 8, 100) == (b"89", True)
    assert backend.read(f, 10, 5) == (b"", True)
    assert backend.read(f, 50, 5) == (b"", True)
    assert backend.read(f, 3, 0) == (b"", False)
    for off, count in ((-1, 1), (0, -1)):
        with pytest.raises(I.Invalid):
            backend.read(f, off, count)
    s = backend.stage_version(f, V1, False, {})
    assert s.read(6, 4) == (b"6789", True) and s.read(10, 1) == (b"", True)
    assert s.read(3, 0) == (b"", False)
    with pytest.raises(I.Invalid):
        s.read(-1, 1)
    with pytest.raises(I.Invalid):
        s.write(-1, b"x")
    with pytest.raises(I.Invalid):
        s.truncate(-1)


def test_read_needs_a_published_regular_file(backend):
    r = backend.root()
    d = mkdir(backend, r, b"d")
    t = staged(backend, r, b"t")
    ln = backend.symlink(r, b"l", b"d", 0o777, None, None)
    with pytest.raises(I.IsDir):
        backend.read(d, 0, 1)
    with pytest.raises(I.WrongType):  # never followed
        backend.read(ln, 0, 1)
    with pytest.raises(I.IsDir):
        backend.seek(d, 0, I.Content.DATA)
    with pytest.raises(I.Invalid):  # under construction: read through the staging object
        backend.read(t.handle, 0, 1)
    with pytest.raises(I.Invalid):
        backend.seek(t.handle, 0, I.Content.DATA)


def test_sparse_writes_read_zeros_in_between(backend):
    s = staged(backend, backend.root(), b"sparse")
    assert s.write(1 << 20, bytearray(b"tail")) == 4
    assert s.size() == (1 << 20) + 4
    assert s.read(0, 8) == (bytes(8), False)
    assert s.read((1 << 20) - 2, 10) == (b"\0\0tail", True)
    backend.publish(s)
    assert backend.read(s.handle, (1 << 20) - 2, 10) == (b"\0\0tail", True)
    a = backend.getattr(s.handle)
    assert a.size == (1 << 20) + 4 and 4 <= a.used < 1 << 20  # the hole takes no space


def test_truncate_forgets_what_was_cut_off(backend):
    s = staged(backend, backend.root(), b"t")
    s.write(0, b"x" * 10_000)
    s.truncate(5)
    s.truncate(9000)
    assert s.read(0, 10_000) == (b"xxxxx" + bytes(8995), True)
    backend.publish(s)
    assert read_all(backend, s.handle) == b"xxxxx" + bytes(8995)


def test_writes_move_the_staged_versions_times_and_change(backend):
    s = staged(backend, backend.root(), b"f")
    a0 = s.attrs()
    s.write(0, b"x")
    a1 = s.attrs()
    assert a1.change > a0.change and a1.mtime_ns >= a0.mtime_ns and a1.size == 1
    s.write(1, b"y")
    assert s.attrs().change > a1.change


def test_a_large_sparse_file_takes_a_small_change_cheaply(backend):
    """Copy-on-write costs what the change costs, not what the file's size is."""
    size = 1 << 30
    s = staged(backend, backend.root(), b"big")
    s.truncate(size)
    s.write(5 << 20, b"island")
    backend.publish(s)
    f = s.handle
    v = backend.stage_version(f, V1, False, {})
    assert v.size() == size
    v.write(size - 3, b"END")
    v.write(100, b"hello")
    assert v.read(98, 9) == (b"\0\0hello\0\0", False)
    assert v.read((5 << 20) - 1, 8) == (b"\0island\0", False)
    assert v.read(size - 4, 100) == (b"\0END", True)
    v.sync()
    backend.publish(v)
    assert backend.read(f, 98, 9) == (b"\0\0hello\0\0", False)
    assert backend.read(f, 5 << 20, 6) == (b"island", False)
    assert backend.read(f, size - 3, 10) == (b"END", True)
    a = backend.getattr(f)
    assert a.size == size and a.used < 64 << 20  # still sparse


def test_a_read_that_must_not_wait_gives_what_a_read_gives(backend):
    """`read(nowait=True)` answers as `read` does, or says WouldBlock (never a short read)."""
    data = bytes(range(256)) * (12 << 10)  # 3 MiB
    f = fresh(backend, data)
    for off, count in ((4096, 8192), (len(data) - 10, 100), (len(data) + 5, 100),
                       (0, len(data))):
        try:
            got = backend.read(f, off, count, nowait=True)
        except I.WouldBlock:
            continue
        assert (bytes(got[0]), got[1]) == backend.read(f, off, count)
        assert got[0] == data[off:off + count]


# --------------------------------------------------------------------------- space and holes
def test_allocate_grows_the_size_and_reads_zeros(backend):
    f = fresh(backend, b"data")
    s = backend.stage_version(f, V1, False, {})
    s.allocate(0, 2)
    assert not s.dirty and s.size() == 4  # within the size: nothing to publish
    s.allocate(2, 3 * CH)
    assert s.dirty and s.size() == 2 + 3 * CH
    assert s.read(0, 8) == (b"data\0\0\0\0", False)
    assert s.attrs().used >= 3 * CH
    for off, length in ((0, 0), (-1, 5), (0, -1)):
        with pytest.raises(I.Invalid):
            s.allocate(off, length)
    backend.publish(s)
    assert backend.getattr(f).size == 2 + 3 * CH and read_all(backend, f)[:5] == b"data\0"


def test_deallocate_punches_a_hole_and_keeps_the_size(backend):
    f = fresh(backend, b"x" * (4 * CH))
    s = backend.stage_version(f, V1, False, {})
    s.deallocate(CH, 2 * CH)
    assert s.dirty and s.size() == 4 * CH
    assert s.read(0, 4 * CH)[0] == b"x" * CH + bytes(2 * CH) + b"x" * CH
    assert s.seek(0, I.Content.HOLE) == (CH, False)
    assert s.seek(CH, I.Content.DATA) == (3 * CH, False)
    assert backend.seek(f, CH, I.Content.DATA) == (CH, False)  # the published one is whole
    s.deallocate(10 * CH, CH)  # beyond the end: nothing
    assert s.size() == 4 * CH
    with pytest.raises(I.Invalid):
        s.deallocate(0, 0)
    backend.publish(s)
    assert read_all(backend, f) == b"x" * CH + bytes(2 * CH) + b"x" * CH
    assert backend.seek(f, 0, I.Content.HOLE) == (CH, False)
    assert backend.getattr(f).used < 4 * CH


def test_seek_on_published_staged_and_pinned_versions(backend):
    s = staged(backend, backend.root(), b"s")
    s.write(CH, b"d" * CH)
    s.truncate(3 * CH)
    assert s.seek(0, I.Content.DATA) == (CH, False)
    backend.publish(s)
    f = s.handle
    assert backend.seek(f, 0, I.Content.DATA) == (CH, False)
    assert backend.seek(f, CH + 5, I.Content.DATA) == (CH + 5, False)
    assert backend.seek(f, CH, I.Content.HOLE) == (2 * CH, False)
    assert backend.seek(f, 2 * CH, I.Content.DATA) == (3 * CH, True)  # no more data
    assert backend.seek(f, 2 * CH, I.Content.HOLE) == (2 * CH, False)
    for what in I.Content:
        with pytest.raises(I.PastEnd):
            backend.seek(f, 3 * CH, what)
        with pytest.raises(I.Invalid):
            backend.seek(f, -1, what)
    full = fresh(backend, b"z" * 100)
    assert backend.seek(full, 10, I.Content.HOLE) == (100, True)  # only the virtual hole
    with backend.open_version(f) as pin:
        backend.remove(backend.root(), b"s")
        with pytest.raises(I.Stale):
            backend.seek(f, 0, I.Content.DATA)
        assert pin.seek(0, I.Content.DATA) == (CH, False)
