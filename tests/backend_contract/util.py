"""Helpers shared by the contract tests."""

from __future__ import annotations

import os

V1, V2 = b"client-1", b"client-2"  # two viewers (NFS clients)


def staged(b, dir, name, viewer=V1, *, exclusive=False, record=None, verifier=None,
           mode=0o644):
    """A new file under construction, owned by the calling process's user."""
    return b.create_staged(dir, name, viewer, mode, os.getuid(), os.getgid(), exclusive,
                           {} if record is None else record, verifier=verifier)


def new_file(b, dir, name, data=b"", viewer=V1, mode=0o644):
    """A published file with `data`; its handle."""
    s = staged(b, dir, name, viewer, mode=mode)
    if data:
        s.write(0, data)
    b.publish(s)
    return s.handle


def rewrite(b, handle, data, viewer=V1):
    """Publish a new version of `handle` holding `data`."""
    s = b.stage_version(handle, viewer, True, {})
    s.write(0, data)
    b.publish(s)


def mkdir(b, dir, name, mode=0o755):
    return b.mkdir(dir, name, mode, None, None)


def read_all(b, handle) -> bytes:
    out, off = b"", 0
    while True:
        data, eof = b.read(handle, off, 1 << 20)
        out += data
        off += len(data)
        if eof:
            return out


def names(b, dir, viewer=None) -> list[bytes]:
    return sorted(e.name for e in b.readdir(dir, 0, viewer))


def honours_owner(kind: str) -> bool:
    """Does the backend give new objects the uid/gid asked for? (The local one only as root.)"""
    return kind != "local" or os.geteuid() == 0
