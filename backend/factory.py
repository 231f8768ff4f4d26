"""Backends by spec: the one place that knows which class serves which kind of storage.

    open_backend("file:///srv/export")          a local directory (LocalBackend); a plain
    open_backend("/srv/export")                 absolute path means the same
    open_backend("memory:")                     a fresh in-memory backend (tests)
    inspect_backend("file:///srv/export")       `nfsd inspect`'s read-only view

Options are passed on to the backend (for a directory: `state_dir`, `inline_sync`). Nothing
above `backend/` imports a backend module itself.
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
    raise BadSpec(f"{spec}: not a storage spec (file:///path, memory:)")


def inspect_backend(spec: str, state_dir: str | None = None) -> dict:
    """What `nfsd inspect` shows, read without disturbing a running server: `status` (the
    server's last snapshot or None), `server_running`, `files` (unfinished files) and
    `problems`. Raises `Unreadable` if there is nothing to read."""
    path = _path(spec)
    if path is None:
        raise BadSpec(f"{spec}: `nfsd inspect` reads a local directory's state (file:///path)")
    import os

    from .local.inspect import read_state

    return read_state(state_dir or os.path.join(path, ".nfsd"))
