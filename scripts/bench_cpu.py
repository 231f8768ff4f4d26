#!/usr/bin/env python3
"""Server CPU time per request (user and system), A/B between checkouts in alternation.

    scripts/bench_cpu.py [--code DIR ...] [--kinds null,getattr,readdir,create] [--rounds 3]

The same requests as scripts/bench_instructions.py (see there), but timed: the server
(`python -m nfsd serve` on a tmpfs directory, no valgrind) answers N requests from one client
after a warm-up, and its user and system CPU seconds are read from /proc/PID/stat before and
after. Checkouts are run in alternation, `--rounds` times each, and the median of each is
printed, so that a slow spell of the machine does not land on one side only. Instruction
counts (bench_instructions.py) repeat to 0.5 % but leave out the kernel; these numbers
include the system calls and the kernel's network work, and move by several per cent.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from bench_instructions import (FILES, WARM, _requests, arguments, make_tree,  # noqa: E402
                                print_table)
from nfsd.client import NfsClient  # noqa: E402
from server_proc import ServerProcess  # noqa: E402

# enough requests for about 0.5 s of server CPU each (/proc counts in 10 ms ticks)
COUNTS = {"null": 10000, "getattr": 4000, "readdir": 1000, "create": 600, "read": 2000}
TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> tuple[float, float]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def per_request(code: str, kind: str, n: int) -> tuple[float, float]:
    """(user, system) CPU microseconds per request of the server run from checkout `code`."""
    d = tempfile.mkdtemp(dir="/dev/shm")
    try:
        make_tree(d)
        code = os.path.abspath(code)
        env = dict(os.environ, PYTHONPATH=code)
        s = ServerProcess(d, env=env)
        cwd = os.getcwd()
        os.chdir(code)  # `python -m nfsd` looks in the working directory first
        try:
            s.start()
        finally:
            os.chdir(cwd)
        try:
            c = NfsClient(*s.address).mount()
            req = _requests(kind, c, c.lookup("a/b"))
            for i in range(WARM.get(kind, 2 * FILES)):
                req(i)
            u0, s0 = _cpu(s.proc.pid)
            for i in range(n):
                req(i)
            u1, s1 = _cpu(s.proc.pid)
            c.close()
        finally:
            s.stop()
        return (u1 - u0) / n * 1e6, (s1 - s0) / n * 1e6
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main() -> int:
    ap = arguments(__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    codes = args.code or [ROOT]
    print("server CPU µs per request, user + system (median of "
          f"{args.rounds} alternating rounds)\n")

    def row(kind):
        runs: dict[str, list] = {c: [] for c in codes}
        for _ in range(args.rounds):
            for code in codes:
                runs[code].append(per_request(code, kind, COUNTS[kind]))
        for code in codes:
            u = statistics.median(r[0] for r in runs[code])
            s = statistics.median(r[1] for r in runs[code])
            yield u + s, f"{u:.1f} + {s:.1f}"
    print_table(codes, args.kinds.split(","), row, "{:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
