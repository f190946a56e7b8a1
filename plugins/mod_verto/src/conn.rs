//! One verto client connection as a sans-IO state machine, in the one
//! shape of every protocol core ([`Protocol`]). Inputs are `handle_*(…,
//! now)`: a text frame from the client ([`Conn::handle_text`]), the
//! switch's news about its calls ([`Conn::handle_answered`],
//! [`Conn::handle_hung_up`], [`Conn::handle_invite`]…) and the socket
//! closing ([`Conn::handle_closed`]). Outputs are pulled: the text frames
//! to send come out of [`Protocol::poll_transmit`] (a reply before the
//! requests it leads to), what the switch must learn and need not answer
//! (a login, for FreeSWITCH's `verto::login` event; the calls left when the
//! socket closed) out of [`Protocol::poll_event`] as [`Event`]s. It keeps
//! no timer: [`Protocol::poll_timeout`] is always `None` (a detached
//! session's timeout is the shell's, it outlives the connection).
//!
//! Most of a client's requests are questions only the switch can answer
//! before the reply is written — the directory's password, the uuid of the
//! session a `verto.invite` creates, whether the call a `verto.bye` names
//! exists. Those go through the narrow [`Switch`] trait, passed to
//! [`Conn::handle_text`] and answered in the same step, as quinn-proto
//! takes its crypto configuration rather than asking for it through an
//! event and waiting. No sockets and no clock: the shell feeds frames and
//! news in and writes out what it polls.

use crate::endpoint::ClientCall;
use crate::rpc::{self, str_of};
use hotswitch_plugin_api::sansio::Protocol;
use hotswitch_plugin_api::CallCause;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// The questions a connection asks the switch while it handles a frame:
/// each answer shapes the reply written in the same step.
pub trait Switch {
    /// The directory's password of `user@domain`, `None` for an unknown user.
    fn password(&mut self, user: &str, domain: &str) -> Option<String>;
    /// A directory variable of `user@domain` (e.g. `user_context`).
    fn user_var(&mut self, user: &str, domain: &str, name: &str) -> Option<String>;
    /// Creates the inbound session of a `verto.invite` and starts routing
    /// it; its uuid, or why not.
    fn invite(&mut self, invite: &Invite) -> Result<String, String>;
    /// The client `by` answered the switch's offer on call `uuid` with
    /// `sdp` (an outbound call's `verto.answer`, a reattached call's
    /// `verto.attach`); false when that offer is not (or no longer) open.
    fn answer(&mut self, uuid: &str, by: &ClientCall, sdp: &str) -> bool;
    /// The client `by` hung up or declined call `uuid`; false when there is
    /// no such call.
    fn hangup(&mut self, uuid: &str, by: &ClientCall, cause: CallCause) -> bool;
    /// The client sent digits on call `uuid`.
    fn dtmf(&mut self, uuid: &str, digits: &str) -> bool;
    /// The client put call `uuid` on hold or took it off.
    fn hold(&mut self, uuid: &str, held: bool) -> bool;
    /// Binds client session `sessid` of `user` to this connection. When an
    /// earlier connection of the same session is still open it is punted;
    /// the answered calls the session carries come back to be reattached.
    /// `None` when the session belongs to another user.
    fn bind_session(&mut self, sessid: &str, user: &str) -> Option<Vec<Reattach>>;
    /// Subscribes this connection to an event channel.
    fn subscribe(&mut self, user: &str, channel: &str) -> Subscribed;
    /// Unsubscribes; false when it was not subscribed.
    fn unsubscribe(&mut self, channel: &str) -> bool;
    /// `verto.broadcast`: delivers `event` (with `eventChannel`) to the
    /// channel's subscribers; false when `user` may not use the channel.
    fn broadcast(&mut self, user: &str, event: Value) -> bool;
    /// A chat message from the client (`verto.info` with `msg`); false when
    /// it could not be delivered.
    fn chat(&mut self, chat: &ChatOut) -> bool;
}

/// What the switch learns from a connection without answering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A login was accepted (`sessid` is its session) or refused, with
    /// the result text (FreeSWITCH's `verto::login` event).
    Login {
        login: String,
        sessid: Option<String>,
        result: &'static str,
    },
    /// The socket closed: the client session it had bound (if any) and the
    /// calls it carried as `(callID, uuid)`, to detach or hang up.
    Closed {
        sessid: Option<String>,
        calls: Vec<(String, String)>,
    },
}

