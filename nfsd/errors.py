"""How operations fail: `NFS4Error` carries an nfsstat4, and backend errors map to one status each."""

from __future__ import annotations

from backend import interface as bi


class NFS4Error(Exception):
    """Raised by an operation handler; the COMPOUND loop turns it into that operation's result.

    `res`, when given, is the complete result to send (for the few operations whose error
    results carry data, e.g. LOCK's NFS4ERR_DENIED with the conflicting lock)."""

    __slots__ = ("status", "res")

    def __init__(self, status: int, res=None):
        super().__init__(status)
        self.status = status
        self.res = res


# nfsstat4 values used here (RFC 8881 section 15.1); kept numeric so this module does not
# depend on the generated XDR namespace.
NFS4ERR_PERM = 1
NFS4ERR_NOENT = 2
NFS4ERR_IO = 5
NFS4ERR_ACCESS = 13
NFS4ERR_EXIST = 17
NFS4ERR_XDEV = 18
NFS4ERR_NOTDIR = 20
NFS4ERR_ISDIR = 21
NFS4ERR_INVAL = 22
NFS4ERR_FBIG = 27
NFS4ERR_NOSPC = 28
NFS4ERR_ROFS = 30
NFS4ERR_MLINK = 31
NFS4ERR_NAMETOOLONG = 63
NFS4ERR_NOTEMPTY = 66
NFS4ERR_DQUOT = 69
NFS4ERR_STALE = 70
NFS4ERR_BADHANDLE = 10001
NFS4ERR_SERVERFAULT = 10006
NFS4ERR_BADTYPE = 10007
NFS4ERR_DELAY = 10008
NFS4ERR_WRONG_TYPE = 10083
NFS4ERR_SYMLINK = 10029
NFS4ERR_BADNAME = 10041

_BACKEND_STATUS = {
    bi.NotFound: NFS4ERR_NOENT,
    bi.Exists: NFS4ERR_EXIST,
    bi.Stale: NFS4ERR_STALE,
    bi.BadHandle: NFS4ERR_BADHANDLE,
    bi.NotDir: NFS4ERR_NOTDIR,
    bi.IsDir: NFS4ERR_ISDIR,
    bi.NotEmpty: NFS4ERR_NOTEMPTY,
    bi.InvalidName: NFS4ERR_BADNAME,
    bi.NameTooLong: NFS4ERR_NAMETOOLONG,
    bi.NotSymlink: NFS4ERR_INVAL,
    bi.WrongType: NFS4ERR_INVAL,
    bi.CrossDevice: NFS4ERR_XDEV,
    bi.Permission: NFS4ERR_PERM,
    bi.NoSpace: NFS4ERR_NOSPC,
    bi.TooBig: NFS4ERR_FBIG,
    bi.ReadOnly: NFS4ERR_ROFS,
    bi.IOFailure: NFS4ERR_IO,
    bi.Invalid: NFS4ERR_INVAL,
    bi.Gone: NFS4ERR_STALE,
    bi.Unavailable: NFS4ERR_DELAY,
}


def status_of(exc: bi.BackendError) -> int:
    """The NFS status for a backend error (most specific class first)."""
    for cls in type(exc).__mro__:
        s = _BACKEND_STATUS.get(cls)
        if s is not None:
            return s
    return NFS4ERR_IO
