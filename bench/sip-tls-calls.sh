#!/bin/bash
# SIP calls/s over TLS (BENCHMARKS.md, "SIP over TLS"): sipp's
# tests/sipp/uac_call.xml (INVITE → 100 → 200 → ACK → 1 s → BYE → 200) to
# extension 7000 over one TLS connection (sipp -t l1) at RATE calls/s for
# SECS seconds, against a fresh switch on bench/sip-tls-conf.sh. Prints
# sipp's totals (successful, failed, retransmissions) and the switch's CPU
# (utime + stime over the run, % of one core) and RSS.
#
#   bench/sip-tls-calls.sh [RATE=1000] [SECS=15]
#
# Debian's sipp is built without TLS: then stunnel (Debian's stunnel4)
# carries sipp's TCP connection (-t t1) over TLS to the switch, and its own
# CPU is printed beside the switch's. HOTSWITCH picks the binary (default
# target/release/hotswitch); SIP_PORT / TLS_PORT move the profile's ports.
set -e
. "$(dirname "$0")/lib.sh"
rate=${1:-1000}
secs=${2:-15}
tls_port=${TLS_PORT:-5061}
work=$(mktemp -d /tmp/hotswitch-bench-tls.XXXXXX)
conf=$("$root/bench/sip-tls-conf.sh" "$work/conf")
trap 'stop_switch; [ -n "$tunnel_pid" ] && kill "$tunnel_pid" 2>/dev/null; true' EXIT
start_switch "$conf"
wait_tcp "$tls_port"

if sipp -v 2>&1 | grep -q TLS; then
  target=127.0.0.1:$tls_port
  transport=(-t l1 -tls_cert "$conf/certs/cert.pem" -tls_key "$conf/certs/key.pem")
else
  command -v stunnel4 >/dev/null || command -v stunnel >/dev/null || {
    echo "this sipp has no TLS and there is no stunnel (apt-get install stunnel4)" >&2
    exit 1
  }
  relay=$((tls_port + 1000))
  cat >"$work/stunnel.conf" <<EOT
foreground = yes
pid =
[sip]
client = yes
accept = 127.0.0.1:$relay
connect = 127.0.0.1:$tls_port
EOT
  $(command -v stunnel4 || command -v stunnel) "$work/stunnel.conf" >"$work/stunnel.log" 2>&1 &
  tunnel_pid=$!
  wait_tcp "$relay"
  target=127.0.0.1:$relay
  transport=(-t t1)
  echo "sipp without TLS: its TCP connection goes through stunnel (pid $tunnel_pid) over TLS"
fi

cpu0=$(cpu_ticks "$switch_pid")
rss0=$(rss_kib "$switch_pid")
[ -n "$tunnel_pid" ] && tcpu0=$(cpu_ticks "$tunnel_pid")
t0=$(date +%s.%N)
sipp -sf "$root/tests/sipp/uac_call.xml" "$target" -s 7000 "${transport[@]}" \
  -r "$rate" -m $((rate * secs)) -d 1000 -key rtp_port 6000 -i 127.0.0.1 \
  -buff_size 8388608 -max_socket 4096 -nostdin -trace_stat -stf "$work/stat.csv" \
  -timeout $((secs + 30))s >"$work/sipp.log" 2>&1 || true
t1=$(date +%s.%N)
cpu1=$(cpu_ticks "$switch_pid")
rss1=$(rss_kib "$switch_pid")
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
last=$(tail -n 1 "$work/stat.csv")
col() { head -n 1 "$work/stat.csv" | tr ';' '\n' | grep -nx "$1" | cut -d: -f1; }
field() { echo "$last" | cut -d';' -f"$(col "$1")"; }
echo "SIP over TLS: $rate calls/s for $secs s to 7000 (sipp ${transport[*]})"
echo "  calls     successful $(field SuccessfulCall\(C\)), failed $(field FailedCall\(C\)), retransmissions $(field Retransmissions\(C\)), wall $wall s"
echo "  switch    pid $switch_pid: CPU $(core_percent $((cpu1 - cpu0)) "$wall") % of one core; RSS $rss0 -> $rss1 KiB"
if [ -n "$tunnel_pid" ]; then
  echo "  stunnel   CPU $(core_percent $(($(cpu_ticks "$tunnel_pid") - tcpu0)) "$wall") % of one core"
fi
echo "  files     $work (sipp.log, stat.csv, conf/switch.log)"