/// A call the client's session carries, offered again on a new connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reattach {
    pub call_id: String,
    pub uuid: String,
    /// The switch's new offer.
    pub sdp: String,
}

/// What a subscription request found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscribed {
    Now,
    Already,
    Unauthorized,
}

/// A chat message a client sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatOut {
    /// Chat protocol: `verto`, or what `to` names before a `+`
    /// (`sip+1001@example.org`).
    pub proto: String,
    pub from: String,
    pub to: String,
    pub body: String,
    /// `from_*` and `to_*` members of the message, and `call_id` when sent
    /// in a dialog.
    pub headers: Vec<(String, String)>,
}

/// The profile settings a connection follows.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub profile: String,
    /// `userauth`: check logins against the directory.
    pub userauth: bool,
    /// `blind-reg`: accept any login.
    pub blind_reg: bool,
    /// `force-register-domain`: the domain of every login.
    pub force_domain: Option<String>,
    pub context: String,
    pub dialplan: String,
}

/// A new inbound call, as `verto.invite` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invite {
    pub call_id: String,
    pub destination: String,
    pub caller_id_name: String,
    pub caller_id_number: String,
    pub sdp: String,
    pub user: String,
    pub domain: String,
    pub context: String,
    pub dialplan: String,
    /// The client's session.
    pub sessid: String,
}

#[derive(Clone, Debug)]
struct Login {
    user: String,
    domain: String,
    context: Option<String>,
}

#[derive(Clone, Debug)]
struct Call {
    uuid: String,
    held: bool,
}

/// The state of one client connection.
pub struct Conn {
    settings: Settings,
    login: Option<Login>,
    sessid: Option<String>,
    calls: HashMap<String, Call>,
    next_id: u64,
    /// The session is bound to this connection.
    bound: bool,
    /// The connection must close (its session was refused).
    close: bool,
    /// Text frames to send, in order.
    transmits: VecDeque<String>,
    events: VecDeque<Event>,
}

impl Conn {
    /// A connection that has not logged in.
    pub fn new(settings: Settings) -> Conn {
        Conn {
            settings,
            login: None,
            sessid: None,
            calls: HashMap::new(),
            next_id: 0,
            bound: false,
            close: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// True once the connection must be closed.
    pub fn must_close(&self) -> bool {
        self.close
    }

    /// `user@domain` once logged in.
    pub fn user(&self) -> Option<String> {
        self.login
            .as_ref()
            .map(|l| format!("{}@{}", l.user, l.domain))
    }

    /// True while it places, rings or carries a call.
    pub fn has_calls(&self) -> bool {
        !self.calls.is_empty()
    }

    /// The session id of the client's login.
    pub fn sessid(&self) -> Option<&str> {
        self.sessid.as_deref()
    }

    /// A text frame from the client; `new_sessid` is the session id a
    /// login without one gets.
    pub fn handle_text(
        &mut self,
        text: &str,
        sw: &mut dyn Switch,
        new_sessid: &str,
        _now: Instant,
    ) {
        let mut out = Vec::new();
        let reply = match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(batch)) => {
                let replies: Vec<Value> = batch
                    .iter()
                    .filter_map(|m| self.message(m, sw, new_sessid, &mut out))
                    .collect();
                Some(Value::Array(replies))
            }
            Ok(m) => self.message(&m, sw, new_sessid, &mut out),
            Err(_) => Some(rpc::error(
                &Value::Null,
                rpc::CODE_INVALID,
                "Invalid Request",
            )),
        };
        self.transmits.extend(reply.map(|r| r.to_string()));
        self.transmits.extend(out);
    }

    fn login_event(&mut self, login: &str, sessid: Option<&str>, result: &'static str) {
        self.events.push_back(Event::Login {
            login: login.to_string(),
            sessid: sessid.map(str::to_string),
            result,
        });
    }

