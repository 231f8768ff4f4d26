#!/usr/bin/env python3
"""Run `nfsd serve ...` with cProfile switched on and off by signals (for phase profiles).

    scripts/profile_serve.py OUT_PREFIX serve DIR --port 0 ...

SIGUSR1 starts profiling the reactor (main) thread, SIGUSR2 stops it and writes
OUT_PREFIX.<k>.prof (k = 1, 2, ...; read with `python -m pstats` or scripts/profile_top.py).
scripts/nfs_load.py --profiler cprofile sends the signals around the phases it is asked to
profile. Operations that finish in the thread pool (fsync, file creation) are not seen by
cProfile, only their dispatch and completion on the reactor thread; py-spy sees all threads.
Without signals this is `python -m nfsd serve ...`.
"""

import cProfile
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    prefix, argv = sys.argv[1], sys.argv[2:]
    state = {"prof": None, "k": 0}

    def on(*_):
        if state["prof"] is None:
            state["prof"] = cProfile.Profile()
            state["prof"].enable()

    def off(*_):
        p = state["prof"]
        if p is None:
            return
        p.disable()
        state["prof"] = None
        state["k"] += 1
        p.dump_stats(f"{prefix}.{state['k']}.prof")

    signal.signal(signal.SIGUSR1, on)
    signal.signal(signal.SIGUSR2, off)
    from nfsd.cli import main as nfsd_main

    return nfsd_main(argv)


if __name__ == "__main__":
    sys.exit(main())
