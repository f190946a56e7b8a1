#!/bin/bash
# Benchmarks of several nodes (README "Several nodes", BENCHMARKS.md
# "Several nodes"): release hotswitch nodes on 127.0.0.1, a private
# PostgreSQL, Kamailio's dispatcher (tests/kamailio/kamailio.cfg), sipp.
# Every process's CPU is read from /proc/<pid>/stat (utime + stime, its
# children's too for PostgreSQL and Kamailio; sipp's as a waited-for
# child) over the measured run.
#
#   bench/nodes.sh registrations [seconds] [rate]
#       REGISTERs/s of distinct users (unchallenged: apply-register-acl
#       trusts loopback), embedded store (redb) against odbc-dsn
#       (PostgreSQL): sipp's failed count and response times, CPU per
#       REGISTER of the switch and of PostgreSQL.
#   bench/nodes.sh calls [seconds] [rate]
#       calls/s to 7000 (answer, park; 1 s each), embedded against
#       PostgreSQL (odbc-dsn + track-calls + mod_cdr_pg_csv): set-up time
#       (INVITE → 200) p50/p99, CPU per call.
#   bench/nodes.sh kamailio [seconds] [rate]
#       calls/s through Kamailio to one node, then to two (odbc-dsn shared):
#       CPU per call of each node, Kamailio, PostgreSQL and sipp.
#   bench/nodes.sh outage [seconds] [rate]
#       calls/s to 9196 (echo) with every database writer on, PostgreSQL
#       up for the first run, then stopped a third into the second run and
#       started again at two thirds: set-up p99 of each run (the issue's
#       "unchanged within 2×"), failed calls, and CDR rows against calls.
#
# Defaults: 15 s at 200/s. A few-seconds smoke: `bench/nodes.sh calls 3 50`.
# Environment: HOTSWITCH_BIN (default target/release/hotswitch),
# HOTSWITCH_TEST_PG (PostgreSQL's bin directory, default
# /usr/lib/postgresql/15/bin), PG_FAST=1 (fsync and synchronous_commit off,
# as the tests run it; default: PostgreSQL's defaults).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
what=${1:-}
secs=${2:-15}
rate=${3:-200}
BIN=${HOTSWITCH_BIN:-$root/target/release/hotswitch}
PGBIN=${HOTSWITCH_TEST_PG:-/usr/lib/postgresql/15/bin}
HZ=$(getconf CLK_TCK)
work=$(mktemp -d /tmp/hotswitch-nodes-bench.XXXXXX)
chmod 777 "$work"
pids=()
pg_port=

say() { printf '%s\n' "$*" >&2; }

cleanup() {
    for p in "${pids[@]}"; do
        kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
    done
    if [ -n "$pg_port" ]; then pg stop >/dev/null 2>&1 || true; fi
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 - <<'EOF'
import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
EOF
}

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg() {
    case $1 in
    start)
        pg_port=$(free_port)
        as_pg "$PGBIN/initdb" -D "$work/pg" -U hotswitch -A trust -E UTF8 --locale=C >/dev/null
        {
            echo "listen_addresses = '127.0.0.1'"
            echo "port = $pg_port"
            echo "unix_socket_directories = ''"
            if [ "${PG_FAST:-0}" = 1 ]; then
                echo "fsync = off"
                echo "synchronous_commit = off"
            fi
        } | as_pg tee -a "$work/pg/postgresql.conf" >/dev/null
        pg up
        "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$pg_port" -U hotswitch -d postgres \
            -c "CREATE DATABASE hotswitch"
        ;;
    up) as_pg "$PGBIN/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start >/dev/null ;;
    stop) as_pg "$PGBIN/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null ;;
    esac
}

psql_q() {
    "$PGBIN/psql" -X -q -A -t -h 127.0.0.1 -p "$pg_port" -U hotswitch -d hotswitch -c "$1"
}

dsn() { echo "pgsql://hostaddr=127.0.0.1 port=$pg_port dbname=hotswitch user=hotswitch"; }

# CPU ticks of a process and its children (a process group's members).
ticks() {
    local total=0 p
    for p in $(ps -o pid= -g "$1" 2>/dev/null) $1; do
        [ -r "/proc/$p/stat" ] || continue
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$total"
}

pg_ticks() {
    local main total=0 p
    main=$(head -1 "$work/pg/postmaster.pid")
    for p in $main $(cat "/proc/$main/task/$main/children" 2>/dev/null); do
        [ -r "/proc/$p/stat" ] || continue
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$total"
}