    /// One message; `after` collects requests to send after the reply.
    fn message(
        &mut self,
        m: &Value,
        sw: &mut dyn Switch,
        new_sessid: &str,
        after: &mut Vec<String>,
    ) -> Option<Value> {
        let id = m.get("id").cloned().unwrap_or(Value::Null);
        if str_of(m, "jsonrpc") != Some("2.0") {
            return Some(rpc::error(&id, rpc::CODE_INVALID, "Invalid message"));
        }
        // A reply to one of our requests: nothing to answer.
        if m.get("method").is_none() && (m.get("result").is_some() || m.get("error").is_some()) {
            return None;
        }
        let method = str_of(m, "method");
        let empty = Value::Object(Map::new());
        let params = m.get("params").filter(|p| p.is_object()).unwrap_or(&empty);
        let logging_in = method == Some("login");
        if self.login.is_none() || logging_in {
            let who = str_of(params, "login").unwrap_or("").to_string();
            match self.authenticate(params, sw) {
                Ok(login) => {
                    let mut reattach = Vec::new();
                    if !self.bound {
                        let sessid = str_of(params, "sessid")
                            .filter(|s| !s.is_empty())
                            .unwrap_or(new_sessid)
                            .to_string();
                        let uid = format!("{}@{}", login.user, login.domain);
                        match sw.bind_session(&sessid, &uid) {
                            Some(r) => reattach = r,
                            None => {
                                self.close = true;
                                self.login_event(&who, None, "Session in use");
                                return Some(rpc::error(
                                    &id,
                                    rpc::CODE_AUTH_FAILED,
                                    "Session in use",
                                ));
                            }
                        }
                        self.sessid = Some(sessid);
                        self.bound = true;
                    }
                    let sessid = self.sessid.clone();
                    self.login_event(&who, sessid.as_deref(), "Logged in");
                    self.login = Some(login);
                    for r in &reattach {
                        self.calls.insert(
                            r.call_id.clone(),
                            Call {
                                uuid: r.uuid.clone(),
                                held: false,
                            },
                        );
                    }
                    if logging_in || !reattach.is_empty() {
                        let mut p = Map::new();
                        p.insert(
                            "reattached_sessions".into(),
                            json!(reattach.iter().map(|r| r.uuid.as_str()).collect::<Vec<_>>()),
                        );
                        after.push(self.request("verto.clientReady", p));
                    }
                    for r in reattach {
                        let mut p = Map::new();
                        p.insert("callID".into(), json!(r.call_id));
                        p.insert("sdp".into(), json!(r.sdp));
                        after.push(self.request("verto.attach", p));
                    }
                }
                Err((code, message)) => {
                    if code == rpc::CODE_AUTH_FAILED {
                        self.login_event(&who, None, message);
                    }
                    return Some(rpc::error(&id, code, message));
                }
            }
        }
        let Some(method) = method else {
            return Some(rpc::error(
                &id,
                rpc::CODE_METHOD_NOT_FOUND,
                "Invalid Method, Missing Method or Permission Denied",
            ));
        };
        let outcome = match method {
            "login" => Ok(json!({
                "message": "logged in",
                "sessid": self.sessid.clone().unwrap_or_default(),
            })),
            "echo" => Ok(params.clone()),
            "verto.invite" => self.invite(params, sw),
            "verto.answer" => self.answer(params, sw),
            "verto.attach" => self.attach(params, sw),
            "verto.bye" => self.bye(params, sw),
            "verto.info" => self.info(params, sw),
            "verto.modify" => self.modify(params, sw),
            "verto.subscribe" => self.subscribe(params, sw),
            "verto.unsubscribe" => self.unsubscribe(params, sw),
            "verto.broadcast" => self.broadcast(params, sw),
            _ => {
                return Some(rpc::error(
                    &id,
                    rpc::CODE_METHOD_NOT_FOUND,
                    "Invalid Method, Missing Method or Permission Denied",
                ))
            }
        };
        Some(match outcome {
            Ok(r) => rpc::result(&id, r),
            Err(mut e) => {
                e["code"] = json!(rpc::CODE_SESSION_ERROR);
                rpc::error_object(&id, e)
            }
        })
    }

