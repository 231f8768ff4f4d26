"""The registry of staging objects: which files are under construction, and who sees them.

`_stagings` (id -> LocalStaging) holds every staging object; `_by_oid` (object id -> its
staging objects, a new file's own first) answers "is this object being written, and what does
this viewer see" (`_view`); `_transient` (directory id -> name -> new files) holds the names
of files under construction, which only their viewer sees (in LOOKUP, READDIR, REMOVE,
RENAME) and which an exclusive create reserves against everybody. `discard` and `_finish`
take a staging object out (and close and remove its files).

`StagingRegistry` is a mixin of `LocalBackend`. `discard` and `list_staged` take the backend
lock (`_guard`); every other method expects it held.
"""

from __future__ import annotations

from .. import interface as I
from ..handles import Node, handle_id
from .common import DIR, REG
from .staging import LocalStaging


class StagingRegistry:
    """`LocalBackend`'s staging objects (mixin; see the module text)."""

    def _new_staging(self, oid: int):
        """The staging object of `oid` if it is a file under construction (not published
        yet: it has no directory entry), else None."""
        sts = self._by_oid.get(oid)
        if sts and sts[0].is_new:
            return sts[0]
        return None

    def _register(self, s: LocalStaging) -> None:
        self._stagings[s.id] = s
        self._by_oid.setdefault(s.oid, []).append(s)
        if s.is_new and not s.gone:
            self._tn_add(s)

    def _unregister(self, s: LocalStaging) -> None:
        self._stagings.pop(s.id, None)
        sts = self._by_oid.get(s.oid)
        if sts is not None:
            if s in sts:
                sts.remove(s)
            if not sts:
                del self._by_oid[s.oid]
        if s.is_new:
            self._tn_del(s)

    def _tn_add(self, s: LocalStaging) -> None:
        d = self._transient.setdefault(handle_id(s.target_dir), {})
        d.setdefault(s.target_name, []).append(s)

    def _tn_del(self, s: LocalStaging) -> None:
        dir_id = handle_id(s.target_dir)
        d = self._transient.get(dir_id)
        if not d:
            return
        lst = d.get(s.target_name)
        if lst and s in lst:
            lst.remove(s)
            if not lst:
                del d[s.target_name]
                if not d:
                    del self._transient[dir_id]

    def _transients(self, dir_id: int, name: bytes, viewer) -> list[LocalStaging]:
        """`viewer`'s files under construction at dir/name."""
        d = self._transient.get(dir_id)
        if not d:
            return []
        lst = d.get(name)
        if not lst:
            return []
        return [s for s in lst if s.viewer == viewer]

    def _reserved(self, dir_id: int, name: bytes) -> bool:
        """Is dir/name reserved by somebody's exclusive create?"""
        d = self._transient.get(dir_id)
        return bool(d and any(s.exclusive for s in d.get(name, ())))

    def _view(self, sts: list[LocalStaging], viewer):
        """The staging whose attributes `viewer` sees, or None for the published version."""
        for s in reversed(sts):
            if s.viewer == viewer and (s.is_new or s.dirty):
                return s
        if sts[0].is_new:
            if viewer is not None:
                # Not published: for every other viewer it does not exist.
                raise I.Stale("under construction by another client")
            return sts[-1]
        return None

    def _published_file(self, node: Node, regular: bool = True, what: str = "not published yet"):
        """Refuse what only a published non-directory (regular: a regular file) may do."""
        if self._new_staging(node.id) is not None:
            raise I.Invalid(what)
        if node.kind == DIR:
            raise I.IsDir()
        if regular and node.kind != REG:
            raise I.WrongType()

    def _finish(self, s: LocalStaging, published: bool = False) -> None:
        """Published (or nothing to publish): forget the staging object and its files."""
        self._unregister(s)
        s.close_fds()
        s.remove_files(published)

    def discard(self, staging: LocalStaging) -> None:
        with self._guard:
            self._discard_locked(staging)

    def _discard_locked(self, s: LocalStaging) -> None:
        """`discard` with the lock held: a new file's id is forgotten with it."""
        if s.finished:
            return
        self._unregister(s)
        s.close_fds()
        s.remove_files()
        if s.is_new:
            self._forget(s.oid)

    def list_staged(self) -> list[LocalStaging]:
        with self._guard:
            return list(self._stagings.values())
