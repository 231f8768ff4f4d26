#!/usr/bin/env python3
"""Server instructions per request, counted by callgrind: numbers that repeat.

    scripts/bench_instructions.py [--code DIR ...] [--kinds null,getattr,readdir,create]

Timings on a shared 2-core VM move by 10-30 % from run to run, which hides any change worth
less than that. Valgrind's callgrind counts the instructions the server process executes in
user space (Python and C, every thread; not the kernel's), which is the same for the same
code and requests whatever else the machine does (within 0.5 % here). For each kind of
request the server (`python -m nfsd serve` on a tmpfs directory, under `valgrind
--tool=callgrind`) answers K1 requests in one run and K2 in another, after the same warm-up;
the difference divided by K2 - K1 is the cost of one request, start-up and warm-up cancel out.

Kinds: `null` (NULL RPC), `getattr` (the nfs4fs load's `SEQUENCE PUTROOTFH LOOKUP LOOKUP
SAVEFH LOOKUP GETATTR` with its attribute set), `readdir` (READDIR of 200 files in one reply,
listing cached; also per entry), `create` (OPEN create + 4 KiB WRITE FILE_SYNC + CLOSE),
`read` (READ of a whole 1 MiB file from the page cache, anonymous stateid), `lookup`
(`SEQUENCE PUTFH LOOKUP GETFH GETATTR`, a kernel client's look-up of a known name), `remove`
(`SEQUENCE PUTFH REMOVE` of a file made before the server started), `write` (a 1 MiB
FILE_SYNC WRITE into an open new file); these four are not in the default set.

The server's environment is passed on: `NFSD_PURE_PYTHON=1 scripts/bench_instructions.py`
counts the pure-Python path of a checkout that has compiled modules.

`--code DIR` (repeatable) runs the server from another checkout (PYTHONPATH=DIR), for an A/B
of two commits: `git worktree add /tmp/old HEAD~1` and `--code /tmp/old --code .`. Needs
valgrind (`apt-get install valgrind`); about 30 s per kind and checkout.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from nfsd.client import NfsClient  # noqa: E402
from nfsd.xdr import nfs4 as x  # noqa: E402

# the nfs4fs load's GETATTR/READDIR attribute request (type, change, size, fsid, fileid, mode,
# numlinks, owner, owner_group, rawdev, space_used, times)
BITMAP = [1048858, 3186746]
FILES = 200
BIG = 1 << 20  # the file `read` reads whole (from the page cache) with each request
REMOVES = 300  # files a/r/r0.. that `remove` removes, one per request
WARM = {"readdir": 3, "create": 20, "read": 10, "remove": 20, "write": 10}
COUNTS = {"null": (500, 2500), "getattr": (200, 1200), "readdir": (5, 25), "create": (50, 250),
          "read": (50, 250), "lookup": (200, 1200), "remove": (50, 250), "write": (50, 250)}


def _op(name, arg=None):
    return x.nfs_argop4(getattr(x, "OP_" + name), arg)


def _requests(kind, c, bfh):
    if kind == "null":
        return lambda i: c.null()
    if kind == "getattr":
        def getattr_(i):
            c.call([_op("PUTROOTFH"), _op("LOOKUP", x.LOOKUP4args(b"a")),
                    _op("LOOKUP", x.LOOKUP4args(b"b")), _op("SAVEFH"),
                    _op("LOOKUP", x.LOOKUP4args(b"f%d" % (i % FILES))),
                    _op("GETATTR", x.GETATTR4args(BITMAP))])
        return getattr_
    if kind == "readdir":
        def readdir(i):
            c.call([_op("PUTFH", x.PUTFH4args(bfh)),
                    _op("READDIR", x.READDIR4args(0, bytes(8), 1 << 16, 1 << 20, BITMAP))])
        return readdir
    if kind == "read":
        big = c.lookup("a/big")
        return lambda i: c.read(big, count=BIG)
    if kind == "lookup":
        def lookup(i):
            c.call([_op("PUTFH", x.PUTFH4args(bfh)),
                    _op("LOOKUP", x.LOOKUP4args(b"f%d" % (i % FILES))), _op("GETFH"),
                    _op("GETATTR", x.GETATTR4args(BITMAP))])
        return lookup
    if kind == "remove":
        rfh = c.lookup("a/r")
        counter = iter(range(REMOVES))
        return lambda i: c.remove(rfh, b"r%d" % next(counter))
    if kind == "write":
        fh, sid, _ = c.open(bfh, b"written", create=True)
        data = b"w" * BIG
        return lambda i: c.write(fh, sid, (i % 64) * BIG, data, stable=x.FILE_SYNC4)
    if kind == "create":
        counter = iter(range(10**9))
        return lambda i: c.create_file(bfh, b"new-%d" % next(counter), b"y" * 4096)
    raise SystemExit(f"unknown kind {kind!r}")


def make_tree(d: str) -> None:
    """The exported tree the requests use: a/b/f0..f199 (1 byte each), a/big (BIG bytes) and
    a/r/r0.. (empty, for `remove`)."""
    os.makedirs(f"{d}/a/b")
    for i in range(FILES):
        with open(f"{d}/a/b/f{i}", "wb") as f:
            f.write(b"x")
    with open(f"{d}/a/big", "wb") as f:
        f.write(os.urandom(BIG))
    os.makedirs(f"{d}/a/r")
    for i in range(REMOVES):
        open(f"{d}/a/r/r{i}", "wb").close()


def trust(code: str) -> list[str]:
    """`nfsd serve` flags for a root client on an unprivileged port, where checkout `code`
    has them (older ones served everybody as they are)."""
    with open(os.path.join(code, "nfsd", "cli.py")) as f:
        return ["--no-root-squash", "--insecure"] if "--no-root-squash" in f.read() else []


def instructions(code: str, kind: str, k: int) -> int:
    d = tempfile.mkdtemp(dir="/dev/shm")
    od = tempfile.mkdtemp()
    out = os.path.join(od, "callgrind.out")
    try:
        make_tree(d)
        env = dict(os.environ, PYTHONPATH=os.path.abspath(code))
        p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                              sys.executable, "-m", "nfsd", "serve", d, "--bind", "127.0.0.1",
                              "--port", "0", *trust(code)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, env=env,
                             cwd=os.path.abspath(code))  # `-m` looks in the cwd first
        port = None
        for line in p.stdout:
            m = re.search(r"serving .* on 127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        if port is None:
            raise SystemExit(f"the server under valgrind did not start ({code})")
        c = NfsClient("127.0.0.1", port).mount()
        bfh = c.lookup("a/b")
        req = _requests(kind, c, bfh)
        # warm-up: every handle known, the listing cached, the code paths run once
        for i in range(WARM.get(kind, 2 * FILES)):
            req(i)
        for i in range(k):
            req(i)
        c.close()
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
        with open(out) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
        raise SystemExit("no totals in callgrind's output")
    finally:
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(od, ignore_errors=True)


def arguments(doc: str) -> argparse.ArgumentParser:
    """The options this script and bench_cpu.py share: --code (repeatable) and --kinds."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--code", action="append", default=None,
                    help="checkout to run the server from (repeatable; default: this one)")
    ap.add_argument("--kinds", default="null,getattr,readdir,create")
    ap.add_argument("--scale", type=int, default=1,
                    help="K1 and K2 times this: a garbage collection falls into the difference "
                         "less by chance (readdir and create move by a few %% between runs at 1)")
    return ap


def main() -> int:
    args = arguments(__doc__).parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    codes = args.code or [ROOT]

    def row(kind):
        k1, k2 = (k * args.scale for k in COUNTS[kind])
        for code in codes:
            per = (instructions(code, kind, k2) - instructions(code, kind, k1)) / (k2 - k1)
            yield per, f"{per:,.0f}"
    print_table(codes, args.kinds.split(","), row, "{:,.0f}")
    return 0


def print_table(codes, kinds, row, per_entry_format):
    """A Markdown table, a row per request kind and a column per checkout. `row(kind)` yields
    (number, cell text) per checkout; READDIR's cells get the number per entry added."""
    print("| request | " + " | ".join(codes) + " |")
    print("|---|" + "---|" * len(codes))
    for kind in kinds:
        cells = []
        for per, cell in row(kind):
            if kind == "readdir":
                cell += f" ({per_entry_format.format(per / FILES)} per entry)"
            cells.append(cell)
        print(f"| {kind} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
