"""Files under construction and published contents (a mixin of `PgS3Backend`).

A new file gets its inode row at once (`staged` names its staging row: nobody but its creator
sees it, rule 2) and its name only at publish. A staging row says which frontend writes it and
under which epoch; publish uploads the spool to a fresh object key (a worker thread: this
backend's `publish_blocks`) and then, in one transaction, checks the row is still this
frontend's at its current epoch (a frontend declared dead publishes nothing), puts the name in
(new file) or moves the inode to the new version (copy-on-write), sends the old version to the
gc queue and moves the directory's `change`.

Reads of published versions come from the block cache on the event loop, or raise WouldBlock
and are fetched from the object store in a worker thread. Versions never change, so their chunk
maps are cached by version id (`_versions`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from .. import interface as I
from . import chunks
from .chunks import Base, read_range
from .namespace import DIR, ICOLS, REG, attrs_of, check_name
from .staging import PgStaging


# A new staging row is committed without waiting for its WAL to reach the disk (others see it at
# once; a crash of the database may forget it): the first sync of the file (FILE_SYNC WRITE,
# COMMIT, CLOSE) commits synchronously, which makes every earlier commit durable too. So an
# OPEN costs no disk flush of its own, as a new file's directory entry in the local backend
# waits for the file's first fsync; nothing a client was told is stable depends on it.
_LAZY = "SET LOCAL synchronous_commit = off"


class PgVersion:
    """A published version pinned for reading (an open keeps it after REMOVE/RENAME over; its
    objects outlive the version by two leases, see gc)."""

    def __init__(self, backend, oid: int, base: Base, attrs):
        self._backend, self.oid, self.base, self._attrs = backend, oid, base, attrs
        self._closed = False

    def read(self, offset: int, count: int, nowait: bool = False) -> tuple[bytes, bool]:
        if self._closed:
            raise I.Invalid("closed")
        data = read_range(self._backend, self.base, offset, count, nowait)
        return data, offset + len(data) >= self.base.size

    def seek(self, offset: int, what) -> tuple[int, bool]:
        b = self.base
        return chunks.seek(chunks.data_ranges(b, self._backend.chunk, offset, b.size), offset,
                           b.size, what)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def attrs(self) -> I.Attrs:
        """Its attributes; no link any more once removed or replaced by a newer version."""
        try:
            row = self._backend._cached_row(self.oid)
        except I.Unavailable:
            return self._attrs
        if row is None or (row[15] or 0) != self.base.vid:
            return dataclasses.replace(self._attrs, nlink=0, memo=None)
        return self._attrs

    def close(self) -> None:
        self._closed = True


class Content:
    # ---- the registry of this frontend's files under construction
    def _register(self, s: PgStaging) -> None:
        self._stagings[s.sid] = s
        self._by_oid.setdefault(s.oid, []).append(s)
        if s.target is not None:
            self._transient.setdefault(s.target, []).append(s)

    def _unregister(self, s: PgStaging) -> None:
        self._stagings.pop(s.sid, None)
        lst = self._by_oid.get(s.oid)
        if lst is not None and s in lst:
            lst.remove(s)
            if not lst:
                del self._by_oid[s.oid]
        self._untarget(s)

    def _untarget(self, s: PgStaging) -> None:
        if s.target is None:
            return
        lst = self._transient.get(s.target)
        if lst is not None and s in lst:
            lst.remove(s)
            if not lst:
                del self._transient[s.target]

    def _view(self, oid: int, viewer):
        """The newest version `viewer` is writing of `oid` on this frontend and has changed,
        else None (an unchanged version shows the published attributes)."""
        for s in reversed(self._by_oid.get(oid, ())):
            if s.viewer == viewer and not s.gone and (s.is_new or s.dirty):
                return s
        return None

    def _transient_of(self, d: int, name: bytes, viewer):
        if viewer is None:
            return None
        for s in reversed(self._transient.get((d, name), ())):
            if s.viewer == viewer and not s.gone:
                return s
        return None

    def _release_name(self, s: PgStaging) -> None:
        """REMOVE of a file under construction (or RENAME over it): its publish does nothing."""
        s.gone = True
        self._untarget(s)
        with self.db.cursor() as cur:
            cur.execute("UPDATE staging SET gone = true WHERE id = %s", (s.sid,))

    def _rename_transient(self, s: PgStaging, d: int, name: bytes, viewer) -> None:
        with self.db.transaction() as cur:
            self._dir_row(cur, d)
            cur.execute("SELECT i.kind FROM entries e JOIN inodes i ON i.id = e.inode "
                        "WHERE e.dir = %s AND e.name = %s", (d, name))
            row = cur.fetchone()
            if row is not None and row[0] == DIR:
                raise I.IsDir()
            other = self._transient_of(d, name, viewer)
            if other is not None and other is not s:
                self._release_name(other)
            cur.execute("UPDATE staging SET dir = %s, name = %s WHERE id = %s", (d, name, s.sid))
            cur.execute("UPDATE inodes SET parent = %s, name = %s WHERE id = %s", (d, name, s.oid))
        self._untarget(s)
        s.target = (d, name)
        self._transient.setdefault(s.target, []).append(s)

    def _name_removed(self, oid: int) -> None:
        """`oid` lost its last name: versions of it being written here publish nothing."""
        for s in self._by_oid.get(oid, ()):
            if not s.is_new:
                s.gone = True

    # ---- creating
    def _spool(self, sid: int) -> str:
        return os.path.join(self.spool_dir, f"{sid}.data")

    def create_staged(self, dir, name, viewer, mode, uid, gid, exclusive, record,
                      verifier=None) -> PgStaging:
        name = check_name(name)
        d = self._oid(dir)
        viewer = bytes(viewer or b"")
        now = time.time_ns()
        with self.db.transaction() as cur:
            cur.execute(_LAZY)
            # the directory locked, then - a statement of its own, so that it sees what was
            # committed while it waited for the lock - the name's present owner, a reservation
            # of it, and the new ids
            cur.execute("SELECT 1 FROM inodes WHERE id = %s FOR UPDATE", (d,), prepare=True)
            cur.execute("SELECT d.kind, (SELECT i.kind FROM entries e JOIN inodes i ON "
                        "i.id = e.inode WHERE e.dir = d.id AND e.name = %s), EXISTS (SELECT 1 "
                        "FROM staging WHERE dir = d.id AND name = %s AND NOT gone AND "
                        "state = 'active'), nextval('inodes_id_seq'), nextval('staging_id_seq'), "
                        "nextval('cookie_seq') FROM inodes d WHERE d.id = %s",
                        (name, name, d), prepare=True)
            row = cur.fetchone()
            if row is None:
                raise I.Stale("no such directory")
            dkind, kind, reserved, oid, sid, cookie = row
            if dkind != DIR:
                raise I.NotDir()
            if kind is not None:
                if exclusive:
                    raise I.Exists()
                if kind == DIR:
                    raise I.IsDir()
                if kind != REG:
                    raise I.Exists("not a regular file")
            if exclusive and reserved:
                raise I.Exists("name reserved by a staged file")
            cur.execute("INSERT INTO inodes (id, kind, mode, uid, gid, nlink, atime, mtime, ctime, "
                        "change, verifier, parent, name, staged) VALUES (%s, %s, %s, %s, %s, 1, "
                        "%s, %s, %s, nextval('change_seq'), %s, %s, %s, %s)",
                        (oid, int(REG), mode & 0o7777, uid or 0, gid or 0, now, now, now,
                         None if verifier is None else bytes(verifier), d, name, sid))
            s = PgStaging(self, sid=sid, handle=self._handle(oid), is_new=True, viewer=viewer,
                          record=record, spool=self._spool(sid), mode=mode & 0o7777,
                          uid=uid or 0, gid=gid or 0, times=(now, now, now))
            s.target, s.cookie, s.exclusive = (d, name), cookie, bool(exclusive)
            s.verifier = None if verifier is None else bytes(verifier)
            cur.execute("INSERT INTO staging (id, inode, frontend, epoch, is_new, viewer, dir, "
                        "name, exclusive, cookie, record, dirty) VALUES (%s, %s, %s, %s, true, %s, "
                        "%s, %s, %s, %s, %s, true)",
                        (sid, oid, self.frontend, self.epoch, viewer, d, name, bool(exclusive),
                         cookie, s.record_json()))
            self._dir_changed(cur, d)  # a name is reserved: the directory changed, as a create
        self._register(s)
        return s

    def create_verifier(self, handle) -> bytes | None:
        oid = self._oid(handle)
        for s in self._by_oid.get(oid, ()):
            if s.is_new:
                return s.verifier
        with self.db.cursor() as cur:
            cur.execute("SELECT verifier FROM inodes WHERE id = %s", (oid,))
            row = cur.fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def stage_version(self, handle, viewer, truncate, record) -> PgStaging:
        """A copy-on-write version: nothing is copied now; below the base limit, unwritten
        bytes come from the published version's chunks (rule 4)."""
        oid = self._oid(handle)
        viewer = bytes(viewer or b"")
        with self.db.transaction() as cur:
            cur.execute(_LAZY)
            cur.execute(f"SELECT {ICOLS} FROM inodes i WHERE i.id = %s", (oid,))
            row = cur.fetchone()
            if row is None:
                raise I.Stale()
            if row[13] is not None:
                raise I.Invalid("not published yet")
            if row[1] != REG:
                raise I.IsDir() if row[1] == DIR else I.WrongType("not a regular file")
            a = attrs_of(row)
            vid = row[15]
            base = None if truncate or vid is None or not a.size else self._base(cur, vid)
            cur.execute("INSERT INTO staging (inode, frontend, epoch, is_new, viewer, base, "
                        "record, dirty) VALUES (%s, %s, %s, false, %s, %s, '{}', %s) RETURNING id",
                        (oid, self.frontend, self.epoch, viewer, None if base is None else vid,
                         bool(truncate)))
            sid = cur.fetchone()[0]
            s = PgStaging(self, sid=sid, handle=self._handle(oid), is_new=False, viewer=viewer,
                          record=record, spool=self._spool(sid), mode=a.mode, uid=a.uid,
                          gid=a.gid, base=base, size=0 if base is None else base.size,
                          times=(a.atime_ns, a.mtime_ns, a.ctime_ns))
            s.dirty = bool(truncate)
            if base is not None:
                os.ftruncate(s.fd, base.size)  # the spool is as long as the version
            cur.execute("UPDATE staging SET record = %s WHERE id = %s", (s.record_json(), sid))
        self._register(s)
        return s

    def _base(self, cur, vid: int) -> Base:
        """Version `vid` with its chunk map (cached: versions never change)."""
        b = self._versions.get(vid)
        if b is not None:
            return b
        cur.execute("SELECT v.size, c.idx, c.key, c.data, c.segs FROM versions v "
                    "LEFT JOIN chunks c ON c.version = v.id WHERE v.id = %s", (vid,),
                    prepare=True)
        rows = cur.fetchall()
        if not rows:
            raise I.Stale("version gone")
        b = Base(vid, rows[0][0], {i: (k if k is not None else bytes(d),
                                       tuple(zip(g[::2], g[1::2])))
                                   for _, i, k, d, g in rows if i is not None})
        self._keep_version(b)
        return b

    def _keep_version(self, b: Base) -> None:
        """Versions never change: their chunk maps are kept (4096 of them)."""
        if len(self._versions) >= 4096:
            self._versions.pop(next(iter(self._versions)))
        self._versions[b.vid] = b

    def save_staging(self, s: PgStaging) -> None:
        """The staging row as `s` is now (its record, size and written ranges): `sync()`."""
        with self.db.cursor() as cur:
            cur.execute("UPDATE staging SET record = %s, size = %s, dirty = %s, synced = true "
                        "WHERE id = %s AND frontend = %s", (s.record_json(), s.size(), s.dirty,
                                                             s.sid, self.frontend))

    # ---- publishing (blocks: a worker thread)
    publish_blocks = True

    def publish(self, staging: PgStaging, sync: bool = True):
        """Upload the pieces that changed, then commit the new version in one transaction (see
        the module text). Blocks (the object store): the protocol layer calls it in a worker
        thread (`publish_blocks`). Nothing is visible to anybody until the commit; if anything
        fails before it, the staging object stays as it was (its new objects are left to gc)."""
        s = staging
        s.check()
        if s.gone:
            self.discard(s)
            raise I.Gone("the name was removed")
        if not s.is_new and not s.dirty:
            self.discard(s)
            return
        s.publishing = True
        try:
            pieces = chunks.plan(s, self.chunk)
            new = chunks.upload(self, s, pieces)
            try:
                self._commit(s, new)
            except I.Gone:
                self.discard(s)
                raise
        except OSError as e:
            from ..oserror import from_oserror

            raise from_oserror(e) from None
        finally:
            s.publishing = False
        return

    def pending_keys(self, keys: list[str]) -> None:
        """Objects about to be uploaded: in the gc queue first, due long after any publish
        would have named them (the commit takes them out)."""
        with self.db.cursor() as cur:
            cur.execute("INSERT INTO gc (object_key, not_before) SELECT k, now() + interval "
                        "'1 day' FROM unnest(%s::text[]) k", (keys,))

    def _commit(self, s: PgStaging, pieces: dict) -> None:
        now = time.time_ns()
        size = s.size()
        used = sum(n for _, segs in pieces.values() for _, n in segs)
        with self.db.transaction() as cur:
            cur.execute("SELECT s.gone, s.dir, s.name, nextval('versions_id_seq') FROM staging s "
                        "JOIN frontends f ON f.id = s.frontend WHERE s.id = %s AND "
                        "s.frontend = %s AND s.epoch = %s AND f.epoch = %s AND "
                        "s.state = 'active' FOR UPDATE OF s",
                        (s.sid, self.frontend, self.epoch, self.epoch), prepare=True)
            row = cur.fetchone()
            if row is None:
                raise I.IOFailure("this frontend no longer owns the file (declared dead)")
            vid = row[3]
            cur.execute("INSERT INTO versions (id, size) VALUES (%s, %s)", (vid, size),
                        prepare=True)
            if pieces:
                idx = sorted(pieces)
                keys = [pieces[i][0] for i in idx if isinstance(pieces[i][0], str)]
                cur.executemany("INSERT INTO chunks (version, idx, key, data, segs) VALUES "
                                "(%s, %s, %s, %s, %s)",
                                [(vid, i, *_key_or_data(pieces[i][0]),
                                  [x for sn in pieces[i][1] for x in sn]) for i in idx])
                if keys:
                    cur.execute("INSERT INTO objects (key, refs) SELECT k, count(*) FROM "
                                "unnest(%s::text[]) k GROUP BY k ON CONFLICT (key) DO UPDATE "
                                "SET refs = objects.refs + EXCLUDED.refs", (keys,))
                    cur.execute("DELETE FROM gc WHERE object_key = ANY(%s)", (keys,))
            if s.is_new:
                gone, d, name = row[0], row[1], bytes(row[2])
                self._publish_new(cur, s, d, name, vid, size, used, now, gone)
            else:
                self._publish_version(cur, s, vid, size, used, now)
            cur.execute("DELETE FROM staging WHERE id = %s", (s.sid,))
        self._keep_version(Base(vid, size, dict(pieces)))
        self._finished(s)

    def _publish_new(self, cur, s, d, name, vid, size, used, now, gone):
        # the directory locked, then (its own statement: what was committed meanwhile) the name
        cur.execute("SELECT 1 FROM inodes WHERE id = %s FOR UPDATE", (d,), prepare=True)
        cur.execute("SELECT d.staged, e.inode, (SELECT kind FROM inodes WHERE id = e.inode) "
                    "FROM inodes d LEFT JOIN entries e ON e.dir = d.id AND e.name = %s "
                    "WHERE d.id = %s", (name, d), prepare=True)
        drow = cur.fetchone()
        if gone or s.gone or drow is None or drow[0] is not None:
            raise _Gone()
        old = None if drow[1] is None else drow[1:]
        if old is not None:
            if old[1] == DIR:
                raise I.IsDir()
            cur.execute("DELETE FROM entries WHERE dir = %s AND name = %s", (d, name))
            self._unlink_inode(cur, old[0], old[1])
        cur.execute("INSERT INTO entries (dir, name, inode, cookie) VALUES (%s, %s, %s, %s)",
                    (d, name, s.oid, s.cookie))
        cur.execute("UPDATE inodes SET staged = NULL, version = %s, size = %s, used = %s, "
                    "mode = %s, uid = %s, gid = %s, atime = %s, mtime = %s, ctime = %s, "
                    "change = nextval('change_seq'), parent = %s, name = %s WHERE id = %s",
                    (vid, size, used, s.mode, s.uid, s.gid, s.atime, s.mtime, max(now, s.ctime),
                     d, name, s.oid))
        self._dir_changed(cur, d)
        if old is not None:
            self._name_removed(old[0])

    def _publish_version(self, cur, s, vid, size, used, now):
        cur.execute("SELECT version, nlink, parent, name FROM inodes WHERE id = %s AND staged "
                    "IS NULL FOR UPDATE", (s.oid,))
        row = cur.fetchone()
        if row is None or s.gone:
            raise _Gone()
        if row[1] > 1:
            # Other hard links keep the old content, as after an editor's write-and-rename:
            # they become an object of their own; this handle keeps the name it is known by.
            self._split_links(cur, s.oid, row[2], bytes(row[3]))
            row = (None,)
        cur.execute("UPDATE inodes SET version = %s, size = %s, used = %s, mtime = %s, "
                    "ctime = %s, change = nextval('change_seq') WHERE id = %s",
                    (vid, size, used, s.mtime, max(now, s.ctime), s.oid))
        if row[0] is not None:
            self._retire_version(cur, row[0])

    def _split_links(self, cur, oid: int, parent: int, name: bytes) -> None:
        cur.execute("SELECT dir, name FROM entries WHERE inode = %s AND NOT (dir = %s AND "
                    "name = %s) ORDER BY dir, name", (oid, parent, name))
        others = cur.fetchall()
        cur.execute("INSERT INTO inodes (kind, mode, uid, gid, nlink, size, used, atime, mtime, "
                    "ctime, change, version, parent, name) SELECT kind, mode, uid, gid, %s, size, "
                    "used, atime, mtime, ctime, nextval('change_seq'), version, %s, %s FROM "
                    "inodes WHERE id = %s RETURNING id",
                    (len(others), others[0][0], bytes(others[0][1]), oid))
        twin = cur.fetchone()[0]
        cur.execute("INSERT INTO xattrs (inode, name, value) SELECT %s, name, value FROM xattrs "
                    "WHERE inode = %s", (twin, oid))
        cur.execute("UPDATE entries SET inode = %s WHERE inode = %s AND NOT (dir = %s AND "
                    "name = %s)", (twin, oid, parent, name))
        cur.execute("UPDATE inodes SET nlink = 1 WHERE id = %s", (oid,))

    def _finished(self, s: PgStaging) -> None:
        self._unregister(s)
        s.finish()

    def discard(self, staging: PgStaging) -> None:
        s = staging
        if s._finished:
            return
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM staging WHERE id = %s", (s.sid,))
            if s.is_new:
                cur.execute("DELETE FROM inodes WHERE id = %s AND staged = %s", (s.oid, s.sid))
        self._finished(s)

    def list_staged(self) -> list[PgStaging]:
        return list(self._stagings.values())

    # ---- published contents
    def _version_of(self, oid: int):
        """(Base, Attrs) of the published version of regular file `oid`."""
        row = self._cached_row(oid)
        if row is None:
            raise I.Stale()
        if row[13] is not None:
            raise I.Invalid("not published yet: read its staging object")
        if row[1] != REG:
            raise I.IsDir() if row[1] == DIR else I.WrongType("not a regular file")
        a = attrs_of(row)
        if row[15] is None:
            return Base(0, 0), a
        base = self._versions.get(row[15])
        if base is None:
            with self.db.cursor() as cur:
                base = self._base(cur, row[15])
        return base, a

    def open_version(self, handle) -> PgVersion:
        oid = self._oid(handle)
        base, a = self._version_of(oid)
        return PgVersion(self, oid, base, a)

    def read(self, handle, offset: int, count: int, nowait: bool = False):
        base, _ = self._version_of(self._oid(handle))
        data = read_range(self, base, offset, count, nowait)
        return data, offset + len(data) >= base.size

    def read_base(self, base: Base, offset: int, count: int, nowait: bool) -> bytes:
        return read_range(self, base, offset, count, nowait)

    def seek(self, handle, offset: int, what) -> tuple[int, bool]:
        base, _ = self._version_of(self._oid(handle))
        return chunks.seek(chunks.data_ranges(base, self.chunk, offset, base.size), offset,
                           base.size, what)

    # ---- recovery of this frontend's files after a restart
    def _recover(self) -> None:
        with self.db.cursor() as cur:
            cur.execute("SELECT s.id, s.inode, s.is_new, s.viewer, s.dir, s.name, s.exclusive, "
                        "s.gone, s.base, s.record, s.cookie, s.state, i.verifier FROM staging s "
                        "LEFT JOIN inodes i ON i.id = s.inode WHERE s.frontend = %s ORDER BY s.id",
                        (self.frontend,))
            rows = cur.fetchall()
            bases = {}
            for b in {r[8] for r in rows if r[8] is not None}:
                try:
                    bases[b] = self._base(cur, b)
                except I.Stale:  # removed while we were down: the version publishes nothing
                    bases[b] = None
        for (sid, oid, is_new, viewer, d, name, exclusive, gone, base_id, text, cookie, state,
             verifier) in rows:
            path = self._spool(sid)
            if not os.path.exists(path):
                self._problems.append((path, "spool file missing: its data is lost"))
                self._forget_row(sid, oid, is_new)
                continue
            doc = json.loads(text)
            st = doc.get("state") or {}
            record = doc.get("record") or {}
            if state == "retired" and record.get("state") != "retired":
                record = dict(record, state="retired", retired_at=time.time())
            base = None if base_id is None else bases[base_id]
            if base_id is not None and base is None:
                gone = True
            s = PgStaging(self, sid=sid, handle=self._handle(oid), is_new=is_new,
                          viewer=bytes(viewer), record=record, spool=path,
                          mode=st.get("mode", 0o644), uid=st.get("uid", 0), gid=st.get("gid", 0),
                          base=base, size=st.get("size", 0),
                          times=tuple(st["times"]) if st.get("times") else None)
            s.replay()
            s._size = os.fstat(s.fd).st_size  # the spool is as long as the version
            s.dirty = is_new or bool(st.get("dirty")) or s._size != (base.size if base else 0) \
                or bool(s.written.starts)
            s.gone = bool(gone)
            if is_new and not gone:
                s.target, s.cookie, s.exclusive = (d, bytes(name)), cookie or 0, exclusive
            s.verifier = None if verifier is None else bytes(verifier)
            self._register(s)
        with self.db.cursor() as cur:
            cur.execute("UPDATE staging SET epoch = %s, state = 'active', retired_at = NULL "
                        "WHERE frontend = %s", (self.epoch, self.frontend))

    def _forget_row(self, sid, oid, is_new) -> None:
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM staging WHERE id = %s", (sid,))
            if is_new:
                cur.execute("DELETE FROM inodes WHERE id = %s AND staged = %s", (oid, sid))


def _key_or_data(key) -> tuple:
    """(key, data) columns of a chunk row: an object's key, or the piece's bytes."""
    return (key, None) if isinstance(key, str) else (None, key)


class _Gone(I.Gone):
    """Publish found the name or the file removed (in the transaction: rolled back)."""
