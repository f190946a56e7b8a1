//! `hotswitch-linesim`: attach to a virtual span and take commands on
//! stdin (see [`hotswitch_linesim::protocol`]), or `bench` (see
//! [`hotswitch_linesim::bench`]).
//!
//! ```text
//! hotswitch-linesim --dir /tmp/hotswitch-freetdm/1 --mode phones --channels 1-4 [--codec PCMU] [--d-channel 24]
//! hotswitch-linesim bench [--max 400] [--steps 10,25,…] [--seconds 10] [--trials 3] [--dtmf-detect true] [--hotswitch PATH] [--mod-dir DIR]
//! ```

use hotswitch_linesim::{protocol, Mode, Options, Sim};
use mod_freetdm::config::parse_range;
use mod_freetdm::g711::Law;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: hotswitch-linesim --dir <socket-dir> --mode phones|exchange|network|user --channels <range> \
         [--codec PCMU|PCMA] [--d-channel <n>]\n       hotswitch-linesim bench [--max <channels>] \
         [--steps <n,n,…>] [--seconds <s>] [--trials <n>] [--dtmf-detect true|false] [--hotswitch <path>] [--mod-dir <dir>]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("bench") {
        return match hotswitch_linesim::bench::run(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut dir = None;
    let mut mode = Mode::Phones;
    let mut channels = Vec::new();
    let mut law = Law::Ulaw;
    let mut d_channel = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next();
        match (a.as_str(), v) {
            ("--dir", Some(v)) => dir = Some(PathBuf::from(v)),
            ("--mode", Some(v)) => match Mode::from_name(v) {
                Some(m) => mode = m,
                None => return usage(),
            },
            ("--channels", Some(v)) => match parse_range(v) {
                Ok(c) => channels = c,
                Err(e) => {
                    eprintln!("{e}");
                    return usage();
                }
            },
            ("--codec", Some(v)) => match Law::from_name(v) {
                Some(l) => law = l,
                None => return usage(),
            },
            ("--d-channel", Some(v)) => match v.parse() {
                Ok(d) => d_channel = Some(d),
                Err(_) => return usage(),
            },
            _ => return usage(),
        }
    }
    let Some(dir) = dir else { return usage() };
    if channels.is_empty() {
        return usage();
    }
    let d_channel = d_channel.unwrap_or(channels.iter().max().copied().unwrap_or(0) + 1);
    let sim = match Sim::open(
        Options {
            dir,
            mode,
            law,
            channels,
            d_channel,
        },
        |e| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "EVENT {e}");
            let _ = out.flush();
        },
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot attach: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("+OK ready");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line == "quit" || line == "exit" {
            break;
        }
        if line.is_empty() {
            continue;
        }
        let reply = protocol::execute(&sim, line);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{reply}");
        let _ = out.flush();
    }
    drop(sim);
    println!("+OK bye");
    ExitCode::SUCCESS
}
