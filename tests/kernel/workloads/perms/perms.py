"""POSIX permission rules through the Linux NFS client, as root and as users 1001 and 1002.

Each check prints "@@LC PASS name" or "@@LC FAIL name: why". A user's step runs in a forked
child that dropped to that uid/gid (no capabilities left), so the server sees exactly what a
local process of that user would send. The mount has the default attribute caching.
"""

import errno
import os
import stat
import sys
import time

MNT = os.environ.get("LC_MNT", "/mnt/nfs")
BASE = os.path.join(MNT, "perms")
A, B = 1001, 1002  # two unprivileged users, each with its own group
failed = 0


def check(name, ok, why=""):
    global failed
    if not ok:
        failed += 1
    print(f"@@LC {'PASS' if ok else 'FAIL'} {name}{': ' + str(why) if not ok else ''}", flush=True)


def as_user(uid, fn, *args):
    """Run fn(*args) as uid (gid = uid, no supplementary groups) in a child; returns 0 or the
    errno it raised (as an exit status), or 255 for anything else."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            fn(*args)
        except OSError as e:
            code = e.errno or 255
        except BaseException as e:  # noqa: BLE001
            print("   child error:", repr(e), flush=True)
            code = 255
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def err(code):
    return "ok" if code == 0 else errno.errorcode.get(code, str(code))


def mode_of(path):
    """The mode as the server has it now: an open revalidates the client's cached attributes
    (close-to-open); the mount keeps its default attribute caching otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        return stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def fresh_dir(name, mode):
    d = os.path.join(BASE, name)
    os.mkdir(d)
    os.chmod(d, mode)
    return d


def write_file(path, data=b"x", flags=os.O_WRONLY):
    fd = os.open(path, flags)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


os.mkdir(BASE)
os.chmod(BASE, 0o755)

# ---- 1. set-user-ID / set-group-ID bits after a write, a truncate, a chown by someone else
d = fresh_dir("setid", 0o1777)
cases = [(0o4777, 0o0777), (0o2777, 0o0777), (0o6777, 0o0777), (0o2767, 0o2767)]
for i, (before, after) in enumerate(cases):
    p = os.path.join(d, f"w{i}")
    write_file(p, b"#!/bin/sh\n", os.O_WRONLY | os.O_CREAT)
    os.chmod(p, before)
    rc = as_user(A, write_file, p, b"#!/bin/sh\necho replaced\n", os.O_WRONLY | os.O_TRUNC)
    check(f"setid: write by another user of {before:o} leaves {after:o}",
          rc == 0 and mode_of(p) == after, f"{err(rc)}, mode {mode_of(p):o}")
p = os.path.join(d, "t")
write_file(p, b"0123456789", os.O_WRONLY | os.O_CREAT)
os.chmod(p, 0o6777)
rc = as_user(A, os.truncate, p, 3)
check("setid: truncate by another user clears them", rc == 0 and mode_of(p) == 0o777,
      f"{err(rc)}, mode {mode_of(p):o}")
p = os.path.join(d, "r")
write_file(p, b"root", os.O_WRONLY | os.O_CREAT)
os.chmod(p, 0o6755)
write_file(p, b"root again", os.O_WRONLY | os.O_TRUNC)
check("setid: a write by root keeps them", mode_of(p) == 0o6755, f"mode {mode_of(p):o}")
p = os.path.join(d, "c")
write_file(p, b"mine", os.O_WRONLY | os.O_CREAT)
os.chown(p, A, A)
os.chmod(p, 0o6755)
rc = as_user(A, os.chown, p, A, A)
check("setid: chown by a non-root owner clears them", rc == 0 and mode_of(p) == 0o755,
      f"{err(rc)}, mode {mode_of(p):o}")

# ---- 2. sticky directories: rename, unlink, rmdir of files, directories and symlinks
d = fresh_dir("sticky", 0o1777)
other = fresh_dir("elsewhere", 0o1777)


def make_entries(tag):
    os.mkdir(os.path.join(d, f"dir{tag}"))
    write_file(os.path.join(d, f"file{tag}"), b"a", os.O_WRONLY | os.O_CREAT)
    os.symlink("target", os.path.join(d, f"link{tag}"))


