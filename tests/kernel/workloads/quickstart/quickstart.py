"""The quick start's defaults seen from a Linux client: root is squashed to nobody, an ordinary
user writes as itself. Prints "@@LC PASS/FAIL name"; the host checks the owners on disk."""

import errno
import os
import sys

MNT = os.environ.get("LC_MNT", "/mnt/nfs")
failed = 0


def check(name, ok, why=""):
    global failed
    failed += not ok
    print(f"@@LC {'PASS' if ok else 'FAIL'} {name}{': ' + str(why) if not ok else ''}", flush=True)


def write(path, data):
    with open(path, "w") as f:
        f.write(data)


write(os.path.join(MNT, "by-root"), "root was squashed\n")
st = os.stat(os.path.join(MNT, "by-root"))
check("root writes as nobody", (st.st_uid, st.st_gid) == (65534, 65534), (st.st_uid, st.st_gid))
try:
    os.chown(os.path.join(MNT, "by-root"), 0, 0)
    check("a squashed root cannot chown", False, "chown succeeded")
except OSError as e:
    check("a squashed root cannot chown", e.errno == errno.EPERM, errno.errorcode.get(e.errno))

pid = os.fork()
if pid == 0:
    os.setgroups([])
    os.setresgid(1001, 1001, 1001)
    os.setresuid(1001, 1001, 1001)
    write(os.path.join(MNT, "by-user"), "an ordinary user\n")
    os._exit(0)
_, status = os.waitpid(pid, 0)
st = os.stat(os.path.join(MNT, "by-user"))
check("a user writes as itself", status == 0 and st.st_uid == 1001, (status, st.st_uid))
print(f"@@LC QUICKSTART fail={failed}", flush=True)
sys.exit(1 if failed else 0)
