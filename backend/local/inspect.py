"""Read-only view of a local backend's state directory, for `nfsd inspect`.

Safe while the server runs: it takes no lock, writes nothing, opens the handle database
read-only, and treats every file as possibly half-written (a record being replaced, a status
snapshot mid-rename) by reporting it instead of failing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time

from ..factory import Unreadable
from .record import read_record_xattr

ROOT_ID = 1




def _names(db_path):
    """object id -> (parent id, name) from the handle database, read-only."""
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error:
        return None
    try:
        return {i: (p, n) for i, p, n in conn.execute("SELECT id, parent, name FROM objects")}
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _path(names, oid, leaf=None):
    parts = [] if leaf is None else [leaf]
    seen = set()
    while names is not None and oid in names and oid != ROOT_ID and oid not in seen:
        seen.add(oid)
        parent, name = names[oid]
        parts.append(name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name))
        oid = parent
    if names is None or (oid != ROOT_ID and parts):
        return "?/" + "/".join(reversed(parts))
    return "/" + "/".join(reversed(parts))


def _oid(handle_hex):
    try:
        return int(handle_hex[16:32], 16)
    except (TypeError, ValueError):
        return None


def read_state(state_dir: str, now_ns: int | None = None) -> dict:
    """Files under construction, problems and the server's last status snapshot."""
    if not os.path.isdir(state_dir):
        raise Unreadable(f"{state_dir}: not a directory")
    staging = os.path.join(state_dir, "staging")
    try:
        entries = sorted(os.listdir(staging)) if os.path.isdir(staging) else []
    except OSError as e:
        raise Unreadable(f"{staging}: {e}") from None
    names = _names(os.path.join(state_dir, "handles.db"))
    now_ns = time.time_ns() if now_ns is None else now_ns
    files, problems = [], []
    present = set(entries)
    for ent in entries:
        path = os.path.join(staging, ent)
        try:
            if ent.endswith(".rec"):
                with open(path, "rb") as f:
                    raw = f.read()
            elif ent.endswith(".data") and ent[:-5] + ".rec" not in present:
                raw = read_record_xattr(None, path)  # a new file's record on its data file
                if raw is None:
                    problems.append({"path": path, "reason": "data without a record"})
                    continue
            else:
                continue
            rec = json.loads(raw)
            sid = rec["id"]
        except FileNotFoundError:
            continue  # published or discarded since the listing
        except (OSError, ValueError, KeyError, TypeError) as e:
            problems.append({"path": path, "reason": f"unreadable record: {e}"})
            continue
        proto = rec.get("record") or {}
        try:
            size = os.stat(os.path.join(staging, sid + ".data")).st_size
        except OSError:
            size = rec.get("size")
        if rec.get("is_new"):
            leaf = bytes.fromhex(rec.get("name") or "").decode("utf-8", "replace")
            name = _path(names, _oid(rec.get("dir")), leaf)
        else:
            name = _path(names, _oid(rec.get("handle")))
        state = proto.get("state", "active")
        if rec.get("quarantined") or proto.get("quarantined"):
            state = "quarantined"
            problems.append({"path": path, "reason": "quarantined: "
                             + str(rec.get("quarantined") or proto.get("quarantined"))})
        if rec.get("gone"):
            state += " (name removed)"
        created = rec.get("created_ns") or now_ns
        files.append({
            "id": sid,
            "name": name,
            "kind": "new file" if rec.get("is_new") else "new version",
            "client": _owner_text(proto.get("owner")),
            "client_verifier": proto.get("verifier"),
            "open_owner": proto.get("open_owner"),
            "staged_size": size,
            "age_s": round(max(0, now_ns - created) / 1e9, 1),
            "state": state,
        })
    status = None
    spath = os.path.join(state_dir, "status.json")
    try:
        with open(spath) as f:
            status = json.load(f)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as e:
        problems.append({"path": spath, "reason": f"unreadable status: {e}"})
    running = False
    if status is not None:
        try:
            os.kill(int(status.get("pid", 0)), 0)
            running = True
        except (OSError, ValueError):
            running = False
    return {"state_dir": state_dir, "server_running": running, "status": status,
            "files": files, "problems": problems}


def _owner_text(hexowner):
    if not hexowner:
        return None
    try:
        raw = bytes.fromhex(hexowner)
    except ValueError:
        return hexowner
    text = raw.decode("utf-8", "replace")
    return text if text.isprintable() else hexowner
