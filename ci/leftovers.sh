#!/usr/bin/env bash
# Lists, one per line and sorted, what on this host looks like faultline's: network namespaces,
# root-namespace links and nft tables, cgroups named fl*, loop devices and mounts under a path
# component fl* or faultline*, faultline and lazyfs processes, and run directories under the state
# root whose journals still list a resource. ci/test.sh takes this list before and after the
# privileged tests; whatever is new afterwards was left behind by a test, and fails the run.
#
#   ci/leftovers.sh [path/to/faultline]     (the binary lists the journals; without it, skipped)
set -uo pipefail
faultline=${1:-}
ours='(^|/)(fl|faultline)[^/]*'

{
  ip netns list 2>/dev/null | awk '{print "netns " $1}' | grep -E '^netns (fl|faultline)'
  ip -o link show 2>/dev/null | awk -F': ' '{sub(/@.*/, "", $2); print "link " $2}' |
    grep -E '^link (fl|faultline)'
  nft list tables 2>/dev/null | awk '{print "nft " $2 " " $3}' | grep -E ' (fl|faultline)[^ ]*$'
  find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d -name 'fl*' 2>/dev/null | sed 's/^/cgroup /'
  losetup -n -l -O NAME,BACK-FILE 2>/dev/null | awk '{print "loop " $1 " " $2}' | grep -E "$ours"
  awk '{print "mount " $2}' /proc/mounts | grep -E "$ours"
  ps -eo pid=,comm= | awk '$2 ~ /^(faultline|lazyfs)/ {print "process " $1 " " $2}'
  if [[ -n $faultline && -x $faultline ]]; then
    # A dead run's journal that still lists resources: `faultline clean` would have work to do.
    "$faultline" clean --dry-run 2>/dev/null | grep -E '^(would remove|FAILED) ' | sed 's/^/journal /'
  fi
} | sort
exit 0
