#!/bin/bash
# Server-side copy through the Linux client (runs with --hostroot: the host's coreutils).
# `cp` of a file of COPY_MIB MiB (first line of /mnt/lc/workload/size, default 256): coreutils
# tries FICLONE (CLONE) first, then copy_file_range (COPY); the bytes must match. Then
# `cp --reflink=always` (CLONE only) and a sparse file read back. Prints @@LC lines. With a file
# `bench` in the workload directory (scripts/bench --kernel) it stops after timing the cp.
set -u
M=$LC_MNT
MIB=$(head -n1 /mnt/lc/workload/size 2>/dev/null || echo 256)
now() { date +%s.%N; }
head -c $((MIB << 20)) /dev/urandom > "$M/src" || { echo "@@LC FAIL write src"; exit 1; }
sync
want=$(sha256sum < "$M/src" | cut -d' ' -f1)
u0=$(df -k --output=used "$M" | tail -n1)
t0=$(now)
cp "$M/src" "$M/dst" || { echo "@@LC FAIL cp"; exit 1; }
sync
t1=$(now)
echo "@@LC METRIC cp_new_kib=$(( $(df -k --output=used "$M" | tail -n1) - u0 ))"
echo "@@LC METRIC cp_seconds=$(echo "$t1 - $t0" | bc -l 2>/dev/null || python3 -c "print($t1-$t0)")"
if [ -e /mnt/lc/workload/bench ]; then  # scripts/bench --kernel: the timing only
    echo "@@LC PASS copy workload done"
    exit 0
fi
echo 3 > /proc/sys/vm/drop_caches
got=$(sha256sum < "$M/dst" | cut -d' ' -f1)
if [ "$want" = "$got" ]; then echo "@@LC PASS cp bytes match"; else echo "@@LC FAIL cp bytes differ"; fi
if cp --reflink=always "$M/src" "$M/reflinked" 2>/tmp/err; then
    echo 3 > /proc/sys/vm/drop_caches
    got=$(sha256sum < "$M/reflinked" | cut -d' ' -f1)
    if [ "$want" = "$got" ]; then echo "@@LC PASS reflink bytes match"; else echo "@@LC FAIL reflink bytes differ"; fi
else
    echo "@@LC REFLINK unsupported: $(head -c 200 /tmp/err)"
fi
# a sparse file: data, a 32 MiB hole, data; read back through the client
printf 'head' > "$M/sparse"
printf 'tail' | dd of="$M/sparse" bs=1 seek=$((32 << 20)) conv=notrunc status=none
sync
echo 3 > /proc/sys/vm/drop_caches
{ printf 'head'; head -c $(((32 << 20) - 4)) /dev/zero; printf 'tail'; } > /tmp/sparse.want
if cmp -s /tmp/sparse.want "$M/sparse"; then echo "@@LC PASS sparse bytes match"; else echo "@@LC FAIL sparse"; fi
echo "@@LC PASS copy workload done"
