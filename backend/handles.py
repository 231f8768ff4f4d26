"""Object identity for the local backend: `statx`, handle bytes, and the SQLite handle database.

An *object* is identified on disk by (inode number, generation). The generation is the birth time
(statx STATX_BTIME, nanoseconds) when the file system reports one, else 0; it is what tells a
re-used inode number from the object that had it before. Each object gets an id from the database
(never reused: AUTOINCREMENT) and a random 63-bit nonce; the handle is

    instance (8 bytes, random per state dir) | id (8 bytes, big-endian) | nonce (8 bytes)

so a handle from another state dir is never an alias, and an id handed out again after a database
roll-back (synchronous=NORMAL may lose the last commits on power loss) does not match the nonce
the client holds.

Table `objects` keeps, per id: the nonce, the current inode number and generation (a published new
version moves the id to a new inode), the kind, a (parent id, name) hint used to find the inode
again after a restart, and the EXCLUSIVE4 create verifier. `HandleDB` is not thread-safe; the
backend guards it with its lock.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import sqlite3
import stat as _stat
import struct
import threading

# --------------------------------------------------------------------------- statx
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
STATX_BASIC_STATS = 0x7FF
STATX_BTIME = 0x800

# struct statx (linux/stat.h), 256 bytes; we unpack the first 144.
_STATX = struct.Struct("=IIQIIIHHQQQQqIiqIiqIiqIiIIII")
# indexes into the unpacked tuple
MASK, NLINK, UID, GID, MODE, INO, SIZE, BLOCKS = 0, 3, 4, 5, 6, 8, 9, 10
ATIME, ATIME_NS, BTIME, BTIME_NS, CTIME, CTIME_NS, MTIME, MTIME_NS = 12, 13, 15, 16, 18, 19, 21, 22
RDEV_MAJ, RDEV_MIN, DEV_MAJ, DEV_MIN = 24, 25, 26, 27

_tls = threading.local()


def _os_error(e: "sqlite3.Error") -> OSError:
    """A database failure as the OSError the backend's error mapping understands: a full
    disk (SQLITE_FULL) is ENOSPC, anything else EIO."""
    import errno

    full = "full" in str(e).lower()
    return OSError(errno.ENOSPC if full else errno.EIO, f"handle database: {e}")


def _load_statx():
    try:
        fn = ctypes.CDLL(None, use_errno=True).statx
    except (OSError, AttributeError):
        return None
    # No argtypes: ctypes' default conversions (int -> int, bytes -> char *, buffer -> pointer)
    # are what statx takes, and checking argtypes would cost more than the system call.
    fn.restype = ctypes.c_int
    return fn


_libc_statx = _load_statx()
HAVE_STATX = _libc_statx is not None


def _statx_buf(dirfd: int, name: bytes, flags: int):
    """statx(2) into this thread's 256-byte buffer, which is returned."""
    try:
        buf = _tls.buf
    except AttributeError:
        buf = _tls.buf = ctypes.create_string_buffer(256)
    if _libc_statx(dirfd, name, flags, STATX_BASIC_STATS | STATX_BTIME, buf):
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return buf


def _statx_libc(dirfd: int, name: bytes, flags: int) -> tuple:
    return _STATX.unpack_from(_statx_buf(dirfd, name, flags))


def _statx_fallback(dirfd: int, name: bytes, flags: int) -> tuple:
    """os.stat in statx's tuple layout; no birth time (generation 0)."""
    if flags & AT_EMPTY_PATH and not name:
        st = os.stat(dirfd)
    else:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=not flags & AT_SYMLINK_NOFOLLOW)
    a, m, c = st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns
    return (STATX_BASIC_STATS, 0, 0, st.st_nlink, st.st_uid, st.st_gid, st.st_mode, 0,
            st.st_ino, st.st_size, st.st_blocks, 0,
            a // 10**9, a % 10**9, 0, 0, 0, 0, c // 10**9, c % 10**9, 0, m // 10**9, m % 10**9, 0,
            os.major(st.st_rdev), os.minor(st.st_rdev), os.major(st.st_dev), os.minor(st.st_dev))


_statx_impl = _statx_libc if HAVE_STATX else _statx_fallback

STATX_KEY_LEN = _STATX.size  # the bytes of struct statx that the tuple is unpacked from


def _statx_key_libc(dirfd: int, name: bytes) -> bytes:
    """statx of `name` in `dirfd` (no symlink followed) as raw bytes: equal bytes mean equal
    metadata (identity, size, times, owner, mode, links), so a caller can tell "unchanged"
    without unpacking; `unpack_statx` gives `statx`'s tuple. Raises OSError."""
    return _statx_buf(dirfd, name, AT_SYMLINK_NOFOLLOW)[:STATX_KEY_LEN]


def _statx_key_fallback(dirfd: int, name: bytes) -> bytes:
    return _STATX.pack(*_statx_fallback(dirfd, name, AT_SYMLINK_NOFOLLOW))


