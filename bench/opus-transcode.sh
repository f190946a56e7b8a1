#!/bin/bash
# CPU and memory per transcoded Opus <-> PCMU call (BENCHMARKS.md, "Opus
# transcoding"): CALLS calls from sipp (tests/sipp/uac_stream.xml made
# PCMU: a 1004 Hz μ-law tone at 50 packets/s each) to extension 7100,
# which bridges each to a second sipp (bench/uas_opus_echo.xml) that
# answers in Opus only and echoes every packet. The switch so encodes PCMU
# to Opus and decodes the echoed Opus back to PCMU for every call, 50
# frames/s each way. Calls start at RAMP/s; once all are up, the switch's
# CPU (utime + stime) and RSS are read over HOLD seconds: per call = the
# total over CALLS. CODEC=PCMU makes the far end answer PCMU instead (no
# transcoding), the baseline to subtract.
#
#   bench/opus-transcode.sh [CALLS=200] [RAMP=50] [HOLD=30]
#
# HOTSWITCH picks the binary (default target/release/hotswitch); SIP_PORT
# the profile's port (default 5060), ESL_PORT the event socket's (8021).
set -e
. "$(dirname "$0")/lib.sh"
calls=${1:-200}
ramp=${2:-50}
hold=${3:-30}
sip_port=${SIP_PORT:-5060}
# Clear of the external profile (sip_port + 20) and of sipp's media ports.
uas_port=$((sip_port + 2100))
echo_port=$((sip_port + 2140))
work=$(mktemp -d /tmp/hotswitch-bench-opus.XXXXXX)
conf=$("$root/tests/sipp/bench-conf.sh" "$work/conf")
sed -i "s/internal_sip_port=5060/internal_sip_port=$sip_port/; s/internal_ssl_enable=true/internal_ssl_enable=false/" "$conf/vars.xml"
# 7100: bridged to the Opus echo (the profile's codec-prefs offer OPUS
# first; the far end takes only Opus).
sed -i "s|<context name=\"default\">|<context name=\"default\">\n    <extension name=\"opus-bench\"><condition field=\"destination_number\" expression=\"^7100\$\"><action application=\"bridge\" data=\"sofia/internal/far-end@127.0.0.1:$uas_port\"/></condition></extension>|" \
  "$conf/dialplan/default.xml"
# OPUS_COMPLEXITY=N: the encoders' complexity (opus.conf), else the
# configuration's default.
if [ -n "$OPUS_COMPLEXITY" ]; then
  sed -i "s|<param name=\"complexity\" value=\"[0-9]*\"/>|<param name=\"complexity\" value=\"$OPUS_COMPLEXITY\"/>|" \
    "$conf/autoload_configs/opus.conf.xml"
  grep -q "value=\"$OPUS_COMPLEXITY\"" "$conf/autoload_configs/opus.conf.xml" ||
    { echo "cannot set the complexity in $conf/autoload_configs/opus.conf.xml" >&2; exit 1; }
fi
# The caller: uac_stream.xml in PCMU, with a μ-law tone of its own.
python3 - "$work/tone_1s.ulaw" <<'PY'
import math, sys
def ulaw(s):
    sign = 0x80 if s < 0 else 0
    s = min(abs(s), 32635) + 0x84
    exp = 7
    while exp > 0 and not s & (0x4000 >> (7 - exp)):
        exp -= 1
    return ~(sign | (exp << 4) | ((s >> (exp + 3)) & 0x0f)) & 0xff
open(sys.argv[1], "wb").write(bytes(ulaw(int(8000 * math.sin(2 * math.pi * 1004 * i / 8000))) for i in range(8000)))
PY
sed "s|tests/sipp/tone_1s.alaw,-1,8,PCMA/8000|$work/tone_1s.ulaw,-1,0,PCMU/8000|; s|RTP/AVP 8 101|RTP/AVP 0 101|; s|a=rtpmap:8 PCMA/8000|a=rtpmap:0 PCMU/8000|" \
  "$root/tests/sipp/uac_stream.xml" >"$work/uac_pcmu.xml"
