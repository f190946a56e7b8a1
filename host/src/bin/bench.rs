//! `hotswitch-bench`: benchmarks that drive the real `hotswitch` binary.
//!
//! `hotswitch-bench loader [--cycles N] [--module mod_skel]` starts the
//! switch (from this binary's directory) with no modules, then runs N
//! `load` + `unload` cycles of one module over the console pipe and reports
//! the median and p99 cycle time (measured at the client, so pipe latency is
//! included), the switch's RSS before and after, and how many module copies
//! are still mapped and left on disk.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!("usage: hotswitch-bench loader [--cycles N] [--module NAME]");
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("loader") => {}
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
