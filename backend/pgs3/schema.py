"""The shared namespace's tables in PostgreSQL (created by `nfsd format`).

Everything a frontend must see or respect from another frontend lives here; what only one
frontend needs (sessions, opens, stateids, the bytes being written) stays in that frontend.

    meta        identity (the 8 bytes every handle starts with), data URL, schema version
    inodes      one row per object: attributes, `change` (from change_seq, one counter for
                the namespace), the published version of a regular file, a symlink's
                target; `staged` is the staging row of a new file that is not published yet
                (nobody but its creator may see it: rule 2)
    entries     directory entries (dir, name) -> inode; `cookie` from cookie_seq, so READDIR
                cookies are valid on every frontend and across restarts
    versions    immutable contents: a size, and `chunks`: which object holds each CHUNK-sized
                piece (a piece without a row is a hole: zeros); a version of at most
                chunks.INLINE bytes keeps them in its chunk row instead (no object, no S3
                request). A new version made from an older one shares the pieces nobody wrote
                (copy-on-write costs what the change costs, and a sparse file takes what its
                data takes)
    objects     every chunk object with the number of chunk rows naming it; at 0 it goes to
                the gc queue
    xattrs      user extended attributes (inode, name) -> value
    staging     files under construction: which frontend (and its epoch) owns it, the client
                incarnation, the publication target, exclusive reservations, its record; rows of
                a dead frontend are retired, and removed after the retention time
    frontends   id -> epoch (fencing), heartbeat (the database's clock), state
    clients     per frontend: client incarnations holding state (grace after a restart)
    status      per frontend: the last status snapshot (for `nfsd inspect --meta`)
    locks       byte-range locks held by clients of each frontend (conflicts across frontends)
    shares      share reservations (OPEN access/deny) of each frontend's opens
    gc          objects to delete from S3 once `not_before` has passed: the only way an object
                is ever deleted. A key is put here (far in the future) before it is uploaded and
                taken out when a version names it, so a publish cut short never leaks one

Triggers on `inodes` and `entries` announce every change on the channel `nfsd_<identity>`
(every frontend's cache listens), and as a NOTICE to the session that made it if that session
set `nfsd.notices` (see metacache.py): `<id>` an inode's row changed, `x<id>` it was deleted,
`e<dir>:<name in hex>` a directory entry was added, removed or replaced.
"""

from __future__ import annotations

VERSION = 1

