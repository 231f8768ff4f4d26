#!/bin/sh
# `nfsd serve DIR` with its defaults, DIR made world-writable as the README says (--hostroot).
exec /usr/bin/python3 /mnt/lc/workload/quickstart.py
