"""Who may do what: AUTH_SYS identities checked against mode bits, as a local file system would.

The server process usually runs as root, so the kernel would allow everything; these checks
make a client user get exactly what the same uid/gid/groups would get locally on Linux. Each
rule is written down in docs/semantics.md ("POSIX permissions") with its test.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

from backend.interface import Kind

R, W, X = 4, 2, 1


@dataclass(frozen=True, slots=True)
class Cred:
    uid: int
    gid: int
    gids: tuple[int, ...] = ()

    @property
    def root(self) -> bool:
        return self.uid == 0

    def in_group(self, gid: int) -> bool:
        return gid == self.gid or gid in self.gids


NOBODY = Cred(65534, 65534)


def perm_bits(cred: Cred, a) -> int:
    """The rwx bits (R|W|X) of mode that apply to cred for an object with attributes a."""
    mode = a.mode
    if cred.uid == a.uid:
        return (mode >> 6) & 7
    if cred.in_group(a.gid):
        return (mode >> 3) & 7
    return mode & 7


def allowed(cred: Cred, a, want: int) -> bool:
    """May cred get every bit of `want` (R|W|X) on an object with attributes a?"""
    if cred.uid == 0:
        if want & X and a.kind != Kind.DIR:
            return bool(a.mode & 0o111)
        return True
    return (perm_bits(cred, a) & want) == want


def may_delete(cred: Cred, dir_attrs) -> bool:
    """Remove or rename something out of `dir`: write and search permission on it."""
    return allowed(cred, dir_attrs, W | X)


def sticky_denies(cred: Cred, dir_attrs, victim_attrs) -> bool:
    """In a sticky directory (mode 01000) only the owner of the entry, the owner of the
    directory or root may remove or rename the entry, or replace it by a rename (Linux
    answers EPERM)."""
    return bool(dir_attrs.mode & stat.S_ISVTX) and cred.uid != 0 and \
        cred.uid not in (dir_attrs.uid, victim_attrs.uid)


def is_owner(cred: Cred, a) -> bool:
    return cred.uid == 0 or cred.uid == a.uid


def may_chown(cred: Cred, a, uid: int) -> bool:
    """Setting the owner: root may; the owner may only set it to itself (a no-op), and
    nobody else may call it at all, even to set what is already there (POSIX, Linux)."""
    return cred.uid == 0 or (cred.uid == a.uid and uid == a.uid)


def may_chgrp(cred: Cred, a, gid: int) -> bool:
    """Setting the group: root may; the owner may set it to a group it is in, or to the
    group it already has; nobody else may."""
    return cred.uid == 0 or (cred.uid == a.uid and (gid == a.gid or cred.in_group(gid)))


def without_setid(mode: int) -> int:
    """`mode` as a write, a truncate or a change of owner leaves it: without set-user-ID, and
    without set-group-ID if the group may execute (without group execute, S_ISGID means
    mandatory locking and stays), as Linux clears them."""
    mode &= ~stat.S_ISUID
    if mode & stat.S_IXGRP:
        mode &= ~stat.S_ISGID
    return mode


def keeps_setid_on_write(cred: Cred) -> bool:
    """Only a privileged writer (root, which has CAP_FSETID) keeps the set-id bits of a file
    it writes or truncates; any other writer, its owner included, clears them (Linux)."""
    return cred.uid == 0
