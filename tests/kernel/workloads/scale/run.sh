#!/bin/sh
# Through frontend A of a shared namespace, while the host watches through frontend B: the file
# stays invisible there while it is open here, and appears whole when it is closed.
MNT="${LC_MNT:-/mnt}"
F="$MNT/fromvm.txt"
waitfor() { i=0; while [ ! -e "$1" ]; do i=$((i+1)); [ $i -gt 3000 ] && return 1; sleep 0.1; done; }
exec 3>"$F" || { echo "@@LC FAIL open"; exit 1; }
echo "part one" >&3
sync
: > "$MNT/marker1"               # host: check B does not see fromvm.txt, then create ack1 on B
waitfor "$MNT/ack1" || { echo "@@LC FAIL no ack1"; exit 1; }
echo "part two" >&3 || { echo "@@LC FAIL write"; exit 1; }
exec 3>&- || { echo "@@LC FAIL close"; exit 1; }
[ "$(cat "$F")" = "$(printf 'part one\npart two')" ] || { echo "@@LC FAIL content: $(cat "$F")"; exit 1; }
echo "@@LC PASS scale"
