"""`nfsd inspect --meta URL`: every frontend, its clients and every unfinished file of a shared
namespace, read-only (nothing is locked or written), with the same document and exit codes as
`nfsd inspect DIR`, plus `frontends`."""

from __future__ import annotations

import json
import time

import psycopg

from ..factory import Unreadable


def _path(cur, oid: int, leaf: bytes | None = None) -> str:
    parts = [] if leaf is None else [leaf.decode("utf-8", "replace")]
    seen = set()
    while oid and oid != 1 and oid not in seen and len(seen) < 4096:
        seen.add(oid)
        cur.execute("SELECT e.dir, e.name FROM entries e WHERE e.inode = %s LIMIT 1", (oid,))
        row = cur.fetchone()
        if row is None:
            return "?/" + "/".join(reversed(parts))
        parts.append(bytes(row[1]).decode("utf-8", "replace"))
        oid = row[0]
    return "/" + "/".join(reversed(parts))


def read_state(meta_url: str) -> dict:
    try:
        conn = psycopg.connect(meta_url, autocommit=True, connect_timeout=5)
    except psycopg.Error as e:
        raise Unreadable(f"{_safe(meta_url)}: {str(e).strip().splitlines()[0]}") from None
    with conn, conn.cursor() as cur:
        try:
            cur.execute("SELECT id, epoch, state, lease_s, grace_s, "
                        "extract(epoch FROM now() - heartbeat) FROM frontends ORDER BY id")
        except psycopg.Error as e:
            raise Unreadable(f"{_safe(meta_url)}: not an nfsd namespace: "
                             f"{str(e).strip().splitlines()[0]}") from None
        frontends = []
        for fid, epoch, state, lease, grace, age in cur.fetchall():
            cur.execute("SELECT snapshot FROM status WHERE frontend = %s", (fid,))
            row = cur.fetchone()
            snap = json.loads(row[0]) if row else None
            late = float(age) > lease + grace
            frontends.append({"id": fid, "epoch": epoch, "state": state,
                              "heartbeat_age_s": round(float(age), 1),
                              "running": state == "alive" and float(age) <= lease,
                              "overdue": state == "alive" and late, "status": snap})
        cur.execute("SELECT id, inode, frontend, is_new, dir, name, record, state, "
                    "extract(epoch FROM now() - created), gone FROM staging ORDER BY id")
        files, problems = [], []
        for (sid, oid, fid, is_new, d, name, text, state, age, gone) in cur.fetchall():
            try:
                doc = json.loads(text)
            except ValueError as e:
                problems.append({"path": f"staging {sid}", "reason": f"unreadable record: {e}"})
                doc = {}
            rec = doc.get("record") or {}
            st = doc.get("state") or {}
            state = "retired" if state == "retired" else rec.get("state", "active")
            if gone:
                state += " (name removed)"
            files.append({
                "id": str(sid), "frontend": fid,
                "name": _path(cur, d, bytes(name)) if is_new else _path(cur, oid),
                "kind": "new file" if is_new else "new version",
                "client": _owner_text(rec.get("owner")), "client_verifier": rec.get("verifier"),
                "open_owner": rec.get("open_owner"), "staged_size": st.get("size"),
                "age_s": round(float(age), 1), "state": state})
        for f in frontends:
            if f["overdue"]:
                problems.append({"path": f"frontend {f['id']}",
                                 "reason": "no heartbeat for longer than its lease and grace "
                                           "(a peer will declare it dead)"})
    running = [f for f in frontends if f["running"]]
    return {"meta": _safe(meta_url), "frontends": frontends,
            "server_running": bool(running),
            "status": running[0]["status"] if len(frontends) == 1 and running else None,
            "files": files, "problems": problems, "read_at": time.time()}


def _safe(url: str) -> str:
    """The URL without a password."""
    from urllib.parse import urlsplit, urlunsplit

    u = urlsplit(url)
    if u.password:
        u = u._replace(netloc=u.netloc.replace(":" + u.password + "@", ":***@"))
    return urlunsplit(u)


def _owner_text(hexowner):
    if not hexowner:
        return None
    try:
        raw = bytes.fromhex(hexowner)
    except ValueError:
        return hexowner
    text = raw.decode("utf-8", "replace")
    return text if text.isprintable() else hexowner
