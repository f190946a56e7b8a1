//! `hotswitch-bench`: benchmarks that drive the real `hotswitch` binary.
//!
//! `hotswitch-bench loader [--cycles N] [--module mod_skel]` starts the
//! switch (from this binary's directory) with no modules, then runs N
//! `load` + `unload` cycles of one module over the console pipe and reports
//! the median and p99 cycle time (measured at the client, so pipe latency is
//! included), the switch's RSS before and after, and how many module copies
//! are still mapped and left on disk.
//!
//! `hotswitch-bench calls [--calls N] [--concurrency W] [--dial D] [--app A]`
//! starts the switch with mod_loopback and mod_dptools and keeps W
//! `bgapi originate <D> <A>` in flight until N have completed, counting
//! the `+OK` / `-ERR` results from BACKGROUND_JOB events: calls per second,
//! failures, and the switch's CPU time per call.
//!
//! `hotswitch-bench tones [--sessions N] [--seconds S]` originates N `null/`
//! calls each playing a tone in real time and reports the pacing timer's
//! lateness (p50/p99/max) over S seconds, and the switch's CPU.
//!
//! `hotswitch-bench dialplan [--extensions N] [--lookups L]` measures XML
//! dialplan lookups per second on one context of N extensions, in process.
//!
//! `hotswitch-bench parked [--sessions N] [--dial D]` originates N calls
//! that park and reports the switch's RSS and thread count per parked
//! session.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!("usage: hotswitch-bench loader [--cycles N] [--module NAME]");
    eprintln!("       hotswitch-bench calls [--calls N] [--concurrency W] [--dial D] [--app A]");
    eprintln!("       hotswitch-bench parked [--sessions N] [--dial D]");
    eprintln!("       hotswitch-bench tones [--sessions N] [--seconds S]");
    eprintln!("       hotswitch-bench dialplan [--extensions N] [--lookups L]");
    eprintln!("       hotswitch-bench events [--subscribers N] [--seconds S] [--load calls|sendevent] [--concurrency W] [--rate EVENTS_PER_S]");
    eprintln!("       hotswitch-bench api [--seconds S] [--command C]");
    eprintln!("       hotswitch-bench stuck [--calls N] [--concurrency W] [--queue-size Q]");
    std::process::exit(2)
}

