"""nfsd: a user-space NFSv4 server whose files are write-once."""

__version__ = "0.1.0"
