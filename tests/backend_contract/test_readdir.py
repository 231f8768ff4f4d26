"""READDIR: cookies, resuming, a viewer's own files under construction, restarts."""

from __future__ import annotations

import pytest

from backend import interface as I

from .util import V1, V2, mkdir, names, new_file, staged


def listing(b, dir, cookie=0, viewer=None):
    return [(e.cookie, e.name, e.handle) for e in b.readdir(dir, cookie, viewer)]


def test_entries_carry_cookies_handles_and_attributes(backend):
    r = backend.root()
    d = mkdir(backend, r, b"d", 0o700)
    f = new_file(backend, r, b"f", b"abc")
    ln = backend.symlink(r, b"l", b"f", 0o777, None, None)
    entries = list(backend.readdir(r, 0))
    cookies = [e.cookie for e in entries]
    assert cookies == sorted(cookies) and len(set(cookies)) == 3 and min(cookies) > 2
    by_name = {e.name: e for e in entries}
    assert sorted(by_name) == [b"d", b"f", b"l"]
    assert (by_name[b"d"].handle, by_name[b"f"].handle, by_name[b"l"].handle) == (d, f, ln)
    for e in entries:
        assert e.attrs.fileid == backend.getattr(e.handle).fileid
    assert (by_name[b"d"].attrs.kind, by_name[b"d"].attrs.mode) == (I.Kind.DIR, 0o700)
    assert (by_name[b"f"].attrs.kind, by_name[b"f"].attrs.size) == (I.Kind.REG, 3)
    assert by_name[b"l"].attrs.kind == I.Kind.LNK
    assert list(backend.readdir(d, 0)) == []
    assert list(backend.readdir(r, cookies[-1])) == []


def test_cookies_are_stable_and_resume_after_changes(backend):
    r = backend.root()
    for i in range(40):
        new_file(backend, r, b"f%02d" % i)
    first = listing(backend, r)
    assert listing(backend, r) == first  # the same order and cookies every time
    mid = first[20]
    assert listing(backend, r, mid[0]) == first[21:]
    backend.remove(r, mid[1])  # the entry the client stopped at goes away
    new_file(backend, r, b"zz-new")
    rest = listing(backend, r, mid[0])
    assert [x for x in rest if x[1] != b"zz-new"] == first[21:]
    backend.rename(r, first[30][1], r, b"renamed")
    after = listing(backend, r)
    assert [x for x in after if x[1] not in (b"renamed", b"zz-new")] == \
        [x for x in first if x[1] not in (mid[1], first[30][1])]
    assert sorted(n for _, n, _ in after) == sorted(
        [n for _, n, _ in first if n not in (mid[1], first[30][1])] + [b"renamed", b"zz-new"])


def test_a_large_directory_read_in_chunks(backend):
    r = backend.root()
    d = mkdir(backend, r, b"big")
    want = {b"entry-%d" % i for i in range(600)}
    for n in want:
        backend.symlink(d, n, b"t", 0o777, None, None)
    got, cookie = [], 0
    while True:
        chunk = []
        for e in backend.readdir(d, cookie):
            chunk.append(e)
            if len(chunk) == 64:
                break
        if not chunk:
            break
        got.extend(chunk)
        cookie = chunk[-1].cookie
    assert len(got) == len(want) and {e.name for e in got} == want
    assert len({e.handle for e in got}) == len(want)


def test_a_viewer_sees_its_own_files_under_construction(backend):
    r = backend.root()
    old = new_file(backend, r, b"shadowed", b"old")
    new_file(backend, r, b"plain")
    t = staged(backend, r, b"t")
    t.write(0, b"12345")
    u = staged(backend, r, b"shadowed")
    mine = {e.name: e for e in backend.readdir(r, 0, V1)}
    assert sorted(mine) == [b"plain", b"shadowed", b"t"]
    assert mine[b"t"].handle == t.handle and mine[b"t"].attrs.size == 5
    assert mine[b"shadowed"].handle == u.handle  # the viewer's own version hides the other
    theirs = {e.name: e.handle for e in backend.readdir(r, 0, V2)}
    assert theirs == {b"plain": backend.lookup(r, b"plain"), b"shadowed": old}
    assert names(backend, r) == [b"plain", b"shadowed"]
    # resuming from each of the viewer's cookies gives exactly the entries after it
    full = listing(backend, r, 0, V1)
    for i, (c, _, _) in enumerate(full):
        assert listing(backend, r, c, V1) == full[i + 1:]
    backend.publish(t)
    backend.discard(u)
    assert names(backend, r, V2) == [b"plain", b"shadowed", b"t"]
    assert {e.name: e.handle for e in backend.readdir(r, 0, V2)}[b"t"] == t.handle


def test_cookies_and_order_survive_a_restart(backend, reopen):
    r = backend.root()
    d = mkdir(backend, r, b"d")
    for i in range(25):
        new_file(backend, d, b"x%d" % i)
    backend.remove(d, b"x7")
    before = listing(backend, d)
    verifier = backend.dir_verifier(d)
    b2 = reopen(backend)
    assert listing(b2, d) == before
    assert listing(b2, d, before[10][0]) == before[11:]
    assert b2.dir_verifier(d) == verifier


def test_dir_verifier_is_eight_bytes_and_steady(backend):
    r = backend.root()
    v = backend.dir_verifier(r)
    assert isinstance(v, bytes) and len(v) == 8
    assert backend.dir_verifier(r) == v


def test_readdir_of_what_is_not_a_directory(backend):
    r = backend.root()
    f = new_file(backend, r, b"f")
    t = staged(backend, r, b"t")
    for h in (f, t.handle, backend.symlink(r, b"l", b"f", 0o777, None, None)):
        with pytest.raises(I.NotDir):
            list(backend.readdir(h, 0))