/// A flag's numeric value, or the usage text.
fn number<T: std::str::FromStr>(v: Option<String>) -> T {
    v.and_then(|v| v.parse().ok()).unwrap_or_else(|| usage())
}

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("loader") => {}
        Some("calls") => {
            let mut n = 20_000usize;
            let mut w = 64usize;
            let mut dial = "loopback/answer\\,park/default/inline".to_string();
            let mut app = "&hangup()".to_string();
            while let Some(a) = args.next() {
                match a.as_str() {
                    "--calls" => n = number(args.next()),
                    "--concurrency" => w = number(args.next()),
                    "--dial" => dial = args.next().unwrap_or_else(|| usage()),
                    "--app" => app = args.next().unwrap_or_else(|| usage()),
                    _ => usage(),
                }
            }
            if let Err(e) = calls(n, w, &dial, &app) {
                eprintln!("bench failed: {e}");
                std::process::exit(1);
            }
            return;
        }
        Some("tones") => {
            let mut n = 100usize;
            let mut secs = 10u64;
            while let Some(a) = args.next() {
                match a.as_str() {
                    "--sessions" => n = number(args.next()),
                    "--seconds" => secs = number(args.next()),
                    _ => usage(),
                }
            }
            if let Err(e) = tones(n, secs) {
                eprintln!("bench failed: {e}");
                std::process::exit(1);
            }
            return;
        }
        Some("dialplan") => {
            let mut n = 1000usize;
            let mut lookups = 200_000usize;
            while let Some(a) = args.next() {
                match a.as_str() {
                    "--extensions" => n = number(args.next()),
                    "--lookups" => lookups = number(args.next()),
                    _ => usage(),
                }
            }
            dialplan(n, lookups);
            return;
        }
        Some("parked") => {
            let mut n = 10_000usize;
            let mut dial = "null/parked".to_string();
            while let Some(a) = args.next() {
                match a.as_str() {
                    "--sessions" => n = number(args.next()),
                    "--dial" => dial = args.next().unwrap_or_else(|| usage()),
                    _ => usage(),
                }
            }
            if let Err(e) = parked(n, &dial) {
                eprintln!("bench failed: {e}");
                std::process::exit(1);
            }
            return;
        }
        Some(cmd @ ("events" | "api" | "stuck")) => {
            let rest: Vec<String> = args.collect();
            let r = match cmd {
                "events" => esl_bench::events(&rest),
                "api" => esl_bench::api(&rest),
                _ => esl_bench::stuck(&rest),
            };
            if let Err(e) = r {
                eprintln!("bench failed: {e}");
                std::process::exit(1);
            }
            return;
        }
        _ => usage(),
    }
    let mut cycles = 10_000usize;
    let mut module = "mod_skel".to_string();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--cycles" => cycles = number(args.next()),
            "--module" => module = args.next().unwrap_or_else(|| usage()),
            _ => usage(),
        }
    }
    if let Err(e) = loader(cycles, &module) {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// (distinct mapped .so files, mapped shadow copies)
fn mapped(pid: u32) -> (usize, usize) {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut libs: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains(".so"))
        .collect();
    libs.sort_unstable();
    libs.dedup();
    let shadows = libs
        .iter()
        .filter(|p| p.contains("hotswitch-shadow-"))
        .count();
    (libs.len(), shadows)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn loader(cycles: usize, module: &str) -> Result<(), String> {
    let bin_dir = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .parent()
        .map(Path::to_path_buf)
        .ok_or("no binary directory")?;
    let switch = bin_dir.join("hotswitch");
    let work = std::env::temp_dir().join(format!("hotswitch-bench-{}", std::process::id()));
    let conf = work.join("conf");
    std::fs::create_dir_all(conf.join("autoload_configs")).map_err(|e| e.to_string())?;
    std::fs::write(
        conf.join("autoload_configs/modules.conf.xml"),
        "<configuration name=\"modules.conf\"><modules/></configuration>\n",
    )
    .map_err(|e| e.to_string())?;
    let mut child = Command::new(&switch)
        .arg("-conf")
        .arg(&conf)
        .arg("-run")
        .arg(&work)
        .arg("-mod")
        .arg(&bin_dir)
        .arg("-loglevel")
        .arg("warning")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("start {}: {e}", switch.display()))?;
    let pid = child.id();
    let mut stdin = child.stdin.take().ok_or("stdin")?;
    let mut out = BufReader::new(child.stdout.take().ok_or("stdout")?);
    let mut line = String::new();
    let mut read_line = |line: &mut String| -> Result<String, String> {
        line.clear();
        out.read_line(line).map_err(|e| e.to_string())?;
        if line.is_empty() {
            return Err("the switch closed its console".into());
        }
        Ok(line.trim_end().to_string())
    };
    let mut cycle = |stdin: &mut std::process::ChildStdin| -> Result<Duration, String> {
        let t = Instant::now();
        writeln!(stdin, "load {module}\nunload {module}").map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())?;
        let a = read_line(&mut line)?;
        let b = read_line(&mut line)?;
        let c = read_line(&mut line)?;
        let took = t.elapsed();
        if a != "+OK Reloading XML" || b != "+OK" || c != "+OK" {
            return Err(format!("unexpected replies: {a:?} {b:?} {c:?}"));
        }
        Ok(took)
    };
    // Warm up: first loads fault in the host's own pages.
    for _ in 0..100 {
        cycle(&mut stdin)?;
    }
    let rss_before = proc_status_kib(pid, "VmRSS:").unwrap_or(0);
    let (libs_before, _) = mapped(pid);
    let threads_before = proc_status_kib(pid, "Threads:").unwrap_or(0);
    let mut times = Vec::with_capacity(cycles);
    let started = Instant::now();
    for _ in 0..cycles {
        times.push(cycle(&mut stdin)?);
    }
    let total = started.elapsed();
    let rss_after = proc_status_kib(pid, "VmRSS:").unwrap_or(0);
    let (libs_after, shadows_after) = mapped(pid);
    let threads_after = proc_status_kib(pid, "Threads:").unwrap_or(0);
    let shadow_files: usize = std::fs::read_dir(&work)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("hotswitch-shadow-")
                })
                .map(|e| std::fs::read_dir(e.path()).map(|x| x.count()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    let _ = writeln!(stdin, "shutdown");
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&work);

    times.sort();
    let so = bin_dir.join(format!("lib{module}.so"));
    let size = std::fs::metadata(&so).map(|m| m.len()).unwrap_or(0);
    println!(
        "hotswitch-bench loader: {cycles} load+unload cycles of {module} ({} KiB .so)",
        size / 1024
    );
    println!(
        "  cycle time  median {:.1} µs   p99 {:.1} µs   max {:.1} µs   ({:.0} cycles/s)",
        percentile(&times, 0.5).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e6,
        cycles as f64 / total.as_secs_f64()
    );
    println!(
        "  RSS         {rss_before} KiB after warm-up -> {rss_after} KiB after ({:+} KiB)",
        rss_after as i64 - rss_before as i64
    );
    println!("  mapped .so  {libs_before} -> {libs_after}; module copies still mapped: {shadows_after}; shadow files left: {shadow_files}");
    println!("  threads     {threads_before} -> {threads_after}");
    let _ = PathBuf::new();
    Ok(())
}

/// A running switch with its console on pipes.
struct Console {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    out: BufReader<std::process::ChildStdout>,
    work: PathBuf,
}

