"""Files under construction and published contents (a mixin of `PgS3Backend`).

A new file gets its inode row at once (`staged` names its staging row: nobody but its creator
sees it, rule 2) and its name only at publish. A staging row says which frontend writes it and
under which epoch; publish uploads the spool to a fresh object key (a worker thread: this
backend's `publish_blocks`) and then, in one transaction, checks the row is still this
frontend's at its current epoch (a frontend declared dead publishes nothing), puts the name in
(new file) or moves the inode to the new version (copy-on-write), sends the old version to the
gc queue and moves the directory's `change`.

Reads of published versions come from the block cache on the event loop, or raise WouldBlock
and are fetched from the object store in a worker thread.
"""

from __future__ import annotations

import json
import os
import time

from .. import interface as I
from .namespace import DIR, ICOLS, REG, attrs_of, check_name
from .staging import PgStaging


class PgVersion:
    """A published version pinned for reading (an open keeps it after REMOVE/RENAME over)."""

    def __init__(self, backend, key, inline, size, attrs):
        self._backend, self.key, self.inline, self.size, self._attrs = \
            backend, key, inline, size, attrs

    def read(self, offset: int, count: int, nowait: bool = False) -> tuple[bytes, bool]:
        data = self._backend.read_base((self.key, self.inline, self.size), offset, count, nowait)
        return data, offset + len(data) >= self.size

    def attrs(self) -> I.Attrs:
        return self._attrs

    def close(self) -> None:
        pass


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
        """The newest version `viewer` is writing of `oid` on this frontend, else None."""
        for s in reversed(self._by_oid.get(oid, ())):
            if s.viewer == viewer and not s.gone:
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
            self._dir_row(cur, d, lock=True)
            cur.execute("SELECT i.kind FROM entries e JOIN inodes i ON i.id = e.inode "
                        "WHERE e.dir = %s AND e.name = %s", (d, name))
            row = cur.fetchone()
            if row is not None:
                if exclusive:
                    raise I.Exists()
                if row[0] == DIR:
                    raise I.IsDir()
                if row[0] != REG:
                    raise I.Exists("not a regular file")
            if exclusive:
                cur.execute("SELECT 1 FROM staging WHERE dir = %s AND name = %s AND NOT gone "
                            "AND state = 'active'", (d, name))
                if cur.fetchone() is not None:
                    raise I.Exists("name reserved by a staged file")
            cur.execute("SELECT nextval('inodes_id_seq'), nextval('staging_id_seq'), "
                        "nextval('cookie_seq')")
            oid, sid, cookie = cur.fetchone()
            cur.execute("INSERT INTO inodes (id, kind, mode, uid, gid, nlink, atime, mtime, ctime, "
                        "change, verifier, parent, staged) VALUES (%s, %s, %s, %s, %s, 1, %s, %s, "
                        "%s, nextval('change_seq'), %s, %s, %s)",
                        (oid, int(REG), mode & 0o7777, uid or 0, gid or 0, now, now, now,
                         None if verifier is None else bytes(verifier), d, sid))
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
        bytes come from the published version's object (rule 4)."""
        oid = self._oid(handle)
        viewer = bytes(viewer or b"")
        with self.db.transaction() as cur:
            cur.execute(f"SELECT {ICOLS}, v.id, v.object_key, v.inline, v.size FROM inodes i "
                        "LEFT JOIN versions v ON v.id = i.version WHERE i.id = %s",
                        (oid,))
            row = cur.fetchone()
            if row is None or row[13] is not None:
                raise I.Stale("not published")
            if row[1] != REG:
                raise I.IsDir() if row[1] == DIR else I.WrongType("not a regular file")
            a = attrs_of(row)
            vid, key, inline, vsize = row[14:18]
            base = None if truncate or vid is None or not vsize else \
                (key, None if inline is None else bytes(inline), vsize)
            cur.execute("INSERT INTO staging (inode, frontend, epoch, is_new, viewer, base, "
                        "record, dirty) VALUES (%s, %s, %s, false, %s, %s, '{}', %s) RETURNING id",
                        (oid, self.frontend, self.epoch, viewer, None if base is None else vid,
                         bool(truncate)))
            sid = cur.fetchone()[0]
            s = PgStaging(self, sid=sid, handle=self._handle(oid), is_new=False, viewer=viewer,
                          record=record, spool=self._spool(sid), mode=a.mode, uid=a.uid,
                          gid=a.gid, base=base, size=0 if base is None else vsize,
                          times=(a.atime_ns, a.mtime_ns, a.ctime_ns))
            s.dirty = bool(truncate)
            if base is not None:
                os.ftruncate(s.fd, vsize)
            cur.execute("UPDATE staging SET record = %s WHERE id = %s", (s.record_json(), sid))
        self._register(s)
        return s

    def save_staging(self, s: PgStaging) -> None:
        """The staging row as `s` is now (its record, size and written ranges): `sync()`."""
        with self.db.cursor() as cur:
            cur.execute("UPDATE staging SET record = %s, size = %s, dirty = %s, synced = true "
                        "WHERE id = %s AND frontend = %s", (s.record_json(), s.size(), s.dirty,
                                                             s.sid, self.frontend))

    # ---- publishing (blocks: a worker thread)
    publish_blocks = True

    def publish(self, staging: PgStaging, sync: bool = True):
        """Upload the spool to a fresh object, then commit it in one transaction (see the
        module text). Blocks (the object store): the protocol layer calls it in a worker
        thread (`publish_blocks`). Nothing is visible to anybody until the commit; if anything
        fails before it, the staging object stays as it was and the object goes to gc."""
        s = staging
        s.check()
        if s.gone:
            self.discard(s)
            raise I.Gone("the name was removed")
        if not s.is_new and not s.dirty:
            self.discard(s)
            return None
        s.publishing = True
        try:
            s.fill()
            os.fdatasync(s.fd)
            size = s.size()
            key = self.objects.new_key()

            def started(upload_id):
                with self.db.cursor() as cur:
                    cur.execute("UPDATE staging SET upload_key = %s, upload_id = %s WHERE id = %s",
                                (key, upload_id, s.sid))
            self.objects.put_file(s.fd, size, key, started)
            try:
                self._commit(s, key, size)
            except BaseException as e:
                # Not published: the object is referenced by nothing; the gc queue deletes it.
                try:
                    with self.db.cursor() as cur:
                        cur.execute("INSERT INTO gc (object_key, not_before) VALUES (%s, now())",
                                    (key,))
                except I.BackendError:
                    pass  # (the database is down: the object stays, unreferenced)
                if isinstance(e, I.Gone):
                    self.discard(s)
                raise
        except OSError as e:
            from ..oserror import from_oserror

            raise from_oserror(e) from None
        finally:
            s.publishing = False
        return None

    def _commit(self, s: PgStaging, key: str, size: int) -> None:
        now = time.time_ns()
        with self.db.transaction() as cur:
            cur.execute("SELECT s.gone, s.dir, s.name FROM staging s JOIN frontends f ON "
                        "f.id = s.frontend WHERE s.id = %s AND s.frontend = %s AND s.epoch = %s "
                        "AND f.epoch = %s AND s.state = 'active' FOR UPDATE OF s",
                        (s.sid, self.frontend, self.epoch, self.epoch))
            row = cur.fetchone()
            if row is None:
                raise I.IOFailure("this frontend no longer owns the file (declared dead)")
            cur.execute("INSERT INTO versions (object_key, size) VALUES (%s, %s) RETURNING id",
                        (key, size))
            vid = cur.fetchone()[0]
            if s.is_new:
                gone, d, name = row[0], row[1], bytes(row[2])
                self._publish_new(cur, s, d, name, vid, size, now, gone)
            else:
                self._publish_version(cur, s, vid, size, now)
            cur.execute("DELETE FROM staging WHERE id = %s", (s.sid,))
        self._finished(s)

    def _publish_new(self, cur, s, d, name, vid, size, now, gone):
        cur.execute("SELECT kind, staged FROM inodes WHERE id = %s FOR UPDATE", (d,))
        drow = cur.fetchone()
        if gone or s.gone or drow is None or drow[1] is not None:
            raise _Gone()
        cur.execute("SELECT e.inode, i.kind FROM entries e JOIN inodes i ON i.id = e.inode "
                    "WHERE e.dir = %s AND e.name = %s", (d, name))
        old = cur.fetchone()
        if old is not None:
            if old[1] == DIR:
                raise I.IsDir()
            cur.execute("DELETE FROM entries WHERE dir = %s AND name = %s", (d, name))
            self._unlink_inode(cur, old[0], old[1])
        cur.execute("INSERT INTO entries (dir, name, inode, cookie) VALUES (%s, %s, %s, %s)",
                    (d, name, s.oid, s.cookie))
        cur.execute("UPDATE inodes SET staged = NULL, version = %s, size = %s, mode = %s, "
                    "uid = %s, gid = %s, atime = %s, mtime = %s, ctime = %s, "
                    "change = nextval('change_seq') WHERE id = %s",
                    (vid, size, s.mode, s.uid, s.gid, s.atime, s.mtime, max(now, s.ctime), s.oid))
        self._dir_changed(cur, d)
        if old is not None:
            self._name_removed(old[0])

    def _publish_version(self, cur, s, vid, size, now):
        cur.execute("SELECT version FROM inodes WHERE id = %s AND staged IS NULL FOR UPDATE",
                    (s.oid,))
        row = cur.fetchone()
        if row is None or s.gone:
            raise _Gone()
        cur.execute("UPDATE inodes SET version = %s, size = %s, mtime = %s, ctime = %s, "
                    "change = nextval('change_seq') WHERE id = %s",
                    (vid, size, s.mtime, max(now, s.ctime), s.oid))
        if row[0] is not None:
            self._retire_version(cur, row[0])

    def _finished(self, s: PgStaging) -> None:
        self._unregister(s)
        s.finish()

    def discard(self, staging: PgStaging) -> None:
        s = staging
        if s._finished:
            return
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM staging WHERE id = %s RETURNING upload_key, upload_id",
                        (s.sid,))
            row = cur.fetchone()
            if row is not None and row[1]:
                cur.execute("INSERT INTO gc (object_key, upload_id, not_before) VALUES "
                            "(%s, %s, now())", (row[0], row[1]))
            if s.is_new:
                cur.execute("DELETE FROM inodes WHERE id = %s AND staged = %s", (s.oid, s.sid))
        self._finished(s)

    def list_staged(self) -> list[PgStaging]:
        return list(self._stagings.values())

    # ---- published contents
    def _version_of(self, oid: int, viewer=None):
        with self.db.cursor() as cur:
            cur.execute(f"SELECT {ICOLS}, v.object_key, v.inline, v.size FROM inodes i "
                        "LEFT JOIN versions v ON v.id = i.version WHERE i.id = %s", (oid,),
                        prepare=True)
            row = cur.fetchone()
        if row is None or row[13] is not None:
            raise I.Stale()
        if row[1] != REG:
            raise I.IsDir() if row[1] == DIR else I.WrongType("not a regular file")
        key, inline, size = row[14:17]
        return key, None if inline is None else bytes(inline), size or 0, attrs_of(row)

    def open_version(self, handle) -> PgVersion:
        key, inline, size, a = self._version_of(self._oid(handle))
        return PgVersion(self, key, inline, size, a)

    def read(self, handle, offset: int, count: int, nowait: bool = False):
        key, inline, size, _ = self._version_of(self._oid(handle))
        data = self.read_base((key, inline, size), offset, count, nowait)
        return data, offset + len(data) >= size

    def read_base(self, base, offset: int, count: int, nowait: bool) -> bytes:
        """Bytes of an immutable version (object key, inline bytes, size): from memory or the
        block cache; with `nowait`, WouldBlock instead of asking the object store."""
        key, inline, size = base
        if inline is not None or key is None:
            return (inline or b"")[offset:offset + count]
        fetch = None if nowait else (lambda off, n: self.objects.get(key, off, n))
        data = self.cache.read(key, size, offset, count, fetch)
        if data is None:
            raise I.WouldBlock()
        return data

    # ---- recovery of this frontend's files after a restart
    def _recover(self) -> None:
        with self.db.cursor() as cur:
            cur.execute("SELECT s.id, s.inode, s.is_new, s.viewer, s.dir, s.name, s.exclusive, "
                        "s.gone, s.base, s.record, s.cookie, s.state, v.object_key, v.inline, "
                        "v.size, i.verifier FROM staging s LEFT JOIN versions v ON v.id = s.base "
                        "LEFT JOIN inodes i ON i.id = s.inode WHERE s.frontend = %s ORDER BY s.id",
                        (self.frontend,))
            rows = cur.fetchall()
        for (sid, oid, is_new, viewer, d, name, exclusive, gone, base_id, text, cookie, state,
             key, inline, vsize, verifier) in rows:
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
            base = None if base_id is None else (key, None if inline is None else bytes(inline),
                                                 vsize)
            s = PgStaging(self, sid=sid, handle=self._handle(oid), is_new=is_new,
                          viewer=bytes(viewer), record=record, spool=path,
                          mode=st.get("mode", 0o644), uid=st.get("uid", 0), gid=st.get("gid", 0),
                          base=base, size=st.get("size", 0),
                          written=[tuple(r) for r in st.get("written", ())],
                          times=tuple(st["times"]) if st.get("times") else None)
            if base is not None:
                s.limit = min(st.get("limit", vsize), vsize)
            s.dirty = is_new or bool(st.get("size") != (vsize or 0) or st.get("written"))
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
            cur.execute("DELETE FROM staging WHERE id = %s RETURNING upload_key, upload_id",
                        (sid,))
            row = cur.fetchone()
            if row is not None and row[1]:
                cur.execute("INSERT INTO gc (object_key, upload_id, not_before) VALUES "
                            "(%s, %s, now())", (row[0], row[1]))
            if is_new:
                cur.execute("DELETE FROM inodes WHERE id = %s AND staged = %s", (oid, sid))


class _Gone(I.Gone):
    """Publish found the name or the file removed (in the transaction: rolled back)."""
