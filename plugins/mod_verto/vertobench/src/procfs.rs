//! What the bench reads from `/proc`: a process's CPU time, resident
//! memory and threads, the machine's busy time (to see what other
//! processes took during a window), and which process listens on a port.

use std::fs;
use std::time::Duration;

/// One look at a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcSample {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_kib: u64,
    pub threads: u64,
}

/// `pid` (or `"self"`) now; `None` once it is gone.
pub fn sample(pid: &str) -> Option<ProcSample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcSample {
        cpu_ticks: cpu_ticks_of_stat(&stat)?,
        rss_kib: status_kib(&status, "VmRSS:").unwrap_or(0),
        threads: status_kib(&status, "Threads:").unwrap_or(0),
    })
}

/// utime + stime from a `/proc/<pid>/stat` line. The command name may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn cpu_ticks_of_stat(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A numeric field of `/proc/<pid>/status` (`VmRSS:` is in kB).
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU time per thread of `pid`: (tid, name, utime + stime in ticks).
pub fn threads(pid: &str) -> Vec<(u32, String, u64)> {
    cpu_by_entry(&format!("/proc/{pid}/task"))
}

/// Clock ticks per second (`USER_HZ`).
pub fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf only reads a constant of the running system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// CPU time of `ticks` as a duration.
pub fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / ticks_per_sec() as f64)
}

/// Time each thread of `pid` spent runnable but waiting for a CPU (the
/// second figure of `/proc/<pid>/task/<tid>/schedstat`), in ns: (tid,
/// name, ns). A thread starved by the scheduler shows here, not in its CPU
/// time.
pub fn thread_waits(pid: &str) -> Vec<(u32, String, u64)> {
    threads(pid)
        .into_iter()
        .filter_map(|(tid, name, _)| {
            let st = fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?;
            Some((tid, name, st.split_whitespace().nth(1)?.parse().ok()?))
        })
        .collect()
}

/// Every process's CPU time: (pid, name, utime + stime in ticks); to see
/// who else ran during a window.
pub fn processes() -> Vec<(u32, String, u64)> {
    cpu_by_entry("/proc")
}

/// (id, name, CPU ticks) of every numbered entry of `dir` with a `stat`.
fn cpu_by_entry(dir: &str) -> Vec<(u32, String, u64)> {
    let Ok(dir) = fs::read_dir(dir) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            let name = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?.to_string();
            Some((pid, name, cpu_ticks_of_stat(&stat)?))
        })
        .collect()
}

/// The machine's CPU time by kind, in ticks summed over all CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MachineTicks {
    /// idle + iowait
    pub idle: u64,
    pub softirq: u64,
    /// What the hypervisor gave to other guests.
    pub steal: u64,
}

/// The `cpu` line of `/proc/stat`.
pub fn machine_ticks() -> Option<MachineTicks> {
    machine_ticks_of(&fs::read_to_string("/proc/stat").ok()?)
}

fn machine_ticks_of(stat: &str) -> Option<MachineTicks> {
    // cpu  user nice system idle iowait irq softirq steal ...
    let v: Vec<u64> = stat
        .lines()
        .find(|l| l.starts_with("cpu "))?
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(MachineTicks {
        idle: get(3) + get(4),
        softirq: get(6),
        steal: get(7),
    })
}

/// Datagrams the kernel dropped on receipt (`Udp: InErrors` of
/// `/proc/net/snmp`: full receive buffers, bad checksums), all sockets.
pub fn udp_receive_errors() -> Option<u64> {
    udp_in_errors(&fs::read_to_string("/proc/net/snmp").ok()?)
}

fn udp_in_errors(snmp: &str) -> Option<u64> {
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names = udp.next()?.split_whitespace();
    let values = udp.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == "InErrors")?
        .1
        .parse()
        .ok()
}

/// The 1-minute load average.
pub fn loadavg() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The process with a TCP socket listening on `port` (the switch behind
/// the WebSocket URL): the socket's inode from `/proc/net/tcp{,6}`, then
/// the process holding it. Other hotswitch processes may run beside it
/// (tests), so a name is not enough.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .flat_map(|t| listening_inodes(&t, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = fs::read_link(fd.path()) {
                if wanted.iter().any(|w| target.as_os_str() == w.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// Inodes of the sockets in LISTEN state (`0A`) on `port` in a
/// `/proc/net/tcp` table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            (local_port == port && *f.get(3)? == "0A").then(|| f.get(9)?.parse().ok())?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_counted_after_a_command_name_with_spaces_and_parens() {
        let stat = "4242 (hot (switch) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 731 269 0 0 20 0 9 0 100 1000 50";
        assert_eq!(cpu_ticks_of_stat(stat), Some(1000));
    }

    #[test]
    fn rss_and_threads_come_from_status() {
        let status = "Name:\thotswitch\nVmRSS:\t   20480 kB\nThreads:\t17\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(20480));
        assert_eq!(status_kib(status, "Threads:"), Some(17));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn machine_time_is_read_from_the_cpu_line_not_a_single_cpu() {
        let stat = "cpu  100 5 50 9000 40 3 2 17 0 0\ncpu0 50 2 25 4500 20 1 1 9 0 0\n";
        let t = machine_ticks_of(stat).unwrap();
        assert_eq!((t.idle, t.softirq, t.steal), (9040, 2, 17));
    }

    #[test]
    fn udp_receive_errors_are_read_by_column_name() {
        let snmp = "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors\nUdp: 78 6 49 94 49\nUdpLite: InDatagrams NoPorts InErrors\nUdpLite: 0 0 0\n";
        assert_eq!(udp_in_errors(snmp), Some(49));
    }

    #[test]
    fn only_listening_sockets_on_the_port_are_taken() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5551 1 0 100 0 0 10 0\n\
   1: 0100007F:1F91 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000  1000        0 5552 1 0 20 4 30 10 -1\n\
   2: 0100007F:13C4 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5553 1 0 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 8081), vec![5551]);
    }
}
