"""`PgS3Backend`: one frontend's view of a namespace kept in PostgreSQL with contents in S3.

Composed of one mixin per concern: `Namespace` (look-ups, listings, directory changes,
attributes), `Xattrs`, `Content` (files under construction, publish, reads), `Frontends`
(heartbeat, fencing, dead peers, gc, client records, status). Its state is set up here.
"""

from __future__ import annotations

import logging
import os
import time

from .. import interface as I
from .cache import BlockCache
from .chunks import Uploads
from .content import Content
from .db import Database
from .frontends import Frontends
from .locks import PgSharedLocks
from .metacache import MetaCache
from .namespace import Namespace
from .objects import ObjectStore
from .schema import VERSION, channel
from .xattrs import Xattrs

log = logging.getLogger("nfsd.backend")


class PgS3Backend(Namespace, Xattrs, Content, Frontends, I.Backend):
    """Frontend `frontend` of the namespace in database `meta_url` (formatted with `nfsd
    format`), contents in `data_url` (s3://bucket/prefix) through `endpoint` (None: AWS),
    files under construction spooled in `spool_dir` (kept across restarts of this frontend:
    put it on a local disk that survives them). `lease_time` and `grace_time` are the
    server's (a peer declares this frontend dead after their sum without a heartbeat);
    `retire_after` is how long a dead frontend's unfinished files are kept."""

    def __init__(self, meta_url: str, data_url: str, frontend: str, spool_dir: str, *,
                 endpoint: str | None = None, lease_time: float = 90,
                 grace_time: float | None = None, retire_after: float = 3600,
                 cache_bytes: int = 256 << 20, statement_timeout: float = 5.0):
        if not frontend or len(frontend) > 100:
            raise ValueError("a frontend id of 1 to 100 characters is needed")
        self.frontend = frontend
        self.lease_time = lease_time
        self.grace_time = lease_time if grace_time is None else grace_time
        self.retire_after = retire_after
        self.spool_dir = os.path.abspath(spool_dir)
        os.makedirs(self.spool_dir, mode=0o700, exist_ok=True)
        self.db = Database(meta_url, statement_timeout=statement_timeout)
        self._closed = False
        self.fenced = False
        self._problems: list[tuple[str, str]] = []
        self._stagings = {}
        self._by_oid = {}
        self._transient = {}
        self._versions = {}  # version id -> chunks.Base (versions never change)
        self.mcache = None
        try:
            self._open(meta_url, data_url, endpoint, cache_bytes)
        except BaseException:
            if self.mcache is not None:
                self.mcache.close()
            self.db.close()
            raise
        # after a grace period the locks this frontend held before its restart go (its clients
        # have reclaimed theirs meanwhile)
        self._old_locks_until = time.monotonic() + self.grace_time

    def _open(self, meta_url, data_url, endpoint, cache_bytes) -> None:
        meta = self._meta()
        if int(meta.get("version", 0)) != VERSION:
            raise ValueError(f"{meta_url}: schema version {meta.get('version')}, this server "
                             f"needs {VERSION}")
        if meta.get("data") != data_url:
            raise ValueError(f"{meta_url} keeps its contents in {meta.get('data')}, not "
                             f"{data_url}")
        self.identity = bytes.fromhex(meta["identity"])
        self.mcache = MetaCache(self.db, channel(self.identity))
        self.db.on_change = self.mcache.drop
        self.chunk = int(meta["chunk"])
        self.objects = ObjectStore(data_url, endpoint)
        self.cache = BlockCache(cache_bytes)
        self.uploads = Uploads()
        self.locks = PgSharedLocks(self)
        self._register_frontend()
        self._recover()
        self._start_heartbeat()

    def _meta(self) -> dict:
        try:
            with self.db.cursor() as cur:
                cur.execute("SELECT key, value FROM meta")
                return dict(cur.fetchall())
        except I.Unavailable:
            raise
        except Exception as e:  # noqa: BLE001 - a database that was never formatted
            raise ValueError(f"not an nfsd namespace (run `nfsd format` first): "
                             f"{str(e).splitlines()[0]}") from None

    def shared_locks(self) -> PgSharedLocks:
        return self.locks

    def barrier(self) -> None:
        self.mcache.barrier()

    def problems(self) -> list[tuple[str, str]]:
        return list(self._problems)

    def maintenance(self) -> None:
        super().maintenance()
        self.locks.flush()
        if self._old_locks_until is not None and time.monotonic() >= self._old_locks_until:
            self.locks.drop_old()
            self._old_locks_until = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_heartbeat()
        for s in list(self._stagings.values()):
            s.close_fd()
        self.mcache.close()
        if hasattr(self, "uploads"):
            self.uploads.close()
        self.db.close()
