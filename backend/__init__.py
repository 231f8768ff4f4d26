"""Storage behind one interface (backend.interface); open one with `open_backend(spec)`."""

from .factory import BadSpec, Unreadable, inspect_backend, open_backend

__all__ = ["BadSpec", "Unreadable", "inspect_backend", "open_backend"]
