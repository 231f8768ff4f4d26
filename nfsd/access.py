"""Who may do what: AUTH_SYS identities checked against mode bits, as a local file system would.

The server process usually runs as root, so the kernel would allow everything; these checks
make a client user get exactly what the same uid/gid/groups would get locally.
"""

from __future__ import annotations

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


def may_delete(cred: Cred, dir_attrs, victim_attrs) -> bool:
    """Remove/rename `victim` out of `dir`: write+search on the directory and the sticky rule."""
    if not allowed(cred, dir_attrs, W | X):
        return False
    if dir_attrs.mode & 0o1000 and cred.uid != 0:
        return cred.uid in (dir_attrs.uid, victim_attrs.uid)
    return True


def is_owner(cred: Cred, a) -> bool:
    return cred.uid == 0 or cred.uid == a.uid
