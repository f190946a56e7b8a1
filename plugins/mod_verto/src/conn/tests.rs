//! The connection state machine driven by whole conversations.

use super::*;

#[derive(Default)]
struct Fake {
    invites: Vec<Invite>,
    hangups: Vec<(String, CallCause)>,
    digits: Vec<(String, String)>,
    answers: Vec<String>,
    holds: Vec<(String, bool)>,
    logins: Vec<String>,
    /// sessid → user of sessions bound so far.
    sessions: Vec<(String, String)>,
    /// Calls a rebound session carries.
    carried: Vec<Reattach>,
    subs: Vec<String>,
    broadcasts: Vec<Value>,
    chats: Vec<ChatOut>,
}

impl Switch for Fake {
    fn password(&mut self, user: &str, domain: &str) -> Option<String> {
        (user == "1000" && domain == "127.0.0.1").then(|| "1234".into())
    }
    fn user_var(&mut self, _: &str, _: &str, name: &str) -> Option<String> {
        (name == "user_context").then(|| "default".into())
    }
    fn invite(&mut self, invite: &Invite) -> Result<String, String> {
        self.invites.push(invite.clone());
        Ok(format!("uuid-{}", self.invites.len()))
    }
    fn answer(&mut self, uuid: &str, _by: &ClientCall, _sdp: &str) -> bool {
        self.answers.push(uuid.into());
        true
    }
    fn hangup(&mut self, uuid: &str, _by: &ClientCall, cause: CallCause) -> bool {
        self.hangups.push((uuid.into(), cause));
        true
    }
    fn dtmf(&mut self, uuid: &str, digits: &str) -> bool {
        self.digits.push((uuid.into(), digits.into()));
        true
    }
    fn hold(&mut self, uuid: &str, held: bool) -> bool {
        self.holds.push((uuid.into(), held));
        true
    }
    fn bind_session(&mut self, sessid: &str, user: &str) -> Option<Vec<Reattach>> {
        match self.sessions.iter().find(|(s, _)| s == sessid) {
            Some((_, u)) if u != user => None,
            Some(_) => Some(std::mem::take(&mut self.carried)),
            None => {
                self.sessions.push((sessid.into(), user.into()));
                Some(Vec::new())
            }
        }
    }
    fn subscribe(&mut self, _user: &str, channel: &str) -> Subscribed {
        if channel.starts_with("secret") {
            Subscribed::Unauthorized
        } else if self.subs.iter().any(|c| c == channel) {
            Subscribed::Already
        } else {
            self.subs.push(channel.into());
            Subscribed::Now
        }
    }
    fn unsubscribe(&mut self, channel: &str) -> bool {
        let before = self.subs.len();
        self.subs.retain(|c| c != channel);
        before != self.subs.len()
    }
    fn broadcast(&mut self, _user: &str, event: Value) -> bool {
        let ok = !event["eventChannel"]
            .as_str()
            .unwrap_or("")
            .starts_with("secret");
        if ok {
            self.broadcasts.push(event);
        }
        ok
    }
    fn chat(&mut self, chat: &ChatOut) -> bool {
        self.chats.push(chat.clone());
        chat.to != "nobody@127.0.0.1"
    }
}

fn conn() -> Conn {
    Conn::new(Settings {
        profile: "ws".into(),
        userauth: true,
        context: "public".into(),
        dialplan: "XML".into(),
        ..Default::default()
    })
}

/// Hands `text` to the connection: the frames it sends back; its login
/// events are kept in `sw.logins`.
fn text(c: &mut Conn, sw: &mut Fake, text: &str, new_sessid: &str) -> Vec<Value> {
    c.handle_text(text, sw, new_sessid, Instant::now());
    while let Some(e) = c.poll_event() {
        if let Event::Login {
            login,
            sessid,
            result,
        } = e
        {
            sw.logins.push(format!(
                "{login} {} {result}",
                sessid.as_deref().unwrap_or("-")
            ));
        }
    }
    std::iter::from_fn(|| polled(c)).collect()
}

fn send(c: &mut Conn, sw: &mut Fake, v: Value) -> Vec<Value> {
    text(c, sw, &v.to_string(), "generated")
}

