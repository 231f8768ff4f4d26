"""Storage behind one interface (backend.interface); open one with `open_backend(spec)`."""

from .factory import BadSpec, Unreadable, format_backend, inspect_backend, open_backend

__all__ = ["BadSpec", "Unreadable", "format_backend", "inspect_backend", "open_backend"]
