"""The namespace in PostgreSQL: look-ups, attributes, listings and directory changes (a mixin
of `PgS3Backend`).

Every change is one transaction that locks the directories it touches (`FOR UPDATE`, in id
order, so two frontends changing the same directory take turns instead of deadlocking) and
takes a new `change` value for each object it changes from the one sequence. Names of files
under construction on this frontend are kept in memory (`_transient`): only their creators see
them, and nobody else's view depends on them; their reservations that others must respect
(exclusive creates) are in the staging table.
"""

from __future__ import annotations

import bisect
import time

from .. import interface as I

REG, DIR, LNK = I.Kind.REG, I.Kind.DIR, I.Kind.LNK
COLS = ("id, kind, mode, uid, gid, nlink, size, rdev_major, rdev_minor, atime, mtime, ctime, "
        "change, staged, used, version")  # a row: what the cache keeps (metacache.py)
ICOLS = "i." + COLS.replace(", ", ", i.")  # the same, of an inode aliased `i` in a join
MAX_NAME = I.NAME_MAX
_LINK_MAX = 2 ** 31 - 1


def check_name(name) -> bytes:
    name = bytes(name)
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
        raise I.InvalidName(repr(name))
    if len(name) > MAX_NAME:
        raise I.NameTooLong(f"{len(name)} bytes")
    return name


def attrs_of(row) -> I.Attrs:
    (oid, kind, mode, uid, gid, nlink, size, rmaj, rmin, atime, mtime, ctime, change,
     _staged, used) = row[:15]
    if kind != REG:
        used = (size + 4095) // 4096 * 4096
    return I.Attrs(I.Kind(kind), mode, nlink, uid, gid, size, used, (rmaj, rmin), oid, atime,
                   mtime, ctime, change)