    /// FreeSWITCH's `check_auth`: no `login` asks for one, a missing or
    /// wrong password fails.
    fn authenticate(
        &mut self,
        params: &Value,
        sw: &mut dyn Switch,
    ) -> Result<Login, (i64, &'static str)> {
        let login = str_of(params, "login").filter(|l| !l.is_empty());
        let Some(login) = login else {
            return Err((rpc::CODE_AUTH_REQUIRED, "Authentication Required"));
        };
        let passwd = str_of(params, "passwd").filter(|p| !p.is_empty());
        let Some(passwd) = passwd else {
            return Err((rpc::CODE_AUTH_FAILED, "Missing passwd"));
        };
        let (user, domain) = match login.split_once('@') {
            Some((u, d)) => (u, d),
            None => (login, ""),
        };
        let domain = self.settings.force_domain.as_deref().unwrap_or(domain);
        if self.settings.blind_reg || !self.settings.userauth {
            return Ok(Login {
                user: user.into(),
                domain: domain.into(),
                context: None,
            });
        }
        if user.is_empty() || domain.is_empty() {
            return Err((rpc::CODE_AUTH_FAILED, "Authentication Failure"));
        }
        match sw.password(user, domain) {
            Some(p) if p == passwd => Ok(Login {
                user: user.into(),
                domain: domain.into(),
                context: sw.user_var(user, domain, "user_context"),
            }),
            _ => Err((rpc::CODE_AUTH_FAILED, "Authentication Failure")),
        }
    }

    fn request(&mut self, method: &str, params: Map<String, Value>) -> String {
        self.next_id += 1;
        rpc::request(self.next_id, method, params).to_string()
    }

    fn invite(&mut self, params: &Value, sw: &mut dyn Switch) -> Result<Value, Value> {
        let dialog = dialog(params)?;
        let call_id = call_id(dialog)?;
        let Some(sdp) = str_of(params, "sdp") else {
            return Err(json!({ "message": "SDP missing" }));
        };
        if self.calls.contains_key(call_id) {
            return Err(json!({ "message": "CALL ERROR", "callID": call_id }));
        }
        let login = self.login.clone().unwrap_or(Login {
            user: String::new(),
            domain: String::new(),
            context: None,
        });
        let text = |k: &str| str_of(dialog, k).unwrap_or("").to_string();
        let invite = Invite {
            call_id: call_id.to_string(),
            destination: str_of(dialog, "destination_number")
                .filter(|d| !d.is_empty())
                .unwrap_or("service")
                .to_string(),
            caller_id_name: text("caller_id_name"),
            caller_id_number: text("caller_id_number"),
            sdp: sdp.to_string(),
            user: login.user.clone(),
            domain: login.domain.clone(),
            context: login
                .context
                .clone()
                .unwrap_or_else(|| self.settings.context.clone()),
            dialplan: self.settings.dialplan.clone(),
            sessid: self.sessid.clone().unwrap_or_default(),
        };
        match sw.invite(&invite) {
            Ok(uuid) => {
                self.calls
                    .insert(call_id.to_string(), Call { uuid, held: false });
                Ok(json!({ "message": "CALL CREATED", "callID": call_id }))
            }
            Err(why) => {
                log::warn!("verto.invite {call_id}: {why}");
                Err(json!({ "message": "CALL ERROR", "callID": call_id }))
            }
        }
    }

    fn answer(&mut self, params: &Value, sw: &mut dyn Switch) -> Result<Value, Value> {
        let call_id = call_id(dialog(params)?)?;
        let Some(sdp) = str_of(params, "sdp") else {
            return Err(json!({ "message": "SDP missing" }));
        };
        let by = self.client_call(call_id);
        match self.calls.get(call_id) {
            Some(c) if sw.answer(&c.uuid, &by, sdp) => {
                Ok(json!({ "message": "CALL ANSWERED", "callID": call_id }))
            }
            _ => Err(json!({ "message": "CALL DOES NOT EXIST", "callID": call_id })),
        }
    }

    /// `verto.attach`: the client's answer to the switch's offer for a call
    /// its session carried over from an earlier connection.
    fn attach(&mut self, params: &Value, sw: &mut dyn Switch) -> Result<Value, Value> {
        if params.as_object().is_none_or(|o| o.is_empty()) {
            return Err(json!({ "message": "Params data missing" }));
        }
        let dialog = dialog(params)?;
        let Some(sdp) = str_of(params, "sdp") else {
            return Err(json!({ "message": "SDP missing" }));
        };
        let call_id = call_id(dialog)?;
        let by = self.client_call(call_id);
        match self.calls.get(call_id) {
            Some(c) if sw.answer(&c.uuid, &by, sdp) => Ok(json!({})),
            _ => Err(json!({ "message": "CALL DOES NOT EXIST" })),
        }
    }

