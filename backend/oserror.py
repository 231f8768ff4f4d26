"""OSError -> backend error, in one place.

Every local-backend operation that touches the file system raises `from_oserror(e)` for an
`OSError` e; callers that mean something more specific (ELOOP on a path component is
"not a directory", EEXIST from rename is "not empty") pass an override table. The operations
say so with `@maps_oserror(...)` (the whole method) or `with oserrors(...):` (one block). The
few that run for nearly every request write the same `except OSError as e: raise
from_oserror(e) from None` inline instead: a `try` costs nothing in CPython 3.11, a decorator
or context manager costs a call or two per request. Those are GETATTR (`LocalBackend.getattr`,
`LocalStaging.attrs`), LOOKUP (`lookup_attrs`), READDIR (`readdir`), READ (`LocalBackend.read`
and its `_reader`, `LocalStaging.read`) and WRITE (`LocalStaging.write`).
"""

from __future__ import annotations

import errno
import functools

from . import interface as I

ERRNO_ERRORS: dict[int, type[I.BackendError]] = {
    errno.ENOENT: I.NotFound,
    errno.EEXIST: I.Exists,
    errno.ENOTDIR: I.NotDir,
    errno.EISDIR: I.IsDir,
    errno.ENOTEMPTY: I.NotEmpty,
    errno.EXDEV: I.CrossDevice,
    errno.EPERM: I.Permission,
    errno.EACCES: I.Permission,
    errno.ENOSPC: I.NoSpace,
    errno.EDQUOT: I.NoSpace,
    errno.EFBIG: I.TooBig,
    errno.EROFS: I.ReadOnly,
    errno.ENAMETOOLONG: I.NameTooLong,
    errno.EINVAL: I.Invalid,
    errno.ELOOP: I.NotDir,  # O_NOFOLLOW met a symlink where a directory was expected
    errno.ESTALE: I.Stale,
    errno.EOPNOTSUPP: I.WrongType,
}

# rename(2): EEXIST is the non-empty-directory case on some file systems.
RENAME_ERRORS = {errno.EEXIST: I.NotEmpty}


def from_oserror(e: OSError,
                 overrides: dict[int, type[I.BackendError]] | None = None) -> I.BackendError:
    """The backend error for `e` (IOFailure for anything unlisted); message keeps the errno."""
    cls = None
    if overrides:
        cls = overrides.get(e.errno)
    if cls is None:
        cls = ERRNO_ERRORS.get(e.errno, I.IOFailure)
    err = cls(f"{errno.errorcode.get(e.errno, e.errno)}: {e.strerror}")
    err.errno = e.errno
    return err



def _mapped(e: OSError, overrides, to) -> I.BackendError:
    return to(e) if to is not None else from_oserror(e, overrides)


def maps_oserror(overrides: dict[int, type[I.BackendError]] | None = None, *, to=None):
    """Decorator: an OSError escaping the function is raised as `to(e)`, by default
    `from_oserror(e, overrides)`, without the OSError as its context."""
    def decorate(fn):
        @functools.wraps(fn)
        def mapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except OSError as e:
                raise _mapped(e, overrides, to) from None
        return mapped
    return decorate


class oserrors:
    """`with oserrors(overrides):` maps an OSError escaping the block as `maps_oserror` does;
    for methods of which only a part touches the file system (or needs the overrides)."""

    __slots__ = ("_overrides", "_to")

    def __init__(self, overrides: dict[int, type[I.BackendError]] | None = None, *, to=None):
        self._overrides = overrides
        self._to = to

    def __enter__(self):
        return self

    def __exit__(self, typ, e, tb):
        if typ is not None and issubclass(typ, OSError):
            raise _mapped(e, self._overrides, self._to) from None
        return False