class Namespace:
    # ---- handles
    def _handle(self, oid: int) -> bytes:
        return self.identity + oid.to_bytes(8, "big")

    def _oid(self, handle) -> int:
        handle = bytes(handle)
        if len(handle) != 16:
            raise I.BadHandle("not a handle of this backend")
        if handle[:8] != self.identity:
            raise I.Stale("another namespace")
        return int.from_bytes(handle[8:], "big")

    def root(self) -> bytes:
        return self._handle(1)

    def fsid(self) -> tuple[int, int]:
        return int.from_bytes(self.identity[:4], "big"), int.from_bytes(self.identity[4:], "big")

    def _row(self, cur, oid: int, lock: bool = False):
        cur.execute(f"SELECT {COLS} FROM inodes WHERE id = %s" + (" FOR UPDATE" if lock else ""),
                    (oid,), prepare=True)
        return cur.fetchone()

    def _cached_row(self, oid: int):
        """The inode row from the cache, else from the database (and kept), else None."""
        row = self.mcache.row(oid)
        if row is None:
            token = self.mcache.token()
            with self.db.cursor() as cur:
                row = self._row(cur, oid)
            if row is not None:
                self.mcache.put_rows(token, (row,))
        return row

    def _visible_row(self, oid: int, viewer):
        """The inode row, or Stale: gone, or a new file another client is creating."""
        row = self._cached_row(oid)
        if row is None or (row[13] is not None and self._view(oid, viewer) is None):
            raise I.Stale("no such object")
        return row

    def _dir_row(self, cur, oid: int, lock: bool = False):
        row = self._row(cur, oid, lock)
        if row is None:
            raise I.Stale("no such directory")
        if row[1] != DIR:
            raise I.NotDir()
        return row

    def _next_change(self, cur) -> int:
        cur.execute("SELECT nextval('change_seq')", prepare=True)
        return cur.fetchone()[0]

    def _dir_changed(self, cur, oid: int, nlink_delta: int = 0) -> None:
        now = time.time_ns()
        cur.execute("UPDATE inodes SET mtime = %s, ctime = %s, change = nextval('change_seq'), "
                    "nlink = nlink + %s WHERE id = %s", (now, now, nlink_delta, oid), prepare=True)

    # ---- attributes and look-ups
    def check(self, handle) -> None:
        """Stale unless the handle names a live object, published or under construction."""
        oid = self._oid(handle)
        if self._by_oid.get(oid):
            return
        if self._cached_row(oid) is None:
            raise I.Stale("no such object")

    def getattr(self, handle, viewer=None) -> I.Attrs:
        oid = self._oid(handle)
        s = self._view(oid, viewer)
        if s is not None:
            return s.attrs()
        row = self._cached_row(oid)
        if row is None or row[13] is not None:
            # removed through another frontend while this viewer writes a version of it: the
            # open keeps it usable (PRESERVE_UNLINKED); its publish will find it gone
            for s in self._by_oid.get(oid, ()):
                if s.viewer == viewer and not s.is_new:
                    return s.attrs()
            raise I.Stale("no such object")
        return attrs_of(row)

    def lookup(self, dir, name, viewer=None) -> bytes:
        return self.lookup_attrs(dir, name, viewer)[0]

    def lookup_attrs(self, dir, name, viewer=None):
        name = check_name(name)
        d = self._oid(dir)
        mine = self._transient_of(d, name, viewer)
        if mine is not None:
            return mine.handle, mine.attrs()
        known, oid = self.mcache.name(d, name)
        child = None
        if known:
            if oid is None:
                raise I.NotFound()
            child = self.mcache.row(oid)
        if child is None:
            token = self.mcache.token()
            with self.db.cursor() as cur:
                cur.execute(f"SELECT d.kind, d.staged, {ICOLS} FROM inodes d "
                            "LEFT JOIN entries e ON e.dir = d.id AND e.name = %s "
                            "LEFT JOIN inodes i ON i.id = e.inode WHERE d.id = %s",
                            (name, d), prepare=True)
                row = cur.fetchone()
            if row is None:
                raise I.Stale("no such directory")
            if row[0] != DIR:
                raise I.NotDir()
            child = row[2:] if row[2] is not None else None
            self.mcache.put_name(token, d, name, None if child is None else child[0])
            if child is None:
                raise I.NotFound()
            self.mcache.put_rows(token, (child,))
        s = self._view(child[0], viewer)
        return self._handle(child[0]), (s.attrs() if s is not None else attrs_of(child))

    def parent(self, handle) -> bytes:
        """The directory holding the object's name (a new file: where it will appear)."""
        oid = self._oid(handle)
        with self.db.cursor() as cur:
            cur.execute("SELECT parent, staged FROM inodes WHERE id = %s", (oid,), prepare=True)
            row = cur.fetchone()
        if row is None or (row[1] is not None and not self._by_oid.get(oid)):
            raise I.Stale()
        return self._handle(row[0] or 1)

    def readdir(self, dir, cookie: int, viewer=None):
        d = self._oid(dir)
        row = self._cached_row(d)
        if row is None:
            raise I.Stale("no such directory")
        if row[1] != DIR:
            raise I.NotDir()
        mine = sorted((s.cookie, name, s) for (dd, name), lst in self._transient.items()
                      if dd == d for s in lst if s.viewer == viewer and not s.gone)
        return self._entries(d, cookie, mine)

    def _entries(self, d: int, cookie: int, mine):
        """The listing after `cookie` in cookie order, the viewer's transient names merged in."""
        listing = self._listing(d)
        rows = self._listed(d, cookie) if listing is None else self._from_listing(listing, cookie)
        i = 0
        shadow = {name for _, name, _ in mine}
        for c, name, child in rows:
            while i < len(mine) and mine[i][0] <= c:
                if mine[i][0] > cookie:
                    yield self._transient_entry(mine[i])
                i += 1
            cookie = c
            if name in shadow:
                continue
            yield I.DirEntry(c, name, self._handle(child[0]), attrs_of(child))
        for m in mine[i:]:
            if m[0] > cookie:
                yield self._transient_entry(m)

    def _listing(self, d: int):
        """The whole listing of `d` [(cookie, name, child id)], from the cache or read (and
        kept) with its children's rows; None for a directory too large to keep."""
        listing = self.mcache.listing(d)
        if listing is not None:
            return listing
        top = self.mcache.max_listing
        token = self.mcache.token()
        with self.db.cursor() as cur:
            cur.execute(f"SELECT e.cookie, e.name, {ICOLS} "
                        "FROM entries e JOIN inodes i ON i.id = e.inode "
                        "WHERE e.dir = %s ORDER BY e.cookie LIMIT %s", (d, top + 1), prepare=True)
            rows = cur.fetchall()
        if len(rows) > top:
            return None
        listing = [(c, bytes(name), child[0]) for c, name, *child in rows]
        self.mcache.put_rows(token, [tuple(r[2:]) for r in rows])
        self.mcache.put_listing(token, d, listing)
        return listing

    def _from_listing(self, listing, cookie: int):
        """(cookie, name, row) after `cookie`; rows the cache no longer has are read in
        batches (a child removed meanwhile is left out)."""
        start = bisect.bisect_right(listing, cookie, key=lambda e: e[0])
        for at in range(start, len(listing), 256):
            part = listing[at:at + 256]
            rows = {}
            missing = []
            for _, _, oid in part:
                r = self.mcache.row(oid)
                if r is None:
                    missing.append(oid)
                else:
                    rows[oid] = r
            if missing:
                token = self.mcache.token()
                with self.db.cursor() as cur:
                    cur.execute(f"SELECT {COLS} FROM inodes WHERE id = ANY(%s)", (missing,),
                                prepare=True)
                    found = cur.fetchall()
                self.mcache.put_rows(token, found)
                rows.update((r[0], r) for r in found)
            for c, name, oid in part:
                r = rows.get(oid)
                if r is not None:
                    yield c, name, r

    def _listed(self, d: int, cookie: int):
        """(cookie, name, row) after `cookie` from the database, in batches as the caller
        goes on (a directory too large for the cache)."""
        batch = 64
        while True:
            with self.db.cursor() as cur:
                cur.execute(f"SELECT e.cookie, e.name, {ICOLS} "
                            "FROM entries e JOIN inodes i ON i.id = e.inode "
                            "WHERE e.dir = %s AND e.cookie > %s ORDER BY e.cookie LIMIT %s",
                            (d, cookie, batch), prepare=True)
                rows = cur.fetchall()
            for c, name, *child in rows:
                cookie = c
                yield c, bytes(name), child
            if len(rows) < batch:
                return
            batch = min(batch * 4, 1024)

    def _transient_entry(self, m):
        c, name, s = m
        return I.DirEntry(c, name, s.handle, s.attrs())

    def dir_verifier(self, dir) -> bytes:
        return bytes(8)

    def readlink(self, handle) -> bytes:
        oid = self._oid(handle)
        with self.db.cursor() as cur:
            cur.execute("SELECT kind, target, staged FROM inodes WHERE id = %s", (oid,),
                        prepare=True)
            row = cur.fetchone()
        if row is None or (row[2] is not None and not self._by_oid.get(oid)):
            raise I.Stale()
        if row[0] != LNK:
            raise I.NotSymlink()
        return bytes(row[1])

    def statfs(self, handle) -> I.FsStats:
        self.getattr(handle)
        big = 1 << 50
        return I.FsStats(1 << 40, 1 << 39, 1 << 39, big, big // 2, big // 2, MAX_NAME, True)

    # ---- creating
    def _make(self, dir, name, kind, mode, uid, gid, target=None, rdev=(0, 0)) -> bytes:
        name = check_name(name)
        if kind == LNK and (not target or b"\0" in target):
            raise I.Invalid("a symlink needs a target without NUL")
        d = self._oid(dir)
        now = time.time_ns()
        with self.db.transaction() as cur:
            self._dir_row(cur, d, lock=True)
            cur.execute("SELECT 1 FROM entries WHERE dir = %s AND name = %s", (d, name))
            if cur.fetchone() is not None or self._reserved(cur, d, name):
                raise I.Exists()
            cur.execute("INSERT INTO inodes (kind, mode, uid, gid, nlink, size, rdev_major, "
                        "rdev_minor, atime, mtime, ctime, change, target, parent, name) VALUES "
                        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, nextval('change_seq'), %s, "
                        "%s, %s) RETURNING id",
                        (int(kind), mode & 0o7777, uid or 0, gid or 0, 2 if kind == DIR else 1,
                         len(target) if target else (4096 if kind == DIR else 0), rdev[0],
                         rdev[1], now, now, now, target, d, name))
            oid = cur.fetchone()[0]
            cur.execute("INSERT INTO entries (dir, name, inode, cookie) VALUES "
                        "(%s, %s, %s, nextval('cookie_seq'))", (d, name, oid))
            self._dir_changed(cur, d, 1 if kind == DIR else 0)
        return self._handle(oid)

    def mkdir(self, dir, name, mode, uid, gid) -> bytes:
        return self._make(dir, name, DIR, mode, uid, gid)

    def symlink(self, dir, name, target: bytes, mode, uid, gid) -> bytes:
        return self._make(dir, name, LNK, 0o777, uid, gid, target=bytes(target))

    def mknod(self, dir, name, kind, rdev, mode, uid, gid) -> bytes:
        if kind in (REG, DIR, LNK):
            raise I.WrongType("not a special file")
        return self._make(dir, name, kind, mode, uid, gid, rdev=tuple(rdev))

    def _reserved(self, cur, d: int, name: bytes) -> bool:
        """Is `name` in `d` reserved by an exclusive create under way (any frontend)?"""
        cur.execute("SELECT 1 FROM staging WHERE dir = %s AND name = %s AND exclusive "
                    "AND NOT gone AND state = 'active'", (d, name), prepare=True)
        return cur.fetchone() is not None

    # ---- removing, renaming, linking
    def remove(self, dir, name, viewer=None) -> None:
        name = check_name(name)
        d = self._oid(dir)
        mine = self._transient_of(d, name, viewer)
        if mine is not None:
            self._release_name(mine)  # and the published name under it, if there is one
        with self.db.transaction() as cur:
            self._dir_row(cur, d, lock=True)
            cur.execute("SELECT e.inode, i.kind, i.nlink FROM entries e JOIN inodes i "
                        "ON i.id = e.inode WHERE e.dir = %s AND e.name = %s FOR UPDATE OF i",
                        (d, name))
            row = cur.fetchone()
            if row is None:
                if mine is not None:
                    return
                raise I.NotFound()
            oid, kind, _ = row
            if kind == DIR:
                cur.execute("SELECT 1 FROM entries WHERE dir = %s LIMIT 1", (oid,))
                if cur.fetchone() is not None:
                    raise I.NotEmpty()
            cur.execute("DELETE FROM entries WHERE dir = %s AND name = %s", (d, name))
            self._unlink_inode(cur, oid, kind)
            self._dir_changed(cur, d, -1 if kind == DIR else 0)
        self._name_removed(oid)

    def _unlink_inode(self, cur, oid: int, kind) -> None:
        """One name of `oid` is gone: its link count drops; without links it goes, its
        content to the gc queue (kept two leases for opens on other frontends)."""
        if kind == DIR:
            cur.execute("DELETE FROM inodes WHERE id = %s RETURNING version", (oid,))
        else:
            cur.execute("UPDATE inodes SET nlink = nlink - 1, ctime = %s, "
                        "change = nextval('change_seq') WHERE id = %s RETURNING nlink, version",
                        (time.time_ns(), oid))
            nlink, version = cur.fetchone()
            if nlink > 0:  # its name may have been the removed one: another link holds it now
                cur.execute("UPDATE inodes i SET parent = e.dir, name = e.name FROM (SELECT dir, "
                            "name FROM entries WHERE inode = %s LIMIT 1) e WHERE i.id = %s AND "
                            "NOT EXISTS (SELECT 1 FROM entries x WHERE x.inode = i.id AND "
                            "x.dir = i.parent AND x.name = i.name)", (oid, oid))
                return
            cur.execute("DELETE FROM xattrs WHERE inode = %s", (oid,))
            cur.execute("DELETE FROM inodes WHERE id = %s RETURNING version", (oid,))
        version = cur.fetchone()[0]
        if version is not None:
            self._retire_version(cur, version)

    def _retire_version(self, cur, version: int) -> None:
        """A version nobody names any more: its chunk objects lose a reference each; those
        without any go to the gc queue, deleted after two leases (an open through another
        frontend may still read them until then)."""
        cur.execute("WITH gone AS (DELETE FROM chunks WHERE version = %s RETURNING key), "
                    "n AS (SELECT key, count(*) AS c FROM gone GROUP BY key) "
                    "UPDATE objects o SET refs = o.refs - n.c FROM n WHERE o.key = n.key "
                    "RETURNING o.key, o.refs", (version,))
        dead = [k for k, refs in cur.fetchall() if refs <= 0]
        if dead:
            cur.execute("DELETE FROM objects WHERE key = ANY(%s)", (dead,))
            cur.execute("INSERT INTO gc (object_key, not_before) SELECT k, now() + "
                        "make_interval(secs => %s) FROM unnest(%s::text[]) k",
                        (2 * self.lease_time, dead))
        cur.execute("DELETE FROM versions WHERE id = %s", (version,))

    def rename(self, sdir, sname, ddir, dname, viewer=None) -> None:
        sname, dname = check_name(sname), check_name(dname)
        s, d = self._oid(sdir), self._oid(ddir)
        mine = self._transient_of(s, sname, viewer)
        if mine is not None:
            self._rename_transient(mine, d, dname, viewer)
            return
        replaced = None
        with self.db.transaction() as cur:
            for oid in sorted({s, d}):
                self._dir_row(cur, oid, lock=True)
            cur.execute("SELECT e.inode, i.kind, e.cookie FROM entries e JOIN inodes i ON "
                        "i.id = e.inode WHERE e.dir = %s AND e.name = %s", (s, sname))
            src = cur.fetchone()
            if src is None:
                raise I.NotFound()
            moving, mkind, _ = src
            target = self._transient_of(d, dname, viewer)
            if target is not None:
                if mkind == DIR:
                    raise I.NotDir()
                self._release_name(target)
            cur.execute("SELECT e.inode, i.kind FROM entries e JOIN inodes i ON i.id = e.inode "
                        "WHERE e.dir = %s AND e.name = %s", (d, dname))
            dst = cur.fetchone()
            if dst is not None and dst[0] == moving:
                return  # the same object under both names: nothing to do
            if mkind == DIR and self._inside(cur, d, moving):
                raise I.Invalid("a directory cannot move into itself")
            if dst is not None:
                if dst[1] == DIR:
                    if mkind != DIR:
                        raise I.IsDir()
                    cur.execute("SELECT 1 FROM entries WHERE dir = %s LIMIT 1", (dst[0],))
                    if cur.fetchone() is not None:
                        raise I.NotEmpty()
                elif mkind == DIR:
                    raise I.NotDir()
                cur.execute("DELETE FROM entries WHERE dir = %s AND name = %s", (d, dname))
                self._unlink_inode(cur, dst[0], dst[1])
                replaced = dst[0]
            cur.execute("UPDATE entries SET dir = %s, name = %s, cookie = nextval('cookie_seq') "
                        "WHERE dir = %s AND name = %s", (d, dname, s, sname))
            # its name follows the rename if that was the name it is known by
            cur.execute("UPDATE inodes SET ctime = %s, change = nextval('change_seq'), "
                        "parent = CASE WHEN kind = 2 OR (parent = %s AND name = %s) THEN %s "
                        "ELSE parent END, name = CASE WHEN kind = 2 OR (parent = %s AND "
                        "name = %s) THEN %s ELSE name END WHERE id = %s",
                        (time.time_ns(), s, sname, d, s, sname, dname, moving))
            moved_dir = mkind == DIR and s != d
            self._dir_changed(cur, s, -1 if moved_dir else 0)
            if d != s:
                self._dir_changed(cur, d, (1 if moved_dir else 0) - (1 if dst and dst[1] == DIR
                                                                      else 0))
            elif dst is not None and dst[1] == DIR:
                self._dir_changed(cur, d, -1)
        if replaced is not None:
            self._name_removed(replaced)

    def _inside(self, cur, d: int, moving: int) -> bool:
        """Is directory `d` `moving` itself or below it?"""
        seen = 0
        while d and seen < 4096:
            if d == moving:
                return True
            if d == 1:
                return False
            cur.execute("SELECT parent FROM inodes WHERE id = %s", (d,), prepare=True)
            row = cur.fetchone()
            d = row[0] if row else 0
            seen += 1
        return False

    def link(self, handle, dir, name) -> None:
        name = check_name(name)
        oid, d = self._oid(handle), self._oid(dir)
        if self._by_oid.get(oid) and self._by_oid[oid][0].is_new:
            raise I.Invalid("cannot link a file that is not published yet")
        with self.db.transaction() as cur:
            self._dir_row(cur, d, lock=True)
            row = self._row(cur, oid, lock=True)
            if row is None:
                raise I.Stale()
            if row[13] is not None:
                raise I.Invalid("cannot link a file that is not published yet")
            if row[1] == DIR:
                raise I.IsDir()
            if row[5] >= _LINK_MAX:
                raise I.TooBig("too many links")
            cur.execute("SELECT 1 FROM entries WHERE dir = %s AND name = %s", (d, name))
            if cur.fetchone() is not None or self._reserved(cur, d, name):
                raise I.Exists()
            cur.execute("INSERT INTO entries (dir, name, inode, cookie) VALUES "
                        "(%s, %s, %s, nextval('cookie_seq'))", (d, name, oid))
            cur.execute("UPDATE inodes SET nlink = nlink + 1, ctime = %s, "
                        "change = nextval('change_seq') WHERE id = %s", (time.time_ns(), oid))
            self._dir_changed(cur, d)

    def setattr(self, handle, changes: I.SetAttrs) -> I.Attrs:
        oid = self._oid(handle)
        mine = list(self._by_oid.get(oid, ()))
        if all(v is None for v in (changes.mode, changes.uid, changes.gid, changes.atime_ns,
                                   changes.mtime_ns)):
            return mine[-1].attrs() if mine and mine[0].is_new else self.getattr(handle)
        now = time.time_ns()
        for s in mine:
            if changes.mode is not None:
                s.mode = changes.mode & 0o7777
            if changes.uid is not None:
                s.uid = changes.uid
            if changes.gid is not None:
                s.gid = changes.gid
            if changes.atime_ns is not None:
                s.atime = changes.atime_ns
            if changes.mtime_ns is not None:
                s.mtime = changes.mtime_ns
            s.ctime = max(now, s.ctime + 1)
        if mine and mine[0].is_new:
            return mine[-1].attrs()
        sets, args = ["ctime = %s", "change = nextval('change_seq')"], [now]
        for col, v in (("mode", None if changes.mode is None else changes.mode & 0o7777),
                       ("uid", changes.uid), ("gid", changes.gid), ("atime", changes.atime_ns),
                       ("mtime", changes.mtime_ns)):
            if v is not None:
                sets.append(f"{col} = %s")
                args.append(v)
        if changes.mode is not None:  # a symlink's mode means nothing (as on Linux): kept
            sets[2] = "mode = CASE WHEN kind = 5 THEN mode ELSE %s END"
        with self.db.cursor() as cur:
            cur.execute(f"UPDATE inodes SET {', '.join(sets)} WHERE id = %s AND staged IS NULL "
                        f"RETURNING {COLS}", (*args, oid))
            row = cur.fetchone()
        if row is None:
            raise I.Stale()
        return attrs_of(row)