    fn client_call(&self, call_id: &str) -> ClientCall {
        ClientCall {
            sessid: self.sessid.clone().unwrap_or_default(),
            call_id: call_id.to_string(),
        }
    }

    /// `verto.subscribe` to one channel or a list: the result lists them
    /// under `subscribedChannels`, `alreadySubscribedChannels` and
    /// `unauthorizedChannels`; an error when none was subscribed.
    fn subscribe(&mut self, params: &Value, sw: &mut dyn Switch) -> Result<Value, Value> {
        let user = self.user().unwrap_or_default();
        let (mut now, mut already, mut refused) = (Vec::new(), Vec::new(), Vec::new());
        for ch in channels(params) {
            match sw.subscribe(&user, ch) {
                Subscribed::Now => now.push(ch),
                Subscribed::Already => already.push(ch),
                Subscribed::Unauthorized => refused.push(ch),
            }
        }
        let mut r = Map::new();
        for (k, v) in [
            ("subscribedChannels", &now),
            ("unauthorizedChannels", &refused),
            ("alreadySubscribedChannels", &already),
        ] {
            if !v.is_empty() {
                r.insert(k.into(), json!(v));
            }
        }
        if now.is_empty() {
            Err(Value::Object(r))
        } else {
            Ok(Value::Object(r))
        }
    }

    fn unsubscribe(&mut self, params: &Value, sw: &mut dyn Switch) -> Result<Value, Value> {
        let (mut gone, mut not) = (Vec::new(), Vec::new());
        for ch in channels(params) {
            if sw.unsubscribe(ch) {
                gone.push(ch);
            } else {
                not.push(ch);
            }
        }
        let mut r = Map::new();
        if !gone.is_empty() {
            r.insert("unsubscribedChannels".into(), json!(gone));
        }
        if !not.is_empty() {
            r.insert("notSubscribedChannels".into(), json!(not));
        }
        if gone.is_empty() && !not.is_empty() {
            Err(Value::Object(r))
        } else {
            Ok(Value::Object(r))
        }
    }

    /// `verto.broadcast`: the params, with the sender's `userid` and
    /// `sessid`, go to every subscriber of `eventChannel` as `verto.event`.
    fn broadcast(&mut self, params: &Value, sw: &mut dyn Switch) -> Result<Value, Value> {
        if str_of(params, "eventChannel").is_none_or(str::is_empty) {
            return Err(json!({ "message": "eventChannel not specified." }));
        }
        let user = self.user().unwrap_or_default();
        let mut event = params.clone();
        event["userid"] = json!(user);
        event["sessid"] = json!(self.sessid.clone().unwrap_or_default());
        if sw.broadcast(&user, event) {
            Ok(json!({}))
        } else {
            Err(json!({ "message": "Permission Denied." }))
        }
    }

    fn bye(&mut self, params: &Value, sw: &mut dyn Switch) -> Result<Value, Value> {
        let call_id = call_id(dialog(params)?)?.to_string();
        let cause = str_of(params, "cause")
            .and_then(CallCause::from_name)
            .filter(|c| *c != CallCause::NONE)
            .or_else(|| {
                let code = params.get("causeCode")?;
                let n = code
                    .as_u64()
                    .or_else(|| code.as_str().and_then(|s| s.parse().ok()))?;
                let c = CallCause(u32::try_from(n).ok()?);
                c.name().map(|_| c).filter(|c| *c != CallCause::NONE)
            })
            .unwrap_or(CallCause::NORMAL_CLEARING);
        let by = self.client_call(&call_id);
        match self.calls.remove(&call_id) {
            Some(c) if sw.hangup(&c.uuid, &by, cause) => Ok(json!({
                "callID": call_id,
                "message": "CALL ENDED",
                "causeCode": cause.0,
                "cause": cause.name().unwrap_or("NORMAL_CLEARING"),
            })),
            _ => Err(json!({ "message": "CALL DOES NOT EXIST", "callID": call_id })),
        }
    }

