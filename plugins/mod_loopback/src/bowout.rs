//! Bowout: a loopback pair that only connects two real channels drops out
//! of the call, and the two are bridged directly — FreeSWITCH's
//! `loopback_bowout` (on by default; `loopback_bowout=false` on either leg
//! vetoes it).
//!
//! As in FreeSWITCH, the A leg checks on each frame written to it: when
//! both legs are answered and each is bridged (its `bridge_uuid`) to a
//! channel that is not a loopback one — following chains of loopback pairs
//! — for 2 s of frames (100 × 20 ms), the switch's `uuid_bridge` connects
//! the two real channels. Their old peers, the loopback legs, are left
//! without a bridge and hang up; they carry `loopback_hangup_cause=bridge`
//! and `loopback_bowout_other_uuid`. `loopback.conf` settings:
//! `fire-bowout-on-bridge` (fire `CUSTOM loopback::direct` on both legs),
//! `bowout-controlled-hangup` and `bowout-hangup-cause` (hang the loopback
//! legs up at once with that cause, default NORMAL_UNSPECIFIED).
//!
//! On execute: a leg that enters CS_EXECUTE with
//! `loopback_bowout_on_execute=true` while the other leg is bridged to a
//! real channel hands its extension to that channel and leaves — `CUSTOM
//! loopback::bowout` (Resigning-UUID, Resigning-Peer-UUID, Acquired-UUID),
//! `loopback_hangup_cause=bowout`, and a hangup with `bowout-hangup-cause`.
//! FreeSWITCH gives the real channel the leg's caller profile and hunted
//! extension; here the real channel is transferred to the leg's destination,
//! dialplan and context, and hunts it again.

use crate::{other_uuid, Leg};
use hotswitch_plugin_api::config::Element;
use hotswitch_plugin_api::sync::Mutex;
use hotswitch_plugin_api::{log, CallCause, ModuleContext, Session};
use std::sync::atomic::Ordering;

/// Frames the A leg writes with every condition met before it bows out:
/// FreeSWITCH's two seconds of packets.
pub const BOWOUT_FRAMES: i32 = 100;

/// How deep a chain of loopback pairs is followed to its real channel.
const MAX_CHAIN: usize = 8;

/// The `loopback.conf` settings bowout reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub fire_direct: bool,
    pub controlled_hangup: bool,
    pub hangup_cause: CallCause,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            fire_direct: false,
            controlled_hangup: false,
            hangup_cause: CallCause::NORMAL_UNSPECIFIED,
        }
    }
}

impl Settings {
    /// From the text of the `loopback.conf` section.
    pub fn parse(conf: &str) -> Settings {
        let mut s = Settings::default();
        let root = match Element::parse(conf) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("loopback.conf: {e}; using the defaults");
                return s;
            }
        };
        for p in root.descendants("param") {
            let (Some(name), Some(value)) = (p.attr("name"), p.attr("value")) else {
                continue;
            };
            let (name, value) = (name.to_string(), value.to_string());
            match name.as_str() {
                "fire-bowout-on-bridge" => s.fire_direct = switch_true(&value),
                "bowout-controlled-hangup" => s.controlled_hangup = switch_true(&value),
                "bowout-hangup-cause" => match CallCause::from_name(&value) {
                    Some(c) => s.hangup_cause = c,
                    None => log::warn!("loopback.conf: unknown bowout-hangup-cause {value}"),
                },
                _ => {}
            }
        }
        s
    }
}

static SETTINGS: Mutex<Option<Settings>> = Mutex::new(None);

/// Reads `loopback.conf` (at load).
pub fn configure(m: &ModuleContext) {
    let s = m
        .config_section("loopback.conf")
        .map(|c| Settings::parse(&c))
        .unwrap_or_default();
    *SETTINGS.lock() = Some(s);
}

fn settings() -> Settings {
    SETTINGS.lock().clone().unwrap_or_default()
}

/// FreeSWITCH's `switch_true`.
fn switch_true(v: &str) -> bool {
    [
        "yes", "on", "true", "t", "enable", "enabled", "active", "allow",
    ]
    .iter()
    .any(|w| v.eq_ignore_ascii_case(w))
        || v.trim().parse::<i64>().is_ok_and(|n| n != 0)
}

/// FreeSWITCH's `switch_false`.
fn switch_false(v: &str) -> bool {
    [
        "no", "off", "false", "f", "disable", "disabled", "inactive", "disallow",
    ]
    .iter()
    .any(|w| v.eq_ignore_ascii_case(w))
        || v.trim().parse::<i64>().is_ok_and(|n| n == 0)
}

/// The channel `leg` is bridged to, past any loopback pairs that would bow
/// out themselves (FreeSWITCH's `find_non_loopback_bridge`).
fn real_peer(ctx: &ModuleContext, leg: &Session) -> Option<String> {
    let mut uuid = leg.var("bridge_uuid")?;
    for _ in 0..MAX_CHAIN {
        let s = ctx.session_locate(&uuid)?;
        if s.var("loopback_leg").is_none()
            || s.var("loopback_bowout").is_some_and(|v| switch_false(&v))
        {
            return Some(uuid);
        }
        let other = ctx.session_locate(&s.var("other_loopback_leg_uuid")?)?;
        uuid = other.var("bridge_uuid")?;
    }
    None
}