as_user(A, make_entries, "A")
as_user(B, lambda: write_file(os.path.join(d, "fileB"), b"b", os.O_WRONLY | os.O_CREAT))
for kind in ("dir", "file", "link"):
    src = os.path.join(d, f"{kind}A")
    rc = as_user(B, os.rename, src, os.path.join(d, f"{kind}A-moved"))
    check(f"sticky: another user cannot rename a {kind} within it", rc in (errno.EPERM, errno.EACCES), err(rc))
    rc = as_user(B, os.rename, src, os.path.join(other, f"{kind}A"))
    check(f"sticky: another user cannot move a {kind} out of it", rc in (errno.EPERM, errno.EACCES), err(rc))
    rm = os.rmdir if kind == "dir" else os.unlink
    rc = as_user(B, rm, src)
    check(f"sticky: another user cannot remove a {kind}", rc in (errno.EPERM, errno.EACCES), err(rc))
rc = as_user(B, os.rename, os.path.join(d, "fileB"), os.path.join(d, "fileA"))
check("sticky: another user cannot rename over someone else's file", rc in (errno.EPERM, errno.EACCES), err(rc))
rc = as_user(A, os.rename, os.path.join(d, "fileA"), os.path.join(d, "fileA2"))
check("sticky: the owner renames its own file", rc == 0, err(rc))
rc = as_user(A, os.rename, os.path.join(d, "dirA"), os.path.join(other, "dirA"))
check("sticky: the owner moves its own directory out", rc == 0, err(rc))
rc = as_user(A, os.unlink, os.path.join(d, "linkA"))
check("sticky: the owner removes its own symlink", rc == 0, err(rc))
os.rename(os.path.join(d, "fileB"), os.path.join(d, "fileB2"))
check("sticky: root renames anybody's file", os.path.exists(os.path.join(d, "fileB2")))
rc = as_user(B, os.rename, os.path.join(d, "fileB2"), os.path.join(d, "fileA2"))
check("sticky: target side, another user's file cannot be replaced", rc in (errno.EPERM, errno.EACCES), err(rc))
# A directory moved to another parent needs write permission on itself (its '..' changes).
nd = fresh_dir("plain", 0o777)
os.mkdir(os.path.join(nd, "ro"))
os.chmod(os.path.join(nd, "ro"), 0o555)
os.chown(os.path.join(nd, "ro"), A, A)
rc = as_user(B, os.rename, os.path.join(nd, "ro"), os.path.join(other, "ro"))
check("rename: moving someone else's read-only directory to another parent is refused",
      rc in (errno.EPERM, errno.EACCES), err(rc))

# ---- 3. chown that changes nothing, by someone who is not the owner
d = fresh_dir("chown", 0o1777)
p = os.path.join(d, "f")
as_user(A, write_file, p, b"a", os.O_WRONLY | os.O_CREAT)
rc = as_user(B, os.chown, p, A, A)
check("chown: a non-owner setting the same owner and group gets EPERM", rc == errno.EPERM, err(rc))
rc = as_user(B, os.chown, p, -1, A)
check("chgrp: a non-owner setting the same group gets EPERM", rc == errno.EPERM, err(rc))
rc = as_user(A, os.chown, p, A, A)
check("chown: the owner setting the same owner and group succeeds", rc == 0, err(rc))

# ---- 4. a write open outlives the mode
d = fresh_dir("mode0", 0o1777)
p = os.path.join(d, "f")


def create_mode0():
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0)
    try:
        os.write(fd, b"hello world")
        os.ftruncate(fd, 0)
        os.write(fd, b"after")
        os.ftruncate(fd, 3)
    finally:
        os.close(fd)


rc = as_user(A, create_mode0)
check("mode 0: open(O_CREAT|O_RDWR, 0) then ftruncate succeeds", rc == 0, err(rc))
check("mode 0: the file holds what the descriptor wrote", os.path.getsize(p) == 3 and
      open(p, "rb").read() == b"\0\0\0", f"{os.path.getsize(p)} bytes")
rc = as_user(A, lambda: os.open(p, os.O_RDWR))
check("mode 0: a new open by the owner is refused", rc == errno.EACCES, err(rc))

# ---- 5. parent directory times after a create
d = fresh_dir("times", 0o777)
before = os.stat(d)
time.sleep(1.1)
write_file(os.path.join(d, "new"), b"data", os.O_WRONLY | os.O_CREAT)
after = os.stat(d)
check("create: the parent's mtime moved on the creating machine", after.st_mtime_ns > before.st_mtime_ns,
      f"{before.st_mtime_ns} -> {after.st_mtime_ns}")
check("create: the parent's ctime moved on the creating machine", after.st_ctime_ns > before.st_ctime_ns,
      f"{before.st_ctime_ns} -> {after.st_ctime_ns}")

print(f"@@LC PERMS fail={failed}", flush=True)
sys.exit(1 if failed else 0)
