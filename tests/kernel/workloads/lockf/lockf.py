import fcntl
import os
import subprocess
import sys

path = os.path.join(os.environ.get("LC_MNT", "/mnt/nfs"), "lockf.test")
CHILD = r"""
import errno, fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError as e:
    print("refused", errno.errorcode.get(e.errno, e.errno))
    sys.exit(10)
print("granted")
sys.exit(0)
"""


def child():
    return subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True)


def check(name, ok, why=""):
    print(f"@@LC {'PASS' if ok else 'FAIL'} {name}{': ' + why if not ok else ''}", flush=True)
    return ok


with open(path, "w") as f:
    f.write("lock me\n")
fd = os.open(path, os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
r = child()
good = check("conflicting lock refused", r.returncode == 10 and "refused" in r.stdout, r.stdout + r.stderr)
fcntl.lockf(fd, fcntl.LOCK_UN)
r = child()
good &= check("granted after unlock", r.returncode == 0 and "granted" in r.stdout, r.stdout + r.stderr)
os.close(fd)
sys.exit(0 if good else 1)
