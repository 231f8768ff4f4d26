"""Directory listings: READDIR, and the cache of sorted listings it re-uses.

READDIR cookies are 63 bits of a hash of the name (`cookie_of`), so a listing is the
directory's names sorted by cookie, and a cookie stays valid whatever else changes. A listing
is cached (`ListingCache`, `listings` directories) while the directory's inode, mtime and ctime
are those it was read at, and only once they are older than RACY_NS (a change within one tick
of a coarse clock would not move them). Every entry handed out is still stat'ed (one statx
each); a cached listing also remembers the DirEntry it made for each name (`_Listing.memo`)
and hands out the same object while the entry's statx bytes are unchanged. A viewer's own files
under construction are merged in at their cookies.

Lock: `readdir` takes the backend lock (`_guard`) to find the directory, the cached listing
and the viewer's transient names, and again (in the generator `_iter_dir`) for each batch of
entries whose handles must be looked up; reading the directory and the statx calls run outside
it. `ListingCache` methods expect it held.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import time
from collections import OrderedDict

from .. import interface as I
from ..handles import DEV_MAJ, DEV_MIN, INO, NLINK, unpack_statx
from ..oserror import from_oserror
from .common import O_LISTDIR, RACY_NS, ctime_ns, mtime_ns, to_attrs
from .linux import fstatx, statx_keys


def cookie_of(name: bytes) -> int:
    """READDIR cookie of a name: 63 bits of blake2b, never 0, 1 or 2 (reserved)."""
    c = int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big") >> 1
    return c if c >= 3 else c + 3


class _Listing:
    """A cached directory listing: the directory's (inode, mtime, ctime) when it was read, its
    names sorted by cookie, and `memo`: name -> (statx bytes, DirEntry) of entries already
    listed. An entry whose statx bytes are unchanged (same inode and birth time, size, times,
    owner, mode, links) is handed out again as the same DirEntry object, so neither its
    handle nor its attributes are worked out again, and the protocol layer may keep what it
    derived from it on the entry (`DirEntry.memo`). A change in the directory (by nfsd, or
    seen in its mtime/ctime) drops the whole listing. The backend's `listing_memo` bounds the
    entries memoized across all listings."""

    __slots__ = ("key", "cookies", "names", "memo", "live")

    def __init__(self, key, cookies, names):
        self.key = key
        self.cookies = cookies
        self.names = names
        self.memo: dict[bytes, tuple[bytes, I.DirEntry]] = {}
        self.live = True  # False once dropped: its memo is no longer filled


class ListingCache(OrderedDict):
    """directory id -> `_Listing`, least recently used first, with the count of memoized
    entries across them bounded by `memo_cap` (lock held)."""

    __slots__ = ("cap", "memo_cap", "memo_count")

    def __init__(self, cap: int, memo_cap: int):
        super().__init__()
        self.cap = cap
        self.memo_cap = memo_cap  # DirEntries kept by the cached listings, in all
        self.memo_count = 0

    def fresh(self, dir_id: int, key) -> _Listing | None:
        """The cached listing of the directory if it was read at `key`, else None."""
        cached = self.get(dir_id)
        if cached is not None and cached.key == key:
            self.move_to_end(dir_id)
            return cached
        return None

    def put(self, dir_id: int, listing: _Listing) -> None:
        old = self.pop(dir_id, None)
        if old is not None:
            self._retire(old)
        self[dir_id] = listing
        while len(self) > self.cap:
            self._retire(self.popitem(last=False)[1])

    def drop(self, dir_id: int) -> None:
        """Forget a cached listing: it and its memo are no longer trusted."""
        listing = self.pop(dir_id, None)
        if listing is not None:
            self._retire(listing)

    def _retire(self, listing: _Listing) -> None:
        listing.live = False
        self.memo_count -= len(listing.memo)
        listing.memo = {}

    def remember(self, listing: _Listing, todo, made) -> None:
        """Memoize the entries just made (as room allows): name -> (statx bytes, DirEntry)."""
        memo = listing.memo
        for (_, name, _, raw) in todo[:max(self.memo_cap - self.memo_count, 0)]:
            old = memo.get(name)
            memo[name] = (raw, made[name])
            if old is None:
                self.memo_count += 1


def _list(lfd: int, state_ino: int) -> tuple[list[int], list[bytes]]:
    """Sorted (cookie, name) of a directory, the state dir left out."""
    fsencode = os.fsencode
    with os.scandir(lfd) as it:
        pairs = [(cookie_of(n), n) for n in
                 [fsencode(e.name) for e in it if e.inode() != state_ino]]
    pairs.sort()
    return [c for c, _ in pairs], [n for _, n in pairs]


class Listings:
    """`LocalBackend.readdir` (mixin; uses the resolver's `_dir` and `_ids_for`, the
    registry's `_transient` names, `_bumped`; state: `_listings`)."""

    def readdir(self, dir, cookie: int, viewer=None):
        with self._guard:
            try:
                node, pfd = self._dir(dir)
                st = fstatx(pfd)
                if st[NLINK] == 0:
                    raise I.Stale("directory removed")
                lfd = os.open(".", O_LISTDIR, dir_fd=pfd)
            except OSError as e:
                raise from_oserror(e) from None
            key = (st[INO], mtime_ns(st), ctime_ns(st))
            cached = self._listings.fresh(node.id, key)
            trans = []
            d = self._transient.get(node.id) if viewer is not None else None
            if d:
                for name, lst in d.items():
                    mine = [s for s in lst if s.viewer == viewer]
                    if mine:
                        trans.append((cookie_of(name), name, mine[-1]))
                trans.sort(key=lambda t: (t[0], t[1]))
        try:
            if cached is None:
                cookies, names = _list(lfd, self._state_ino)
                if time.time_ns() - max(key[1], key[2]) > RACY_NS:
                    cached = _Listing(key, cookies, names)
                    with self._guard:
                        self._listings.put(node.id, cached)
            else:
                cookies, names = cached.cookies, cached.names
        except OSError as e:
            os.close(lfd)
            raise from_oserror(e) from None
        except BaseException:
            os.close(lfd)
            raise
        return self._iter_dir(node.id, lfd, cookies, names, cookie, trans, cached)

    def _iter_dir(self, dir_id, lfd, cookies, names, cookie, trans, listing):
        """The entries after `cookie`: one statx each; an entry whose statx bytes are those
        the cached `listing` remembers for its name is the same DirEntry object as before
        (see `_Listing`), anything else is looked up (handles, in batches) and made anew."""
        try:
            i = bisect.bisect_right(cookies, cookie)
            t = 0
            while t < len(trans) and trans[t][0] <= cookie:
                t += 1
            shadow = {n for _, n, _ in trans}
            n = len(cookies)
            dev = self._dev
            state = self._state_ino
            memo = listing.memo if listing is not None else None
            size = 16  # look-ahead grows: little wasted work when the caller stops early
            while i < n:
                batch = []  # DirEntry (unchanged) or (cookie, name, stat, statx bytes)
                todo = []
                made = {}
                stop = min(i + size, n)
                js = [j for j in range(i, stop) if names[j] not in shadow]
                for j, raw in zip(js, statx_keys(lfd, [names[j] for j in js])):
                    if raw is None:
                        continue  # gone since the listing was read
                    name = names[j]
                    if memo is not None:
                        hit = memo.get(name)
                        if hit is not None and hit[0] == raw:
                            batch.append(hit[1])
                            continue
                    st = unpack_statx(raw)
                    if st[DEV_MAJ] != dev[0] or st[DEV_MIN] != dev[1] or st[INO] == state:
                        continue
                    item = (cookies[j], name, st, raw)
                    batch.append(item)
                    todo.append(item)
                i = stop
                size = min(size * 2, 256)
                if todo:
                    with self._guard:
                        nodes = self._ids_for(dir_id, [(name, st) for _, name, st, _ in todo])
                        for (c, name, st, raw), node in zip(todo, nodes):
                            a = to_attrs(st, node.id)
                            if self._bumps and a.kind == I.Kind.DIR:
                                self._bumped(a)
                            made[name] = I.DirEntry(c, name, node.handle, a)
                        if memo is not None and listing.live:
                            self._listings.remember(listing, todo, made)
                for e in batch:
                    if type(e) is tuple:
                        e = made[e[1]]
                    while t < len(trans) and trans[t][0] <= e.cookie:
                        te = self._transient_entry(trans[t])
                        t += 1
                        if te is not None:
                            yield te
                    yield e
            while t < len(trans):
                e = self._transient_entry(trans[t])
                t += 1
                if e is not None:
                    yield e
        finally:
            os.close(lfd)

    @staticmethod
    def _transient_entry(t):
        c, name, s = t
        try:
            return I.DirEntry(c, name, s.handle, s.attrs())
        except I.BackendError:
            return None  # published or discarded meanwhile

    def dir_verifier(self, dir) -> bytes:
        return bytes(8)
