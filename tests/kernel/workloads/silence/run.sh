#!/bin/sh
# The machine goes silent (the host freezes the VM) longer than the lease while a file is open
# for writing; when it wakes up it finishes the file, which is then published whole.
MNT="${LC_MNT:-/mnt}"
F="$MNT/silent.txt"
waitfor() { i=0; while [ ! -e "$1" ]; do i=$((i+1)); [ $i -gt 3000 ] && return 1; sleep 0.1; done; }
exec 3>"$F" || { echo "@@LC FAIL open"; exit 1; }
echo before-silence >&3
sync
: > "$MNT/marker1"               # host: freeze the VM until the lease has expired
waitfor "$MNT/ack1" || { echo "@@LC FAIL no ack1"; exit 1; }
echo after-silence >&3 || { echo "@@LC FAIL write after silence"; exit 1; }
exec 3>&- || { echo "@@LC FAIL close after silence"; exit 1; }
[ "$(cat "$F")" = "$(printf 'before-silence\nafter-silence')" ] || { echo "@@LC FAIL content: $(cat "$F")"; exit 1; }
echo "@@LC PASS silence"
