"""LocalBackend's directory listings: cookies made from names, entries that local programs make
and remove, and the caches of listings, entries and attributes (RACY_NS, `listing_memo`)."""

from __future__ import annotations

import os

import pytest

from backend import interface as I
from backend import local
from backend.local import cookie_of
from backend_local_util import b, export, mk  # noqa: F401 (fixtures)
from backend_local_util import names, new_file


# --------------------------------------------------------------------------- cookies and names
def test_readdir_cookies_are_a_hash_of_the_name(b, export):
    """So a cookie holds whatever else changes, across restarts too, and the directory needs no
    verifier (always zeros)."""
    r = b.root()
    for i in range(50):
        (export / f"f{i:02}").write_bytes(b"")
    entries = list(b.readdir(r, 0))
    assert len(entries) == 50 and all(e.cookie == cookie_of(e.name) for e in entries)
    assert b.dir_verifier(r) == bytes(8)


def test_readdir_sees_local_changes(b, export):
    r = b.root()
    (export / "a").write_bytes(b"")
    assert names(b, r) == [b"a"]
    (export / "b").write_bytes(b"")
    assert sorted(names(b, r)) == [b"a", b"b"]
    os.rename(export / "a", export / "c")
    assert sorted(names(b, r)) == [b"b", b"c"]


def test_local_files_in_a_large_directory_get_handles_as_a_listing_is_read(b, export):
    """1,000 entries no handle was made for yet, read in chunks past the largest look-ahead
    batch (256): each once, each with a handle of its own."""
    d = export / "big"
    d.mkdir()
    for i in range(1000):
        os.close(os.open(d / f"entry-{i}", os.O_CREAT | os.O_WRONLY, 0o644))
    dh = b.lookup(b.root(), b"big")
    got, cookie = [], 0
    while True:
        chunk = []
        for e in b.readdir(dh, cookie):
            chunk.append(e)
            if len(chunk) == 100:
                break
        if not chunk:
            break
        got.extend(chunk)
        cookie = chunk[-1].cookie
    assert sorted(e.name for e in got) == sorted(os.fsencode(n) for n in os.listdir(d))
    assert len({e.handle for e in got}) == 1000


def test_entry_removed_during_a_listing_is_left_out(b, export):
    """Entries are stat'ed in batches as the listing is read: one removed locally after the
    listing began, before its batch, is skipped, and the others all come."""
    d = export / "d"
    d.mkdir()
    for i in range(40):
        (d / f"f{i}").write_bytes(b"")
    dh = b.lookup(b.root(), b"d")
    order = [e.name for e in b.readdir(dh, 0)]
    it = iter(b.readdir(dh, 0))
    first = next(it)
    os.unlink(d / order[-1].decode())
    rest = [e.name for e in it]
    assert [first.name] + rest == order[:-1]


# --------------------------------------------------------------------------- caches
def test_unchanged_entries_are_handed_out_again(mk, export, monkeypatch):
    """A cached listing hands out the same DirEntry for an entry whose statx is unchanged, a
    new one (new attributes, same handle) for a changed entry, and nothing old once the
    directory itself changed."""
    monkeypatch.setattr(local, "RACY_NS", -1)  # cache listings however recently changed
    b = mk()
    d = export / "d"
    d.mkdir()
    for n in ("a", "b", "c"):
        (d / n).write_bytes(b"x")
    dh = b.lookup(b.root(), b"d")
    first = {e.name: e for e in b.readdir(dh, 0)}
    second = {e.name: e for e in b.readdir(dh, 0)}
    assert set(first) == {b"a", b"b", b"c"}
    assert all(second[n] is first[n] for n in first)
    os.chmod(d / "b", 0o600)  # changes the entry, not the directory
    (d / "c").write_bytes(b"longer")
    third = {e.name: e for e in b.readdir(dh, 0)}
    assert third[b"a"] is first[b"a"]
    assert third[b"b"] is not first[b"b"] and third[b"b"].attrs.mode == 0o600
    assert third[b"b"].handle == first[b"b"].handle
    assert third[b"c"].attrs.size == 6 and third[b"c"].handle == first[b"c"].handle
    new_file(b, dh, b"e")  # the directory changed: its listing and memo are dropped
    fourth = {e.name: e for e in b.readdir(dh, 0)}
    assert set(fourth) == {b"a", b"b", b"c", b"e"}
    assert all(fourth[n] is not third[n] for n in third)
    assert fourth[b"a"].handle == first[b"a"].handle


def test_unchanged_objects_keep_their_attributes_object(b, export):
    """lookup_attrs and getattr hand out the same Attrs object while the object's statx is
    unchanged, and new, current ones after any local change: chmod, a rewrite, another file
    renamed over the name, the directory's own mode, a hard link."""
    d = export / "d"
    d.mkdir()
    (d / "f").write_bytes(b"x")
    dh, da = b.lookup_attrs(b.root(), b"d")
    fh, fa = b.lookup_attrs(dh, b"f")
    assert b.lookup_attrs(dh, b"f") == (fh, fa) and b.lookup_attrs(dh, b"f")[1] is fa
    assert b.getattr(fh) is b.getattr(fh) and b.getattr(fh) == fa
    assert b.getattr(dh) is b.getattr(dh) and b.getattr(dh) == da

    os.chmod(d / "f", 0o600)
    h2, a2 = b.lookup_attrs(dh, b"f")
    assert h2 == fh and a2.mode == 0o600 and b.getattr(fh).mode == 0o600
    (d / "f").write_bytes(b"longer")
    assert b.lookup_attrs(dh, b"f")[1].size == 6 and b.getattr(fh).size == 6
    os.link(d / "f", d / "g")
    assert b.getattr(fh).nlink == 2 and b.lookup_attrs(dh, b"f")[1].nlink == 2

    (d / "new").write_bytes(b"other file")
    os.replace(d / "new", d / "f")  # another object under the same name
    h3, a3 = b.lookup_attrs(dh, b"f")
    assert h3 != fh and a3.size == 10 and a3.fileid != fa.fileid
    assert b.getattr(fh).nlink == 1  # the old object, still reachable as g
    assert b.lookup(dh, b"g") == fh

    os.chmod(d, 0o700)
    assert b.getattr(dh).mode == 0o700 and b.lookup_attrs(b.root(), b"d")[1].mode == 0o700
    os.unlink(d / "f")
    with pytest.raises(I.NotFound):
        b.lookup_attrs(dh, b"f")


def test_listing_memo_is_bounded_across_directories(mk, export, monkeypatch):
    monkeypatch.setattr(local, "RACY_NS", -1)
    b = mk(listing_memo=2)
    hs_ = []
    for dn in ("d1", "d2"):
        (export / dn).mkdir()
        for i in range(5):
            (export / dn / f"f{i}").write_bytes(b"")
        hs_.append(b.lookup(b.root(), dn.encode()))

    def kept(dh):
        first = {e.name: e for e in b.readdir(dh, 0)}
        return sum(e is first[e.name] for e in b.readdir(dh, 0))

    assert kept(hs_[0]) == 2
    assert kept(hs_[1]) == 0  # the budget is spent on d1
    new_file(b, hs_[0], b"new")  # d1 changed: its memo is dropped and the budget freed
    assert kept(hs_[1]) == 2
