"""What the file system under a directory promises about fsync, from /proc/self/mountinfo.

POSIX says that making a new file's directory entry durable takes an fsync of the directory.
Some Linux file systems do more: an fsync of a newly created file also makes the entry that
created it durable, so the directory's fsync after it only costs another device flush:

  ext4   with a journal, the fsync commits the transaction that added the entry; without one,
         it syncs the parent directory of an inode whose entry is new (ext4_sync_parent);
  xfs    the fsync forces the log up to the inode's last change, which includes its creation
         (the entry is logged in the same transaction);
  btrfs  the fsync logs a new inode's names and new ancestors in the log tree.

Only those names count (by the type the kernel reports for the mount, so an ext2 or ext3
file system mounted by their own drivers does not); anything else, or a directory whose
device is not found in mountinfo (btrfs subvolumes have their own anonymous device numbers),
keeps the directory fsync.
"""

from __future__ import annotations

import os

MOUNTINFO = "/proc/self/mountinfo"
FSYNC_PERSISTS_NEW_ENTRY = frozenset({"ext4", "xfs", "btrfs"})


def fs_type(st_dev: int, mountinfo: str | None = None) -> str | None:
    """The file system type of the mount whose device is `st_dev` (os.stat().st_dev), or
    None if there is none in `mountinfo` (the text of /proc/self/mountinfo; read if None)."""
    if mountinfo is None:
        try:
            with open(MOUNTINFO, encoding="utf-8", errors="replace") as f:
                mountinfo = f.read()
        except OSError:
            return None
    want = f"{os.major(st_dev)}:{os.minor(st_dev)}"
    for line in mountinfo.splitlines():
        # id parent major:minor root mountpoint options [optional fields...] - type source opts
        fields = line.split(" ")
        if len(fields) < 3 or fields[2] != want:
            continue
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue
        if sep + 1 < len(fields):
            return fields[sep + 1]
    return None


def fsync_persists_new_entry(fd: int, mountinfo: str | None = None) -> bool:
    """True if an fsync of a file newly created in directory `fd` also makes its entry in
    that directory durable (see the module text)."""
    return fs_type(os.fstat(fd).st_dev, mountinfo) in FSYNC_PERSISTS_NEW_ENTRY
