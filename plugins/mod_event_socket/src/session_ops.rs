//! What commands do to sessions and the event bus, through the host's
//! services: `sendmsg`, `sendevent`, channel variables, the outbound
//! `connect` reply, and resuming the dialplan after an outbound socket.

use crate::command::CallCommand;
use crate::frames;
use crate::outbound::Link;
use crate::selection::{event_id, ALL};
use hotswitch_plugin_api::{CallCause, ChannelState, ModuleContext, Session};

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
            app, arg, loops, ..
        } => match s.queue_application(&app, &arg, loops) {
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

/// `sendevent NAME`: fires the packet's headers and body as an event.
/// Returns the reply text.
pub fn sendevent(name: &str, headers: &[(String, String)], body: Option<&str>) -> String {
    let event_uuid = uuid::Uuid::new_v4().to_string();
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
    h.push(("Event-UUID", &event_uuid));
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

/// The caller-profile fields of FreeSWITCH's channel data, by the variable
/// names the host reads them under.
const CALLER_FIELDS: &[(&str, &str)] = &[
    ("Caller-Username", "username"),
    ("Caller-Dialplan", "dialplan"),
    ("Caller-Caller-ID-Name", "caller_id_name"),
    ("Caller-Caller-ID-Number", "caller_id_number"),
    ("Caller-Orig-Caller-ID-Name", "orig_caller_id_name"),
    ("Caller-Orig-Caller-ID-Number", "orig_caller_id_number"),
    ("Caller-Callee-ID-Name", "callee_id_name"),
    ("Caller-Callee-ID-Number", "callee_id_number"),
    ("Caller-Network-Addr", "network_addr"),
    ("Caller-ANI", "ani"),
    ("Caller-ANI-II", "aniii"),
    ("Caller-Destination-Number", "destination_number"),
];

const CALLER_FIELDS_AFTER_UUID: &[(&str, &str)] = &[
    ("Caller-Source", "source"),
    ("Caller-Context", "context"),
    ("Caller-RDNIS", "rdnis"),
    ("Caller-Channel-Name", "channel_name"),
];

/// Channel variables read for the `variable_*` headers. The host offers
/// no way to list a channel's variables, so only these known ones appear.
const KNOWN_VARIABLES: &[&str] = &[
    "direction",
    "uuid",
    "call_uuid",
    "channel_name",
    "origination_uuid",
    "originator",
    "originate_disposition",
    "other_loopback_leg_uuid",
    "other_loopback_from_uuid",
    "loopback_leg",
    "is_outbound",
    "current_application",
    "current_application_data",
    "current_application_response",
    "hangup_cause",
    "socket_host",
    "socket_path",
    "socket_resume",
    "park_timeout",
    "hangup_after_bridge",
    "continue_on_fail",
    "bridge_to",
    "last_bridge_to",
    "signal_bond",
    "sip_call_id",
    "caller_id_name",
    "caller_id_number",
    "destination_number",
    "effective_caller_id_name",
    "effective_caller_id_number",
    "dialed_extension",
    "dialed_user",
    "dialed_domain",
    "domain_name",
    "user_name",
    "accountcode",
    "presence_id",
];

/// The outbound `connect` reply: FreeSWITCH sends a CHANNEL_DATA event
/// whose header block is the reply (`Reply-Text: +OK`, `Socket-Mode`,
/// `Control`), in the plain form.
pub fn channel_data(link: &Link) -> Vec<u8> {
    let m = ModuleContext::current();
    let mut h: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| {
        if !v.is_empty() {
            h.push((k.to_string(), v));
        }
    };
    push("Event-Name", "CHANNEL_DATA".into());
    push(
        "FreeSWITCH-Hostname",
        m.execute_api("hostname", "").unwrap_or_default(),
    );
    let session = m.session_locate(&link.uuid);
    if let Some(s) = session.as_deref() {
        add_channel_data(&m, s, &link.uuid, &mut push);
    }
    push("Content-Type", "command/reply".into());
    push("Reply-Text", "+OK\n".into());
    push(
        "Socket-Mode",
        if link.async_mode { "async" } else { "static" }.into(),
    );
    push(
        "Control",
        if link.full { "full" } else { "single-channel" }.into(),
    );
    frames::plain_headers(&h).into_bytes()
}

fn add_channel_data(
    m: &ModuleContext,
    s: &Session,
    uuid: &str,
    push: &mut impl FnMut(&str, String),
) {
    let var = |n: &str| s.var(n).unwrap_or_default();
    let state = s.state();
    let direction = if s.is_outbound() {
        "outbound"
    } else {
        "inbound"
    };
    let callstate = callstate_of(m, uuid);
    push(
        "Channel-State",
        format!("CS_{}", state.name().unwrap_or("NONE")),
    );
    push("Channel-Call-State", callstate.clone());
    push("Channel-State-Number", state.0.to_string());
    push("Channel-Name", var("channel_name"));
    push("Unique-ID", uuid.to_string());
    push("Call-Direction", direction.into());
    push("Presence-Call-Direction", direction.into());
    push(
        "Channel-Call-UUID",
        s.var("call_uuid").unwrap_or(uuid.into()),
    );
    let answer_state = if s.is_down() {
        "hangup"
    } else {
        match callstate.as_str() {
            "ACTIVE" | "HELD" => "answered",
            "EARLY" => "early",
            _ => "ringing",
        }
    };
    push("Answer-State", answer_state.into());
    push("Caller-Direction", direction.into());
    push("Caller-Logical-Direction", direction.into());
    for (k, n) in CALLER_FIELDS {
        push(k, var(n));
    }
    push("Caller-Unique-ID", uuid.to_string());
    for (k, n) in CALLER_FIELDS_AFTER_UUID {
        push(k, var(n));
    }
    for n in KNOWN_VARIABLES {
        let v = match *n {
            "uuid" => uuid.to_string(),
            "direction" => direction.to_string(),
            _ => var(n),
        };
        push(&format!("variable_{n}"), v);
    }
}

/// The channel's call state (`ACTIVE`, `EARLY`, `RINGING`…) from
/// `show channels as json`, the only place the host offers it.
fn callstate_of(m: &ModuleContext, uuid: &str) -> String {
    let Ok(text) = m.execute_api("show", "channels as json") else {
        return String::new();
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return String::new();
    };
    v.get("rows")
        .and_then(|r| r.as_array())
        .and_then(|rows| {
            rows.iter()
                .find(|r| r.get("uuid").and_then(|u| u.as_str()) == Some(uuid))
        })
        .and_then(|r| r.get("callstate"))
        .and_then(|c| c.as_str())
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_parse_like_str2cause() {
        assert_eq!(cause("user_busy"), CallCause::USER_BUSY);
        assert_eq!(cause("17"), CallCause::USER_BUSY);
        assert_eq!(cause(""), CallCause::NORMAL_CLEARING);
        assert_eq!(cause("NO_SUCH_THING"), CallCause::NORMAL_CLEARING);
    }
}