impl Console {
    fn start(modules: &[&str], settings: &str) -> Result<Console, String> {
        let bin_dir = std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .map(Path::to_path_buf)
            .ok_or("no binary directory")?;
        let work = std::env::temp_dir().join(format!("hotswitch-bench-{}", std::process::id()));
        let conf = work.join("conf");
        std::fs::create_dir_all(conf.join("autoload_configs")).map_err(|e| e.to_string())?;
        let loads: String = modules
            .iter()
            .map(|m| format!("<load module=\"{m}\"/>"))
            .collect();
        std::fs::write(
            conf.join("autoload_configs/modules.conf.xml"),
            format!(
                "<configuration name=\"modules.conf\"><modules>{loads}</modules></configuration>\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(
            conf.join("autoload_configs/switch.conf.xml"),
            format!("<configuration name=\"switch.conf\"><settings>{settings}</settings></configuration>\n"),
        )
        .map_err(|e| e.to_string())?;
        let mut child = Command::new(bin_dir.join("hotswitch"))
            .arg("-conf")
            .arg(&conf)
            .arg("-run")
            .arg(&work)
            .arg("-mod")
            .arg(&bin_dir)
            .arg("-loglevel")
            .arg("warning")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start hotswitch: {e}"))?;
        let stdin = child.stdin.take().ok_or("stdin")?;
        let out = BufReader::new(child.stdout.take().ok_or("stdout")?);
        Ok(Console {
            child,
            stdin,
            out,
            work,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        writeln!(self.stdin, "{line}").map_err(|e| e.to_string())
    }

    fn flush(&mut self) -> Result<(), String> {
        self.stdin.flush().map_err(|e| e.to_string())
    }

    fn line(&mut self) -> Result<String, String> {
        let mut l = String::new();
        self.out.read_line(&mut l).map_err(|e| e.to_string())?;
        if l.is_empty() {
            return Err("the switch closed its console".into());
        }
        Ok(l.trim_end_matches('\n').to_string())
    }

    /// Reads until a BACKGROUND_JOB event; returns its body.
    fn next_job_result(&mut self) -> Result<String, String> {
        loop {
            let l = self.line()?;
            if l != "Event-Name: BACKGROUND_JOB" {
                continue;
            }
            loop {
                let h = self.line()?;
                if let Some(n) = h.strip_prefix("Content-Length: ") {
                    let n: usize = n.parse().map_err(|_| "bad Content-Length")?;
                    self.line()?;
                    let mut body = String::new();
                    while body.len() < n {
                        body.push_str(&self.line()?);
                        body.push('\n');
                    }
                    return Ok(body);
                }
            }
        }
    }

    /// Sends a command and reads lines until `expect` matches one.
    fn command_until(
        &mut self,
        cmd: &str,
        expect: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        self.send(cmd)?;
        self.flush()?;
        loop {
            let l = self.line()?;
            if expect(&l) {
                return Ok(l);
            }
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "shutdown");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

const BENCH_SETTINGS: &str = r#"<param name="max-sessions" value="100000"/><param name="sessions-per-second" value="1000000"/>"#;

fn calls(n: usize, w: usize, dial: &str, app: &str) -> Result<(), String> {
    let mut c = Console::start(&["mod_loopback", "mod_dptools"], BENCH_SETTINGS)?;
    c.command_until("/event plain BACKGROUND_JOB", |l| {
        l.starts_with("+OK event listener")
    })?;
    let cmd = format!("bgapi originate {dial} {app}");
    // Warm up the worker pool and the allocator.
    for _ in 0..w.min(n) {
        c.send(&cmd)?;
    }
    c.flush()?;
    for _ in 0..w.min(n) {
        c.next_job_result()?;
    }
    let cpu0 = cpu_seconds(c.pid());
    let t0 = Instant::now();
    let (mut sent, mut done, mut ok, mut failed) = (0usize, 0usize, 0usize, 0usize);
    let mut causes = std::collections::BTreeMap::<String, usize>::new();
    while sent < w.min(n) {
        c.send(&cmd)?;
        sent += 1;
    }
    c.flush()?;
    while done < n {
        let body = c.next_job_result()?;
        done += 1;
        if body.starts_with("+OK") {
            ok += 1;
        } else {
            failed += 1;
            *causes.entry(body.trim().to_string()).or_default() += 1;
        }
        if sent < n {
            c.send(&cmd)?;
            sent += 1;
            c.flush()?;
        }
    }
    let took = t0.elapsed();
    let cpu = cpu_seconds(c.pid()) - cpu0;
    println!("hotswitch-bench calls: {n} x `originate {dial} {app}`, {w} in flight");
    println!(
        "  {:.0} calls/s ({ok} ok, {failed} failed) in {:.2} s; switch CPU {:.2} s = {:.0}% of one core, {:.1} µs per call",
        n as f64 / took.as_secs_f64(),
        took.as_secs_f64(),
        cpu,
        100.0 * cpu / took.as_secs_f64(),
        cpu * 1e6 / n as f64
    );
    for (cause, k) in causes {
        println!("  failed: {k} x {cause}");
    }
    Ok(())
}

fn parked(n: usize, dial: &str) -> Result<(), String> {
    let mut c = Console::start(&["mod_loopback", "mod_dptools"], BENCH_SETTINGS)?;
    c.command_until("/event plain BACKGROUND_JOB", |l| {
        l.starts_with("+OK event listener")
    })?;
    c.command_until("echo ready", |l| l == "ready")?;
    std::thread::sleep(Duration::from_millis(300));
    let pid = c.pid();
    let rss0 = proc_status_kib(pid, "VmRSS:").unwrap_or(0);
    let threads0 = proc_status_kib(pid, "Threads:").unwrap_or(0);
    let cmd = format!("bgapi originate {dial} &park()");
    let w = 64.min(n);
    let (mut sent, mut done, mut failed) = (0usize, 0usize, 0usize);
    while sent < w {
        c.send(&cmd)?;
        sent += 1;
    }
    c.flush()?;
    while done < n {
        let body = c.next_job_result()?;
        done += 1;
        if !body.starts_with("+OK") {
            failed += 1;
        }
        if sent < n {
            c.send(&cmd)?;
            sent += 1;
            c.flush()?;
        }
    }
    let count_line = c.command_until("show channels count", |l| l.ends_with(" total."))?;
    let sessions: u64 = count_line
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    std::thread::sleep(Duration::from_millis(500));
    let rss1 = proc_status_kib(pid, "VmRSS:").unwrap_or(0);
    let threads1 = proc_status_kib(pid, "Threads:").unwrap_or(0);
    println!("hotswitch-bench parked: {n} x `originate {dial} &park()` ({failed} failed)");
    println!("  sessions parked: {sessions}; switch threads {threads0} -> {threads1}");
    println!(
        "  RSS {rss0} KiB -> {rss1} KiB: {:.1} KiB per parked session",
        (rss1.saturating_sub(rss0)) as f64 / sessions.max(1) as f64
    );
    c.command_until("hupall", |l| l.starts_with("+OK hangup all"))?;
    Ok(())
}

fn tones(n: usize, secs: u64) -> Result<(), String> {
    let mut c = Console::start(&["mod_loopback", "mod_dptools"], BENCH_SETTINGS)?;
    c.command_until("/event plain BACKGROUND_JOB", |l| {
        l.starts_with("+OK event listener")
    })?;
    let cmd = "bgapi originate null/tone &playback(tone_stream://%(1000,0,1004);loops=-1)";
    // Keep a bounded number in flight: writing every command before reading
    // any reply would fill both pipes.
    let (mut sent, mut done, mut failed) = (0usize, 0usize, 0usize);
    while done < n {
        while sent < n && sent - done < 32 {
            c.send(cmd)?;
            sent += 1;
        }
        c.flush()?;
        if !c.next_job_result()?.starts_with("+OK") {
            failed += 1;
        }
        done += 1;
    }
    // Let every playback start before measuring.
    std::thread::sleep(Duration::from_millis(500));
    c.command_until("media_stats reset", |l| l == "+OK")?;
    let cpu0 = cpu_seconds(c.pid());
    std::thread::sleep(Duration::from_secs(secs));
    let cpu = cpu_seconds(c.pid()) - cpu0;
    c.send("media_stats")?;
    c.flush()?;
    let mut stats = Vec::new();
    while stats.len() < 4 {
        let l = c.line()?;
        if l.starts_with("frames:") || l.starts_with("late_") {
            stats.push(l);
        }
    }
    let threads = proc_status_kib(c.pid(), "Threads:").unwrap_or(0);
    println!("hotswitch-bench tones: {n} sessions each playing tone_stream://%(1000,0,1004) for {secs} s ({failed} failed to start)");
    println!("  {}", stats.join("  "));
    println!(
        "  switch CPU {:.0}% of one core; {threads} threads",
        100.0 * cpu / secs as f64
    );
    c.command_until("hupall", |l| l.starts_with("+OK hangup all"))?;
    Ok(())
}

struct BenchLookup {
    dest: String,
}

impl hotswitch_core::dialplan_xml::Lookup for BenchLookup {
    fn field(&self, name: &str) -> Option<String> {
        (name == "destination_number").then(|| self.dest.clone())
    }
    fn expand(&self, s: &str) -> String {
        s.to_string()
    }
    fn run_inline(&mut self, _app: &str, _data: &str) {}
}

fn dialplan(n: usize, lookups: usize) {
    let mut text = String::from("<include><context name=\"default\">\n");
    for i in 0..n {
        text.push_str(&format!(
            "<extension name=\"e{i}\"><condition field=\"destination_number\" expression=\"^(2{i:05})$\"><action application=\"bridge\" data=\"user/$1\"/></condition></extension>\n"
        ));
    }
    text.push_str("</context></include>\n");
    let root = hotswitch_core::xml::parse(&text, Path::new("bench.xml")).expect("dialplan parses");
    let now = chrono::Local::now().naive_local();
    let run = |dests: &dyn Fn(usize) -> String| {
        let t = Instant::now();
        let mut hits = 0usize;
        for k in 0..lookups {
            let mut l = BenchLookup { dest: dests(k) };
            if let Ok(Some(h)) = hotswitch_core::dialplan_xml::hunt(&root, "default", &mut l, now) {
                hits += h.actions.len();
            }
        }
        (lookups as f64 / t.elapsed().as_secs_f64(), hits)
    };
    let (last, h1) = run(&|_| format!("2{:05}", n - 1));
    let (spread, h2) = run(&|k| format!("2{:05}", (k * 7919) % n));
    let (miss, h3) = run(&|_| "999".to_string());
    println!(
        "hotswitch-bench dialplan: one context of {n} regex extensions, {lookups} lookups each"
    );
    println!("  last extension: {last:.0} lookups/s; spread over all: {spread:.0} lookups/s; no match: {miss:.0} lookups/s (hits {h1} {h2} {h3})");
}

/// The event-socket benchmarks: `events`, `api` and `stuck`. Each starts
/// the switch with mod_event_socket on a free port and talks to it over raw
/// sockets, as a client library would.
mod esl_bench {
    use super::{cpu_seconds, usage, Console, BENCH_SETTINGS};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    const CALL: &str = "bgapi originate loopback/answer\\,park/default/inline &hangup()";

    fn parse<T: std::str::FromStr>(v: Option<&String>) -> T {
        super::number(v.cloned())
    }

    fn free_port() -> Result<u16, String> {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port: {e}"))
    }

    /// The switch with mod_loopback, mod_dptools and mod_event_socket (on a
    /// free port; `queue_size` frames per client when given); returns it
    /// and the port once the socket accepts.
    fn switch(queue_size: Option<usize>) -> Result<(Console, u16), String> {
        let port = free_port()?;
        // Console::start uses this directory; the file is written first.
        let conf = std::env::temp_dir()
            .join(format!("hotswitch-bench-{}", std::process::id()))
            .join("conf/autoload_configs");
        std::fs::create_dir_all(&conf).map_err(|e| e.to_string())?;
        let queue = queue_size
            .map(|q| format!("<param name=\"queue-size\" value=\"{q}\"/>"))
            .unwrap_or_default();
        std::fs::write(
            conf.join("event_socket.conf.xml"),
            format!(
                "<configuration name=\"event_socket.conf\"><settings>\
                 <param name=\"listen-ip\" value=\"127.0.0.1\"/>\
                 <param name=\"listen-port\" value=\"{port}\"/>\
                 <param name=\"password\" value=\"ClueCon\"/>{queue}\
                 </settings></configuration>\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut c = Console::start(
            &["mod_loopback", "mod_dptools", "mod_event_socket"],
            BENCH_SETTINGS,
        )?;
        c.command_until("echo ready", |l| l == "ready")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("the event socket does not listen on {port}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok((c, port))
    }

    /// A blocking event-socket client for replies (not for event floods).
    struct Esl {
        r: BufReader<TcpStream>,
        w: TcpStream,
    }

    impl Esl {
        fn connect(port: u16) -> Result<Esl, String> {
            let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
            let _ = s.set_nodelay(true);
            let mut c = Esl {
                r: BufReader::with_capacity(256 * 1024, s.try_clone().map_err(|e| e.to_string())?),
                w: s,
            };
            let (h, _) = c.packet()?;
            if !h.contains("auth/request") {
                return Err(format!("unexpected greeting {h:?}"));
            }
            let reply = c.command("auth ClueCon")?;
            if reply != "+OK accepted" {
                return Err(format!("auth: {reply}"));
            }
            Ok(c)
        }

        /// One packet: (header block, body).
        fn packet(&mut self) -> Result<(String, String), String> {
            let mut head = String::new();
            loop {
                let mut l = String::new();
                if self.r.read_line(&mut l).map_err(|e| e.to_string())? == 0 {
                    return Err("the server closed the connection".into());
                }
                if l == "\n" {
                    if head.is_empty() {
                        continue;
                    }
                    break;
                }
                head.push_str(&l);
            }
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            self.r.read_exact(&mut body).map_err(|e| e.to_string())?;
            Ok((head, String::from_utf8_lossy(&body).into_owned()))
        }

        fn send(&mut self, line: &str) -> Result<(), String> {
            self.w
                .write_all(format!("{line}\n\n").as_bytes())
                .map_err(|e| e.to_string())
        }

        /// A command's Reply-Text (or an api response's body), skipping events.
        fn command(&mut self, line: &str) -> Result<String, String> {
            self.send(line)?;
            self.reply()
        }

        fn reply(&mut self) -> Result<String, String> {
            loop {
                let (h, body) = self.packet()?;
                if h.contains("Content-Type: api/response") {
                    return Ok(body);
                }
                if let Some(t) = h.lines().find_map(|l| l.strip_prefix("Reply-Text: ")) {
                    return Ok(t.to_string());
                }
            }
        }
    }

    /// Counts event frames in a byte stream without building them.
    #[derive(Default)]
    struct FrameCounter {
        buf: Vec<u8>,
        /// Bytes of the current body still to skip.
        skip: usize,
        events: u64,
        logs: u64,
        goodbye: bool,
    }

    impl FrameCounter {
        fn push(&mut self, mut bytes: &[u8]) {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
            }
            self.buf.extend_from_slice(bytes);
            let mut pos = 0;
            loop {
                while pos < self.buf.len() && self.buf[pos] == b'\n' {
                    pos += 1;
                }
                let Some(end) = find(&self.buf[pos..], b"\n\n") else {
                    break;
                };
                let head = &self.buf[pos..pos + end];
                let mut len = 0usize;
                let mut kind = 0u8;
                for line in head.split(|b| *b == b'\n') {
                    if let Some(v) = line.strip_prefix(b"Content-Length: ") {
                        len = std::str::from_utf8(v)
                            .ok()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                    } else if line.starts_with(b"Content-Type: text/event-") {
                        kind = 1;
                    } else if line == b"Content-Type: log/data" {
                        kind = 2;
                    } else if line == b"Content-Type: text/disconnect-notice" {
                        kind = 3;
                    }
                }
                match kind {
                    1 => self.events += 1,
                    2 => self.logs += 1,
                    3 => self.goodbye = true,
                    _ => {}
                }
                let body_start = pos + end + 2;
                let avail = self.buf.len() - body_start;
                if avail >= len {
                    pos = body_start + len;
                } else {
                    self.skip = len - avail;
                    pos = self.buf.len();
                    break;
                }
            }
            self.buf.drain(..pos);
        }
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    /// Microseconds since the first call (a clock the threads share).
    fn now_us() -> u64 {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        BASE.get_or_init(Instant::now).elapsed().as_micros() as u64
    }

    /// A subscriber of `event plain ALL` that reads and counts; `last`
    /// holds when (see [`now_us`]) it last counted an event.
    fn subscriber(
        port: u16,
        count: Arc<AtomicU64>,
        last: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
    ) -> Result<std::thread::JoinHandle<bool>, String> {
        let mut c = Esl::connect(port)?;
        let reply = c.command("event plain ALL")?;
        if !reply.starts_with("+OK event listener enabled") {
            return Err(format!("event plain ALL: {reply}"));
        }
        let Esl { r, .. } = c;
        // What the BufReader already holds is counted first.
        let pending = r.buffer().to_vec();
        let mut s = r.into_inner();
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        std::thread::Builder::new()
            .name("subscriber".into())
            .spawn(move || {
                let mut counter = FrameCounter::default();
                counter.push(&pending);
                let mut buf = vec![0u8; 1024 * 1024];
                let mut reported = 0;
                while !stop.load(Ordering::Relaxed) {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => counter.push(&buf[..n]),
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => break,
                    }
                    if counter.events > reported {
                        count.fetch_add(counter.events - reported, Ordering::Relaxed);
                        last.store(now_us(), Ordering::Relaxed);
                        reported = counter.events;
                    }
                }
                counter.goodbye
            })
            .map_err(|e| e.to_string())
    }

    /// Keeps `w` originates in flight on the console until `stop`; counts
    /// completed calls.
    fn call_load(
        c: &mut Console,
        w: usize,
        done: &AtomicU64,
        stop: &AtomicBool,
    ) -> Result<u64, String> {
        let mut failed = 0u64;
        for _ in 0..w {
            c.send(CALL)?;
        }
        c.flush()?;
        let mut in_flight = w;
        while in_flight > 0 {
            let body = c.next_job_result()?;
            in_flight -= 1;
            if !body.starts_with("+OK") {
                failed += 1;
            }
            done.fetch_add(1, Ordering::Relaxed);
            if !stop.load(Ordering::Relaxed) {
                c.send(CALL)?;
                c.flush()?;
                in_flight += 1;
            }
        }
        Ok(failed)
    }

    /// `sendevent` from one connection, `depth` packets in flight: as fast
    /// as replies come back, or paced to `rate` events/s (open loop: the
    /// generator never waits for the subscribers, as a switch's calls do
    /// not).
    fn sendevent_load(
        port: u16,
        depth: usize,
        rate: Option<f64>,
        fired: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
    ) -> Result<std::thread::JoinHandle<()>, String> {
        let mut c = Esl::connect(port)?;
        let packet = b"sendevent CUSTOM\nEvent-Subclass: bench::load\nBench-Header: some value\n\n";
        std::thread::Builder::new()
            .name("sendevent".into())
            .spawn(move || {
                let t0 = Instant::now();
                let (mut sent, mut in_flight) = (0u64, 0usize);
                let mut batch = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let due = rate.map_or(u64::MAX, |r| (r * t0.elapsed().as_secs_f64()) as u64);
                    let n = (depth - in_flight).min(due.saturating_sub(sent) as usize);
                    if n > 0 {
                        batch.clear();
                        for _ in 0..n {
                            batch.extend_from_slice(packet);
                        }
                        if c.w.write_all(&batch).is_err() {
                            return;
                        }
                        sent += n as u64;
                        in_flight += n;
                    } else if in_flight == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                        continue;
                    }
                    // Half the window back before topping up (paced: what
                    // has come back).
                    let keep = if n > 0 || rate.is_none() {
                        depth / 2
                    } else {
                        0
                    };
                    while in_flight > keep {
                        if c.reply().is_err() {
                            return;
                        }
                        in_flight -= 1;
                        fired.fetch_add(1, Ordering::Relaxed);
                        if rate.is_some() && c.r.buffer().is_empty() {
                            break;
                        }
                    }
                }
                while in_flight > 0 && c.reply().is_ok() {
                    in_flight -= 1;
                    fired.fetch_add(1, Ordering::Relaxed);
                }
            })
            .map_err(|e| e.to_string())
    }

    fn own_cpu_seconds() -> f64 {
        cpu_seconds(std::process::id())
    }

    /// CPU seconds of a process's threads, summed by thread name (threads
    /// that ended are not counted).
    fn thread_cpu(pid: u32) -> std::collections::BTreeMap<String, f64> {
        let mut by_name = std::collections::BTreeMap::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return by_name;
        };
        for t in tasks.flatten() {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(") ")) else {
                continue;
            };
            let name = stat[open + 1..close].to_string();
            let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            *by_name.entry(name).or_insert(0.0) += (ticks(11) + ticks(12)) / 100.0;
        }
        by_name
    }

    /// The thread names that used the most CPU between two snapshots.
    fn thread_cpu_delta(
        before: &std::collections::BTreeMap<String, f64>,
        after: &std::collections::BTreeMap<String, f64>,
        secs: f64,
    ) -> String {
        let mut v: Vec<(String, f64)> = after
            .iter()
            .map(|(k, a)| (k.clone(), a - before.get(k).copied().unwrap_or(0.0)))
            .filter(|(_, d)| *d > 0.0)
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v.iter()
            .take(6)
            .map(|(k, d)| format!("{k} {:.0}%", 100.0 * d / secs))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `events`: N subscribers of `event plain ALL` while calls (or
    /// sendevent floods) run for S seconds.
    pub fn events(args: &[String]) -> Result<(), String> {
        let (mut n, mut secs, mut w, mut load) = (1usize, 10u64, 32usize, "calls".to_string());
        let mut rate: Option<f64> = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--rate" => rate = Some(parse(it.next())),
                "--subscribers" => n = parse(it.next()),
                "--seconds" => secs = parse(it.next()),
                "--concurrency" => w = parse(it.next()),
                "--load" => load = it.next().cloned().unwrap_or_else(|| usage()),
                _ => usage(),
            }
        }
        let (mut c, port) = switch(None)?;
        c.command_until("/event plain BACKGROUND_JOB", |l| {
            l.starts_with("+OK event listener")
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let lasts: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let mut readers = Vec::new();
        for (k, l) in counts.iter().zip(&lasts) {
            readers.push(subscriber(port, k.clone(), l.clone(), stop.clone())?);
        }
        // Warm up: a few calls, so that every pool has its threads.
        let warm = AtomicBool::new(true);
        let done = AtomicU64::new(0);
        call_load(&mut c, w, &done, &warm)?;
        std::thread::sleep(Duration::from_millis(300));
        let before: Vec<u64> = counts.iter().map(|k| k.load(Ordering::Relaxed)).collect();
        let (cpu0, own0) = (cpu_seconds(c.pid()), own_cpu_seconds());
        let threads0 = thread_cpu(c.pid());
        let t0 = Instant::now();
        let t0_us = now_us();
        let load_stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let timer = {
            let s = load_stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(secs));
                s.store(true, Ordering::Relaxed);
            })
        };
        let mut failed = 0;
        match load.as_str() {
            "calls" => failed = call_load(&mut c, w, &done, &load_stop)?,
            "sendevent" => {
                let h = sendevent_load(port, w.max(2), rate, done.clone(), load_stop.clone())?;
                let _ = h.join();
            }
            _ => usage(),
        }
        let _ = timer.join();
        let took = t0.elapsed();
        // Events still queued are delivered after the load stops; count
        // them within a second, as delivered late.
        let generated_at = Instant::now();
        let mut last: Vec<u64> = counts.iter().map(|k| k.load(Ordering::Relaxed)).collect();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now: Vec<u64> = counts.iter().map(|k| k.load(Ordering::Relaxed)).collect();
            if now == last || generated_at.elapsed() > Duration::from_secs(5) {
                break;
            }
            last = now;
        }
        let drained = t0.elapsed();
        let cpu = cpu_seconds(c.pid()) - cpu0;
        let threads = thread_cpu_delta(&threads0, &thread_cpu(c.pid()), drained.as_secs_f64());
        let own = own_cpu_seconds() - own0;
        stop.store(true, Ordering::Relaxed);
        let cut_off = readers
            .into_iter()
            .filter_map(|r| r.join().ok())
            .filter(|g| *g)
            .count();
        let got: Vec<u64> = counts
            .iter()
            .zip(&before)
            .map(|(k, b)| k.load(Ordering::Relaxed) - b)
            .collect();
        let total: u64 = got.iter().sum();
        let per = total as f64 / n as f64;
        let calls = done.load(Ordering::Relaxed);
        // Rates over the time until the last event arrived (not less than
        // the load ran), not over the wait that confirmed no more came.
        let last_us = lasts
            .iter()
            .map(|l| l.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        let delivered_in = took.max(Duration::from_micros(last_us.saturating_sub(t0_us)));
        let what = if load == "calls" {
            format!(
                "calls ({w} in flight of `{}`)",
                CALL.trim_start_matches("bgapi ")
            )
        } else {
            let pace = rate.map_or("as fast as replies come".into(), |r| {
                format!("paced to {r:.0}/s")
            });
            format!("sendevent CUSTOM from one connection ({w} in flight, {pace})")
        };
        println!("hotswitch-bench events: {n} subscriber(s) of `event plain ALL`, load: {what}, {secs} s");
        println!(
            "  load: {calls} {} in {:.2} s = {:.0}/s ({failed} failed)",
            if load == "calls" {
                "calls"
            } else {
                "events fired"
            },
            took.as_secs_f64(),
            calls as f64 / took.as_secs_f64()
        );
        println!(
            "  delivered: {:.0} events/s per subscriber, {:.0} events/s in total, the last {:.2} s after the start ({} events per {}; min {} max {} per subscriber; {cut_off} cut off)",
            per / delivered_in.as_secs_f64(),
            total as f64 / delivered_in.as_secs_f64(),
            delivered_in.as_secs_f64(),
            if calls > 0 { format!("{:.1}", per / calls as f64) } else { "-".into() },
            if load == "calls" { "call" } else { "fired event" },
            got.iter().min().unwrap_or(&0),
            got.iter().max().unwrap_or(&0),
        );
        if load != "calls" {
            let lost = calls.saturating_sub(got.iter().copied().min().unwrap_or(0));
            println!(
                "  {}",
                if lost == 0 && cut_off == 0 {
                    "lossless: every subscriber got every fired event".to_string()
                } else {
                    format!("NOT lossless: {lost} event(s) missing at the worst subscriber, {cut_off} cut off")
                }
            );
        }
        println!(
            "  switch CPU {:.2} s = {:.0}% of one core ({:.2} µs per delivered event); bench process CPU {:.0}% of one core",
            cpu,
            100.0 * cpu / drained.as_secs_f64(),
            cpu * 1e6 / total.max(1) as f64,
            100.0 * own / drained.as_secs_f64()
        );
        println!("  switch threads (% of one core): {threads}");
        Ok(())
    }

    /// `api`: `api <command>` round trips on one connection.
    pub fn api(args: &[String]) -> Result<(), String> {
        let (mut secs, mut cmd) = (10u64, "status".to_string());
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--seconds" => secs = parse(it.next()),
                "--command" => cmd = it.next().cloned().unwrap_or_else(|| usage()),
                _ => usage(),
            }
        }
        let (c, port) = switch(None)?;
        let mut e = Esl::connect(port)?;
        let line = format!("api {cmd}");
        for _ in 0..1000 {
            e.command(&line)?;
        }
        let cpu0 = cpu_seconds(c.pid());
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(secs);
        let mut times = Vec::new();
        while Instant::now() < end {
            let t = Instant::now();
            let r = e.command(&line)?;
            times.push(t.elapsed());
            if r.starts_with("-ERR") {
                return Err(format!("{line}: {r}"));
            }
        }
        let took = t0.elapsed();
        let cpu = cpu_seconds(c.pid()) - cpu0;
        times.sort();
        println!("hotswitch-bench api: `{line}` round trips on one connection for {secs} s");
        println!(
            "  {:.0} round trips/s; latency p50 {:.1} µs p99 {:.1} µs; switch CPU {:.0}% of one core, {:.1} µs per command",
            times.len() as f64 / took.as_secs_f64(),
            super::percentile(&times, 0.5).as_secs_f64() * 1e6,
            super::percentile(&times, 0.99).as_secs_f64() * 1e6,
            100.0 * cpu / took.as_secs_f64(),
            cpu * 1e6 / times.len().max(1) as f64
        );
        Ok(())
    }

    /// Runs `n` calls, `w` in flight; returns (calls/s, failed).
    fn timed_calls(c: &mut Console, n: usize, w: usize) -> Result<(f64, u64, f64), String> {
        let cpu0 = cpu_seconds(c.pid());
        let t0 = Instant::now();
        let (mut sent, mut done, mut failed) = (0usize, 0usize, 0u64);
        while sent < w.min(n) {
            c.send(CALL)?;
            sent += 1;
        }
        c.flush()?;
        while done < n {
            if !c.next_job_result()?.starts_with("+OK") {
                failed += 1;
            }
            done += 1;
            if sent < n {
                c.send(CALL)?;
                c.flush()?;
                sent += 1;
            }
        }
        let took = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds(c.pid()) - cpu0;
        Ok((n as f64 / took, failed, 100.0 * cpu / took))
    }

    /// `stuck`: the call rate with no subscriber, with a subscriber of
    /// `event plain ALL` that never reads, with none again, and (for
    /// comparison) with one that reads.
    pub fn stuck(args: &[String]) -> Result<(), String> {
        let (mut n, mut w, mut q) = (20_000usize, 64usize, None);
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--calls" => n = parse(it.next()),
                "--concurrency" => w = parse(it.next()),
                "--queue-size" => q = Some(parse(it.next())),
                _ => usage(),
            }
        }
        let (mut c, port) = switch(q)?;
        c.command_until("/event plain BACKGROUND_JOB", |l| {
            l.starts_with("+OK event listener")
        })?;
        timed_calls(&mut c, w * 4, w)?;
        let (r1, f1, cpu1) = timed_calls(&mut c, n, w)?;
        // The stuck client: subscribes to everything, then never reads.
        let mut stuck = Esl::connect(port)?;
        let reply = stuck.command("event plain ALL")?;
        if !reply.starts_with("+OK") {
            return Err(format!("event plain ALL: {reply}"));
        }
        let t_stuck = Instant::now();
        // The switch logs (with its time) when it cuts the client off.
        let subscribed_at = chrono::Local::now().format("%H:%M:%S%.6f");
        let (r2, f2, cpu2) = timed_calls(&mut c, n / 2, w)?;
        let (r2b, f2b, cpu2b) = timed_calls(&mut c, n / 2, w)?;
        let with_took = t_stuck.elapsed();
        // Read what the stuck client was sent: was it cut off?
        let _ = stuck
            .r
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(2)));
        let mut counter = FrameCounter::default();
        counter.push(stuck.r.buffer());
        let mut buf = vec![0u8; 1024 * 1024];
        let mut bytes = 0usize;
        let mut closed = false;
        loop {
            match stuck.r.get_mut().read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(k) => {
                    bytes += k;
                    counter.push(&buf[..k]);
                }
                Err(_) => break,
            }
        }
        drop(stuck);
        let (r3, f3, cpu3) = timed_calls(&mut c, n, w)?;
        // For comparison: a subscriber of everything that does read.
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(AtomicU64::new(0));
        let reader = subscriber(port, got.clone(), Arc::default(), stop.clone())?;
        let (r4, f4, cpu4) = timed_calls(&mut c, n, w)?;
        stop.store(true, Ordering::Relaxed);
        let _ = reader.join();
        let queue = q
            .map(|q| q.to_string())
            .unwrap_or_else(|| "default (10000)".into());
        println!(
            "hotswitch-bench stuck: {n} calls per phase, {w} in flight, `{}`; event socket queue-size {queue}",
            CALL.trim_start_matches("bgapi ")
        );
        println!("  no subscriber:                      {r1:.0} calls/s ({f1} failed), switch CPU {cpu1:.0}%");
        println!(
            "  a stuck subscriber of ALL:          {r2:.0} calls/s ({f2} failed), switch CPU {cpu2:.0}% in the first half; {r2b:.0} calls/s ({f2b} failed), CPU {cpu2b:.0}% in the second (phase took {:.2} s)",
            with_took.as_secs_f64()
        );
        println!("  no subscriber again:                {r3:.0} calls/s ({f3} failed), switch CPU {cpu3:.0}%");
        println!(
            "  a reading subscriber of ALL:        {r4:.0} calls/s ({f4} failed), switch CPU {cpu4:.0}% ({} events read)",
            got.load(Ordering::Relaxed)
        );
        println!("  the stuck client subscribed at {subscribed_at} (the switch's warning above says when it was cut off)");
        println!(
            "  the stuck client, read afterwards: {} events ({} bytes) then {}",
            counter.events,
            bytes,
            match (counter.goodbye, closed) {
                (true, _) => "the disconnect notice: it had been cut off",
                (false, true) => "the connection closed (no notice: its socket buffer was full): it had been cut off",
                (false, false) => "nothing more: still connected",
            }
        );
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::FrameCounter;

        #[test]
        fn frames_are_counted_however_the_stream_is_cut() {
            // Bodies hold blank lines and header-like lines; only the frames count.
            let one: &[u8] =
                b"Content-Length: 12\nContent-Type: text/event-plain\n\nA: b\nC: dd\n\n";
            let mut stream = Vec::new();
            for _ in 0..5 {
                stream.extend_from_slice(one);
            }
            stream.extend_from_slice(
                b"Content-Type: log/data\nContent-Length: 32\n\nContent-Type: text/event-plain\n\n",
            );
            stream.extend_from_slice(
                b"Content-Type: text/disconnect-notice\nContent-Length: 3\n\nbye",
            );
            for cut in 1..stream.len() {
                let mut c = FrameCounter::default();
                for chunk in stream.chunks(cut) {
                    c.push(chunk);
                }
                assert_eq!((c.events, c.logs), (5, 1), "chunks of {cut}");
                assert!(c.goodbye);
            }
        }
    }
}