/// The next frame the connection sends, parsed.
fn polled(c: &mut Conn) -> Option<Value> {
    c.poll_transmit().map(|t| serde_json::from_str(&t).unwrap())
}

fn login(c: &mut Conn, sw: &mut Fake) -> Vec<Value> {
    send(
        c,
        sw,
        json!({"jsonrpc":"2.0","id":1,"method":"login",
               "params":{"login":"1000@127.0.0.1","passwd":"1234"}}),
    )
}

fn invite(c: &mut Conn, sw: &mut Fake, call_id: &str) -> Vec<Value> {
    send(
        c,
        sw,
        json!({"jsonrpc":"2.0","id":2,"method":"verto.invite",
               "params":{"sdp":"v=0","dialogParams":{"callID":call_id,
               "destination_number":"9196","caller_id_number":"1000"}}}),
    )
}

/// A logged-in connection with call `call_id` up.
fn in_call(call_id: &str) -> (Conn, Fake) {
    let (mut c, mut sw) = (conn(), Fake::default());
    login(&mut c, &mut sw);
    invite(&mut c, &mut sw, call_id);
    (c, sw)
}

#[test]
fn a_right_password_logs_in_and_the_client_is_told_it_is_ready() {
    let (mut c, mut sw) = (conn(), Fake::default());
    let out = login(&mut c, &mut sw);
    assert_eq!(out[0]["id"], 1);
    assert_eq!(out[0]["result"]["message"], "logged in");
    assert_eq!(out[0]["result"]["sessid"], "generated");
    assert_eq!(out[1]["method"], "verto.clientReady");
    assert_eq!(c.user().as_deref(), Some("1000@127.0.0.1"));
}

#[test]
fn a_wrong_password_is_refused_with_authentication_failure() {
    let (mut c, mut sw) = (conn(), Fake::default());
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":7,"method":"login",
               "params":{"login":"1000@127.0.0.1","passwd":"nope"}}),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["id"], 7);
    assert_eq!(out[0]["error"]["code"], -32001);
    assert_eq!(out[0]["error"]["message"], "Authentication Failure");
    assert!(c.user().is_none());
}

#[test]
fn an_unknown_user_and_a_missing_password_fail_authentication() {
    let (mut c, mut sw) = (conn(), Fake::default());
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"2000@127.0.0.1","passwd":"1234"}}),
    );
    assert_eq!(out[0]["error"]["code"], -32001);
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":2,"method":"login","params":{"login":"1000@127.0.0.1"}}),
    );
    assert_eq!(out[0]["error"]["message"], "Missing passwd");
}

#[test]
fn a_call_before_login_asks_for_authentication() {
    let (mut c, mut sw) = (conn(), Fake::default());
    let out = invite(&mut c, &mut sw, "c1");
    assert_eq!(out[0]["error"]["code"], -32000);
    assert_eq!(out[0]["error"]["message"], "Authentication Required");
    assert!(sw.invites.is_empty());
}

#[test]
fn malformed_json_and_wrong_versions_are_invalid_requests() {
    let (mut c, mut sw) = (conn(), Fake::default());
    let out = text(&mut c, &mut sw, "{not json", "s");
    assert_eq!(out[0]["error"]["code"], -32600);
    assert_eq!(out[0]["id"], Value::Null);
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"1.0","id":3,"method":"login"}),
    );
    assert_eq!(out[0]["error"]["code"], -32600);
    assert_eq!(out[0]["id"], 3);
    let out = send(&mut c, &mut sw, json!([1, "x"]));
    assert_eq!(out[0].as_array().map(Vec::len), Some(2));
}

#[test]
fn an_unknown_method_after_login_is_method_not_found() {
    let (mut c, mut sw) = (conn(), Fake::default());
    login(&mut c, &mut sw);
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":9,"method":"verto.frobnicate"}),
    );
    assert_eq!(out[0]["error"]["code"], -32601);
}

