"""The server's own records kept on a MemoryDisk: client incarnations holding state (they
survive a restart and a power loss, as every write that returned is durable here) and the
last status snapshot."""

from __future__ import annotations

from .. import interface as I


class MemoryRecords(I.ClientRecords):
    """`ClientRecords` over `disk.clients` (owner -> verifier), under the disk's lock."""

    def __init__(self, disk):
        self.disk = disk

    def put_client(self, owner: bytes, verifier: bytes) -> None:
        with self.disk.lock:
            self.disk.clients[bytes(owner)] = bytes(verifier)

    def delete_client(self, owner: bytes) -> None:
        with self.disk.lock:
            self.disk.clients.pop(bytes(owner), None)

    def clients(self) -> list[tuple[bytes, bytes]]:
        with self.disk.lock:
            return sorted(self.disk.clients.items())