# node <name> <port> <store: embedded|pg> -> starts a node, prints its pid
node() {
    local name=$1 port=$2 store=$3 dir="$work/$1"
    "$root/tests/sipp/bench-conf.sh" "$dir" >/dev/null
    rm -f "$dir/sip_profiles/external.xml"
    sed -i 's|<load module="mod_event_socket"/>||; s|<load module="mod_verto"/>||' \
        "$dir/autoload_configs/modules.conf.xml"
    sed -i "s/\$\${local_ip_v4}/127.0.0.1/g; s/\$\${internal_sip_port}/$port/" \
        "$dir/sip_profiles/internal.xml"
    # REGISTERs from this machine unchallenged (sipp does not authenticate).
    sed -i "s|<param name=\"sip-port\" value=\"$port\"/>|&<param name=\"apply-register-acl\" value=\"loopback.auto\"/>|" \
        "$dir/sip_profiles/internal.xml"
    # UDP and TCP only: several nodes on one machine share no other port.
    sed -i '/name="ws-binding"/d; /name="wss-binding"/d; s/name="tls" value="[^"]*"/name="tls" value="false"/' \
        "$dir/sip_profiles/internal.xml"
    if [ "$store" = pg ]; then
        sed -i "s|<param name=\"registration-db\"[^>]*>|<param name=\"odbc-dsn\" value=\"$(dsn)\"/><param name=\"track-calls\" value=\"true\"/>|" \
            "$dir/sip_profiles/internal.xml"
        psql_q "SET client_min_messages = warning; CREATE TABLE IF NOT EXISTS cdr (uuid text, destination_number text, billsec integer)" >/dev/null
        cat >"$dir/autoload_configs/cdr_pg_csv.conf.xml" <<EOF
<configuration name="cdr_pg_csv.conf"><settings>
  <param name="db-info" value="hostaddr=127.0.0.1 port=$pg_port dbname=hotswitch user=hotswitch connect_timeout=2"/>
  <param name="db-table" value="cdr"/>
  <param name="spool-dir" value="$dir/spool"/>
</settings><schema>
  <field var="uuid"/><field var="destination_number"/><field var="billsec" quote="false"/>
</schema></configuration>
EOF
        sed -i 's|<load module="mod_dptools"/>|<load module="mod_dptools"/><load module="mod_cdr_pg_csv"/>|' \
            "$dir/autoload_configs/modules.conf.xml"
    fi
    setsid "$BIN" -conf "$dir" -nc </dev/null >"$dir/console.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 200); do
        if grep -q "profile internal listening" "$dir/console.log"; then
            if [ "$store" != pg ] || grep -q "recovery database connected" "$dir/console.log"; then
                echo "$pid"
                return
            fi
        fi
        sleep 0.1
    done
    say "node $name did not start:"
    tail -20 "$dir/console.log" >&2
    exit 1
}

kamailio_start() {
    local port=$1
    shift
    : >"$work/dispatcher.list"
    for p in "$@"; do echo "1 sip:127.0.0.1:$p" >>"$work/dispatcher.list"; done
    setsid kamailio -f "$root/tests/kamailio/kamailio.cfg" -DD -E -m 64 -M 8 \
        -l "udp:127.0.0.1:$port" -A "DS_LIST=\"$work/dispatcher.list\"" \
        -Y "$work" -w "$work" >/dev/null 2>"$work/kamailio.log" &
    pids+=("$!")
    echo "$!"
    sleep 2
}

