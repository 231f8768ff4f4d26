"""Exports and filehandles.

A filehandle on the wire is ``FH_VERSION || export index || backend handle``. The backend
handle is opaque here; the backend decides whether it names a live object (else STALE).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import NFS4Error
from .xdr import nfs4 as x

FH_VERSION = 1


@dataclass(eq=False)
class Export:
    index: int
    path: str  # where it appears in the NFSv4 namespace ("/" for `nfsd serve DIR`)
    backend: object
    rw: bool = True
    anonuid: int = 65534
    anongid: int = 65534
    squash: str = "none"  # "none" | "root" | "all"
    extra: dict = field(default_factory=dict)

    def wire(self, handle: bytes) -> bytes:
        return bytes((FH_VERSION, self.index)) + handle


class FileRef:
    """The current or saved filehandle of a COMPOUND: an export and a backend handle."""

    __slots__ = ("export", "handle", "_wire")

    def __init__(self, export: Export, handle: bytes, wire: bytes | None = None):
        self.export = export
        self.handle = handle
        self._wire = wire

    @property
    def wire(self) -> bytes:
        w = self._wire
        if w is None:
            w = self._wire = self.export.wire(self.handle)
        return w

    @property
    def backend(self):
        return self.export.backend

    def __eq__(self, other):
        return isinstance(other, FileRef) and other.export is self.export and other.handle == self.handle

    __hash__ = None


class ExportTable:
    def __init__(self, exports: list[Export]):
        self.exports = exports
        self.by_index = {e.index: e for e in exports}
        root = [e for e in exports if e.path == "/"]
        self.root_export = root[0] if root else exports[0]

    def root(self) -> FileRef:
        e = self.root_export
        return FileRef(e, e.backend.root())

    def from_wire(self, wire: bytes) -> FileRef:
        if len(wire) < 3 or wire[0] != FH_VERSION:
            raise NFS4Error(x.NFS4ERR_BADHANDLE)
        e = self.by_index.get(wire[1])
        if e is None:
            raise NFS4Error(x.NFS4ERR_STALE)
        return FileRef(e, bytes(wire[2:]), bytes(wire))
