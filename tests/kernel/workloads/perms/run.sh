#!/bin/sh
# POSIX permission rules over the mount, as root and as two unprivileged users (--hostroot).
exec /usr/bin/python3 /mnt/lc/workload/perms.py
