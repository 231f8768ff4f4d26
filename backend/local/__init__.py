"""The local backend (being split into modules)."""

from __future__ import annotations

import sys
import types

from .backend import LocalBackend
from .common import RACY_NS, check_name
from .linux import FICLONE, UNFILLED_MIN, fallocate, fstatx_key, statx_key, statx_keys
from .listing import cookie_of
from .record import REC_XATTR, read_record_xattr
from .staging import LocalStaging

_fallocate, _UNFILLED_MIN = fallocate, UNFILLED_MIN  # their names in the one-module local.py

__all__ = ["LocalBackend", "LocalStaging", "cookie_of", "check_name"]

# Names of the one-module `backend.local` that now have another name in their module.
_RENAMED = {"_fallocate": "fallocate", "_UNFILLED_MIN": "UNFILLED_MIN"}


class _Package(types.ModuleType):
    """`backend.local` was one module, and tests replace its globals (`monkeypatch.setattr(
    backend.local, "RACY_NS", -1)`) to change what the backend does: a name set here is also
    set in every module of the package that uses it (under its new name, see `_RENAMED`)."""

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        there = _RENAMED.get(name, name)
        prefix = __name__ + "."
        for mod_name, mod in list(sys.modules.items()):
            if mod_name.startswith(prefix) and there in vars(mod):
                setattr(mod, there, value)


sys.modules[__name__].__class__ = _Package