uas=$root/bench/uas_opus_echo.xml
if [ "${CODEC:-OPUS}" = PCMU ]; then
  sed 's|RTP/AVP 102|RTP/AVP 0|; s|a=rtpmap:102 opus/48000/2|a=rtpmap:0 PCMU/8000|; /a=fmtp:102/d' "$uas" >"$work/uas.xml"
  uas=$work/uas.xml
fi
trap 'stop_switch; [ -n "$uas_pid" ] && kill "$uas_pid" 2>/dev/null; [ -n "$uac_pid" ] && kill "$uac_pid" 2>/dev/null; true' EXIT
sipp -sf "$uas" -p "$uas_port" -i 127.0.0.1 -rtp_echo -mp "$echo_port" -buff_size 8388608 \
  -max_socket 8192 -nostdin >"$work/uas.log" 2>&1 &
uas_pid=$!
start_switch "$conf"
wait_tcp "$sip_port"
sleep 1
cpu_idle=$(rss_kib "$switch_pid")
ramp_secs=$(((calls + ramp - 1) / ramp))
hold_ms=$(((ramp_secs + hold + 6) * 1000))
sipp -sf "$work/uac_pcmu.xml" "127.0.0.1:$sip_port" -s 7100 -r "$ramp" -m "$calls" -l "$calls" \
  -d "$hold_ms" -p $((sip_port + 60)) -i 127.0.0.1 -buff_size 8388608 -rtp_threadtasks 50 \
  -nostdin -trace_stat -stf "$work/stat.csv" >"$work/uac.log" 2>&1 &
uac_pid=$!
sleep $((ramp_secs + 3))
cpu0=$(cpu_ticks "$switch_pid")
cs0=$(ctx_switches "$switch_pid")
t0=$(date +%s.%N)
sleep "$hold"
cpu1=$(cpu_ticks "$switch_pid")
cs1=$(ctx_switches "$switch_pid")
t1=$(date +%s.%N)
rss_hold=$(rss_kib "$switch_pid")
up=$("$cli" -P "$esl_port" -x "show calls count" 2>/dev/null | grep -o '[0-9]\+ total' || true)
opus_legs=$("$cli" -P "$esl_port" -x "show channels" 2>/dev/null | grep -c ',opus,[0-9]*,' || true)
[ -n "$DEBUG" ] && "$cli" -P "$esl_port" -x "show channels" >"$work/channels.txt" 2>&1
wait "$uac_pid" || true
uac_pid=
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
pct=$(core_percent $((cpu1 - cpu0)) "$wall")
last=$(tail -n 1 "$work/stat.csv")
col() { head -n 1 "$work/stat.csv" | tr ';' '\n' | grep -nx "$1" | cut -d: -f1; }
field() { echo "$last" | cut -d';' -f"$(col "$1")"; }
echo "Opus <-> PCMU: $calls calls (far end ${CODEC:-OPUS}), ramp $ramp/s, hold $hold s"
echo "  calls     successful $(field SuccessfulCall\(C\)), failed $(field FailedCall\(C\)); bridged calls during the hold: ${up:-unknown}, legs in Opus: ${opus_legs:-unknown}"
echo "  switch    pid $switch_pid: CPU $pct % of one core over $wall s, $(awk -v p="$pct" -v n="$calls" 'BEGIN {printf "%.3f", p / n}') % per call"
echo "            context switches $(awk -v a="$cs0" -v b="$cs1" -v w="$wall" -v n="$calls" 'BEGIN {printf "%.0f/s, %.1f per call per 20 ms", (b - a) / w, (b - a) / w / n / 50}')"
echo "            RSS $cpu_idle KiB idle -> $rss_hold KiB during the hold, $(awk -v a="$cpu_idle" -v b="$rss_hold" -v n="$calls" 'BEGIN {printf "%.1f", (b - a) / n}') KiB per call"
echo "  files     $work (uac.log, uas.log, stat.csv, conf/switch.log)"
