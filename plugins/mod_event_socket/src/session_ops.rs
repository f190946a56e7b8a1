//! What commands do to sessions and the event bus, through the host's
//! services: `sendmsg`, `sendevent`, channel variables, the outbound
//! `connect` reply, and resuming the dialplan after an outbound socket.

use crate::command::CallCommand;
use crate::frames;
use crate::outbound::Link;
use crate::selection::{event_id, ALL};
use hotswitch_plugin_api::{CallCause, ChannelState, ModuleContext};

/// `Some(channel name)` when the session is gone or hanging up.
pub fn gone(uuid: &str) -> Option<String> {
    match ModuleContext::current().session_locate(uuid) {
        None => Some(String::new()),
        Some(s) if s.is_down() => Some(s.var("channel_name").unwrap_or_default()),
        Some(_) => None,
    }
}

/// True when a session with this uuid exists.
pub fn exists(uuid: &str) -> bool {
    ModuleContext::current().session_locate(uuid).is_some()
}

/// A channel variable of a session.
pub fn get_var(uuid: &str, name: &str) -> Option<String> {
    ModuleContext::current().session_locate(uuid)?.var(name)
}

/// Sets a channel variable of a session.
pub fn set_var(uuid: &str, name: &str, value: &str) {
    if let Some(s) = ModuleContext::current().session_locate(uuid) {
        s.set_var(name, value);
    }
}

/// FreeSWITCH's `str2cause`: a name (any case), digits, or else
/// NORMAL_CLEARING.
pub fn cause(s: &str) -> CallCause {
    let s = s.trim();
    if let Ok(n) = s.parse::<u32>() {
        return CallCause(n);
    }
    CallCause::from_name(&s.to_ascii_uppercase()).unwrap_or(CallCause::NORMAL_CLEARING)
}

/// `sendmsg`: runs a call command on the named session, or on the
/// controlled one. Returns the reply text.
pub async fn sendmsg(
    uuid: Option<&str>,
    controlled: Option<&str>,
    link: Option<&Link>,
    message: CallCommand,
) -> String {
    let explicit = uuid.filter(|u| Some(*u) != controlled);
    let Some(target) = explicit.or(controlled) else {
        return "-ERR invalid session id []".into();
    };
    match &message {
        CallCommand::Missing => return "-ERR missing call-command".into(),
        CallCommand::Unsupported(c) => {
            return format!("-ERR call-command {c} is not supported (supported: execute, hangup)")
        }
        CallCommand::Execute { app, .. } if app.is_empty() => {
            return "-ERR missing execute-app-name".into()
        }
        _ => {}
    }
    // A static outbound socket runs its own session's applications on the
    // call's thread, and answers when they are done.
    if let (
        None,
        Some(link),
        CallCommand::Execute {
            app, arg, loops, ..
        },
    ) = (explicit, link, &message)
    {
        if link.run_on_call_thread(app, arg, *loops).await {
            return "+OK".into();
        }
    }
    let Some(s) = ModuleContext::current().session_locate(target) else {
        return format!("-ERR invalid session id [{target}]");
    };
    match message {
        CallCommand::Execute {
            app,
            arg,
            loops,
            event_uuid,
            ..
        } => match s.queue_application(&app, &arg, loops, event_uuid.as_deref().unwrap_or("")) {
            Ok(()) => "+OK".into(),
            Err(_) => format!("-ERR invalid session id [{target}]"),
        },
        CallCommand::Hangup { cause: c } => {
            s.hangup(cause(&c));
            "+OK".into()
        }
        CallCommand::Missing | CallCommand::Unsupported(_) => "-ERR command not found".into(),
    }
}

thread_local! {
    /// xoshiro256++ state, seeded once per thread from the system's
    /// random source.
    static RNG: std::cell::Cell<[u64; 4]> = std::cell::Cell::new({
        let a = uuid::Uuid::new_v4().as_u64_pair();
        let b = uuid::Uuid::new_v4().as_u64_pair();
        [a.0, a.1, b.0, b.1 | 1]
    });
}