#[test]
fn an_invite_creates_a_call_routed_in_the_users_context() {
    let (mut c, mut sw) = (conn(), Fake::default());
    login(&mut c, &mut sw);
    let out = invite(&mut c, &mut sw, "c1");
    assert_eq!(out[0]["result"]["message"], "CALL CREATED");
    assert_eq!(out[0]["result"]["callID"], "c1");
    let i = &sw.invites[0];
    assert_eq!(
        (i.destination.as_str(), i.context.as_str(), i.user.as_str()),
        ("9196", "default", "1000")
    );
    c.handle_answered("c1", "v=0", Instant::now());
    let answer = polled(&mut c).unwrap();
    assert_eq!(answer["method"], "verto.answer");
    assert_eq!(answer["params"]["callID"], "c1");
}

#[test]
fn an_invite_without_call_id_or_sdp_is_a_session_error() {
    let (mut c, mut sw) = (conn(), Fake::default());
    login(&mut c, &mut sw);
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":2,"method":"verto.invite","params":{"dialogParams":{"callID":"x"}}}),
    );
    assert_eq!(out[0]["error"]["code"], -32002);
    assert_eq!(out[0]["error"]["message"], "SDP missing");
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":2,"method":"verto.invite"}),
    );
    assert_eq!(out[0]["error"]["message"], "Params data missing");
}

#[test]
fn a_bye_from_the_client_hangs_up_with_its_cause_and_no_bye_goes_back() {
    let (mut c, mut sw) = in_call("c1");
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":4,"method":"verto.bye","params":{"cause":"USER_BUSY","dialogParams":{"callID":"c1"}}}),
    );
    assert_eq!(out[0]["result"]["message"], "CALL ENDED");
    assert_eq!(out[0]["result"]["causeCode"], 17);
    assert_eq!(
        sw.hangups,
        vec![("uuid-1".to_string(), CallCause::USER_BUSY)]
    );
    c.handle_hung_up("c1", CallCause::NORMAL_CLEARING, Instant::now());
    assert!(polled(&mut c).is_none());
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":5,"method":"verto.bye","params":{"dialogParams":{"callID":"c1"}}}),
    );
    assert_eq!(out[0]["error"]["message"], "CALL DOES NOT EXIST");
}

#[test]
fn a_hangup_by_the_switch_sends_a_bye_with_the_cause() {
    let (mut c, _sw) = in_call("c1");
    c.handle_hung_up("c1", CallCause::NORMAL_CLEARING, Instant::now());
    let bye = polled(&mut c).unwrap();
    assert_eq!(bye["method"], "verto.bye");
    assert_eq!(bye["params"]["causeCode"], 16);
    assert_eq!(bye["params"]["cause"], "NORMAL_CLEARING");
    c.handle_closed(Instant::now());
    assert_eq!(
        c.poll_event(),
        Some(Event::Closed {
            sessid: Some("generated".into()),
            calls: vec![]
        })
    );
}

#[test]
fn info_dtmf_reaches_the_call_without_junk_characters() {
    let (mut c, mut sw) = in_call("c1");
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":6,"method":"verto.info","params":{"dtmf":"1x2#","dialogParams":{"callID":"c1"}}}),
    );
    assert_eq!(out[0]["result"]["message"], "SENT");
    assert_eq!(sw.digits, vec![("uuid-1".to_string(), "12#".to_string())]);
}

#[test]
fn an_outbound_call_is_offered_and_answered_by_the_client() {
    let (mut c, mut sw) = (conn(), Fake::default());
    login(&mut c, &mut sw);
    c.handle_invite("o1", "uuid-o", ("Alice", "2000"), "v=0", Instant::now());
    let inv = polled(&mut c).unwrap();
    assert_eq!(inv["method"], "verto.invite");
    assert_eq!(inv["params"]["caller_id_number"], "2000");
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":8,"method":"verto.answer","params":{"sdp":"v=0","dialogParams":{"callID":"o1"}}}),
    );
    assert_eq!(out[0]["result"]["message"], "CALL ANSWERED");
    assert_eq!(sw.answers, vec!["uuid-o".to_string()]);
}

