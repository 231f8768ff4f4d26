"""`nfsd format --meta URL --data URL`: a new namespace (the schema, its identity, the root)."""

from __future__ import annotations

import os
import time

import psycopg

from .objects import parse_data_url
from .schema import SCHEMA, TABLES, VERSION, channel


class NotEmpty(ValueError):
    """The database already has tables: formatting would destroy what is there."""


CHUNK = 4 << 20  # contents are stored in pieces of this size (one object each)


def format_namespace(meta_url: str, data_url: str, chunk: int = CHUNK) -> bytes:
    """Create the tables in the empty database `meta_url` for contents in `data_url`; returns
    the namespace's identity (the 8 bytes every handle starts with). Refuses a database that
    already has any of its tables."""
    parse_data_url(data_url)
    with psycopg.connect(meta_url, autocommit=True, connect_timeout=5) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE "
                        "table_schema = current_schema() AND table_name = ANY(%s)",
                        (list(TABLES),))
            found = [r[0] for r in cur.fetchall()]
            if found:
                raise NotEmpty(f"{meta_url} already has tables ({', '.join(sorted(found))}): "
                               "not formatting over them")
            identity = os.urandom(8)
            now = time.time_ns()
            with conn.transaction():
                cur.execute(SCHEMA.replace("{channel}", channel(identity)))
                cur.executemany("INSERT INTO meta (key, value) VALUES (%s, %s)",
                                [("version", str(VERSION)), ("identity", identity.hex()),
                                 ("data", data_url), ("chunk", str(chunk)),
                                 ("created", str(time.time()))])
                cur.execute("INSERT INTO inodes (id, kind, mode, uid, gid, nlink, size, atime, "
                            "mtime, ctime, change, parent) VALUES (1, 2, %s, 0, 0, 2, 4096, %s, "
                            "%s, %s, nextval('change_seq'), 1)", (0o755, now, now, now))
                cur.execute("SELECT setval('inodes_id_seq', 1)")
    return identity
