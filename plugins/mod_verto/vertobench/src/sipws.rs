//! The same calls over SIP over WebSocket (RFC 7118) instead of verto, as
//! a browser phone (JsSIP, SIP.js) makes them to mod_sofia: one WebSocket
//! (subprotocol `sip`) per [`Login`], no REGISTER (the bench
//! configuration lets loopback call without auth), an INVITE carrying the
//! WebRTC offer, the 200's SDP handed to the call as verto's
//! `verto.answer` would be, ACK, and BYE at the end. The calls
//! ([`crate::call`]) are the verto ones: this task speaks SIP for them
//! behind the [`Login`] they already use. wss: put a TLS tunnel (stunnel)
//! in front, as bench/webrtc-sip-wss.sh does.

use crate::verto::{host_port, Command, Login, LoginOutcome};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// One call's SIP dialog as far as the bench needs it.
#[derive(Default)]
struct Dialog {
    destination: String,
    /// The INVITE's reply, until a provisional or final response.
    invite_reply: Option<oneshot::Sender<Value>>,
    /// The To of the 200 (with the switch's tag).
    to: Option<String>,
    bye_reply: Option<oneshot::Sender<Value>>,
}

impl Login {
    /// As [`Login::start`], speaking SIP over the WebSocket at `url`
    /// (`ws://host:port`) for user `user@domain`.
    pub fn start_sip(
        url: String,
        user: String,
        sessid: String,
        done: mpsc::UnboundedSender<LoginOutcome>,
    ) -> Login {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(serve(url, user, sessid.clone(), rx, done));
        Login {
            commands: tx,
            sessid,
        }
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    let head = msg.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn serve(
    url: String,
    user: String,
    sessid: String,
    mut commands: mpsc::UnboundedReceiver<Command>,
    done: mpsc::UnboundedSender<LoginOutcome>,
) {
    let started = Instant::now();
    let ws = match connect(&url).await {
        Ok(ws) => {
            let _ = done.send(Ok(started.elapsed()));
            ws
        }
        Err(why) => {
            let _ = done.send(Err(why.clone()));
            let err = json!({ "error": { "message": format!("connect: {why}") } });
            while let Some(c) = commands.recv().await {
                if let Command::Request { reply, .. } = c {
                    let _ = reply.send(err.clone());
                }
            }
            return;
        }
    };
    let (mut sink, mut source) = ws.split();
    let domain = user.split('@').nth(1).unwrap_or("127.0.0.1").to_string();
    let local = format!("{sessid}.invalid");
    let mut branch: u64 = 0;
    let mut routes: HashMap<String, mpsc::UnboundedSender<Value>> = HashMap::new();
    let mut dialogs: HashMap<String, Dialog> = HashMap::new();
    let mut calls_open = true;
    while calls_open || dialogs.values().any(|d| d.bye_reply.is_some()) {
        branch += 1;
        let via = format!("SIP/2.0/WS {local};branch=z9hG4bK-{sessid}-{branch}");
        let from = format!("<sip:{user}>;tag={sessid}");
        let out: String = tokio::select! {
            c = commands.recv(), if calls_open => match c {
                Some(Command::Route { call_id, to }) => {
                    routes.insert(call_id, to);
                    continue;
                }
                Some(Command::Request { method: "verto.invite", params, reply }) => {
                    let call_id = params.pointer("/dialogParams/callID").and_then(Value::as_str).unwrap_or("").to_string();
                    let dest = params.pointer("/dialogParams/destination_number").and_then(Value::as_str).unwrap_or("").to_string();
                    let sdp = params.get("sdp").and_then(Value::as_str).unwrap_or("");
                    dialogs.insert(call_id.clone(), Dialog { destination: dest.clone(), invite_reply: Some(reply), ..Dialog::default() });
                    format!(
                        "INVITE sip:{dest}@{domain} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
        From: {from}\r\nTo: <sip:{dest}@{domain}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
        Contact: <sip:bench@{local};transport=ws>\r\nContent-Type: application/sdp\r\n\
        Content-Length: {}\r\n\r\n{sdp}",
                        sdp.len()
                    )
                }
                Some(Command::Request { method: "verto.bye", params, reply }) => {
                    let call_id = params.pointer("/dialogParams/callID").and_then(Value::as_str).unwrap_or("").to_string();
                    let Some(d) = dialogs.get_mut(&call_id) else {
                        let _ = reply.send(json!({ "result": {} }));
                        continue;
                    };
                    let Some(to) = d.to.clone() else {
                        // Never answered: nothing to end.
                        dialogs.remove(&call_id);
                        let _ = reply.send(json!({ "result": {} }));
                        continue;
                    };
                    d.bye_reply = Some(reply);
                    format!(
                        "BYE sip:{}@{domain} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
        From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
                        d.destination
                    )
                }
                Some(Command::Request { reply, method, .. }) => {
                    let _ = reply.send(json!({ "error": { "message": format!("{method}: not in SIP") } }));
                    continue;
                }
                None => {
                    calls_open = false;
                    continue;
                }
            },
            m = source.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t.as_str().to_string(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let call_id = header(&text, "Call-ID").unwrap_or("").to_string();
                let cseq = header(&text, "CSeq").unwrap_or("").to_string();
                let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("").to_string();
                if let Some(status) = text.strip_prefix("SIP/2.0 ") {
                    let code: u16 = status.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                    let Some(d) = dialogs.get_mut(&call_id) else { continue };
                    if cseq.ends_with("BYE") {
                        if code >= 200 {
                            if let Some(r) = d.bye_reply.take() {
                                let _ = r.send(json!({ "result": { "code": code } }));
                            }
                            dialogs.remove(&call_id);
                        }
                        continue;
                    }
                    if !cseq.ends_with("INVITE") {
                        continue;
                    }
                    if code < 300 {
                        if let Some(r) = d.invite_reply.take() {
                            let _ = r.send(json!({ "result": { "code": code } }));
                        }
                    }
                    if code < 200 {
                        continue;
                    }
                    let to = header(&text, "To").unwrap_or("").to_string();
                    if code >= 300 {
                        if let Some(r) = d.invite_reply.take() {
                            let _ = r.send(json!({ "error": { "message": format!("INVITE: {}", status.lines().next().unwrap_or("")) } }));
                        } else if let Some(route) = routes.get(&call_id) {
                            let _ = route.send(json!({ "method": "verto.bye" }));
                        }
                        // The ACK of a failure is the INVITE transaction's;
                        // the switch's timer ends it.
                        dialogs.remove(&call_id);
                        continue;
                    }
                    let first = d.to.is_none();
                    d.to = Some(to.clone());
                    if first {
                        if let Some(route) = routes.get(&call_id) {
                            let _ = route.send(json!({ "method": "verto.answer", "params": { "sdp": body } }));
                        }
                    }
                    format!(
                        "ACK sip:{}@{domain} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
        From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
                        d.destination
                    )
                } else {
                    // A request from the switch: a BYE ends the call; every
                    // request is answered 200.
                    if text.starts_with("BYE ") {
                        if let Some(route) = routes.get(&call_id) {
                            let _ = route.send(json!({ "method": "verto.bye" }));
                        }
                        dialogs.remove(&call_id);
                    }
                    let mut reply = String::from("SIP/2.0 200 OK\r\n");
                    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
                        if let Some(v) = header(&text, name) {
                            reply.push_str(&format!("{name}: {v}\r\n"));
                        }
                    }
                    reply.push_str("Content-Length: 0\r\n\r\n");
                    reply
                }
            }
        };
        if sink.send(Message::text(out)).await.is_err() {
            return;
        }
    }
    let _ = sink.send(Message::Close(None)).await;
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connect(url: &str) -> Result<Ws, String> {
    let addr = host_port(url).ok_or("the URL is not ws://host:port")?;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut request = url
        .into_client_request()
        .map_err(|e| format!("{url}: {e}"))?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
    let cfg = WebSocketConfig::default().read_buffer_size(4096);
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(cfg))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_found_by_name_in_the_head_only() {
        let m = "SIP/2.0 200 OK\r\nCall-ID: x1\r\ncseq: 1 INVITE\r\n\r\nCall-ID: body";
        assert_eq!(header(m, "Call-ID"), Some("x1"));
        assert_eq!(header(m, "CSeq"), Some("1 INVITE"));
        assert_eq!(header(m, "To"), None);
    }
}
