//! The simulator's line protocol, one command per line on stdin, one reply
//! line (`+OK …` or `-ERR …`) each on stdout; events arrive on their own
//! lines as `EVENT …`. A person types the same commands a test sends.
//!
//! ```text
//! offhook <ch>            onhook <ch>           dial <ch> <digits>
//! tone <ch> <hz>          silence <ch>          clear <ch>
//! power <ch> <hz> [<ms>]  → +OK <share of the tone, 0..1>
//! digits <ch>             → +OK <DTMF digits heard so far>
//! autoanswer <ch> on|off  ring <ch> on|off      hello
//! call <called> [<calling> [<chan>]]            → +OK <call id>
//! proceeding|alert|progress|answer <call>       hangup <call> [<cause>]
//! auto off|alert|answer|busy                   (ISDN: handle SETUPs alone)
//! status                  help                  quit
//! ```

use crate::Sim;
use mod_freetdm::q931::CallId;

/// The help text.
pub const HELP: &str = "offhook <ch> | onhook <ch> | dial <ch> <digits> | tone <ch> <hz> | silence <ch> | \
clear <ch> | power <ch> <hz> [<ms>] | digits <ch> | autoanswer <ch> on|off | ring <ch> on|off | hello | \
call <called> [<calling> [<chan>]] | proceeding|alert|progress|answer <call> | hangup <call> [<cause>] | auto off|alert|answer|busy | status | quit";

fn num<T: std::str::FromStr>(w: Option<&&str>, what: &str) -> Result<T, String> {
    w.ok_or_else(|| format!("missing {what}"))?
        .parse()
        .map_err(|_| format!("bad {what}"))
}

fn on_off(w: Option<&&str>) -> Result<bool, String> {
    match w.copied() {
        Some("on") => Ok(true),
        Some("off") => Ok(false),
        _ => Err("expected on or off".into()),
    }
}

/// Runs one command; the reply line (without newline).
pub fn execute(sim: &Sim, line: &str) -> String {
    let w: Vec<&str> = line.split_whitespace().collect();
    let Some(cmd) = w.first() else {
        return String::new();
    };
    let r: Result<String, String> = (|| {
        let ok = |_: ()| "+OK".to_string();
        match *cmd {
            "offhook" => sim.offhook(num(w.get(1), "channel")?).map(ok),
            "onhook" => sim.onhook(num(w.get(1), "channel")?).map(ok),
            "dial" => sim
                .dial(num(w.get(1), "channel")?, w.get(2).ok_or("missing digits")?)
                .map(ok),
            "tone" => sim
                .tone(num(w.get(1), "channel")?, num(w.get(2), "frequency")?)
                .map(ok),
            "silence" => sim.tone(num(w.get(1), "channel")?, 0.0).map(ok),
            "clear" => sim.clear(num(w.get(1), "channel")?).map(ok),
            "power" => {
                let ms = if w.len() > 3 {
                    num(w.get(3), "milliseconds")?
                } else {
                    500
                };
                sim.power(num(w.get(1), "channel")?, num(w.get(2), "frequency")?, ms)
                    .map(|p| format!("+OK {p:.4}"))
            }
            "digits" => sim
                .heard_digits(num(w.get(1), "channel")?)
                .map(|d| format!("+OK {d}")),
            "autoanswer" => sim
                .auto_answer(num(w.get(1), "channel")?, on_off(w.get(2))?)
                .map(ok),
            "ring" => sim
                .ring(num(w.get(1), "channel")?, on_off(w.get(2))?)
                .map(ok),
            "auto" => {
                let a = w
                    .get(1)
                    .and_then(|a| crate::Auto::from_name(a))
                    .ok_or("expected off, alert, answer or busy")?;
                sim.set_auto(a);
                Ok("+OK".into())
            }
            "hello" => {
                sim.hello();
                Ok("+OK".into())
            }
            "call" => {
                let called = w.get(1).ok_or("missing number")?;
                let calling = w.get(2).copied().unwrap_or("");
                let chan = if w.len() > 3 {
                    Some(num(w.get(3), "channel")?)
                } else {
                    None
                };
                Ok(format!("+OK {}", sim.call(called, calling, chan).0))
            }
            "proceeding" | "alert" | "progress" | "answer" | "hangup" => {
                let call = CallId(num(w.get(1), "call")?);
                let cause = if w.len() > 2 {
                    num(w.get(2), "cause")?
                } else {
                    16
                };
                sim.isdn(cmd, call, cause).map(ok)
            }
            "status" => Ok(format!("+OK {}", sim.status().join(" | "))),
            "help" => Ok(format!("+OK {HELP}")),
            _ => Err(format!("unknown command {cmd}; try help")),
        }
    })();
    r.unwrap_or_else(|e| format!("-ERR {e}"))
}
