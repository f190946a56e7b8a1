#!/bin/bash
# SIP calls/s over UDP (BENCHMARKS.md): sipp's tests/sipp/uac_call.xml
# (INVITE → 100 → 200 → ACK → 1 s → BYE → 200) to extension 7000 (answer,
# park) at RATE calls/s for SECS seconds, against a fresh switch on
# tests/sipp/bench-conf.sh. Prints sipp's totals and the switch's CPU per
# call (utime + stime over the run, divided by the calls that succeeded).
#
#   bench/sip-calls.sh [RATE=2000] [SECS=15]
#
# HOTSWITCH picks the binary (default target/release/hotswitch), so two
# trees can be compared in turn on the same machine.
set -e
. "$(dirname "$0")/lib.sh"
rate=${1:-2000}
secs=${2:-15}
work=$(mktemp -d /tmp/hotswitch-bench-sip.XXXXXX)
conf=$("$root/tests/sipp/bench-conf.sh" "$work/conf")
trap 'stop_switch; true' EXIT
start_switch "$conf"

cpu0=$(cpu_ticks "$switch_pid")
t0=$(date +%s.%N)
sipp -sf "$root/tests/sipp/uac_call.xml" 127.0.0.1:5060 -s 7000 \
  -r "$rate" -m $((rate * secs)) -d 1000 -key rtp_port 6000 -i 127.0.0.1 \
  -buff_size 8388608 -nostdin -trace_stat -stf "$work/stat.csv" \
  -timeout $((secs + 30))s >"$work/sipp.log" 2>&1 || true
t1=$(date +%s.%N)
cpu1=$(cpu_ticks "$switch_pid")
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
last=$(tail -n 1 "$work/stat.csv")
col() { head -n 1 "$work/stat.csv" | tr ';' '\n' | grep -nx "$1" | cut -d: -f1; }
field() { echo "$last" | cut -d';' -f"$(col "$1")"; }
ok=$(field SuccessfulCall\(C\))
echo "SIP over UDP: $rate calls/s for $secs s to 7000 ($bin)"
echo "  calls     successful $ok, failed $(field FailedCall\(C\)), retransmissions $(field Retransmissions\(C\)), wall $wall s"
awk -v t=$((cpu1 - cpu0)) -v hz="$tck" -v n="$ok" \
  'BEGIN {if (n > 0) printf "  switch    CPU per call %.0f µs (%.2f s over the run)\n", 1e6 * t / hz / n, t / hz}'
echo "  files     $work (sipp.log, stat.csv, conf/switch.log)"
