//! One verto client connection as a sans-IO state machine: text frames in,
//! text frames out, and what it asks of the switch through [`Switch`]. No
//! sockets and no clock; the shell feeds it frames and the switch's news
//! (answered, hung up, an outbound call) and sends what it returns.

use crate::rpc::{self, str_of};
use hotswitch_plugin_api::CallCause;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// What a connection needs from the switch.
pub trait Switch {
    /// The directory's password of `user@domain`, `None` for an unknown user.
    fn password(&mut self, user: &str, domain: &str) -> Option<String>;
    /// A directory variable of `user@domain` (e.g. `user_context`).
    fn user_var(&mut self, user: &str, domain: &str, name: &str) -> Option<String>;
    /// Creates the inbound session of a `verto.invite` and starts routing
    /// it; its uuid, or why not.
    fn invite(&mut self, invite: &Invite) -> Result<String, String>;
    /// The client answered the outbound call `uuid` with `sdp`.
    fn answer(&mut self, uuid: &str, sdp: &str) -> bool;
    /// The client hung up call `uuid`; false when there is no such call.
    fn hangup(&mut self, uuid: &str, cause: CallCause) -> bool;
    /// The client sent digits on call `uuid`.
    fn dtmf(&mut self, uuid: &str, digits: &str) -> bool;
    /// The client put call `uuid` on hold or took it off.
    fn hold(&mut self, uuid: &str, held: bool) -> bool;
    /// A login was accepted or refused (FreeSWITCH's `verto::login` event).
    fn login_event(&mut self, login: &str, sessid: Option<&str>, result: &str);
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
        }
    }

    /// `user@domain` once logged in.
    pub fn user(&self) -> Option<String> {
        self.login
            .as_ref()
            .map(|l| format!("{}@{}", l.user, l.domain))
    }

    /// The session id of the client's login.
    pub fn sessid(&self) -> Option<&str> {
        self.sessid.as_deref()
    }

    /// A text frame from the client: the frames to send back.
    pub fn on_text(&mut self, text: &str, sw: &mut dyn Switch, new_sessid: &str) -> Vec<String> {
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
        let mut frames: Vec<String> = reply.into_iter().map(|r| r.to_string()).collect();
        frames.extend(out);
        frames
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
                    if self.sessid.is_none() {
                        let sessid = str_of(params, "sessid").unwrap_or(new_sessid);
                        self.sessid = Some(sessid.to_string());
                    }
                    sw.login_event(&who, self.sessid.as_deref(), "Logged in");
                    self.login = Some(login);
                    if logging_in {
                        after.push(self.request("verto.clientReady", Map::new()));
                    }
                }
                Err((code, message)) => {
                    if code == rpc::CODE_AUTH_FAILED {
                        sw.login_event(&who, None, message);
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
            "verto.bye" => self.bye(params, sw),
            "verto.info" => self.info(params, sw),
            "verto.modify" => self.modify(params, sw),
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
        match self.calls.get(call_id) {
            Some(c) if sw.answer(&c.uuid, sdp) => {
                Ok(json!({ "message": "CALL ANSWERED", "callID": call_id }))
            }
            _ => Err(json!({ "message": "CALL DOES NOT EXIST", "callID": call_id })),
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
        match self.calls.remove(&call_id) {
            Some(c) if sw.hangup(&c.uuid, cause) => Ok(json!({
                "callID": call_id,
                "message": "CALL ENDED",
                "causeCode": cause.0,
                "cause": cause.name().unwrap_or("NORMAL_CLEARING"),
            })),
            _ => Err(json!({ "message": "CALL DOES NOT EXIST", "callID": call_id })),
        }
    }

    fn info(&mut self, params: &Value, sw: &mut dyn Switch) -> Result<Value, Value> {
        let call_id = call_id(dialog(params)?)?;
        let Some(call) = self.calls.get(call_id) else {
            return Err(json!({ "message": "CALL DOES NOT EXIST", "callID": call_id }));
        };
        match str_of(params, "dtmf") {
            Some(digits) => {
                let digits: String = digits.chars().filter(|c| is_dtmf(*c)).collect();
                if sw.dtmf(&call.uuid, &digits) {
                    Ok(json!({ "message": "SENT" }))
                } else {
                    Err(json!({ "message": "CALL DOES NOT EXIST", "callID": call_id }))
                }
            }
            None => Ok(json!({ "message": "SENT" })),
        }
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

    /// The switch answered inbound call `call_id`: the `verto.answer` to
    /// send.
    pub fn answered(&mut self, call_id: &str, sdp: &str) -> Option<String> {
        self.calls.get(call_id)?;
        let mut p = Map::new();
        p.insert("callID".into(), json!(call_id));
        p.insert("sdp".into(), json!(sdp));
        Some(self.request("verto.answer", p))
    }

    /// Early media on inbound call `call_id`: the `verto.media` to send.
    pub fn early_media(&mut self, call_id: &str, sdp: &str) -> Option<String> {
        self.calls.get(call_id)?;
        let mut p = Map::new();
        p.insert("callID".into(), json!(call_id));
        p.insert("sdp".into(), json!(sdp));
        Some(self.request("verto.media", p))
    }

    /// The switch hung up call `call_id`: the `verto.bye` to send (none when
    /// the client ended it).
    pub fn hung_up(&mut self, call_id: &str, cause: CallCause) -> Option<String> {
        self.calls.remove(call_id)?;
        let mut p = Map::new();
        p.insert("callID".into(), json!(call_id));
        p.insert("causeCode".into(), json!(cause.0));
        p.insert(
            "cause".into(),
            json!(cause.name().unwrap_or("NORMAL_CLEARING")),
        );
        Some(self.request("verto.bye", p))
    }

    /// An outbound call to this client: the `verto.invite` to send.
    pub fn invite_out(
        &mut self,
        call_id: &str,
        uuid: &str,
        caller: (&str, &str),
        sdp: &str,
    ) -> String {
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
        self.request("verto.invite", p)
    }

    /// The switch sends digits on call `call_id`: the `verto.info` to send.
    pub fn dtmf_out(&mut self, call_id: &str, digits: &str) -> Option<String> {
        self.calls.get(call_id)?;
        let mut p = Map::new();
        p.insert("callID".into(), json!(call_id));
        p.insert("dtmf".into(), json!(digits));
        Some(self.request("verto.info", p))
    }

    /// The socket closed: the calls still up, as `(callID, uuid)`, for the
    /// shell to hang up.
    pub fn closed(&mut self) -> Vec<(String, String)> {
        self.calls.drain().map(|(k, c)| (k, c.uuid)).collect()
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