def _fstatx_key_libc(fd: int) -> bytes:
    """`statx_key` of an open fd (O_PATH fds too)."""
    return _statx_buf(fd, b"", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)[:STATX_KEY_LEN]


def _fstatx_key_fallback(fd: int) -> bytes:
    return _STATX.pack(*_statx_fallback(fd, b"", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))


def _statx_keys_libc(dirfd: int, names) -> list:
    """`statx_key` of each name in `dirfd`, None where statx fails: one Python call for a
    batch of READDIR entries instead of two per entry."""
    try:
        buf = _tls.buf
    except AttributeError:
        buf = _tls.buf = ctypes.create_string_buffer(256)
    fn, n, mask = _libc_statx, STATX_KEY_LEN, STATX_BASIC_STATS | STATX_BTIME
    return [None if fn(dirfd, name, AT_SYMLINK_NOFOLLOW, mask, buf) else buf[:n]
            for name in names]


def _statx_keys_fallback(dirfd: int, names) -> list:
    out = []
    for name in names:
        try:
            out.append(_statx_key_fallback(dirfd, name))
        except OSError:
            out.append(None)
    return out


statx_key = _statx_key_libc if HAVE_STATX else _statx_key_fallback
statx_keys = _statx_keys_libc if HAVE_STATX else _statx_keys_fallback
fstatx_key = _fstatx_key_libc if HAVE_STATX else _fstatx_key_fallback
unpack_statx = _STATX.unpack
pack_statx = _STATX.pack  # pack_statx(*unpack_statx(raw)) == raw


def statx(dirfd: int, name: bytes) -> tuple:
    """statx of `name` in `dirfd`, never following a symlink. Raises OSError."""
    return _statx_impl(dirfd, name, AT_SYMLINK_NOFOLLOW)


def fstatx(fd: int) -> tuple:
    """statx of an open fd (O_PATH fds too)."""
    return _statx_impl(fd, b"", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)


def generation(st: tuple) -> int:
    """Birth time in ns, or 0 when the file system does not report it."""
    if st[MASK] & STATX_BTIME:
        return st[BTIME] * 1_000_000_000 + st[BTIME_NS]
    return 0


def is_dir(st: tuple) -> bool:
    return _stat.S_ISDIR(st[MODE])


# --------------------------------------------------------------------------- handles
ROOT_ID = 1
HANDLE_LEN = 24
_IDS = struct.Struct(">QQ")


def make_handle(instance: bytes, oid: int, nonce: int) -> bytes:
    return instance + _IDS.pack(oid, nonce)


def handle_id(handle: bytes) -> int:
    return int.from_bytes(handle[8:16], "big")


class Node:
    """What the backend remembers about one object (a row of `objects`, plus memory-only hints)."""

    __slots__ = ("id", "handle", "ino", "gen", "kind", "parent", "name", "verifier", "alt", "miss",
                 "seen")

    def __init__(self, oid, handle, ino, gen, kind, parent, name, verifier):
        self.id = oid
        self.handle = handle
        self.ino = ino
        self.gen = gen
        self.kind = kind
        self.parent = parent  # id of the directory the name hint is in
        self.name = name  # name hint (bytes)
        self.verifier = verifier
        self.alt = None  # other (parent, name) links seen (hard links), memory only
        self.miss = None  # parent ctime at the last failed search (skip re-scanning)
        # (raw statx bytes, Attrs) of the last stat of the published object: while a new
        # stat gives the same bytes, those Attrs are still right (see LocalBackend.getattr).
        self.seen = None

    def __repr__(self):  # pragma: no cover - debugging aid
        return f"Node({self.id}, ino={self.ino}, kind={self.kind}, " \
               f"hint={self.parent}/{self.name!r})"


