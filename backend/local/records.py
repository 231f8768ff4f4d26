"""Durable client records: which client incarnations (owner, boot verifier) held state.

After a restart the server reads them to decide whether a grace period is needed and which
clients may reclaim. One small JSON file per client owner, written atomically (temporary file,
fsync, rename, fsync of the directory), so a crash leaves either the old or the new record.
"""

from __future__ import annotations

import json
import logging
import os

from .. import interface as I

log = logging.getLogger("nfsd.backend")


class RecordStore(I.ClientRecords):
    """`ClientRecords` as one JSON file per owner in directory `path`."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(path, exist_ok=True)
        self._dirfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        self._known: dict[bytes, bytes] = {}
        for owner, verifier in self.clients():
            self._known[owner] = verifier

    def _name(self, owner: bytes) -> str:
        return owner.hex()[:200] + ".json" if len(owner) <= 100 else \
            __import__("hashlib").sha256(owner).hexdigest() + ".json"

    def put_client(self, owner: bytes, verifier: bytes) -> None:
        if self._known.get(owner) == verifier:
            return
        data = json.dumps({"owner": owner.hex(), "verifier": verifier.hex()}).encode()
        name = self._name(owner)
        tmp = name + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, dir_fd=self._dirfd)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=self._dirfd, dst_dir_fd=self._dirfd)
        os.fsync(self._dirfd)
        self._known[owner] = verifier

    def delete_client(self, owner: bytes) -> None:
        if self._known.pop(owner, None) is None:
            return
        try:
            os.unlink(self._name(owner), dir_fd=self._dirfd)
            os.fsync(self._dirfd)
        except FileNotFoundError:
            pass

    def clients(self) -> list[tuple[bytes, bytes]]:
        out = []
        for name in os.listdir(self._dirfd):
            if not name.endswith(".json"):
                continue
            try:
                fd = os.open(name, os.O_RDONLY, dir_fd=self._dirfd)
                try:
                    rec = json.loads(os.read(fd, 1 << 16))
                finally:
                    os.close(fd)
                out.append((bytes.fromhex(rec["owner"]), bytes.fromhex(rec["verifier"])))
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("unreadable client record %s: %s", name, e)
        return out

    def close(self) -> None:
        os.close(self._dirfd)


def write_status(path: str, status: dict) -> None:
    """Replace `path` with a JSON snapshot of the running server (not fsynced: it is a view
    for operators, rewritten every few seconds, not a record anything depends on)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(status, f, separators=(",", ":"))
    os.replace(tmp, path)
