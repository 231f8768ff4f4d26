"""The life of a file under construction (nfsd/state/lifecycle.py): its transition table, and
each rule's function over a real state store and the in-memory backend, on a fake clock."""

from __future__ import annotations

import itertools

import pytest

from backend.memory import MemoryBackend
from nfsd.state.lifecycle import TRANSITIONS, Event, LifecycleError, Phase, Unfinished
from nfsd.state.model import ChannelAttrs
from nfsd.state.store import StateStore

RW = 3


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


class FakeStaging:
    id, handle, is_new, viewer = "s", b"h", True, b"v"


# ---------------------------------------------------------------- the table
@pytest.mark.parametrize("phase,event", list(itertools.product(Phase, Event)))
def test_every_event_moves_as_the_table_says_or_is_refused(phase, event):
    u = Unfinished(FakeStaging(), (b"o", b"v"), phase, True)
    nxt = TRANSITIONS.get((phase, event))
    if nxt is None:
        with pytest.raises(LifecycleError):
            u.on(event)
        assert u.phase is phase
    else:
        assert u.on(event) is nxt and u.phase is nxt


def test_published_and_discarded_are_final():
    assert not [k for k in TRANSITIONS if k[0] in (Phase.PUBLISHED, Phase.DISCARDED)]


# ---------------------------------------------------------------- the rules, end to end
class World:
    """A state store on a fake clock over a memory backend, with clients that open files."""

    def __init__(self):
        self.clock, self.wall = Clock(), Clock(1_000_000.0)
        self.persisted = []
        self.be = MemoryBackend()
        self.store = self.new_store()

    def new_store(self):
        store = StateStore(clock=self.clock, wallclock=self.wall, lease_time=10,
                           retire_after=100)
        store.persist = self.persisted.append
        return store

    def client(self, owner=b"c", verifier=b"v1"):
        c, _ = self.store.exchange_id(owner, verifier, 0, ("sys", 0), 1)
        attrs = ChannelAttrs(0, 65536, 65536, 4096, 8, 8)
        self.store.create_session(c.clientid, 1, 0, attrs, attrs, 0, ("sys", 0))
        return c

    def create(self, client, name, owner=b"oo"):
        """OPEN(create) for write: the open and its new file's version."""
        oo = self.store.open_owner(client, owner)
        stg = self.be.create_staged(self.be.root(), name, self.store.viewer(client), 0o644,
                                    0, 0, False, self.store.owner_record(oo))
        st = self.store.open_file(oo, stg.handle, None, RW, 0)
        self.store.unfinished.start(st, stg, created=True)
        return st

    def names(self):
        return sorted(e.name for e in self.be.readdir(self.be.root(), 0))


@pytest.fixture
def w():
    return World()


def test_rule3_finish_publishes_and_unchanged_versions_publish_nothing(w):
    c = w.client()
    st = w.create(c, b"new")
    st.staging.write(0, b"data")
    files = w.store.unfinished
    assert files.writing(st.fh) and files.staging_of(st.fh, c) is st.staging
    assert files.finish(st, sync=True) is None
    assert w.names() == [b"new"] and st.staging is None and not files.of(st.fh)
    # a write open of the published file that writes nothing publishes nothing
    oo = w.store.open_owner(c, b"oo2")
    st2 = w.store.open_file(oo, st.fh, None, RW, 0)
    files.start(st2, w.be.stage_version(st.fh, w.store.viewer(c), False, {}), created=False)
    before = w.be.getattr(st.fh).change
    files.finish(st2, sync=True)
    assert w.be.getattr(st.fh).change == before and files.counts()["active"] == 0


def test_rule2_a_new_file_is_hidden_from_other_viewers_only(w):
    a, b = w.client(b"a"), w.client(b"b")
    st = w.create(a, b"f")
    files = w.store.unfinished
    assert files.hidden(st.fh, w.store.viewer(b)) and not files.hidden(st.fh, w.store.viewer(a))


def test_borrowers_share_and_only_the_creator_publishes(w):
    c = w.client()
    st = w.create(c, b"shared")
    other = w.store.open_file(w.store.open_owner(c, b"user2"), st.fh, None, RW, 0)
    files = w.store.unfinished
    assert files.borrow(other) and other.staging is st.staging
    other.staging.write(0, b"by the second user")
    files.finish(other)  # lets go
    assert w.names() == [] and st.staging is not None
    files.finish(st, sync=True)
    assert w.names() == [b"shared"]


def test_rule5_a_removed_name_publishes_nothing(w):
    c = w.client()
    st = w.create(c, b"gone")
    w.be.remove(w.be.root(), b"gone", w.store.viewer(c))
    assert w.store.unfinished.finish(st, sync=True) is None
    assert w.names() == [] and not w.store.unfinished.of(st.fh)


def test_rule6_a_new_verifier_discards_active_and_retired_files(w):
    c = w.client(b"m", b"boot1")
    active = w.create(c, b"a")
    retired = w.create(c, b"r", owner=b"oo-r")
    w.store.unfinished.expire(retired)
    assert w.store.unfinished.counts() == {"active": 1, "retired": 1, "recoverable": 0}
    w.store.unfinished.crash(b"m", b"boot1")
    assert w.store.unfinished.counts() == {"active": 0, "retired": 0, "recoverable": 0}
    assert active.staging is None and w.be.list_staged() == []


def test_rule7_expire_retires_resume_writes_on_deadline_discards(w):
    c = w.client()
    st = w.create(c, b"slow")
    stg = st.staging
    stg.write(0, b"kept")
    files = w.store.unfinished
    files.expire(st)
    assert st.staging is None and files.counts()["retired"] == 1
    assert stg.record["state"] == "retired" and stg in w.persisted
    # the same incarnation opens it again: the same version, active again
    st2 = w.store.open_file(w.store.open_owner(c, b"oo"), stg.handle, None, RW, 0)
    assert files.resume(st2) and st2.staging is stg and stg.record["state"] == "active"
    files.expire(st2)
    w.wall.t += 100  # the retention time, exactly: discarded
    files.deadline()
    assert files.counts()["retired"] == 0 and w.be.list_staged() == []


def test_rule7_another_incarnation_cannot_resume(w):
    c = w.client(b"m", b"boot1")
    st = w.create(c, b"f")
    w.store.unfinished.expire(st)
    other = w.client(b"other")
    st2 = w.store.open_file(w.store.open_owner(other, b"oo"), st.fh, None, RW, 0)
    assert not w.store.unfinished.resume(st2)


def test_rule8_restart_recoverable_until_grace_ends_then_retired(w):
    c = w.client()
    kept = w.create(c, b"k")
    kept.staging.write(0, b"before the restart")
    kept.staging.sync()
    w.be = MemoryBackend(w.be.disk)  # kill -9 and start again
    w.store = w.new_store()
    files = w.store.unfinished
    for s in w.be.list_staged():
        files.restart(s)
    assert files.counts() == {"active": 0, "retired": 0, "recoverable": 1}
    assert files.recoverable_keys() == {(b"c", b"v1")}
    files.end_grace()
    assert files.counts() == {"active": 0, "retired": 1, "recoverable": 0}
    # ... and the same incarnation can still resume it (rule 7)
    c2 = w.client()
    [s] = w.be.list_staged()
    st = w.store.open_file(w.store.open_owner(c2, b"oo"), s.handle, None, RW, 0)
    assert files.resume(st)
    files.finish(st, sync=True)
    assert w.names() == [b"k"]
