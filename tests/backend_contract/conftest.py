"""Every test here runs once per backend: `local` (LocalBackend on a temporary directory),
`memory` (MemoryBackend) and `pgs3` (PgS3Backend: a namespace in a real PostgreSQL with its
contents in a real S3 endpoint, tests/services.py; skipped with the reason where those cannot
run).

Fixtures:
  backend          a fresh backend
  reopen(b)        the server restarted over the same storage: a new backend (local: `b` is
                   closed first, its state dir being locked; memory: a new MemoryBackend over
                   `b.disk`, which fences `b` as a kill -9 would; pgs3: the same frontend
                   started again on the same spool)
  xbackend         `backend`, skipped where statfs says extended attributes are not stored
  kind             "local", "memory" or "pgs3", for the few rules a backend may implement its
                   own way
"""

from __future__ import annotations

import pytest

from backend.local import LocalBackend
from backend.memory import MemoryBackend


class Storage:
    """One backend's storage, and every backend opened over it (closed at the end)."""

    def __init__(self, kind: str, path, services=None):
        self.kind, self.path, self.services = kind, path, services
        self.opened = []
        if kind == "pgs3":
            self.meta, self.data = services.namespace()
            self.endpoint = services.s3.endpoint

    def sibling(self, path) -> "Storage":
        """Another storage of the same kind (another export)."""
        return Storage(self.kind, path, self.services)

    def _new(self):
        if self.kind == "local":
            return LocalBackend(self.path)
        if self.kind == "memory":
            return MemoryBackend()
        from backend.pgs3 import PgS3Backend

        return PgS3Backend(self.meta, self.data, "contract", str(self.path) + "-spool",
                           endpoint=self.endpoint)

    def open(self):
        b = self._new()
        self.opened.append(b)
        return b

    def reopen(self, b):
        if self.kind == "memory":
            b2 = MemoryBackend(b.disk)
        else:
            b.close()
            b2 = self._new()
        self.opened.append(b2)
        return b2

    def close(self):
        for b in self.opened:
            b.close()


@pytest.fixture(params=["local", "memory", "pgs3"])
def kind(request):
    return request.param


@pytest.fixture
def storage(kind, tmp_path, request):
    s = Storage(kind, tmp_path / "export",
                request.getfixturevalue("services") if kind == "pgs3" else None)
    yield s
    s.close()


@pytest.fixture
def backend(storage):
    return storage.open()


@pytest.fixture
def reopen(storage):
    return storage.reopen


@pytest.fixture
def xbackend(backend):
    if not backend.statfs(backend.root()).xattrs:
        pytest.skip("this backend's file system stores no user extended attributes")
    return backend
