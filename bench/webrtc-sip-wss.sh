#!/bin/bash
# Concurrent WebRTC calls over SIP-WSS (BENCHMARKS.md, "WebRTC calls over
# SIP-WSS"), as the verto benchmark: hotswitch-vertobench --signalling sip
# makes CALLS browser-phone calls (str0m: full ICE, DTLS-SRTP, PCMU; an
# INVITE over SIP over WebSocket, RFC 7118) to 9196 (echo) at RAMP/s, all
# talk for HOLD s, every echoed packet checked; it prints the switch's CPU
# and RSS over the hold. The WebSocket is wss: stunnel (Debian's stunnel4)
# carries the bench's ws connections over TLS to the profile's wss port,
# its CPU printed beside. A fresh switch on tests/sipp/bench-conf.sh (no
# auth-calls, loopback trusted) with a self-signed wss.pem.
#
#   bench/webrtc-sip-wss.sh [CALLS=300] [RAMP=50] [HOLD=30]
#
# HOTSWITCH and VERTOBENCH pick the binaries (default target/release/);
# WSS_PORT the profile's wss port (default 7443), SIP_PORT its SIP port.
set -e
. "$(dirname "$0")/lib.sh"
calls=${1:-300}
ramp=${2:-50}
hold=${3:-30}
bench=${VERTOBENCH:-$root/target/release/hotswitch-vertobench}
sip_port=${SIP_PORT:-5060}
wss_port=${WSS_PORT:-7443}
ws_port=$((wss_port - 2377))
relay=$((wss_port + 1000))
work=$(mktemp -d /tmp/hotswitch-bench-sipwss.XXXXXX)
conf=$("$root/tests/sipp/bench-conf.sh" "$work/conf")
mkdir -p "$conf/certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$conf/certs/key.pem" -out "$conf/certs/cert.pem" -days 30 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null
cat "$conf/certs/cert.pem" "$conf/certs/key.pem" >"$conf/certs/wss.pem"
sed -i "s/internal_sip_port=5060/internal_sip_port=$sip_port/; \
s/internal_wss_port=7443/internal_wss_port=$wss_port/; \
s/internal_ws_port=5066/internal_ws_port=$ws_port/; \
s|</include>|  <X-PRE-PROCESS cmd=\"set\" data=\"certs_dir=$conf/certs\"/>\n</include>|" "$conf/vars.xml"
# Every browser comes through stunnel, from 127.0.0.1: one address holds
# all the connections (the profile allows 256 from one address).
sed -i '0,/<settings>/s||<settings>\n    <param name="tcp-max-connections" value="8192"/>\n    <param name="tcp-max-connections-per-ip" value="4096"/>|' \
  "$conf/sip_profiles/internal.xml"
trap 'stop_switch; [ -n "$tunnel_pid" ] && kill "$tunnel_pid" 2>/dev/null; true' EXIT
start_switch "$conf"
wait_tcp "$wss_port"
cat >"$work/stunnel.conf" <<EOT
foreground = yes
pid =
[wss]
client = yes
accept = 127.0.0.1:$relay
connect = 127.0.0.1:$wss_port
EOT
$(command -v stunnel4 || command -v stunnel) "$work/stunnel.conf" >"$work/stunnel.log" 2>&1 &
tunnel_pid=$!
wait_tcp "$relay"
tcpu0=$(cpu_ticks "$tunnel_pid")
t0=$(date +%s.%N)
status=0
"$bench" --signalling sip --server "ws://127.0.0.1:$relay" --calls "$calls" --ramp-per-sec "$ramp" \
  --hold-secs "$hold" --user 1000-1019@127.0.0.1 --switch-pid "$switch_pid" || status=$?
t1=$(date +%s.%N)
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
echo "  stunnel   CPU $(core_percent $(($(cpu_ticks "$tunnel_pid") - tcpu0)) "$wall") % of one core over the whole run ($wall s)"
echo "  files     $work (conf/switch.log, stunnel.log)"
exit "$status"
