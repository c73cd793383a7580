#!/usr/bin/env bash
# faultline-lazyfs against the plain directory it sits on, side by side: fsync latency (append 4 KiB
# + fsync, N times) and write throughput (64 MiB in 64 KiB writes, one fsync at the end), each the
# median of R rounds. Root (FUSE mount). Usage:
#   tests/bench/lazyfs_overhead.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
build=${1:-${FAULTLINE_BUILD_DIR:-build}}
rounds=${2:-5}
work=$(mktemp -d /var/tmp/lazyfs-bench.XXXXXX)
mkdir -p "$work/back" "$work/mnt"
"$build/bin/faultline-lazyfs" --backing "$work/back" --mount "$work/mnt" > "$work/lazyfs.log" 2>&1 &
daemon=$!
cleanup() {
  kill -TERM "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  umount -l "$work/mnt" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q " $work/mnt .* fuse.lazyfs " /proc/self/mountinfo && break; sleep 0.05; done

python3 - "$work/back/plain" "$work/mnt/lazy" "$rounds" <<'PY'
import os, statistics, sys, time
plain, lazy, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(plain, exist_ok=True); os.makedirs(lazy, exist_ok=True)

def fsync_latency_ms(d, n=200):
    p = os.path.join(d, "fsync.dat"); fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    block = b"f" * 4096; lat = []
    for _ in range(n):
        os.write(fd, block); t = time.perf_counter(); os.fsync(fd); lat.append((time.perf_counter() - t) * 1e3)
    os.close(fd); os.unlink(p)
    return statistics.median(lat), sorted(lat)[int(0.99 * (n - 1))]

def write_mib_s(d, mib=64):
    p = os.path.join(d, "tput.dat"); fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    chunk = b"w" * 65536; t = time.perf_counter()
    for _ in range(mib * 16): os.write(fd, chunk)
    os.fsync(fd); dt = time.perf_counter() - t
    os.close(fd); os.unlink(p)
    return mib / dt

res = {}
for name, d in (("plain", plain), ("lazyfs", lazy)):
    f = [fsync_latency_ms(d) for _ in range(rounds)]
    w = [write_mib_s(d) for _ in range(rounds)]
    res[name] = (statistics.median(x[0] for x in f), statistics.median(x[1] for x in f), statistics.median(w))
print(f"{'':8} {'fsync p50 ms':>13} {'fsync p99 ms':>13} {'write MiB/s':>12}   (medians of {rounds} rounds)")
for name, (p50, p99, tput) in res.items():
    print(f"{name:8} {p50:13.3f} {p99:13.3f} {tput:12.1f}")
PY
