"""`Stagings`: a backend's index of its staging objects (process memory, rebuilt at start-up
from the disk, as the local backend rebuilds its registry from the staging directory).

Three views of the same objects: by id (list_staged), by object id (what getattr shows whom,
which objects are under construction) and transient names by (directory id, name) (lookup,
readdir, exclusive reservations). Callers hold the backend's guard.
"""

from __future__ import annotations

from .staging import MemoryStaging


class Stagings:
    def __init__(self):
        self._by_id: dict[str, MemoryStaging] = {}
        self._by_oid: dict[int, list[MemoryStaging]] = {}
        self._names: dict[int, dict[bytes, list[MemoryStaging]]] = {}

    def all(self) -> list[MemoryStaging]:
        return list(self._by_id.values())

    def add(self, s: MemoryStaging) -> None:
        self._by_id[s.id] = s
        self._by_oid.setdefault(s._state.oid, []).append(s)
        if s.is_new and not s._state.gone:
            self._name_add(s)

    def drop(self, s: MemoryStaging) -> None:
        self._by_id.pop(s.id, None)
        oid = s._state.oid
        sts = self._by_oid.get(oid, [])
        if s in sts:
            sts.remove(s)
        if not sts:
            self._by_oid.pop(oid, None)
        if s.is_new:
            self._name_del(s)

    def of(self, oid: int) -> list[MemoryStaging]:
        """The object's staging objects, oldest first (a new file has exactly one)."""
        return self._by_oid.get(oid, [])

    def new_file(self, oid: int) -> MemoryStaging | None:
        """The staging object of a file under construction, or None if `oid` is published."""
        sts = self._by_oid.get(oid)
        return sts[0] if sts and sts[0].is_new else None

    # ---- transient names
    def at(self, dir_oid: int, name: bytes) -> list[MemoryStaging]:
        """Every staging object whose transient name is `name` in the directory."""
        return self._names.get(dir_oid, {}).get(name, [])

    def mine(self, dir_oid: int, name: bytes, viewer) -> list[MemoryStaging]:
        return [s for s in self.at(dir_oid, name) if s.viewer == viewer]

    def mine_in(self, dir_oid: int, viewer) -> dict[bytes, MemoryStaging]:
        """name -> the viewer's newest staging object there, for one directory."""
        out = {}
        for name, lst in self._names.get(dir_oid, {}).items():
            for s in lst:
                if s.viewer == viewer:
                    out[name] = s
        return out

    def reserved(self, dir_oid: int, name: bytes) -> bool:
        """Is the name reserved by an exclusive create (against everybody)?"""
        return any(s._state.exclusive for s in self.at(dir_oid, name))

    def release(self, s: MemoryStaging) -> None:
        """Its transient name was removed (or replaced): publish will raise Gone."""
        self._name_del(s)
        s._state.gone = True

    def move(self, s: MemoryStaging, dir_oid: int, name: bytes, cookie: int) -> None:
        """Its transient name moves (a rename by its viewer): so does its publication target."""
        self._name_del(s)
        s._state.target, s._state.cookie = (dir_oid, name), cookie
        self._name_add(s)

    def _name_add(self, s: MemoryStaging) -> None:
        dir_oid, name = s._state.target
        self._names.setdefault(dir_oid, {}).setdefault(name, []).append(s)

    def _name_del(self, s: MemoryStaging) -> None:
        dir_oid, name = s._state.target
        names = self._names.get(dir_oid, {})
        lst = names.get(name, [])
        if s in lst:
            lst.remove(s)
            if not lst:
                del names[name]
                if not names:
                    del self._names[dir_oid]
