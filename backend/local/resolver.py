"""Handle identity: from a handle to the object on disk, and from an entry on disk to its id.

An object is (inode, generation); its id and handle come from the handle database
(`backend/handles.py`). In memory (lock held for every method): an LRU of object id -> `Node`
(inode, generation, name hint, hard-link names seen, last statx bytes and Attrs), a map
(inode, generation) -> id of the nodes in memory, and an LRU of O_PATH fds of directories. A
directory is opened through its parent chain of name hints (each fd checked against the
inode); a file is found under its name hint, then under other names it was seen under, then
by scanning its directory for its inode number (after a rename by a local program). Names
are repaired in the database when they are found to have moved; nothing else is written to
SQLite by read-only operations.

Directory fds evicted while the lock is held are closed only when the outermost holder lets
go (`_Guard.grave`), so an fd obtained during an operation stays valid until it ends.

Known limits:

* Generation = birth time (statx STATX_BTIME). On file systems without it (or without statx)
  the generation is 0 and an inode number re-used behind the server's back (local delete +
  create) aliases the old handle. Deletes through the backend drop the id, so they never alias.
* Renames by local programs: directories are followed through cached O_PATH fds (until evicted
  or restart); a file renamed within its directory is found again by scanning that directory for
  its inode number; a file moved to another directory, or a directory moved while not cached,
  becomes Stale. A directory moved outside the export by a local program stays reachable through
  a cached fd (like knfsd's no_subtree_check).
* A hard-linked file is found through the name it was last seen under; if that name is removed
  by a local program, its handle is Stale until a lookup sees another link.

`Resolver` is a mixin of `LocalBackend`. Its state: `_root`, `_root_fd`, `_nodes`, `_by_ino`,
`_dirfds`, `_dev` and `_state_ino` (the exported file system and the state dir, never shown),
`_db`, `_inst`. Every method expects the backend lock (`_guard`) held.
"""

from __future__ import annotations

import errno
import os
import time

from .. import interface as I
from ..handles import (DEV_MAJ, DEV_MIN, HANDLE_LEN, INO, MODE, NLINK, ROOT_ID, Node, generation,
                       is_dir, make_handle, unpack_statx)
from .common import DIR, KIND, O_LISTDIR, RACY_NS, ctime_ns
from .linux import O_PATHDIR, fstatx, statx, statx_key


