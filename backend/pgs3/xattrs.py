"""User extended attributes in PostgreSQL (a mixin of `PgS3Backend`): the user namespace, as
Linux has it, on directories and regular files only. Setting or removing one moves the inode's
`change` and ctime in the same transaction."""

from __future__ import annotations

import time

from .. import interface as I
from .namespace import DIR, REG


class Xattrs:
    def getxattr(self, handle, name, viewer=None) -> bytes:
        name = I.xattr_name(name)
        oid = self._xattr_oid(handle, viewer)
        with self.db.cursor() as cur:
            cur.execute("SELECT value FROM xattrs WHERE inode = %s AND name = %s",
                        (oid, bytes(name)))
            row = cur.fetchone()
        if row is None:
            raise I.NoXattr()
        return bytes(row[0])

    def listxattr(self, handle, viewer=None) -> list[bytes]:
        oid = self._xattr_oid(handle, viewer)
        with self.db.cursor() as cur:
            cur.execute("SELECT name FROM xattrs WHERE inode = %s ORDER BY name", (oid,))
            return [bytes(r[0]) for r in cur.fetchall()]

    def setxattr(self, handle, name, value, how=I.XattrHow.EITHER, viewer=None):
        name = I.xattr_name(name)
        if len(value) > I.XATTR_SIZE_MAX:
            raise I.XattrTooBig(f"{len(value)} bytes")
        oid = self._xattr_oid(handle, viewer, writing=True)
        how = I.XattrHow(how)
        with self.db.transaction() as cur:
            before = self._xattr_change(cur, oid)
            cur.execute("SELECT 1 FROM xattrs WHERE inode = %s AND name = %s",
                        (oid, bytes(name)))
            exists = cur.fetchone() is not None
            if how == I.XattrHow.CREATE and exists:
                raise I.Exists()
            if how == I.XattrHow.REPLACE and not exists:
                raise I.NoXattr()
            cur.execute("INSERT INTO xattrs (inode, name, value) VALUES (%s, %s, %s) "
                        "ON CONFLICT (inode, name) DO UPDATE SET value = EXCLUDED.value",
                        (oid, bytes(name), bytes(value)))
            after = self._xattr_touch(cur, oid)
        return before, after

    def removexattr(self, handle, name, viewer=None):
        name = I.xattr_name(name)
        oid = self._xattr_oid(handle, viewer, writing=True)
        with self.db.transaction() as cur:
            before = self._xattr_change(cur, oid)
            cur.execute("DELETE FROM xattrs WHERE inode = %s AND name = %s RETURNING 1",
                        (oid, bytes(name)))
            if cur.fetchone() is None:
                raise I.NoXattr()
            after = self._xattr_touch(cur, oid)
        return before, after

    def _xattr_oid(self, handle, viewer, writing: bool = False) -> int:
        oid = self._oid(handle)
        row = self._visible_row(oid, viewer)
        if writing and row[1] not in (REG, DIR):
            raise I.Permission("user attributes are for files and directories")
        return oid

    def _xattr_change(self, cur, oid) -> int:
        cur.execute("SELECT change FROM inodes WHERE id = %s FOR UPDATE", (oid,))
        return cur.fetchone()[0]

    def _xattr_touch(self, cur, oid) -> int:
        cur.execute("UPDATE inodes SET ctime = %s, change = nextval('change_seq') WHERE id = %s "
                    "RETURNING change", (time.time_ns(), oid))
        return cur.fetchone()[0]
