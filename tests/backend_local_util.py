"""Fixtures and helpers of the LocalBackend tests (tests/test_backend_local*.py): what only the
local backend does (its state dir, on-disk layout, handle database, listing cache, staging
records, group commit, crash recovery, kernel features). What every backend must do is in the
contract suite (tests/backend_contract/), which runs on LocalBackend too.

A module takes the fixtures by importing them:

    from backend_local_util import b, export, mk  # noqa: F401 (fixtures)

  export   the export directory (not created: LocalBackend makes it)
  mk(**kw) a LocalBackend on `export` with those settings; all are closed at the end
  b        mk()
  xb       `b`, skipped where the temporary file system refuses user extended attributes
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3

import pytest

from backend.local import LocalBackend
from backend_contract.util import V1, V2, names, new_file, read_all, staged  # noqa: F401

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def export(tmp_path):
    return tmp_path / "export"


@pytest.fixture
def mk(export):
    opened = []

    def make(**kw):
        b = LocalBackend(export, **kw)
        opened.append(b)
        return b

    yield make
    for b in opened:
        b.close()


@pytest.fixture
def b(mk):
    return mk()


@pytest.fixture
def xb(b, export):
    try:
        os.setxattr(export / ".nfsd", "user.probe", b"")
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            pytest.skip("the temporary file system refuses user extended attributes")
        raise
    return b


def staging_files(export):
    """The names in the staging directory of the state dir."""
    return sorted(os.listdir(export / ".nfsd" / "staging"))


def names_in_main_file(db, tmp):
    """Names in the handle database file alone, without its WAL: what checkpoints have
    copied."""
    copy = tmp / "main-only.db"
    shutil.copyfile(db, copy)
    c = sqlite3.connect(copy)
    try:
        rows = c.execute("SELECT name FROM objects WHERE name IS NOT NULL").fetchall()
        return {bytes(r[0]) for r in rows}
    except sqlite3.OperationalError:  # not even the table has reached the file yet
        return set()
    finally:
        c.close()
        copy.unlink()
