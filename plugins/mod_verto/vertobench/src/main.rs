//! `hotswitch-vertobench`: concurrent verto calls with WebRTC audio against
//! a running switch, and what they cost it.
//!
//! ```text
//! hotswitch-vertobench [--calls 50] [--ramp-per-sec 50] [--hold-secs 30] [--server ws://127.0.0.1:8081]
//!                      [--user 1000@127.0.0.1 | 1000-1019@127.0.0.1] [--password 1234] [--calls-per-login 1]
//!                      [--destination 9196] [--switch-pid PID] [--rtp-ip 127.0.0.1]
//!                      [--setup-timeout-secs 10] [--threads 1] [--signalling verto|sip]
//! ```
//!
//! Calls are started at `--ramp-per-sec`, each on its own verto login (a
//! browser tab with one call) unless `--calls-per-login` puts several on
//! one WebSocket; logins go round the users of `--user`. Once every call
//! is up (or has failed) all of them talk at once for `--hold-secs`: that
//! window is where the switch's CPU (utime + stime of `/proc/<pid>/stat`)
//! and memory (VmRSS) are measured. Then each call stops sending, waits a
//! second for the last echoes, and hangs up with `verto.bye`. The switch
//! is the process listening on the URL's port unless `--switch-pid` says.
//! Exits 1 when a call failed. `--signalling sip` makes the same calls as
//! a SIP-over-WebSocket browser phone to mod_sofia's ws listener
//! ([`sipws`]; no registration; `--switch-pid` then need not be the
//! process on the URL's port, which may be a TLS tunnel to wss).

mod call;
mod payload;
mod procfs;
mod sipws;
mod verto;

use call::{Phase, Report, Spec};
use procfs::ProcSample;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use verto::{Account, Login};

struct Options {
    calls: usize,
    ramp_per_sec: f64,
    hold: Duration,
    server: String,
    users: Vec<String>,
    password: String,
    calls_per_login: usize,
    destination: String,
    switch_pid: Option<u32>,
    rtp_ip: IpAddr,
    setup_timeout: Duration,
    threads: usize,
    /// Calls over SIP over WebSocket instead of verto.
    sip: bool,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: hotswitch-vertobench [--calls N] [--ramp-per-sec R] [--hold-secs S] [--server ws://host:port] \
         [--user 1000@127.0.0.1 | 1000-1019@127.0.0.1] [--password P] [--calls-per-login K] \
         [--destination 9196] [--switch-pid PID] [--rtp-ip IP] [--setup-timeout-secs S] [--threads T] [--signalling verto|sip]"
    );
    ExitCode::from(2)
}

/// `1000@d` or a range `1000-1019@d`.
fn users(spec: &str) -> Option<Vec<String>> {
    let (ids, domain) = spec.split_once('@')?;
    match ids.split_once('-') {
        Some((a, b)) => {
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b).then(|| (a..=b).map(|u| format!("{u}@{domain}")).collect())
        }
        None => Some(vec![spec.to_string()]),
    }
}

