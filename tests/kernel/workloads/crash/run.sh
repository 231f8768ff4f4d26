#!/bin/sh
# The machine crashes while writing: the file is never closed. With lc.step=2 the machine
# comes back (same client owner, new boot verifier) and the file must be gone.
MNT="${LC_MNT:-/mnt}"
waitfor() { i=0; while [ ! -e "$1" ]; do i=$((i+1)); [ $i -gt 1200 ] && return 1; sleep 0.1; done; }
if [ -e "$MNT/after-crash" ]; then
  [ ! -e "$MNT/crashed.txt" ] || { echo "@@LC FAIL crashed.txt exists after reboot"; exit 1; }
  echo "@@LC PASS gone after reboot"
  exit 0
fi
exec 3>"$MNT/crashed.txt" || { echo "@@LC FAIL open"; exit 1; }
echo "half written" >&3
sync
: > "$MNT/marker1"
waitfor "$MNT/ack1" || { echo "@@LC FAIL no ack1"; exit 1; }
echo "@@LC PASS crashing"
echo b > /proc/sysrq-trigger   # immediate reboot: no close, no unmount
sleep 60
