#!/bin/sh
# The machine holds a read delegation and goes silent (the host freezes the VM) while another
# client opens the file for writing: the server revokes the delegation after its recall
# timeout, the other client writes a new version; when this machine wakes up it recovers and
# reads the new version, with no error on the way.
MNT="${LC_MNT:-/mnt}"
F="$MNT/deleg.txt"
waitfor() { i=0; while [ ! -e "$1" ]; do i=$((i+1)); [ $i -gt 3000 ] && return 1; sleep 0.1; done; }
exec 3<"$F" || { echo "@@LC FAIL open"; exit 1; }
[ "$(cat <&3)" = old ] || { echo "@@LC FAIL first read"; exit 1; }
: > "$MNT/marker1"               # host: freeze the VM, write a new version from elsewhere
waitfor "$MNT/ack1" || { echo "@@LC FAIL no ack1"; exit 1; }
# Until the client has handled the revocation (SEQUENCE's status flag or its DELEGRETURN's
# answer, then FREE_STATEID, in its state manager thread) it may still serve the old data from
# its cache, as it did under the delegation; after that it reads the new version (the server
# moves the file's change attribute when the client frees the revoked delegation). Reads
# never fail.
i=0
while :; do
  got=$(cat "$F") || { echo "@@LC FAIL read after revocation"; exit 1; }
  [ "$got" = new ] && break
  i=$((i+1)); [ $i -gt 300 ] && { echo "@@LC FAIL content 30 s after revocation: $got"; exit 1; }
  sleep 0.1
done
exec 3<&- || { echo "@@LC FAIL close"; exit 1; }
echo "@@LC PASS revoked"