class Resolver:
    """Nodes, directory fds and finding objects (see the module text; lock held)."""

    def _node(self, handle) -> Node:
        if type(handle) is not bytes:
            handle = bytes(handle)
        if len(handle) != HANDLE_LEN:
            raise I.BadHandle(f"{len(handle)} bytes")
        if handle[:8] != self._inst:
            raise I.Stale("not a handle of this export")
        oid = int.from_bytes(handle[8:16], "big")
        if oid >= 1 << 63:  # never issued (SQLite integers are signed 64-bit)
            raise I.Stale("no such object")
        node = self._node_by_id(oid)
        if node.handle != handle:
            raise I.Stale("object id re-used")
        return node

    def _cached(self, oid: int) -> Node | None:
        """The node of id `oid` if it is in memory (marked recently used), else None."""
        if oid == ROOT_ID:
            return self._root
        node = self._nodes.get(oid)
        if node is not None:
            self._nodes.move_to_end(oid)
        return node

    def _node_by_id(self, oid: int) -> Node:
        node = self._cached(oid)
        if node is not None:
            return node
        row = self._db.get(oid)
        if row is None:
            raise I.Stale("no such object")
        return self._remember(row)

    def _remember(self, row) -> Node:
        oid, nonce, ino, gen, kind, parent, name, verifier = row
        node = Node(oid, make_handle(self._inst, oid, nonce), ino, gen, kind, parent,
                    None if name is None else bytes(name), verifier)
        self._nodes[oid] = node
        self._by_ino[(ino, gen)] = oid
        while len(self._nodes) > self._node_cap:
            old_id, old = self._nodes.popitem(last=False)
            if self._by_ino.get((old.ino, old.gen)) == old_id:
                del self._by_ino[(old.ino, old.gen)]
        return node

    def _forget(self, oid: int) -> None:
        """The object no longer exists: drop it from memory and from the database."""
        node = self._nodes.pop(oid, None)
        if node is not None and self._by_ino.get((node.ino, node.gen)) == oid:
            del self._by_ino[(node.ino, node.gen)]
        fd = self._dirfds.pop(oid, None)
        if fd is not None:
            self._guard.grave.append(fd)
        self._readers.drop(oid)
        self._listings.drop(oid)
        if oid != ROOT_ID:
            try:
                self._db.delete(oid)
            except OSError:
                # A full disk must not stop a delete; a leftover row names an inode that is
                # gone, so its handle resolves to Stale anyway.
                pass

    def _set_hint(self, node: Node, parent: int, name: bytes) -> None:
        node.parent, node.name, node.miss = parent, name, None
        if node.alt:
            node.alt.discard((parent, name))
        self._db.set_hint(node.id, parent, name)

    def _add_alt(self, node: Node, parent: int, name: bytes) -> None:
        if node.alt is None:
            node.alt = set()
        if len(node.alt) < 32:
            node.alt.add((parent, name))

    def _same(self, st: tuple, node: Node) -> bool:
        return (st[INO] == node.ino and st[DEV_MAJ] == self._dev[0] and st[DEV_MIN] == self._dev[1]
                and generation(st) == node.gen)

    def _is_state(self, st: tuple) -> bool:
        return st[INO] == self._state_ino and (st[DEV_MAJ], st[DEV_MIN]) == self._dev

    def _id_for(self, st: tuple, parent: int, name: bytes) -> Node:
        """The object at `parent`/`name` with stat `st`: known id, or a new one."""
        node = self._known(st)
        if node is None:
            return self._ids_for(parent, [(name, st)])[0]
        self._adopt(node, st, parent, name)
        return node

    def _known(self, st: tuple) -> Node | None:
        """The node in memory for the object with stat `st`, or None."""
        oid = self._by_ino.get((st[INO], generation(st)))
        return None if oid is None else self._cached(oid)

    def _ids_for(self, parent: int, items) -> list[Node]:
        """Nodes for [(name, stat)] entries of directory `parent`; one query and one
        transaction for all the inodes not in memory."""
        nodes = []
        missing = []
        known = self._known
        for name, st in items:
            node = known(st)
            if node is None:
                missing.append(len(nodes))
            else:
                self._adopt(node, st, parent, name)
            nodes.append(node)
        if missing:
            keys = [(items[i][1][INO], generation(items[i][1])) for i in missing]
            rows = self._db.find_many(keys) if len(keys) > 1 else {}
            if len(keys) == 1:
                row = self._db.find(*keys[0])
                if row is not None:
                    rows[keys[0]] = row
            self._db.hold()
            try:
                for i, key in zip(missing, keys):
                    name, st = items[i]
                    row = rows.get(key)
                    if row is None:
                        kind = KIND[st[MODE] & 0o170000]
                        node = self._remember(self._db.insert(key[0], key[1], kind, parent, name))
                        rows[key] = (node.id, int.from_bytes(node.handle[16:], "big"), key[0],
                                     key[1], int(kind), parent, name, None)
                    else:
                        node = self._remember(row)
                        self._adopt(node, st, parent, name)
                    nodes[i] = node
            finally:
                self._db.release()
        return nodes

    def _adopt(self, node: Node, st: tuple, parent: int, name: bytes) -> None:
        """`node` was just seen at parent/name: keep its name hint right."""
        if node.parent != parent or node.name != name:
            if node.kind == DIR or st[NLINK] <= 1:
                self._set_hint(node, parent, name)  # renamed behind our back
            elif node.id != ROOT_ID:
                self._add_alt(node, parent, name)

    def _dirfd(self, node: Node) -> int:
        """An O_PATH fd of directory `node` (cached); Stale if it cannot be found."""
        if node.id == ROOT_ID:
            return self._root_fd
        fd = self._dirfds.get(node.id)
        if fd is not None:
            self._dirfds.move_to_end(node.id)
            return fd
        chain = []
        n = node
        while True:
            chain.append(n)
            if len(chain) > 4096 or n.parent is None:
                raise I.Stale("directory chain broken")
            p = self._node_by_id(n.parent)
            if p.kind != DIR:
                raise I.Stale("directory chain broken")
            if p.id == ROOT_ID:
                fd = self._root_fd
                break
            fd = self._dirfds.get(p.id)
            if fd is not None:
                break
            n = p
        for n in reversed(chain):
            fd = self._open_dir(fd, n)
        while len(self._dirfds) > self._dirfd_cap:
            self._guard.grave.append(self._dirfds.popitem(last=False)[1])
        return fd

    def _open_dir(self, pfd: int, node: Node) -> int:
        if node.name is not None:
            try:
                fd = os.open(node.name, O_PATHDIR, dir_fd=pfd)
            except OSError:
                fd = None
            if fd is not None:
                if self._same(fstatx(fd), node):
                    self._dirfds[node.id] = fd
                    return fd
                os.close(fd)
        found = self._search(pfd, node)
        if found is None:
            raise I.Stale("directory not found")
        self._set_hint(node, node.parent, found[0])
        fd = os.open(found[0], O_PATHDIR, dir_fd=pfd)
        if not self._same(fstatx(fd), node):
            os.close(fd)
            raise I.Stale("directory not found")
        self._dirfds[node.id] = fd
        return fd

    def _search(self, pfd: int, node: Node):
        """Scan a directory for the node's inode: (name, stat) or None."""
        try:
            pst = fstatx(pfd)
            key = ctime_ns(pst)
            if node.miss == key:
                return None
            lfd = os.open(".", O_LISTDIR, dir_fd=pfd)
            try:
                with os.scandir(lfd) as it:
                    names = [os.fsencode(e.name) for e in it if e.inode() == node.ino]
            finally:
                os.close(lfd)
        except OSError:
            return None
        for name in names:
            try:
                st = statx(pfd, name)
            except OSError:
                continue
            if self._same(st, node):
                return name, st
        if time.time_ns() - key > RACY_NS:
            node.miss = key
        return None

    def _find_file(self, node: Node) -> tuple[int, bytes, tuple]:
        """(parent fd, name, stat) of a published non-directory; Stale if it is gone."""
        if node.parent is None:
            raise I.Stale("no name")
        parent = self._node_by_id(node.parent)
        if parent.kind != DIR:
            raise I.Stale("no parent")
        pfd = self._dirfd(parent)
        name = node.name
        if name is not None:
            try:
                st = statx(pfd, name)
            except OSError:
                st = None
            if st is not None and self._same(st, node):
                return pfd, name, st
        for p, n in list(node.alt or ()):
            try:
                afd = self._dirfd(self._node_by_id(p))
                st = statx(afd, n)
            except (OSError, I.BackendError):
                node.alt.discard((p, n))
                continue
            if self._same(st, node):
                self._set_hint(node, p, n)
                return afd, n, st
            node.alt.discard((p, n))
        found = self._search(pfd, node)
        if found is None:
            raise I.Stale("file not found")
        self._set_hint(node, node.parent, found[0])
        return pfd, found[0], found[1]

    def _stat_node(self, node: Node) -> tuple:
        """Current stat of a published object, verified to be that object."""
        if node.kind == DIR:
            fd = self._dirfd(node)
            st = fstatx(fd)
            if st[NLINK] == 0:
                if node.id in self._dirfds:
                    self._guard.grave.append(self._dirfds.pop(node.id))
                raise I.Stale("directory removed")
            return st
        return self._find_file(node)[2]

    def _dir(self, handle) -> tuple[Node, int]:
        node = self._node(handle)
        if node.kind != DIR or self._new_staging(node.id) is not None:
            raise I.NotDir()
        return node, self._dirfd(node)

    def _child(self, dfd: int, name: bytes):
        """Stat of a visible entry, or None (absent, the state dir, another file system)."""
        st = self._child_any(dfd, name)
        return st if st is not None and self._visible(st) else None

    def _visible(self, st: tuple) -> bool:
        """Not the state directory, and on the exported file system."""
        return st[DEV_MAJ] == self._dev[0] and st[DEV_MIN] == self._dev[1] and \
            st[INO] != self._state_ino

    def _child_raw(self, dfd: int, name: bytes):
        """`statx_key` of an entry, or None if there is none (visibility not checked)."""
        try:
            return statx_key(dfd, name)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise

    def _child_any(self, dfd: int, name: bytes):
        """Stat of any entry (hidden ones too) or None; for names about to be created/replaced."""
        raw = self._child_raw(dfd, name)
        return None if raw is None else unpack_statx(raw)

    def _not_found(self, dfd: int) -> I.BackendError:
        try:
            if fstatx(dfd)[NLINK] == 0:
                return I.Stale("directory removed")
        except OSError:
            pass
        return I.NotFound()

    def _unlinked(self, st: tuple, dir_id: int, name: bytes) -> None:
        """A name with stat `st` (taken before) was removed or replaced."""
        oid = self._by_ino.get((st[INO], generation(st)))
        if oid is None:
            row = self._db.find(st[INO], generation(st))
            if row is None:
                return
            oid = row[0]
        if oid == ROOT_ID:
            return
        if is_dir(st) or st[NLINK] <= 1:
            self._forget(oid)
            return
        node = self._nodes.get(oid)
        if node is None:
            return
        if node.alt:
            node.alt.discard((dir_id, name))
        if (node.parent, node.name) == (dir_id, name) and node.alt:
            p, n = node.alt.pop()
            self._set_hint(node, p, n)