#[test]
fn logins_fire_an_event_either_way() {
    let (mut c, mut sw) = (conn(), Fake::default());
    send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"1000@127.0.0.1","passwd":"x"}}),
    );
    login(&mut c, &mut sw);
    assert_eq!(
        sw.logins,
        vec![
            "1000@127.0.0.1 - Authentication Failure".to_string(),
            "1000@127.0.0.1 generated Logged in".to_string()
        ]
    );
}

#[test]
fn modify_holds_unholds_and_toggles_and_reports_the_state() {
    let (mut c, mut sw) = in_call("c1");
    let modify = |c: &mut Conn, sw: &mut Fake, action: &str| {
        send(
            c,
            sw,
            json!({"jsonrpc":"2.0","id":3,"method":"verto.modify","params":{"action":action,"dialogParams":{"callID":"c1"}}}),
        )[0]["result"]["holdState"]
            .clone()
    };
    assert_eq!(modify(&mut c, &mut sw, "hold"), "held");
    assert_eq!(modify(&mut c, &mut sw, "hold"), "held");
    assert_eq!(modify(&mut c, &mut sw, "toggleHold"), "active");
    assert_eq!(modify(&mut c, &mut sw, "videoRefresh"), "active");
    assert_eq!(
        sw.holds,
        vec![("uuid-1".to_string(), true), ("uuid-1".to_string(), false)]
    );
    c.handle_early_media("c1", "v=0", Instant::now());
    let media = polled(&mut c).unwrap();
    assert_eq!(media["method"], "verto.media");
}

#[test]
fn replies_from_the_client_get_no_answer() {
    let (mut c, mut sw) = (conn(), Fake::default());
    login(&mut c, &mut sw);
    let out = text(
        &mut c,
        &mut sw,
        r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
        "s",
    );
    assert!(out.is_empty());
}

#[test]
fn a_session_id_of_another_user_is_refused_and_the_connection_closes() {
    let (mut c, mut sw) = (conn(), Fake::default());
    sw.sessions.push(("s-1".into(), "1001@127.0.0.1".into()));
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":1,"method":"login",
               "params":{"login":"1000@127.0.0.1","passwd":"1234","sessid":"s-1"}}),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["error"]["code"], -32001);
    assert_eq!(out[0]["error"]["message"], "Session in use");
    assert!(c.must_close());
}

#[test]
fn a_client_back_with_its_session_gets_its_calls_offered_again() {
    let (mut c, mut sw) = (conn(), Fake::default());
    sw.sessions.push(("s-1".into(), "1000@127.0.0.1".into()));
    sw.carried.push(Reattach {
        call_id: "c9".into(),
        uuid: "uuid-9".into(),
        sdp: "v=0 offer".into(),
    });
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":1,"method":"login",
               "params":{"login":"1000@127.0.0.1","passwd":"1234","sessid":"s-1"}}),
    );
    assert_eq!(out[0]["result"]["sessid"], "s-1");
    assert_eq!(out[1]["method"], "verto.clientReady");
    assert_eq!(out[1]["params"]["reattached_sessions"], json!(["uuid-9"]));
    assert_eq!(out[2]["method"], "verto.attach");
    assert_eq!(out[2]["params"]["callID"], "c9");
    assert_eq!(out[2]["params"]["sdp"], "v=0 offer");
    // The client answers the new offer, then can hang the call up.
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":2,"method":"verto.attach",
               "params":{"sdp":"v=0 answer","dialogParams":{"callID":"c9"}}}),
    );
    assert!(out[0]["result"].is_object(), "{out:?}");
    assert_eq!(sw.answers, vec!["uuid-9".to_string()]);
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":3,"method":"verto.bye","params":{"dialogParams":{"callID":"c9"}}}),
    );
    assert_eq!(out[0]["result"]["message"], "CALL ENDED");
    // Attaching a call the session does not carry fails.
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":4,"method":"verto.attach",
               "params":{"sdp":"v=0","dialogParams":{"callID":"other"}}}),
    );
    assert_eq!(out[0]["error"]["message"], "CALL DOES NOT EXIST");
}