fn next_random() -> u64 {
    RNG.with(|c| {
        let mut s = c.get();
        let r = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        c.set(s);
        r
    })
}

/// A random (version 4) UUID for `Event-UUID` and `Job-UUID`: from a
/// per-thread generator seeded by the system, not a system call per UUID
/// (which was a visible share of a `sendevent`).
pub fn new_uuid() -> uuid::Uuid {
    let bytes = (u128::from(next_random()) << 64 | u128::from(next_random())).to_be_bytes();
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// `sendevent NAME`: fires the packet's headers and body as an event.
/// Returns the reply text.
pub fn sendevent(name: &str, headers: &[(String, String)], body: Option<&str>) -> String {
    let mut text = uuid::Uuid::encode_buffer();
    let event_uuid: &str = new_uuid().hyphenated().encode_lower(&mut text);
    // An unknown name stays a CLONE event, as in FreeSWITCH.
    let id = event_id(name).filter(|id| *id != ALL).unwrap_or(1);
    let subclass = if id == 0 {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Event-Subclass"))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    } else {
        ""
    };
    let mut h: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| {
            !["Content-Length", "Event-Name", "Event-Subclass"]
                .iter()
                .any(|x| k.eq_ignore_ascii_case(x))
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    h.push(("Event-UUID", event_uuid));
    if let Err(e) = ModuleContext::current().fire_event(id, subclass, &h, body.unwrap_or("")) {
        log::warn!("event socket: sendevent {name}: {e}");
    }
    format!("+OK {event_uuid}")
}

/// After an outbound socket closed: an `async` call parked for the socket
/// goes back to its dialplan when `resume` was sent (or `socket_resume` is
/// set), as in FreeSWITCH; a static one returns from the application.
pub fn after_socket_closed(link: &Link, resume: bool) {
    link.disconnected();
    if !link.async_mode {
        return;
    }
    let Some(s) = ModuleContext::current().session_locate(&link.uuid) else {
        return;
    };
    let resume = resume || s.var("socket_resume").is_some_and(|v| is_true(&v));
    if resume && !s.is_down() && s.state() == ChannelState::PARK {
        if let Err(e) = s.set_state(ChannelState::EXECUTE) {
            log::warn!("event socket: cannot resume {}: {e}", link.uuid);
        }
    }
}

fn is_true(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "true" | "yes" | "on" | "1"
    )
}

/// The outbound `connect` reply: FreeSWITCH sends a CHANNEL_DATA event
/// whose header block is the reply (`Reply-Text: +OK`, `Socket-Mode`,
/// `Control`), in the plain form. The channel data comes from the host, so
/// it is exactly what the switch's own events carry.
pub fn channel_data(link: &Link) -> Vec<u8> {
    let m = ModuleContext::current();
    let mut h: Vec<(String, String)> = m
        .session_locate(&link.uuid)
        .and_then(|s| s.channel_data())
        .map(|item| item.headers)
        .unwrap_or_else(|| vec![("Event-Name".into(), "CHANNEL_DATA".into())]);
    let mut push = |k: &str, v: &str| h.push((k.to_string(), v.to_string()));
    push("Content-Type", "command/reply");
    push("Reply-Text", "+OK\n");
    push(
        "Socket-Mode",
        if link.async_mode { "async" } else { "static" },
    );
    push("Control", if link.full { "full" } else { "single-channel" });
    frames::plain_headers(&h).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_uuids_are_version_4_and_differ() {
        let a = new_uuid();
        let b = new_uuid();
        assert_ne!(a, b);
        assert_eq!(a.get_version_num(), 4);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
    }

    #[test]
    fn causes_parse_like_str2cause() {
        assert_eq!(cause("user_busy"), CallCause::USER_BUSY);
        assert_eq!(cause("17"), CallCause::USER_BUSY);
        assert_eq!(cause(""), CallCause::NORMAL_CLEARING);
        assert_eq!(cause("NO_SUCH_THING"), CallCause::NORMAL_CLEARING);
    }
}