# --------------------------------------------------------------------------- database
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS objects(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    nonce INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    gen INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    parent INTEGER,
    name BLOB,
    verifier BLOB
);
CREATE INDEX IF NOT EXISTS objects_inode ON objects(ino, gen);
"""
_COLS = "id, nonce, ino, gen, kind, parent, name, verifier"
FLUSH_DELETES_AT = 256  # deleted rows kept back for one transaction (see HandleDB.delete)
AUTO_CHECKPOINT_PAGES = 16384  # 64 MiB of WAL: only if `checkpoint()` is not being called


class HandleDB:
    """The `objects` table. Rows are tuples in `_COLS` order. Not thread-safe."""

    def __init__(self, path: str):
        self._path = path
        self._c = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._c.execute("PRAGMA journal_mode=WAL")
        self._c.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints (WAL -> database, ending in an fsync) run in `checkpoint()` from a
        # worker thread; the request path would otherwise stall every ~1,000 pages written.
        # The automatic one stays only as a bound on the WAL if nobody calls checkpoint().
        self._c.execute(f"PRAGMA wal_autocheckpoint={AUTO_CHECKPOINT_PAGES}")
        self._ck: sqlite3.Connection | None = None
        self._ck_lock = threading.Lock()
        self._closed = False
        self._c.executescript(_SCHEMA)
        self._hold = False
        self._doomed: set[int] = set()  # ids deleted but not yet flushed (see delete())
        row = self._c.execute("SELECT value FROM meta WHERE key='instance'").fetchone()
        if row is None:
            self.instance = secrets.token_bytes(8)
            self._c.execute("INSERT INTO meta VALUES('instance', ?)", (self.instance,))
        else:
            self.instance = bytes(row[0])

    def close(self) -> None:
        try:
            self.flush_deletes()
        except OSError:
            pass  # the rows left name inodes that are gone (see flush_deletes)
        with self._ck_lock:
            self._closed = True
            if self._ck is not None:
                self._ck.close()
                self._ck = None
        self._c.close()

    def checkpoint(self) -> None:
        """Copy what the WAL holds into the database file (PASSIVE: it neither waits for nor
        blocks the writer). Its own connection, so it can run in any thread while requests go
        on; one at a time."""
        with self._ck_lock:
            if self._closed:
                return
            try:
                if self._ck is None:
                    self._ck = sqlite3.connect(self._path, isolation_level=None,
                                               check_same_thread=False)
                self._ck.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as e:
                raise _os_error(e) from None

    def hold(self) -> None:
        """Group the writes until `release()` into one transaction (begun at the first write)."""
        self._hold = True

    def release(self) -> None:
        self._hold = False
        if self._c.in_transaction:
            try:
                self._c.execute("COMMIT")
            except sqlite3.Error as e:
                raise _os_error(e) from None

    def _write(self, sql: str, args: tuple):
        try:
            if self._hold and not self._c.in_transaction:
                self._c.execute("BEGIN IMMEDIATE")
            return self._c.execute(sql, args)
        except sqlite3.Error as e:
            raise _os_error(e) from None

    def get(self, oid: int):
        if oid in self._doomed:
            return None
        return self._c.execute(f"SELECT {_COLS} FROM objects WHERE id=?", (oid,)).fetchone()

    def find(self, ino: int, gen: int):
        for row in self._c.execute(
                f"SELECT {_COLS} FROM objects WHERE ino=? AND gen=? ORDER BY id DESC", (ino, gen)):
            if row[0] not in self._doomed:
                return row
        return None

    def find_many(self, keys) -> dict:
        """{(ino, gen): row} for the keys that have a row (newest id wins)."""
        out = {}
        keys = list(keys)
        for i in range(0, len(keys), 400):
            part = keys[i:i + 400]
            marks = ",".join("?" * len(part))
            wanted = set(part)
            for row in self._c.execute(
                    f"SELECT {_COLS} FROM objects WHERE ino IN ({marks}) ORDER BY id",
                    [k[0] for k in part]):
                if (row[2], row[3]) in wanted and row[0] not in self._doomed:
                    out[(row[2], row[3])] = row
        return out

    def insert(self, ino, gen, kind, parent, name, verifier=None, oid=None, nonce=None) -> tuple:
        """Add an object; `oid`/`nonce` given only when re-creating a known row (recovery)."""
        if nonce is None:
            nonce = secrets.randbits(63)
        cur = self._write(
            "INSERT INTO objects(id, nonce, ino, gen, kind, parent, name, verifier)"
            " VALUES(?,?,?,?,?,?,?,?)",
            (oid, nonce, ino, gen, int(kind), parent, name, verifier),
        )
        return (cur.lastrowid, nonce, ino, gen, int(kind), parent, name, verifier)

    def set_hint(self, oid: int, parent: int, name: bytes) -> None:
        self._write("UPDATE objects SET parent=?, name=? WHERE id=?", (parent, name, oid))

    def set_inode(self, oid: int, ino: int, gen: int) -> None:
        self._write("UPDATE objects SET ino=?, gen=? WHERE id=?", (ino, gen, oid))

    def delete(self, oid: int) -> None:
        """Drop an object. The row goes at the next `flush_deletes()` (many in one
        transaction); until then every look-up acts as if it were gone already."""
        self._doomed.add(oid)
        if len(self._doomed) >= FLUSH_DELETES_AT:
            self.flush_deletes()

    def flush_deletes(self) -> None:
        """Delete the rows `delete()` doomed (one transaction). A crash before it leaves rows
        that name inodes which are gone: their handles resolve to Stale all the same."""
        if not self._doomed or self._closed:
            return
        ids = [(i,) for i in self._doomed]
        try:
            own = not self._c.in_transaction
            if own:
                self._c.execute("BEGIN IMMEDIATE")
            self._c.executemany("DELETE FROM objects WHERE id=?", ids)
            if own:
                self._c.execute("COMMIT")
        except sqlite3.Error as e:
            if own and self._c.in_transaction:
                self._c.execute("ROLLBACK")
            raise _os_error(e) from None
        self._doomed.clear()
