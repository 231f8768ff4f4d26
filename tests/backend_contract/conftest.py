"""Every test here runs once per backend: `local` (LocalBackend on a temporary directory) and
`memory` (MemoryBackend).

Fixtures:
  backend          a fresh backend
  reopen(b)        the server restarted over the same storage: a new backend (local: `b` is
                   closed first, its state dir being locked; memory: a new MemoryBackend over
                   `b.disk`, which fences `b` as a kill -9 would)
  xbackend         `backend`, skipped where statfs says extended attributes are not stored
  kind             "local" or "memory", for the few rules a backend may implement its own way
"""

from __future__ import annotations

import pytest

from backend.local import LocalBackend
from backend.memory import MemoryBackend


class Storage:
    """One backend's storage, and every backend opened over it (closed at the end)."""

    def __init__(self, kind: str, path):
        self.kind, self.path = kind, path
        self.opened = []

    def open(self):
        b = LocalBackend(self.path) if self.kind == "local" else MemoryBackend()
        self.opened.append(b)
        return b

    def reopen(self, b):
        if self.kind == "local":
            b.close()
            b2 = LocalBackend(self.path)
        else:
            b2 = MemoryBackend(b.disk)
        self.opened.append(b2)
        return b2

    def close(self):
        for b in self.opened:
            b.close()


@pytest.fixture(params=["local", "memory"])
def kind(request):
    return request.param


@pytest.fixture
def storage(kind, tmp_path):
    s = Storage(kind, tmp_path / "export")
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
