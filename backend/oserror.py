"""OSError -> backend error, in one place.

Every local-backend call that touches the file system catches `OSError` and raises
`from_oserror(e)`; callers that mean something more specific (ELOOP on a path component is
"not a directory", EEXIST from rename is "not empty") pass an override table.
"""

from __future__ import annotations

import errno

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
