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
    std::process::exit(2)
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
                    "--calls" => {
                        n = args
                            .next()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or_else(|| usage())
                    }
                    "--concurrency" => {
                        w = args
                            .next()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or_else(|| usage())
                    }
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
                    "--sessions" => {
                        n = args
                            .next()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or_else(|| usage())
                    }
                    "--seconds" => {
                        secs = args
                            .next()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or_else(|| usage())
                    }
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
                    "--extensions" => {
                        n = args
                            .next()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or_else(|| usage())
                    }
                    "--lookups" => {
                        lookups = args
                            .next()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or_else(|| usage())
                    }
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
                    "--sessions" => {
                        n = args
                            .next()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or_else(|| usage())
                    }
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
        _ => usage(),
    }
    let mut cycles = 10_000usize;
    let mut module = "mod_skel".to_string();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--cycles" => {
                cycles = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
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

impl hotswitch::dialplan_xml::Lookup for BenchLookup {
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
    let root = hotswitch::xml::parse(&text, Path::new("bench.xml")).expect("dialplan parses");
    let now = chrono::Local::now().naive_local();
    let run = |dests: &dyn Fn(usize) -> String| {
        let t = Instant::now();
        let mut hits = 0usize;
        for k in 0..lookups {
            let mut l = BenchLookup { dest: dests(k) };
            if let Ok(Some(h)) = hotswitch::dialplan_xml::hunt(&root, "default", &mut l, now) {
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