# run_sipp <label> <scenario> <port> <rate> <calls> <extra…>: runs sipp
# to the end; prints "label calls failed p50 p99" (ms, from sipp's RTD).
run_sipp() {
    local label=$1 scenario=$2 port=$3 r=$4 n=$5
    shift 5
    local out="$work/sipp-$label"
    mkdir -p "$out"
    # sipp's CPU: this subshell's waited-for children (fields 16, 17).
    local c0 c1 me=$BASHPID
    c0=$(awk '{print $16 + $17}' "/proc/$me/stat")
    (cd "$out" && sipp -sf "$scenario" "127.0.0.1:$port" -i 127.0.0.1 -r "$r" -m "$n" \
        -buff_size 8388608 -nostdin -trace_rtt -rtt_freq 1 -trace_stat -fd 1 -trace_err \
        -timeout $((secs * 4 + 30))s "$@" >/dev/null 2>&1) || true
    c1=$(awk '{print $16 + $17}' "/proc/$me/stat")
    local stat rtt
    stat=$(ls "$out"/*_.csv 2>/dev/null | head -1)
    rtt=$(ls "$out"/*_rtt.csv 2>/dev/null | head -1)
    local ok failed
    ok=$(tail -1 "$stat" | awk -F';' '{print $16}')
    failed=$(tail -1 "$stat" | awk -F';' '{print $18}')
    local p50 p99
    read -r p50 p99 < <(awk -F';' 'NR > 1 {print $2}' "$rtt" | sort -n |
        awk '{v[NR] = $1}
             END {
                 if (NR == 0) { print "- -"; exit }
                 i = int(NR * 0.5) + 1; if (i > NR) i = NR
                 j = int(NR * 0.99) + 1; if (j > NR) j = NR
                 printf "%.1f %.1f\n", v[i], v[j]
             }')
    [ -n "${KEEP:-}" ] && head -3 "$rtt" "$stat" >&2
    echo "$label ok=$ok failed=$failed setup_p50_ms=$p50 setup_p99_ms=$p99 sipp_cpu_ms_per_call=$(per $((c1 - c0)) "$n")"
}

per() { # per <ticks> <count> -> ms of CPU per item
    awk -v t="$1" -v n="$2" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.3f", t * 1000 / hz / n; else print "-" }'
}

register_scenario() {
    cat >"$work/register_unique.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- One REGISTER of a user of its own (u<call number>), answered 200
     without a challenge (apply-register-acl trusts loopback). -->
<scenario name="register_unique">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:u[call_number]@127.0.0.1>;tag=[pid]SIPpTag00[call_number]
      To: <sip:u[call_number]@127.0.0.1>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:u[call_number]@[local_ip]:[local_port]>
      Expires: 3600
      Max-Forwards: 70
      User-Agent: sipp
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" rtd="true"/>
</scenario>
EOF
    echo "$work/register_unique.xml"
}

[ -x "$BIN" ] || { say "no $BIN: cargo build --release --workspace"; exit 1; }
n=$((secs * rate))

case $what in
registrations)
    scen=$(register_scenario)
    pg start
    for store in embedded pg; do
        port=$(free_port)
        pid=$(node "reg-$store" "$port" "$store")
        t0=$(ticks "$pid"); p0=$(pg_ticks)
        line=$(run_sipp "register-$store" "$scen" "$port" "$rate" "$n")
        t1=$(ticks "$pid"); p1=$(pg_ticks)
        rows=-
        if [ "$store" = pg ]; then
            # Written behind the SIP thread: the count when sipp ends, and
            # once the writes have caught up (unchanged for a second).
            rows=$(psql_q "SELECT count(*) FROM sip_registrations")
            settled=$rows
            for _ in $(seq 60); do
                sleep 1
                now=$(psql_q "SELECT count(*) FROM sip_registrations")
                [ "$now" = "$settled" ] && break
                settled=$now
            done
            rows="$rows(at_end),$settled(settled)"
        fi
        echo "$line rate=$rate/s switch_cpu_ms_per_reg=$(per $((t1 - t0)) "$n") pg_cpu_ms_per_reg=$(per $((p1 - p0)) "$n") pg_rows=$rows"
        kill -KILL "$pid"
    done
    ;;
calls)
    pg start
    for store in embedded pg; do
        port=$(free_port)
        pid=$(node "calls-$store" "$port" "$store")
        t0=$(ticks "$pid"); p0=$(pg_ticks)
        line=$(run_sipp "calls-$store" "$root/tests/sipp/uac_call.xml" "$port" "$rate" "$n" \
            -s 7000 -d 1000 -key rtp_port "$(free_port)")
        t1=$(ticks "$pid"); p1=$(pg_ticks)
        echo "$line rate=$rate/s switch_cpu_ms_per_call=$(per $((t1 - t0)) "$n") pg_cpu_ms_per_call=$(per $((p1 - p0)) "$n")"
        kill -KILL "$pid"
    done
    ;;
kamailio)
    pg start
    for nodes in 1 2; do
        ports=() npids=()
        for i in $(seq "$nodes"); do
            p=$(free_port)
            ports+=("$p")
            npids+=("$(node "kam$nodes-$i" "$p" pg)")
        done
        kport=$(free_port)
        kpid=$(kamailio_start "$kport" "${ports[@]}")
        before=() ; for p in "${npids[@]}"; do before+=("$(ticks "$p")"); done
        k0=$(ticks "$kpid"); p0=$(pg_ticks)
        line=$(run_sipp "kamailio-$nodes" "$root/tests/sipp/uac_call_rr.xml" "$kport" "$rate" "$n" \
            -s 7000 -d 1000 -key rtp_port "$(free_port)")
        k1=$(ticks "$kpid"); p1=$(pg_ticks)
        cpu=""
        for i in "${!npids[@]}"; do
            cpu+=" node$((i + 1))_cpu_ms_per_call=$(per $(($(ticks "${npids[$i]}") - before[i])) "$n")"
        done
        echo "$line rate=$rate/s nodes=$nodes$cpu kamailio_cpu_ms_per_call=$(per $((k1 - k0)) "$n") pg_cpu_ms_per_call=$(per $((p1 - p0)) "$n")"
        for p in "${npids[@]}" "$kpid"; do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p"; done
    done
    ;;
outage)
    pg start
    port=$(free_port)
    pid=$(node outage "$port" pg)
    run_sipp "outage-pg-up" "$root/tests/sipp/uac_call.xml" "$port" "$rate" "$n" \
        -s 9196 -d 1000 -key rtp_port "$(free_port)"
    (sleep $((secs / 3)); pg stop; sleep $((secs / 3)); pg up) &
    run_sipp "outage-pg-stopped" "$root/tests/sipp/uac_call.xml" "$port" "$rate" "$n" \
        -s 9196 -d 1000 -key rtp_port "$(free_port)"
    wait
    for _ in $(seq 300); do
        rows=$(psql_q "SELECT count(*) FROM cdr" 2>/dev/null || echo 0)
        [ "$rows" -ge $((2 * n)) ] && break
        sleep 0.2
    done
    echo "cdr rows=$rows of calls=$((2 * n)) tracked_left=$(psql_q 'SELECT count(*) FROM recovery')"
    ;;
*)
    sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
