"""Backends by spec: the one place that knows which class serves which kind of storage.

    open_backend("file:///srv/export")          a local directory (LocalBackend); a plain
    open_backend("/srv/export")                 absolute path means the same
    open_backend("memory:")                     a fresh in-memory backend (tests)
    open_backend("postgresql://...", data_url="s3://bucket/prefix", frontend="a",
                 spool_dir="/var/spool/nfsd")   one frontend of a shared namespace
    inspect_backend("file:///srv/export")       `nfsd inspect`'s read-only view
    inspect_backend("postgresql://...")         ... of a shared namespace

Options are passed on to the backend (a directory: `state_dir`, `inline_sync`; a shared
namespace: see `backend.pgs3.PgS3Backend`). Nothing above `backend/` imports a backend module
itself.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from .interface import Backend


class BadSpec(ValueError):
    """A spec no backend serves."""


class Unreadable(Exception):
    """`inspect_backend`: there is no state to read there at all."""


def _path(spec: str) -> str | None:
    """The directory of a `file://` URL or an absolute path, else None."""
    if spec.startswith("/"):
        return spec
    u = urlsplit(spec)
    if u.scheme == "file":
        if u.netloc not in ("", "localhost"):
            raise BadSpec(f"{spec}: only local directories (file:///path)")
        return unquote(u.path)
    return None


def open_backend(spec: str, **options) -> Backend:
    path = _path(spec)
    if path is not None:
        from .local import LocalBackend

        return LocalBackend(path, options.pop("state_dir", None), **options)
    if spec == "memory:":
        from .memory import MemoryBackend

        return MemoryBackend(**options)
    if _is_postgres(spec):
        from .pgs3 import PgS3Backend

        return PgS3Backend(spec, **options)
    raise BadSpec(f"{spec}: not a storage spec (file:///path, postgresql://..., memory:)")


def _is_postgres(spec: str) -> bool:
    return spec.startswith(("postgresql://", "postgres://"))


def format_backend(meta: str, data: str) -> bytes:
    """`nfsd format`: a new shared namespace in the empty database `meta`, contents in
    `data` (s3://bucket/prefix). Returns its identity."""
    if not _is_postgres(meta):
        raise BadSpec(f"{meta}: `nfsd format` makes a namespace in PostgreSQL "
                      "(postgresql://...)")
    from .pgs3 import format_namespace

    return format_namespace(meta, data)


def inspect_backend(spec: str, state_dir: str | None = None) -> dict:
    """What `nfsd inspect` shows, read without disturbing a running server: `status` (the
    server's last snapshot or None), `server_running`, `files` (unfinished files) and
    `problems`. Raises `Unreadable` if there is nothing to read."""
    if _is_postgres(spec):
        from .pgs3.inspect import read_state as read_shared

        return read_shared(spec)
    path = _path(spec)
    if path is None:
        raise BadSpec(f"{spec}: `nfsd inspect` reads a directory's state (file:///path) or a "
                      "shared namespace's (postgresql://...)")
    import os

    from .local.inspect import read_state

    return read_state(state_dir or os.path.join(path, ".nfsd"))
