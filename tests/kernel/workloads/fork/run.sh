#!/bin/sh
# A forked child that exits does not end its parent's write: the file is published only when
# the parent closes it. The host checks the export between the steps (marker / ack files).
MNT="${LC_MNT:-/mnt}"
F="$MNT/forked.txt"
waitfor() { i=0; while [ ! -e "$1" ]; do i=$((i+1)); [ $i -gt 1200 ] && return 1; sleep 0.1; done; }
exec 3>"$F" || { echo "@@LC FAIL open"; exit 1; }
echo parent-1 >&3
( echo child >&3 )            # a child process with the same open file exits here
echo parent-2 >&3
sync
: > "$MNT/marker1"            # host: forked.txt must not be published yet
waitfor "$MNT/ack1" || { echo "@@LC FAIL no ack1"; exit 1; }
echo parent-3 >&3
exec 3>&-                     # the parent's close: now it is published
[ "$(cat "$F")" = "$(printf 'parent-1\nchild\nparent-2\nparent-3')" ] || { echo "@@LC FAIL content"; exit 1; }
: > "$MNT/marker2"
echo "@@LC PASS fork"
