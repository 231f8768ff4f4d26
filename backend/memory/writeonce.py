"""The write-once lifecycle of `MemoryBackend`: create_staged, stage_version, publish, discard.

A mixin of MemoryBackend (kept apart from the namespace so neither module grows past a
screenful of concerns); it uses the backend's guard, object look-ups and the `Stagings` index.
"""

from __future__ import annotations

from .. import interface as I
from .disk import Inode, Staged, check_name
from .staging import MemoryStaging, record_json

REG, DIR = I.Kind.REG, I.Kind.DIR


class WriteOnce:
    def create_staged(self, dir, name, viewer, mode, uid, gid, exclusive, record,
                      verifier=None) -> MemoryStaging:
        name = check_name(name)
        viewer = bytes(viewer or b"")
        text = record_json(record)
        with self._guard:
            d = self._dir(dir)
            entry = d.entries.get(name)
            if entry is not None:
                if exclusive:
                    raise I.Exists()
                if entry[1].kind == DIR:
                    raise I.IsDir()
                if entry[1].kind != REG:
                    raise I.Exists("not a regular file")
            if exclusive and self._stagings.at(d.oid, name):
                raise I.Exists("name reserved by a staged file")
            self._touch(d)  # a new name is reserved: the directory changed, as for a create
            inode = self._new_inode(REG, mode, uid, gid)
            inode.nlink = 1  # its link in the staging area, until it is published
            if verifier is not None:
                self.disk.verifiers[inode.oid] = bytes(verifier)
            st = Staged(self.disk.new_sid(), inode.oid, True, viewer, inode, text, True)
            st.target, st.cookie, st.exclusive = (d.oid, name), d.new_cookie(), bool(exclusive)
            return self._stage(st, record)

    def create_verifier(self, handle) -> bytes | None:
        with self._guard:
            return self.disk.verifiers.get(self._obj(handle).oid)

    def stage_version(self, handle, viewer, truncate, record) -> MemoryStaging:
        """A copy-on-write version: it shares the published version's pages (a copy of the
        page table, whatever the size); owner, mode and times start as the published one's."""
        viewer = bytes(viewer or b"")
        text = record_json(record)
        with self._guard:
            pub = self._obj(handle)
            self._published_file(pub)
            inode = Inode(pub.oid, REG, pub.mode, pub.uid, pub.gid, self._clock(),
                          self.disk.tick())
            inode.nlink = 1
            if not truncate:
                inode.pages = pub.pages.copy()
                inode.atime, inode.mtime = pub.atime, pub.mtime
            st = Staged(self.disk.new_sid(), pub.oid, False, viewer, inode, text, bool(truncate))
            return self._stage(st, record)

    def _stage(self, st: Staged, record: dict) -> MemoryStaging:
        self.disk.staged[st.id] = st
        s = MemoryStaging(self, st, record)
        self._stagings.add(s)
        return s

    def publish(self, staging: MemoryStaging, sync: bool = True):
        """Durable at once (memory has no disk to wait for): None for sync=False too."""
        s = staging
        s._check()
        if s._backend is not self:
            raise I.Invalid("not a staging object of this backend")
        with self._guard:
            if s.is_new:
                self._publish_new(s)
            else:
                self._publish_version(s)
        return None

    def _gone(self, s: MemoryStaging, why: str) -> I.Gone:
        self._discard(s)
        return I.Gone(why)

    def _publish_new(self, s: MemoryStaging) -> None:
        st = s._state
        if st.gone:
            raise self._gone(s, "the name was removed")
        dir_oid, name = st.target
        d = self.disk.objects.get(dir_oid)
        if d is None:
            raise self._gone(s, "the directory was removed")
        cookie, victim = st.cookie, None
        old = d.entries.get(name)
        if old is not None:
            if old[1].kind == DIR:
                raise I.IsDir()
            cookie, victim = d.detach(name)
        st.inode.nlink = 0  # its staging link goes; the name is its only one
        d.attach(name, st.inode, cookie)
        self._touch(d)
        self._touch(st.inode, content=False)
        if victim is not None:
            self._unlinked(victim)
        self._finish(s)

    def _publish_version(self, s: MemoryStaging) -> None:
        """The new version replaces the object's first name (an editor's write-and-rename):
        it takes the object id, the published version's owner, mode and extended attributes;
        other hard links keep the old version, which becomes an object of its own."""
        st = s._state
        pub = self.disk.objects.get(st.oid)
        if pub is None:
            raise self._gone(s, "the file was removed")
        if not st.dirty:
            self._finish(s)  # nothing written: the published version stays
            return
        new = st.inode
        new.mode, new.uid, new.gid = pub.mode, pub.uid, pub.gid
        new.xattrs = dict(pub.xattrs)
        dir_oid, name = pub.names[0]
        d = self.disk.objects[dir_oid]
        cookie, _ = d.detach(name)
        new.nlink = 0
        d.attach(name, new, cookie, at=0)
        self.disk.objects[st.oid] = new
        self._touch(d)
        self._touch(new, content=False)
        self._touch(pub, content=False)
        if pub.nlink:
            pub.oid = self.disk.new_oid()
            self.disk.objects[pub.oid] = pub
        self._finish(s)

    def _finish(self, s: MemoryStaging) -> None:
        """Published (or nothing to publish) or discarded: off the disk, out of the index."""
        self._stagings.drop(s)
        self.disk.staged.pop(s.id, None)
        s._finished = True

    def discard(self, staging: MemoryStaging) -> None:
        with self._guard:
            if not staging._finished:
                self._discard(staging)

    def _discard(self, s: MemoryStaging) -> None:
        self._finish(s)
        if s.is_new:
            self.disk.forget(s._state.oid)

    def list_staged(self) -> list[MemoryStaging]:
        with self._guard:
            return self._stagings.all()
