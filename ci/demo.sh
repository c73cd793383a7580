#!/usr/bin/env bash
# The demo (README): install, build, then start a 3-broker cluster on loopback, write to it while
# the partition leader is killed with SIGKILL and restarted, and verify from what the client saw
# that no acknowledged write was lost and that leadership moved.
#
# (Until `faultline run` exists this drives the session itself; it checks real processes and real
# sockets, not a simulation.)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${FAULTLINE_BUILD_DIR:-$root/build}

./ci/install-deps.sh
echo "== configure and build ($build)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target faultline faultline-broker faultline-controller

bin=$build/bin
run=$(mktemp -d /tmp/faultline-demo-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ctl_port=$(port)
declare -A client_port internal_port broker_pid
for id in 1 2 3; do client_port[$id]=$(port); internal_port[$id]=$(port); done
bootstrap=$(for id in 1 2 3; do printf '127.0.0.1:%s,' "${client_port[$id]}"; done)
bootstrap=${bootstrap%,}
conn=(--controller "127.0.0.1:$ctl_port" --bootstrap "$bootstrap" --timeout-ms 2000)

"$bin/faultline-controller" --data-dir "$run/controller" --listen "127.0.0.1:$ctl_port" \
  --session-timeout-ms 1000 --min-insync-replicas 2 >"$run/controller.log" 2>&1 &
pids+=($!)
start_broker() {
  local id=$1
  "$bin/faultline-broker" --id "$id" --data-dir "$run/broker-$id" \
    --internal "127.0.0.1:${internal_port[$id]}" --client "127.0.0.1:${client_port[$id]}" \
    --controller "127.0.0.1:$ctl_port" --heartbeat-interval-ms 200 --min-insync-replicas 2 \
    --replica-lag-time-max-ms 2000 >>"$run/broker-$id.log" 2>&1 &
  broker_pid[$id]=$!
  pids+=($!)
}
for id in 1 2 3; do start_broker "$id"; done

echo "== cluster: controller 127.0.0.1:$ctl_port, brokers $bootstrap (logs in $run)"
for _ in $(seq 100); do
  "$bin/faultline" topic create demo --partitions 1 --replication-factor 3 "${conn[@]}" \
    >/dev/null 2>&1 && break
  sleep 0.1
done
leader_of() { "$bin/faultline" admin describe "${conn[@]}" | sed -n 's/^demo-0 leader=\([0-9-]*\).*/\1/p'; }
for _ in $(seq 100); do [[ $(leader_of) =~ ^[1-3]$ ]] && break; sleep 0.1; done
"$bin/faultline" admin describe "${conn[@]}"

: >"$run/acked"
produce() {
  local v=$1 out
  if out=$("$bin/faultline" produce demo "$v" --acks all "${conn[@]}" 2>/dev/null); then
    echo "$v" >>"$run/acked"
  fi
  echo "$out" >>"$run/history"
}

first_leader=$(leader_of)
for i in $(seq 1 30); do produce "v$i"; done
echo "== kill -9 broker $first_leader (the leader)"
kill -9 "${broker_pid[$first_leader]}"
wait "${broker_pid[$first_leader]}" 2>/dev/null || true
t0=$(date +%s.%N)
for i in $(seq 31 60); do produce "v$i"; done
new_leader=$(leader_of)
echo "== leader is now broker $new_leader; restarting broker $first_leader"
start_broker "$first_leader"
for i in $(seq 61 90); do produce "v$i"; done
for _ in $(seq 100); do
  "$bin/faultline" admin describe "${conn[@]}" | grep -q 'isr=\[[0-9],[0-9],[0-9]\]' && break
  sleep 0.1
done
"$bin/faultline" admin describe "${conn[@]}"

"$bin/faultline" consume demo "${conn[@]}" | awk '{print $2}' >"$run/read"
acked=$(wc -l <"$run/acked")
lost=$(sort "$run/acked" | comm -23 - <(sort "$run/read") | wc -l)
dups=$(sort "$run/read" | uniq -d | wc -l)
echo "== acknowledged $acked of 90 writes; read back $(wc -l <"$run/read") records"
echo "   outcomes: $(awk '{print $1}' "$run/history" | sort | uniq -c | tr '\n' ' ')"
if [[ $lost -eq 0 && $dups -eq 0 && $new_leader != "$first_leader" && $acked -gt 60 ]]; then
  echo "VERDICT: valid: no acknowledged write lost or duplicated; leadership moved from broker" \
    "$first_leader to broker $new_leader and the restarted broker rejoined"
  exit 0
fi
echo "VERDICT: invalid: lost=$lost duplicated=$dups first_leader=$first_leader new_leader=$new_leader" \
  "acknowledged=$acked (logs in $run)"
exit 1
