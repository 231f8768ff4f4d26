#!/usr/bin/env python3
"""Top costs of a profile: py-spy collapsed stacks (`--format raw`) or cProfile `.prof` files.

    scripts/profile_top.py FILE [FILE ...] [--top 25] [--thread-split]

For py-spy files: the share of samples whose innermost frame is a function ("self") and the
share of samples with the function anywhere on the stack ("incl"), functions named
`file:function` with the repository prefix cut. Several files are added up (e.g. the runs of
one phase). For .prof files: pstats sorted by own time, then by cumulative time.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys

FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def short(path: str) -> str:
    for prefix in (REPO + "/", "/usr/lib/python3/dist-packages/"):
        if path.startswith(prefix):
            return path[len(prefix):]
    m = re.search(r"(?:site-packages|lib/python3\.\d+)/(.*)$", path)
    return m.group(1) if m else path


def frame_name(f: str) -> str:
    m = FRAME.match(f.strip())
    if not m:
        return f.strip()
    return f"{short(m.group('file'))}:{m.group('fn')}"


IDLE_LEAVES = {  # a thread waiting, not running: epoll_wait, an idle pool worker
    "twisted/internet/epollreactor.py:EPollReactor.doPoll", "threading.py:Condition.wait",
    "threading.py:Event.wait", "queue.py:Queue.get", "threading.py:Thread._wait_for_tstate_lock",
}


def pyspy(files, top, thread_split):
    """py-spy 0.4 marks no thread idle here (its idle detection does not work in this VM), so
    samples whose innermost frame is a wait (IDLE_LEAVES) are dropped; the rest are split into
    the reactor (main) thread and the thread pool (stacks rooted in Thread._bootstrap)."""
    groups = {"reactor": [collections.Counter(), collections.Counter(), 0],
              "pool": [collections.Counter(), collections.Counter(), 0]}
    idle = {"reactor": 0, "pool": 0}
    for fn in files:
        with open(fn) as f:
            for line in f:
                line = line.rstrip("\n")
                if not line:
                    continue
                stack, _, n = line.rpartition(" ")
                n = int(n)
                frames = [f for f in stack.split(";") if f]
                if frames and frames[0].startswith(("thread (", "process ")):
                    frames = frames[1:]
                names = [frame_name(f) for f in frames]
                if not names:
                    continue
                kind = "pool" if any("Thread._bootstrap" in nm for nm in names[:3]) else "reactor"
                if names[-1] in IDLE_LEAVES:
                    idle[kind] += n
                    continue
                g = groups[kind]
                g[2] += n
                g[0][names[-1]] += n
                for nm in set(names):
                    g[1][nm] += n
    busy = sum(g[2] for g in groups.values())
    print(f"{busy} busy samples from {len(files)} file(s); idle (waiting) samples dropped: "
          f"reactor {idle['reactor']}, pool {idle['pool']}")
    for kind, (self_c, incl_c, total) in groups.items():
        if not total:
            continue
        seen = total + idle[kind]
        print(f"\n=== {kind} thread(s): {total} busy samples = {total / max(busy, 1) * 100:.0f}% "
              f"of all busy samples; busy {total / max(seen, 1) * 100:.0f}% of its samples")
        print(f"{'self %':>7}  function (share of this group's busy samples)")
        for nm, n in self_c.most_common(top):
            print(f"{n / total * 100:7.1f}  {nm}")
        print(f"\n{'incl %':>7}  function")
        for nm, n in incl_c.most_common(top):
            print(f"{n / total * 100:7.1f}  {nm}")


def cprofile(files, top):
    import pstats

    st = pstats.Stats(files[0])
    for f in files[1:]:
        st.add(f)
    st.sort_stats("tottime").print_stats(top)
    st.sort_stats("cumulative").print_stats(top)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--thread-split", action="store_true", help="py-spy: samples per thread")
    a = ap.parse_args()
    if all(f.endswith(".prof") for f in a.files):
        cprofile(a.files, a.top)
    else:
        pyspy(a.files, a.top, a.thread_split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
