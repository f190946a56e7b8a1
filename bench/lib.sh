# Shared by the bench/ scripts (sourced, bash): start a switch on a
# configuration and wait for its ports, read a process's CPU time and RSS
# from /proc, stop what was started.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The switch under test: the release build unless HOTSWITCH names another.
bin=${HOTSWITCH:-$root/target/release/hotswitch}
tck=$(getconf CLK_TCK)

# Waits until something listens on TCP 127.0.0.1:$1 (up to 30 s).
wait_tcp() {
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

cli="$(dirname "$bin")/hotswitch-cli"
# The event socket's port (the configuration's is moved there when set).
esl_port=${ESL_PORT:-8021}

# Starts the switch on configuration $1 (its log in $1/switch.log) and
# waits until it is ready: its event socket answers and mod_sofia and
# mod_dptools are loaded (their listeners open before the last modules
# load). Sets switch_pid.
start_switch() {
  sed -i "s/\"8021\"/\"$esl_port\"/" "$1/autoload_configs/event_socket.conf.xml"
  "$bin" -conf "$1" -nc -loglevel warning >"$1/switch.log" 2>&1 &
  switch_pid=$!
  for _ in $(seq 300); do
    if [ "$("$cli" -P "$esl_port" -x "module_exists mod_dptools" 2>/dev/null)" = true ] &&
      [ "$("$cli" -P "$esl_port" -x "module_exists mod_sofia" 2>/dev/null)" = true ]; then
      return 0
    fi
    sleep 0.1
  done
  echo "the switch (pid $switch_pid) did not get ready; see $1/switch.log" >&2
  return 1
}

# utime + stime of pid $1, in clock ticks.
cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$1/stat"
}

# Context switches (voluntary and not) of every thread of pid $1.
ctx_switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches:/ {n += $2} END {print n}'
}

# Resident set of pid $1, in KiB.
rss_kib() {
  awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}

# "x % of one core" for $1 ticks over $2 seconds.
core_percent() {
  awk -v t="$1" -v s="$2" -v hz="$tck" 'BEGIN {printf "%.1f", 100 * t / hz / s}'
}

stop_switch() {
  [ -n "$switch_pid" ] && kill "$switch_pid" 2>/dev/null && wait "$switch_pid" 2>/dev/null
  switch_pid=
}