    /// `verto.info`: DTMF on a call (`dtmf`), and chat (`msg` with `to`
    /// and `body`, in or outside a call).
    fn info(&mut self, params: &Value, sw: &mut dyn Switch) -> Result<Value, Value> {
        if params.as_object().is_none_or(|o| o.is_empty()) {
            return Err(json!({ "message": "Params data missing" }));
        }
        let in_call = params
            .get("dialogParams")
            .and_then(|d| str_of(d, "callID"))
            .filter(|c| !c.is_empty());
        let mut reply = json!({});
        if let (Some(call_id), Some(digits)) = (in_call, str_of(params, "dtmf")) {
            let Some(call) = self.calls.get(call_id) else {
                return Err(json!({ "message": "CALL DOES NOT EXIST", "callID": call_id }));
            };
            let digits: String = digits.chars().filter(|c| is_dtmf(*c)).collect();
            if !sw.dtmf(&call.uuid, &digits) {
                return Err(json!({ "message": "CALL DOES NOT EXIST", "callID": call_id }));
            }
            reply = json!({ "message": "SENT" });
        }
        if let Some(msg) = params.get("msg") {
            let to = str_of(msg, "to").unwrap_or("");
            let body = str_of(msg, "body").unwrap_or("");
            if to.is_empty() || body.is_empty() {
                return Err(json!({ "message": "INVALID MESSAGE to and body params required" }));
            }
            let (proto, to) = match to.split_once('+') {
                Some((p, t)) if !p.is_empty() => (p, t),
                _ => ("verto", to),
            };
            let mut headers: Vec<(String, String)> = msg
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.starts_with("from_") || k.starts_with("to_"))
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect();
            let in_dialog = match msg.get("inDialog") {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => matches!(s.as_str(), "true" | "yes" | "1"),
                _ => false,
            };
            if let (true, Some(call_id)) = (in_dialog, in_call) {
                headers.push(("call_id".into(), call_id.into()));
            }
            let chat = ChatOut {
                proto: proto.into(),
                from: self.user().unwrap_or_default(),
                to: to.into(),
                body: body.into(),
                headers,
            };
            if !sw.chat(&chat) {
                return Err(json!({ "message": "NOT DELIVERED", "to": to }));
            }
            reply = json!({ "message": "SENT" });
        }
        Ok(reply)
    }

    /// `verto.modify`: hold, unhold and toggleHold; other actions only
    /// report the hold state.
    fn modify(&mut self, params: &Value, sw: &mut dyn Switch) -> Result<Value, Value> {
        let call_id = call_id(dialog(params)?)?;
        let Some(action) = str_of(params, "action") else {
            return Err(json!({ "message": "action missing", "callID": call_id }));
        };
        let Some(call) = self.calls.get_mut(call_id) else {
            return Err(
                json!({ "message": "CALL DOES NOT EXIST", "callID": call_id, "action": action }),
            );
        };
        let want = match action {
            "hold" => Some(true),
            "unhold" => Some(false),
            "toggleHold" => Some(!call.held),
            _ => None,
        };
        if let Some(held) = want.filter(|h| *h != call.held) {
            if !sw.hold(&call.uuid, held) {
                return Err(
                    json!({ "message": "CALL DOES NOT EXIST", "callID": call_id, "action": action }),
                );
            }
            call.held = held;
        }
        Ok(json!({
            "callID": call_id,
            "action": action,
            "holdState": if call.held { "held" } else { "active" },
        }))
    }

    /// The switch answered inbound call `call_id`: a `verto.answer`.
    pub fn handle_answered(&mut self, call_id: &str, sdp: &str, _now: Instant) {
        if !self.calls.contains_key(call_id) {
            return;
        }
        let mut p = Map::new();
        p.insert("callID".into(), json!(call_id));
        p.insert("sdp".into(), json!(sdp));
        self.transmit("verto.answer", p);
    }

    /// Early media on inbound call `call_id`: a `verto.media`.
    pub fn handle_early_media(&mut self, call_id: &str, sdp: &str, _now: Instant) {
        if !self.calls.contains_key(call_id) {
            return;
        }
        let mut p = Map::new();
        p.insert("callID".into(), json!(call_id));
        p.insert("sdp".into(), json!(sdp));
        self.transmit("verto.media", p);
    }

    /// The switch hung up call `call_id`: a `verto.bye` (none when the
    /// client ended it).
    pub fn handle_hung_up(&mut self, call_id: &str, cause: CallCause, _now: Instant) {
        if self.calls.remove(call_id).is_none() {
            return;
        }
        let mut p = Map::new();
        p.insert("callID".into(), json!(call_id));
        p.insert("causeCode".into(), json!(cause.0));
        p.insert(
            "cause".into(),
            json!(cause.name().unwrap_or("NORMAL_CLEARING")),
        );
        self.transmit("verto.bye", p);
    }

    /// An outbound call to this client: a `verto.invite`.
    pub fn handle_invite(
        &mut self,
        call_id: &str,
        uuid: &str,
        caller: (&str, &str),
        sdp: &str,
        _now: Instant,
    ) {
        self.calls.insert(
            call_id.to_string(),
            Call {
                uuid: uuid.into(),
                held: false,
            },
        );
        let mut p = Map::new();
        p.insert("callID".into(), json!(call_id));
        p.insert("sdp".into(), json!(sdp));
        p.insert("caller_id_name".into(), json!(caller.0));
        p.insert("caller_id_number".into(), json!(caller.1));
        p.insert("callee_id_name".into(), json!(""));
        p.insert("callee_id_number".into(), json!(""));
        self.transmit("verto.invite", p);
    }

    /// The switch sends digits on call `call_id`: a `verto.info`.
    pub fn handle_dtmf(&mut self, call_id: &str, digits: &str, _now: Instant) {
        if !self.calls.contains_key(call_id) {
            return;
        }
        let mut p = Map::new();
        p.insert("callID".into(), json!(call_id));
        p.insert("dtmf".into(), json!(digits));
        self.transmit("verto.info", p);
    }

    /// A request of the switch's to pass on (punt, chat, events).
    pub fn handle_notify(&mut self, method: &str, params: Map<String, Value>, _now: Instant) {
        self.transmit(method, params);
    }

    /// The switch updated the display of call `call_id`: a
    /// `verto.display`.
    pub fn handle_display(&mut self, call_id: &str, name: &str, number: &str, _now: Instant) {
        if !self.calls.contains_key(call_id) {
            return;
        }
        let mut p = Map::new();
        p.insert("callID".into(), json!(call_id));
        p.insert("display_name".into(), json!(name));
        p.insert("display_number".into(), json!(number));
        self.transmit("verto.display", p);
    }

    /// The socket closed: [`Event::Closed`] with the client session and
    /// its calls.
    pub fn handle_closed(&mut self, _now: Instant) {
        let calls = self.calls.drain().map(|(k, c)| (k, c.uuid)).collect();
        let sessid = self.sessid.clone().filter(|_| self.bound);
        self.events.push_back(Event::Closed { sessid, calls });
    }

    /// Queues a request of ours to the client.
    fn transmit(&mut self, method: &str, params: Map<String, Value>) {
        let frame = self.request(method, params);
        self.transmits.push_back(frame);
    }
}

impl Protocol for Conn {
    /// A text frame for the client.
    type Transmit = String;
    type Event = Event;

    /// Never called: a connection keeps no timer.
    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<String> {
        self.transmits.pop_front()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}

/// The `eventChannel` of a (un)subscription: one name or a list.
fn channels(params: &Value) -> Vec<&str> {
    match params.get("eventChannel") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn dialog(params: &Value) -> Result<&Value, Value> {
    if params.as_object().is_none_or(|o| o.is_empty()) {
        return Err(json!({ "message": "Params data missing" }));
    }
    params
        .get("dialogParams")
        .filter(|d| d.is_object())
        .ok_or_else(|| json!({ "message": "Dialog data missing" }))
}

fn call_id(dialog: &Value) -> Result<&str, Value> {
    str_of(dialog, "callID")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| json!({ "message": "CallID missing" }))
}

fn is_dtmf(c: char) -> bool {
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D' | 'a'..='d')
}

#[cfg(test)]
mod tests;