fn parse(args: &[String]) -> Option<Options> {
    let mut o = Options {
        calls: 50,
        ramp_per_sec: 50.0,
        hold: Duration::from_secs(30),
        server: "ws://127.0.0.1:8081".into(),
        users: vec!["1000@127.0.0.1".into()],
        password: "1234".into(),
        calls_per_login: 1,
        destination: "9196".into(),
        switch_pid: None,
        rtp_ip: [127, 0, 0, 1].into(),
        setup_timeout: Duration::from_secs(10),
        threads: 1,
        sip: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next()?;
        match a.as_str() {
            "--calls" => o.calls = v.parse().ok()?,
            "--ramp-per-sec" => o.ramp_per_sec = v.parse().ok().filter(|r: &f64| *r > 0.0)?,
            "--hold-secs" => o.hold = Duration::from_secs_f64(v.parse().ok()?),
            "--server" => o.server = v.clone(),
            "--user" => o.users = users(v)?,
            "--password" => o.password = v.clone(),
            "--calls-per-login" => o.calls_per_login = v.parse().ok().filter(|k| *k > 0)?,
            "--destination" => o.destination = v.clone(),
            "--switch-pid" => o.switch_pid = Some(v.parse().ok()?),
            "--rtp-ip" => o.rtp_ip = v.parse().ok()?,
            "--setup-timeout-secs" => o.setup_timeout = Duration::from_secs_f64(v.parse().ok()?),
            "--threads" => o.threads = v.parse().ok().filter(|t| *t > 0)?,
            "--signalling" => {
                o.sip = match v.as_str() {
                    "sip" => true,
                    "verto" => false,
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
    Some(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(o) = parse(&args) else {
        return usage();
    };
    let port = o
        .server
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok());
    let listening = port.and_then(procfs::pid_listening_on);
    let pid = match (o.switch_pid, listening) {
        // Measuring one switch while another serves the calls measures nothing.
        (Some(given), Some(l)) if given != l && !o.sip => {
            eprintln!(
                "hotswitch-vertobench: pid {l} listens on {}, not --switch-pid {given}",
                o.server
            );
            return ExitCode::FAILURE;
        }
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => {
            eprintln!(
                "hotswitch-vertobench: no process listens on {}; give --switch-pid",
                o.server
            );
            return ExitCode::FAILURE;
        }
    };
    let rt = if o.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(o.threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hotswitch-vertobench: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(bench(&o, pid)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("hotswitch-vertobench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A look at the switch, this process and the machine at one moment.
struct Snapshot {
    at: Instant,
    switch: ProcSample,
    /// The switch's threads: (tid, name, CPU ticks).
    threads: Vec<(u32, String, u64)>,
    /// The switch's threads: (tid, name, ns waiting for a CPU).
    waits: Vec<(u32, String, u64)>,
    me: ProcSample,
    /// ns this process's threads waited for a CPU.
    me_wait: u64,
    /// Every process: (pid, name, CPU ticks).
    processes: Vec<(u32, String, u64)>,
    machine: procfs::MachineTicks,
    /// The kernel's UDP receive errors (all sockets of the machine).
    udp_errors: u64,
    load: f64,
}

fn snapshot(pid: &str) -> Result<Snapshot, String> {
    Ok(Snapshot {
        at: Instant::now(),
        switch: procfs::sample(pid).ok_or_else(|| format!("the switch (pid {pid}) is gone"))?,
        threads: procfs::threads(pid),
        waits: procfs::thread_waits(pid),
        me: procfs::sample("self").unwrap_or_default(),
        me_wait: procfs::thread_waits("self").iter().map(|t| t.2).sum(),
        processes: procfs::processes(),
        machine: procfs::machine_ticks().unwrap_or_default(),
        udp_errors: procfs::udp_receive_errors().unwrap_or(0),
        load: procfs::loadavg().unwrap_or(0.0),
    })
}

/// Runs the calls and prints the report; true when no call failed.
async fn bench(o: &Options, pid: u32) -> Result<bool, String> {
    let pid_s = pid.to_string();
    let before = snapshot(&pid_s)?;
    let cert = str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
        .ok_or("cannot make a DTLS certificate")?;
    let (phase_tx, phase_rx) = watch::channel(Phase::Ramp);
    let (setup_tx, mut setup_rx) = mpsc::unbounded_channel();
    let (login_tx, mut login_rx) = mpsc::unbounded_channel();
    let mut calls = Vec::with_capacity(o.calls);
    let mut login: Option<Login> = None;
    let mut ramp = tokio::time::interval(Duration::from_secs_f64(1.0 / o.ramp_per_sec));
    let ramp_started = Instant::now();
    for i in 0..o.calls {
        ramp.tick().await;
        if i % o.calls_per_login == 0 {
            let n = i / o.calls_per_login;
            let account = Account {
                url: o.server.clone(),
                login: o.users[n % o.users.len()].clone(),
                password: o.password.clone(),
            };
            let sessid = format!("vertobench-{}-login-{n}", std::process::id());
            login = Some(if o.sip {
                Login::start_sip(account.url, account.login, sessid, login_tx.clone())
            } else {
                Login::start(account, sessid, login_tx.clone())
            });
        }
        let Some(l) = login.clone() else { continue };
        let spec = Spec {
            index: i,
            destination: o.destination.clone(),
            caller: o.users[(i / o.calls_per_login) % o.users.len()]
                .split('@')
                .next()
                .unwrap_or("1000")
                .to_string(),
            ip: o.rtp_ip,
            cert: cert.clone(),
            setup_timeout: o.setup_timeout,
            drain: Duration::from_secs(1),
            phase: payload::PTIME.mul_f64((i as f64 * 0.618_034).fract()),
        };
        calls.push(tokio::spawn(call::run(
            spec,
            l,
            phase_rx.clone(),
            setup_tx.clone(),
        )));
    }
    drop((login, setup_tx, login_tx, phase_rx));
    let mut up = 0;
    let mut settled = 0;
    while settled < o.calls {
        match setup_rx.recv().await {
            Some(ok) => {
                settled += 1;
                up += usize::from(ok);
            }
            None => break,
        }
    }
    let set_up_in = ramp_started.elapsed();
    let _ = phase_tx.send(Phase::Hold);
    let hold_start = snapshot(&pid_s)?;
    tokio::time::sleep(o.hold).await;
    let hold_end = snapshot(&pid_s)?;
    let _ = phase_tx.send(Phase::Stop);
    let mut reports = Vec::with_capacity(calls.len());
    for c in calls {
        reports.push(c.await.unwrap_or_else(|e| Report {
            failure: Some(format!("the call's task: {e}")),
            ..Report::default()
        }));
    }
    let mut logins = Vec::new();
    let mut login_failures = 0;
    while let Ok(l) = login_rx.try_recv() {
        match l {
            Ok(d) => logins.push(d),
            Err(_) => login_failures += 1,
        }
    }
    // The switch frees a call's session at CS_DESTROY, after the bye.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = procfs::sample(&pid_s).unwrap_or_default();
    print_report(
        o,
        pid,
        &reports,
        &Timing {
            logins,
            login_failures,
            up,
            set_up_in,
        },
        [&before, &hold_start, &hold_end],
        after,
    );
    Ok(reports.iter().all(|r| r.failure.is_none()))
}

struct Timing {
    logins: Vec<Duration>,
    login_failures: usize,
    up: usize,
    set_up_in: Duration,
}

/// The value below which `p` of the sorted `v` lie.
fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
        .unwrap_or_else(|| "-".into())
}

fn spread(mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "p50 {} p99 {} max {}",
        ms(percentile(&v, 0.5)),
        ms(percentile(&v, 0.99)),
        ms(v.last().copied())
    )
}

fn print_report(
    o: &Options,
    pid: u32,
    reports: &[Report],
    t: &Timing,
    [before, hold_start, hold_end]: [&Snapshot; 3],
    after: ProcSample,
) {
    let failed: Vec<&Report> = reports.iter().filter(|r| r.failure.is_some()).collect();
    let per_login = if o.calls_per_login == 1 {
        "one call per login".to_string()
    } else {
        format!("{} calls per login", o.calls_per_login)
    };
    println!(
        "hotswitch-vertobench: {} {} calls to {} ({per_login}, {} users from {}), ramp {}/s, hold {} s, PCMU 20 ms",
        o.calls,
        if o.sip { "SIP-over-WebSocket" } else { "verto" },
        o.destination,
        o.users.len(),
        o.users[0],
        o.ramp_per_sec,
        o.hold.as_secs_f64()
    );
    println!(
        "  calls     {} up at once after {:.1} s, {} set up, {} failed ({} logins failed)",
        t.up,
        t.set_up_in.as_secs_f64(),
        reports.iter().filter(|r| r.media.is_some()).count(),
        failed.len(),
        t.login_failures
    );
    let mut why: Vec<(String, usize)> = Vec::new();
    for r in &failed {
        let w = r.failure.clone().unwrap_or_default();
        match why.iter_mut().find(|(k, _)| *k == w) {
            Some((_, n)) => *n += 1,
            None => why.push((w, 1)),
        }
    }
    for (w, n) in why {
        println!("            {n} x {w}");
    }
    println!("  login     {}", spread(t.logins.clone()));
    println!(
        "  set-up    verto.invite -> its result   {}",
        spread(reports.iter().filter_map(|r| r.invite_reply).collect())
    );
    println!(
        "            verto.invite -> verto.answer {}",
        spread(reports.iter().filter_map(|r| r.answer).collect())
    );
    println!(
        "            verto.invite -> DTLS-SRTP up {}",
        spread(reports.iter().filter_map(|r| r.media).collect())
    );
    let sent: u64 = reports.iter().map(|r| r.sent).sum();
    let matched: u64 = reports.iter().map(|r| r.matched).sum();
    let mismatched: u64 = reports.iter().map(|r| r.mismatched).sum();
    let duplicates: u64 = reports.iter().map(|r| r.duplicates).sum();
    let lost = sent.saturating_sub(matched);
    let mut rtts: Vec<u32> = reports
        .iter()
        .flat_map(|r| r.rtts_us.iter().copied())
        .collect();
    rtts.sort_unstable();
    let us = |p: f64| {
        percentile(&rtts, p)
            .map(|v| format!("{:.2} ms", f64::from(v) / 1e3))
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "  media     sent {sent}, echoed back identical {matched}, mismatched {mismatched}, duplicated {duplicates}; lost {lost} ({:.4} %)",
        if sent > 0 { lost as f64 * 100.0 / sent as f64 } else { 0.0 }
    );
    let reported: Vec<u64> = reports.iter().filter_map(|r| r.lost_inbound).collect();
    println!(
        "            of them lost on the way in (the switch's RTCP, {} calls reporting): {}; UDP datagrams the kernel dropped (whole machine) during the hold: {}",
        reported.len(),
        reported.iter().sum::<u64>(),
        hold_end.udp_errors.saturating_sub(hold_start.udp_errors)
    );
    println!(
        "            echo round trip p50 {} p99 {} p99.9 {} max {}",
        us(0.5),
        us(0.99),
        us(0.999),
        us(1.0)
    );
    let window = hold_end.at.duration_since(hold_start.at).as_secs_f64();
    let core = |ticks: u64| procfs::ticks_to_duration(ticks).as_secs_f64() / window * 100.0;
    let switch_cpu = core(
        hold_end
            .switch
            .cpu_ticks
            .saturating_sub(hold_start.switch.cpu_ticks),
    );
    let my_cpu = core(
        hold_end
            .me
            .cpu_ticks
            .saturating_sub(hold_start.me.cpu_ticks),
    );
    let n = t.up.max(1) as f64;
    println!(
        "  switch    pid {pid}: CPU {switch_cpu:.1} % of one core over the {window:.0} s hold, {:.3} % ({:.0} µs/s) per call",
        switch_cpu / n,
        switch_cpu / n * 1e4
    );
    println!(
        "            RSS {} KiB before -> {} KiB at the end of the hold ({:.1} KiB per call) -> {} KiB after hangup; threads {} -> {} -> {}",
        before.switch.rss_kib,
        hold_end.switch.rss_kib,
        hold_end.switch.rss_kib.saturating_sub(before.switch.rss_kib) as f64 / n,
        after.rss_kib,
        before.switch.threads,
        hold_end.switch.threads,
        after.threads
    );
    println!(
        "            by thread: {}",
        by_name(&hold_start.threads, &hold_end.threads, &core, 4)
    );
    println!(
        "            runnable but waiting for a CPU: {}",
        by_name(
            &hold_start.waits,
            &hold_end.waits,
            &|ns| ns as f64 / 1e9 / window * 100.0,
            3
        )
    );
    println!(
        "  bench     CPU {my_cpu:.1} % of one core (waiting for a CPU {:.1} %), RSS {} -> {} KiB",
        hold_end.me_wait.saturating_sub(hold_start.me_wait) as f64 / 1e9 / window * 100.0,
        before.me.rss_kib,
        hold_end.me.rss_kib
    );
    let me = std::process::id();
    let others: Vec<_> = hold_end
        .processes
        .iter()
        .filter(|(p, _, _)| *p != pid && *p != me)
        .cloned()
        .collect();
    println!(
        "  machine   others {:.1} % of one core ({}); idle {:.1} %, softirq {:.1} %, steal {:.1} %; load average {:.2} -> {:.2}",
        core(cpu_delta(&hold_start.processes, &others)),
        by_name(&hold_start.processes, &others, &core, 3),
        core(hold_end.machine.idle.saturating_sub(hold_start.machine.idle)),
        core(hold_end.machine.softirq.saturating_sub(hold_start.machine.softirq)),
        core(hold_end.machine.steal.saturating_sub(hold_start.machine.steal)),
        hold_start.load,
        hold_end.load
    );
}

/// CPU ticks spent by `end`'s entries since `start`.
fn cpu_delta(start: &[(u32, String, u64)], end: &[(u32, String, u64)]) -> u64 {
    end.iter()
        .map(|(id, _, ticks)| {
            let was = start
                .iter()
                .find(|(i, _, _)| i == id)
                .map_or(0, |(_, _, c)| *c);
            ticks.saturating_sub(was)
        })
        .sum()
}

/// CPU between two looks by thread or process name, busiest `top` first:
/// the total, how many, and the busiest single one.
fn by_name(
    start: &[(u32, String, u64)],
    end: &[(u32, String, u64)],
    core: &impl Fn(u64) -> f64,
    top: usize,
) -> String {
    let mut groups: Vec<(String, u64, usize, u64)> = Vec::new();
    for (tid, name, ticks) in end {
        let was = start
            .iter()
            .find(|(t, _, _)| t == tid)
            .map_or(0, |(_, _, c)| *c);
        let d = ticks.saturating_sub(was);
        match groups.iter_mut().find(|g| g.0 == *name) {
            Some(g) => {
                g.1 += d;
                g.2 += 1;
                g.3 = g.3.max(d);
            }
            None => groups.push((name.clone(), d, 1, d)),
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.1));
    groups
        .iter()
        .filter(|g| g.1 > 0)
        .take(top)
        .map(|(name, total, n, max)| match n {
            1 => format!("{name} {:.1} %", core(*total)),
            _ => format!(
                "{n} x {name} {:.1} % (busiest {:.1} %)",
                core(*total),
                core(*max)
            ),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_range_becomes_every_user_in_it() {
        assert_eq!(
            users("1000-1002@127.0.0.1").unwrap(),
            ["1000@127.0.0.1", "1001@127.0.0.1", "1002@127.0.0.1"]
        );
        assert_eq!(users("1000@127.0.0.1").unwrap(), ["1000@127.0.0.1"]);
        assert!(users("1002-1000@d").is_none());
        assert!(users("1000").is_none());
    }

    #[test]
    fn percentiles_are_values_of_the_sample() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&[7u32], 0.99), Some(7));
        assert_eq!(percentile::<u32>(&[], 0.5), None);
    }
}
