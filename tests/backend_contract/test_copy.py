"""Server-side copy into a staging version: `Staging.copy_from` and `Staging.clone_from`, from a
pinned published version or another staging version (COPY and CLONE, docs/semantics.md)."""

from __future__ import annotations

import pytest

from backend import interface as I

from .util import V1, new_file, read_all, staged

CH = 64 * 1024  # holes this size are exact on every file system


def _read(s) -> bytes:
    out = b""
    while True:
        data, eof = s.read(len(out), 1 << 20)
        out += data
        if eof or not data:
            return out


def sparse(b, name: bytes) -> tuple[bytes, bytes]:
    """A published file: data, a hole of 2*CH, data (its handle and content)."""
    s = staged(b, b.root(), name)
    s.write(0, b"a" * CH)
    s.write(3 * CH, b"b" * 1000)
    b.publish(s)
    return s.handle, b"a" * CH + bytes(2 * CH) + b"b" * 1000


def test_copy_from_a_published_version_into_a_new_file(backend, kind):
    b = backend
    h, content = sparse(b, b"src")
    v = b.open_version(h)
    try:
        s = staged(b, b.root(), b"dst")
        assert s.copy_from(v, 0, 0, len(content)) == len(content)
        assert s.copy_from(v, CH - 10, len(content), 1 << 30) == len(content) - CH + 10
        assert s.copy_from(v, len(content), 0, 10) == 0  # at the end: nothing
    finally:
        v.close()
    assert s.dirty
    want = content + content[CH - 10:]
    assert _read(s) == want and s.size() == len(want)
    if kind in ("local", "memory"):  # the source's hole stays a hole (not read, not written)
        assert s.seek(CH, I.Content.DATA) == (3 * CH, False)
    b.publish(s)
    assert read_all(b, s.handle) == want


def test_copy_over_content_makes_the_source_holes_zeros(backend):
    b = backend
    h, content = sparse(b, b"src")
    old = new_file(b, b.root(), b"old", b"z" * (5 * CH))
    s = b.stage_version(old, V1, False, {})
    v = b.open_version(h)
    try:
        assert s.copy_from(v, 0, CH // 2, len(content)) == len(content)
    finally:
        v.close()
    want = b"z" * (CH // 2) + content + b"z" * (5 * CH - CH // 2 - len(content))
    assert read_all(b, old) == b"z" * (5 * CH)  # published: unchanged until publish
    assert _read(s) == want
    b.publish(s)
    assert read_all(b, old) == want


def test_copy_from_a_staging_version(backend):
    b = backend
    src = staged(b, b.root(), b"under-construction")
    src.write(0, b"0123456789" * 1000)
    dst = staged(b, b.root(), b"dst")
    assert dst.copy_from(src, 5, 100, 20) == 20
    assert _read(dst) == bytes(100) + (b"0123456789" * 3)[5:25]


def test_clone_from_shares_or_is_not_supported(backend):
    b = backend
    bs = b.clone_blksize
    old = new_file(b, b.root(), b"old", b"o" * (8 * CH))
    src_h = new_file(b, b.root(), b"src", b"s" * (2 * CH) + b"t" * 10)
    s = b.stage_version(old, V1, False, {})
    v = b.open_version(src_h)
    try:
        if not bs:
            with pytest.raises(I.NotSupported):
                s.clone_from(v, 0, 0, CH)
            return
        assert CH % bs == 0
        s.clone_from(v, CH, 2 * CH, CH)
        s.clone_from(v, 0, 8 * CH, 2 * CH + 10)  # to the source's end, past ours
        with pytest.raises(I.Invalid):
            s.clone_from(v, 1, 0, bs)
    finally:
        v.close()
    want = b"o" * (2 * CH) + b"s" * CH + b"o" * (5 * CH) + b"s" * (2 * CH) + b"t" * 10
    assert read_all(b, old) == b"o" * (8 * CH)
    assert _read(s) == want and s.dirty
    b.publish(s)
    assert read_all(b, old) == want
