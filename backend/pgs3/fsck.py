"""Consistency of a shared namespace: what must hold between the tables and the object store
whatever frontends did or how they died (tests, and `nfsd inspect --meta URL --check`).

* every entry names an inode, every inode but the root is named by an entry or is a new file
  under construction (a staging row), and a non-directory's nlink is its number of entries (a
  directory's: 2 + its subdirectories);
* every chunk names an object the `objects` table counts exactly as often as chunks name it,
  and that object exists in the object store;
* every object in the store is counted by `objects` or waits in the gc queue (none is lost
  track of).
"""

from __future__ import annotations

import psycopg


def problems(meta_url: str, objects) -> list[str]:
    out = []
    with psycopg.connect(meta_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT e.dir, e.name FROM entries e LEFT JOIN inodes i ON i.id = e.inode "
                    "WHERE i.id IS NULL")
        out += [f"entry {bytes(n)!r} in {d} names no inode" for d, n in cur.fetchall()]
        cur.execute("SELECT i.id FROM inodes i WHERE i.id <> 1 AND i.staged IS NULL AND NOT "
                    "EXISTS (SELECT 1 FROM entries e WHERE e.inode = i.id)")
        out += [f"inode {i} has no name" for (i,) in cur.fetchall()]
        cur.execute("SELECT i.id FROM inodes i WHERE i.staged IS NOT NULL AND NOT EXISTS "
                    "(SELECT 1 FROM staging s WHERE s.id = i.staged)")
        out += [f"new file {i} has no staging row" for (i,) in cur.fetchall()]
        cur.execute("SELECT i.id, i.nlink, (SELECT count(*) FROM entries e WHERE e.inode = i.id) "
                    "FROM inodes i WHERE i.kind <> 2 AND i.staged IS NULL")
        out += [f"inode {i}: nlink {n} but {c} entries" for i, n, c in cur.fetchall() if n != c]
        cur.execute("SELECT i.id, i.nlink, 2 + (SELECT count(*) FROM entries e JOIN inodes c ON "
                    "c.id = e.inode WHERE e.dir = i.id AND c.kind = 2) FROM inodes i WHERE "
                    "i.kind = 2")
        out += [f"directory {i}: nlink {n}, should be {c}" for i, n, c in cur.fetchall()
                if n != c]
        cur.execute("SELECT o.key, o.refs, (SELECT count(*) FROM chunks c WHERE c.key = o.key) "
                    "FROM objects o")
        counted = {}
        for key, refs, n in cur.fetchall():
            counted[key] = refs
            if refs != n:
                out.append(f"object {key}: counted {refs} times, named by {n} chunks")
        cur.execute("SELECT DISTINCT c.key FROM chunks c LEFT JOIN objects o ON o.key = c.key "
                    "WHERE o.key IS NULL AND c.key IS NOT NULL")
        out += [f"object {k} is named by chunks but not counted" for (k,) in cur.fetchall()]
        cur.execute("SELECT object_key FROM gc")
        queued = {k for (k,) in cur.fetchall()}
    stored = objects.keys()
    out += [f"object {k} is missing from the object store" for k in sorted(set(counted) - stored)]
    out += [f"object {k} is in the store but nothing keeps track of it"
            for k in sorted(stored - set(counted) - queued)]
    return out