SCHEMA = """
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
CREATE SEQUENCE change_seq;
CREATE SEQUENCE cookie_seq START 3;
CREATE TABLE versions (
    id bigserial PRIMARY KEY,
    size bigint NOT NULL
);
CREATE TABLE objects (
    key text PRIMARY KEY,
    refs integer NOT NULL
);
CREATE TABLE chunks (
    version bigint NOT NULL REFERENCES versions (id) ON DELETE CASCADE,
    idx integer NOT NULL,
    key text,                        -- the object holding the piece's segments, or
    data bytea,                      -- the segments themselves (a small file: no object)
    segs integer[] NOT NULL,         -- (offset in the piece, length) pairs, stored back to back
    PRIMARY KEY (version, idx),
    CHECK ((key IS NULL) <> (data IS NULL))
);
CREATE TABLE inodes (
    id bigserial PRIMARY KEY,
    kind smallint NOT NULL,
    mode integer NOT NULL,
    uid bigint NOT NULL,
    gid bigint NOT NULL,
    nlink integer NOT NULL,
    size bigint NOT NULL DEFAULT 0,
    used bigint NOT NULL DEFAULT 0,  -- bytes the published version's chunks hold
    rdev_major integer NOT NULL DEFAULT 0,
    rdev_minor integer NOT NULL DEFAULT 0,
    atime bigint NOT NULL,
    mtime bigint NOT NULL,
    ctime bigint NOT NULL,
    change bigint NOT NULL,
    version bigint REFERENCES versions (id),
    target bytea,
    verifier bytea,
    parent bigint,                   -- the directory holding `name` (a directory's parent)
    name bytea,                      -- the name a new version replaces (other links keep the
                                     -- old content, as after an editor's write-and-rename)
    staged bigint                    -- staging.id of a new file not yet published
);
CREATE TABLE entries (
    dir bigint NOT NULL REFERENCES inodes (id),
    name bytea NOT NULL,
    inode bigint NOT NULL REFERENCES inodes (id),
    cookie bigint NOT NULL,
    PRIMARY KEY (dir, name)
);
CREATE INDEX entries_by_cookie ON entries (dir, cookie);
CREATE INDEX entries_by_inode ON entries (inode);
CREATE TABLE xattrs (
    inode bigint NOT NULL REFERENCES inodes (id) ON DELETE CASCADE,
    name bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (inode, name)
);
CREATE TABLE frontends (
    id text PRIMARY KEY,
    epoch bigint NOT NULL,
    heartbeat timestamptz NOT NULL,
    lease_s integer NOT NULL,
    grace_s integer NOT NULL,
    state text NOT NULL               -- 'alive' or 'dead'
);
CREATE TABLE staging (
    id bigserial PRIMARY KEY,
    inode bigint NOT NULL,
    frontend text NOT NULL REFERENCES frontends (id),
    epoch bigint NOT NULL,
    is_new boolean NOT NULL,
    viewer bytea NOT NULL,
    dir bigint,
    name bytea,
    exclusive boolean NOT NULL DEFAULT false,
    cookie bigint,                   -- the READDIR cookie its entry gets (new files)
    gone boolean NOT NULL DEFAULT false,
    base bigint,                     -- the version a copy-on-write version started from
    record text NOT NULL,            -- the protocol layer's record (JSON)
    size bigint NOT NULL DEFAULT 0,
    dirty boolean NOT NULL DEFAULT false,
    synced boolean NOT NULL DEFAULT false,
    state text NOT NULL DEFAULT 'active',  -- 'active' or 'retired' (its frontend died)
    retired_at timestamptz,
    created timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX staging_by_name ON staging (dir, name);
CREATE INDEX staging_by_frontend ON staging (frontend);
CREATE TABLE clients (
    frontend text NOT NULL,
    owner bytea NOT NULL,
    verifier bytea NOT NULL,
    PRIMARY KEY (frontend, owner)
);
CREATE TABLE status (
    frontend text PRIMARY KEY,
    snapshot text NOT NULL,
    updated timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE locks (
    id bigserial PRIMARY KEY,
    inode bigint NOT NULL,
    frontend text NOT NULL,
    epoch bigint NOT NULL,
    owner bytea NOT NULL,
    start_ bigint NOT NULL,
    end_ bigint NOT NULL,            -- exclusive; 2^63-1 stands for "to the end"
    exclusive boolean NOT NULL
);
CREATE INDEX locks_by_inode ON locks (inode);
CREATE TABLE shares (
    inode bigint NOT NULL,
    frontend text NOT NULL,
    epoch bigint NOT NULL,
    open_key bytea NOT NULL,
    access smallint NOT NULL,
    deny smallint NOT NULL,
    PRIMARY KEY (inode, frontend, open_key)
);
CREATE TABLE gc (
    id bigserial PRIMARY KEY,
    object_key text NOT NULL,
    not_before timestamptz NOT NULL
);
CREATE INDEX gc_by_key ON gc (object_key);
CREATE FUNCTION nfsd_inode_changed() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE what text := CASE WHEN TG_OP = 'DELETE' THEN 'x' || OLD.id ELSE NEW.id::text END;
BEGIN
    PERFORM pg_notify('{channel}', what);
    IF current_setting('nfsd.notices', true) = 'on' THEN
        RAISE NOTICE 'nfsd changed %', what;
    END IF;
    RETURN NULL;
END $f$;
CREATE FUNCTION nfsd_entry_changed() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE what text;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        what := 'e' || OLD.dir || ':' || encode(OLD.name, 'hex');
        PERFORM pg_notify('{channel}', what);
        IF current_setting('nfsd.notices', true) = 'on' THEN
            RAISE NOTICE 'nfsd changed %', what;
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        what := 'e' || NEW.dir || ':' || encode(NEW.name, 'hex');
        PERFORM pg_notify('{channel}', what);
        IF current_setting('nfsd.notices', true) = 'on' THEN
            RAISE NOTICE 'nfsd changed %', what;
        END IF;
    END IF;
    RETURN NULL;
END $f$;
CREATE TRIGGER inodes_changed AFTER INSERT OR UPDATE OR DELETE ON inodes
    FOR EACH ROW EXECUTE FUNCTION nfsd_inode_changed();
CREATE TRIGGER entries_changed AFTER INSERT OR UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION nfsd_entry_changed();
"""


def channel(identity: bytes) -> str:
    """The notification channel of the namespace `identity`."""
    return "nfsd_" + identity.hex()

TABLES = ("meta", "versions", "objects", "chunks", "inodes", "entries", "xattrs", "frontends", "staging", "clients",
          "status", "locks", "shares", "gc")