#[test]
fn subscriptions_report_new_existing_and_refused_channels() {
    let (mut c, mut sw) = (conn(), Fake::default());
    login(&mut c, &mut sw);
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":2,"method":"verto.subscribe",
               "params":{"eventChannel":["room.1","secret.x"]}}),
    );
    assert_eq!(out[0]["result"]["subscribedChannels"], json!(["room.1"]));
    assert_eq!(
        out[0]["result"]["unauthorizedChannels"],
        json!(["secret.x"])
    );
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":3,"method":"verto.subscribe","params":{"eventChannel":"room.1"}}),
    );
    assert_eq!(
        out[0]["error"]["alreadySubscribedChannels"],
        json!(["room.1"])
    );
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":4,"method":"verto.unsubscribe",
               "params":{"eventChannel":["room.1","room.2"]}}),
    );
    assert_eq!(out[0]["result"]["unsubscribedChannels"], json!(["room.1"]));
    assert_eq!(out[0]["result"]["notSubscribedChannels"], json!(["room.2"]));
}

#[test]
fn a_broadcast_carries_the_senders_identity_and_needs_a_channel() {
    let (mut c, mut sw) = (conn(), Fake::default());
    login(&mut c, &mut sw);
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":2,"method":"verto.broadcast",
               "params":{"eventChannel":"room.1","data":{"x":1}}}),
    );
    assert!(out[0]["result"].is_object());
    assert_eq!(sw.broadcasts[0]["userid"], "1000@127.0.0.1");
    assert_eq!(sw.broadcasts[0]["sessid"], "generated");
    assert_eq!(sw.broadcasts[0]["data"]["x"], 1);
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":3,"method":"verto.broadcast","params":{"data":{}}}),
    );
    assert_eq!(out[0]["error"]["message"], "eventChannel not specified.");
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":4,"method":"verto.broadcast","params":{"eventChannel":"secret"}}),
    );
    assert_eq!(out[0]["error"]["message"], "Permission Denied.");
}

#[test]
fn chat_goes_out_through_the_protocol_its_address_names() {
    let (mut c, mut sw) = in_call("c1");
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":5,"method":"verto.info",
               "params":{"msg":{"to":"1001@127.0.0.1","body":"hi","from_msg_name":"Al"}}}),
    );
    assert_eq!(out[0]["result"]["message"], "SENT");
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":6,"method":"verto.info",
               "params":{"dialogParams":{"callID":"c1"},
                         "msg":{"to":"sip+1002@127.0.0.1","body":"yo","inDialog":true}}}),
    );
    assert_eq!(out[0]["result"]["message"], "SENT");
    assert_eq!(sw.chats[0].proto, "verto");
    assert_eq!(sw.chats[0].from, "1000@127.0.0.1");
    assert_eq!(sw.chats[0].to, "1001@127.0.0.1");
    assert_eq!(
        sw.chats[0].headers,
        vec![("from_msg_name".to_string(), "Al".to_string())]
    );
    assert_eq!(sw.chats[1].proto, "sip");
    assert_eq!(sw.chats[1].to, "1002@127.0.0.1");
    assert_eq!(
        sw.chats[1].headers,
        vec![("call_id".to_string(), "c1".to_string())]
    );
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":7,"method":"verto.info","params":{"msg":{"to":"1001@127.0.0.1"}}}),
    );
    assert_eq!(
        out[0]["error"]["message"],
        "INVALID MESSAGE to and body params required"
    );
    let out = send(
        &mut c,
        &mut sw,
        json!({"jsonrpc":"2.0","id":8,"method":"verto.info",
               "params":{"msg":{"to":"nobody@127.0.0.1","body":"x"}}}),
    );
    assert_eq!(out[0]["error"]["message"], "NOT DELIVERED");
}

#[test]
fn a_display_update_names_the_call() {
    let (mut c, _sw) = in_call("c1");
    c.handle_display("c1", "Bob", "1002", Instant::now());
    let d = polled(&mut c).unwrap();
    assert_eq!(d["method"], "verto.display");
    assert_eq!(d["params"]["callID"], "c1");
    assert_eq!(d["params"]["display_name"], "Bob");
    assert_eq!(d["params"]["display_number"], "1002");
    c.handle_display("nope", "x", "y", Instant::now());
    assert!(polled(&mut c).is_none());
}
