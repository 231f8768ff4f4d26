#!/bin/sh
# Two processes on the client machine: the second one's conflicting lockf() is refused by the
# server (different lock-owners), and granted once the first unlocks. Runs with --hostroot.
exec /usr/bin/python3 /mnt/lc/workload/lockf.py