/// Called for each frame written to the A leg `a`; true when the pair has
/// bowed out (the frame is then dropped, as are all after it).
pub fn check(a: &Session, l: &Leg) -> bool {
    let pair = &l.pair;
    if pair.bowed_out.load(Ordering::Acquire) {
        return true;
    }
    if !pair.answered.load(Ordering::Acquire) || a.var("bridge_uuid").is_none() {
        return false;
    }
    let ctx = ModuleContext::current();
    let Some(b) = ctx.session_locate(&other_uuid(l)) else {
        return false;
    };
    if b.var("bridge_uuid").is_none() || pair.frames.fetch_sub(1, Ordering::AcqRel) > 1 {
        return false;
    }
    let allowed = |s: &Session| s.var("loopback_bowout").is_none_or(|v| switch_true(&v));
    if !allowed(a) || !allowed(&b) {
        return false;
    }
    let (Some(x), Some(y)) = (real_peer(&ctx, a), real_peer(&ctx, &b)) else {
        return false;
    };
    let bridged = |u: &str| {
        ctx.session_locate(u)
            .is_some_and(|s| s.var("bridge_uuid").is_some())
    };
    if !bridged(&x) || !bridged(&y) || pair.bowed_out.swap(true, Ordering::AcqRel) {
        return pair.bowed_out.load(Ordering::Acquire);
    }
    let (a_uuid, b_uuid) = (a.uuid(), b.uuid());
    let cfg = settings();
    if cfg.fire_direct {
        for (leg, me, peer, conn_a, conn_b) in [
            (a, &a_uuid, &b_uuid, &x, &y),
            (&*b, &b_uuid, &a_uuid, &y, &x),
        ] {
            let fired = leg.fire_event(
                hotswitch_plugin_api::EventId::CUSTOM.id(),
                "loopback::direct",
                &[
                    ("Resigning-UUID", me),
                    ("Resigning-Peer-UUID", peer),
                    ("Connecting-Leg-A-UUID", conn_a),
                    ("Connecting-Leg-B-UUID", conn_b),
                ],
                "",
            );
            if let Err(e) = fired {
                log::warn!("loopback::direct on {me}: {e}");
            }
        }
    }
    // Set before the bridge, which ends the legs' own bridges and so their
    // lives: their hangup events carry them.
    for (leg, real) in [(a, &x), (&*b, &y)] {
        leg.set_var("loopback_hangup_cause", "bridge");
        leg.set_var("loopback_bowout_other_uuid", real);
    }
    let reply = ctx.execute_api("uuid_bridge", &format!("{x} {y}"));
    if !reply.as_deref().is_ok_and(|r| r.starts_with("+OK")) {
        // FreeSWITCH would stay bowed out with no bridge; carry on instead.
        log::warn!("bowout of {a_uuid}/{b_uuid}: uuid_bridge {x} {y} answered {reply:?}");
        for leg in [a, &*b] {
            leg.set_var("loopback_hangup_cause", "");
            leg.set_var("loopback_bowout_other_uuid", "");
        }
        pair.frames.store(BOWOUT_FRAMES, Ordering::Release);
        pair.bowed_out.store(false, Ordering::Release);
        return false;
    }
    log::info!("bowout: {x} and {y} bridged directly; loopback {a_uuid}/{b_uuid} drops out");
    if cfg.controlled_hangup {
        a.hangup(cfg.hangup_cause);
        b.hangup(cfg.hangup_cause);
    }
    true
}

/// Called when leg `s` enters CS_EXECUTE; true when it bowed out (and is
/// hanging up, so its extension must not run).
pub fn on_execute(s: &Session, l: &Leg) -> bool {
    if !s
        .var("loopback_bowout_on_execute")
        .is_some_and(|v| switch_true(&v))
    {
        return false;
    }
    let ctx = ModuleContext::current();
    let peer_uuid = other_uuid(l);
    let Some(peer) = ctx.session_locate(&peer_uuid) else {
        return false;
    };
    let Some(x) = real_peer(&ctx, &peer) else {
        return false;
    };
    let Some(real) = ctx.session_locate(&x) else {
        return false;
    };
    if l.pair.bowed_out.swap(true, Ordering::AcqRel) {
        return false;
    }
    let me = s.uuid();
    log::info!("bowout on execute: {x} takes over {me}'s call");
    let fired = ctx.fire_event(
        hotswitch_plugin_api::EventId::CUSTOM.id(),
        "loopback::bowout",
        &[
            ("Resigning-UUID", &me),
            ("Resigning-Peer-UUID", &peer_uuid),
            ("Acquired-UUID", &x),
        ],
        "",
    );
    if let Err(e) = fired {
        log::warn!("loopback::bowout on {me}: {e}");
    }
    s.set_var("loopback_hangup_cause", "bowout");
    s.set_var("loopback_bowout_other_uuid", &x);
    let field = |n: &str| s.var(n).unwrap_or_default();
    if let Err(e) = real.transfer(
        &field("destination_number"),
        &field("dialplan"),
        &field("context"),
    ) {
        log::warn!("bowout on execute: transfer of {x}: {e}");
    }
    s.hangup(settings().hangup_cause);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_loopback_conf_with_freeswitchs_defaults() {
        assert_eq!(Settings::parse(""), Settings::default());
        let s = Settings::parse(
            r#"<configuration name="loopback.conf"><settings>
                 <param name="fire-bowout-on-bridge" value="true"/>
                 <param name="bowout-controlled-hangup" value="yes"/>
                 <param name="bowout-hangup-cause" value="NORMAL_CLEARING"/>
               </settings></configuration>"#,
        );
        assert_eq!(
            s,
            Settings {
                fire_direct: true,
                controlled_hangup: true,
                hangup_cause: CallCause::NORMAL_CLEARING,
            }
        );
    }

    #[test]
    fn true_and_false_are_freeswitchs_words() {
        assert!(switch_true("TRUE") && switch_true("1") && !switch_true("maybe"));
        assert!(switch_false("off") && switch_false("0") && !switch_false("maybe"));
    }
}
