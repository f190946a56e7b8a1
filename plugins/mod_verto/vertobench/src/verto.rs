//! One verto login: a WebSocket to the switch, `login`, then the calls
//! that share it. A call sends its requests through [`Login`] and gets the
//! switch's requests about it (`verto.answer`, `verto.media`, `verto.bye`)
//! routed by `callID`, as verto.js does for the calls of one browser tab.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// What the calls ask of their login's connection.
pub(crate) enum Command {
    /// Route the switch's requests about `call_id` to `to`.
    Route {
        call_id: String,
        to: mpsc::UnboundedSender<Value>,
    },
    /// Send a request; the reply (or an error object) comes back.
    Request {
        method: &'static str,
        params: Value,
        reply: oneshot::Sender<Value>,
    },
}

/// A call's handle on its login's connection.
#[derive(Clone)]
pub struct Login {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) sessid: String,
}

/// Who logs in where.
#[derive(Clone, Debug)]
pub struct Account {
    /// `ws://host:port`
    pub url: String,
    /// `user@domain`
    pub login: String,
    pub password: String,
}

/// How a login went: the time from connecting to the login's result.
pub type LoginOutcome = Result<Duration, String>;

impl Login {
    /// Starts the connection task: connects, logs in, then serves the calls
    /// holding a clone until the last one drops it. The login's outcome is
    /// sent to `done`.
    pub fn start(
        account: Account,
        sessid: String,
        done: mpsc::UnboundedSender<LoginOutcome>,
    ) -> Login {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(serve(account, sessid.clone(), rx, done));
        Login {
            commands: tx,
            sessid,
        }
    }

    /// The session id the login gave.
    pub fn sessid(&self) -> &str {
        &self.sessid
    }

    /// Asks for the switch's requests about `call_id`.
    pub fn route(&self, call_id: &str) -> mpsc::UnboundedReceiver<Value> {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self.commands.send(Command::Route {
            call_id: call_id.to_string(),
            to: tx,
        });
        rx
    }

    /// A request and its reply: `result` or the error as a message.
    pub async fn request(&self, method: &'static str, params: Value) -> Result<Value, String> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Request {
                method,
                params,
                reply: tx,
            })
            .map_err(|_| "connection gone".to_string())?;
        let reply = rx.await.map_err(|_| "connection gone".to_string())?;
        match reply.get("result") {
            Some(r) => Ok(r.clone()),
            None => Err(reply
                .get("error")
                .map(|e| {
                    e.get("message")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| e.to_string())
                })
                .unwrap_or_else(|| reply.to_string())),
        }
    }
}

pub(crate) fn host_port(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("ws://")?;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// The connection task. On a failed login every request is answered with
/// the failure, so the calls report it.
async fn serve(
    account: Account,
    sessid: String,
    mut commands: mpsc::UnboundedReceiver<Command>,
    done: mpsc::UnboundedSender<LoginOutcome>,
) {
    let started = Instant::now();
    let ws = match connect_and_login(&account, &sessid).await {
        Ok(ws) => {
            let _ = done.send(Ok(started.elapsed()));
            ws
        }
        Err(why) => {
            let _ = done.send(Err(why.clone()));
            let err = json!({ "error": { "message": format!("login: {why}") } });
            while let Some(c) = commands.recv().await {
                if let Command::Request { reply, .. } = c {
                    let _ = reply.send(err.clone());
                }
            }
            return;
        }
    };
    let (mut sink, mut source) = ws.split();
    let mut next_id: u64 = 1;
    let mut pending: HashMap<u64, oneshot::Sender<Value>> = HashMap::new();
    let mut routes: HashMap<String, mpsc::UnboundedSender<Value>> = HashMap::new();
    let mut calls_open = true;
    while calls_open || !pending.is_empty() {
        let out = tokio::select! {
            c = commands.recv(), if calls_open => match c {
                Some(Command::Route { call_id, to }) => {
                    routes.insert(call_id, to);
                    continue;
                }
                Some(Command::Request { method, params, reply }) => {
                    next_id += 1;
                    pending.insert(next_id, reply);
                    json!({ "jsonrpc": "2.0", "id": next_id, "method": method, "params": params })
                }
                None => {
                    calls_open = false;
                    continue;
                }
            },
            m = source.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let Ok(m) = serde_json::from_str::<Value>(t.as_str()) else { continue };
                    match m.get("method").and_then(Value::as_str) {
                        Some(method) => {
                            // verto.js acknowledges every request it handles.
                            let call = m.pointer("/params/callID").and_then(Value::as_str);
                            if let Some(to) = call.and_then(|c| routes.get(c)) {
                                if to.send(m.clone()).is_err() {
                                    routes.retain(|_, t| !t.is_closed());
                                }
                            }
                            json!({ "jsonrpc": "2.0", "id": m.get("id"), "result": { "method": method } })
                        }
                        None => {
                            if let Some(reply) = m.get("id").and_then(Value::as_u64).and_then(|id| pending.remove(&id)) {
                                let _ = reply.send(m);
                            }
                            continue;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
        };
        if sink.send(Message::text(out.to_string())).await.is_err() {
            return;
        }
    }
    let _ = sink.send(Message::Close(None)).await;
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connect_and_login(account: &Account, sessid: &str) -> Result<Ws, String> {
    let addr = host_port(&account.url).ok_or("the URL is not ws://host:port")?;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    // tungstenite reads in 128 KiB chunks by default; verto messages are
    // a few KiB, and a load generator holds hundreds of connections.
    let cfg = WebSocketConfig::default().read_buffer_size(4096);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(account.url.as_str(), tcp, Some(cfg))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    let login = json!({
        "jsonrpc": "2.0", "id": 1, "method": "login",
        "params": { "login": account.login, "passwd": account.password, "sessid": sessid },
    });
    ws.send(Message::text(login.to_string()))
        .await
        .map_err(|e| format!("send: {e}"))?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let Ok(m) = serde_json::from_str::<Value>(t.as_str()) else {
                    continue;
                };
                if m.get("id") != Some(&json!(1)) || m.get("method").is_some() {
                    continue;
                }
                return match m.get("result") {
                    Some(_) => Ok(ws),
                    None => Err(m
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("refused")
                        .to_string()),
                };
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("login: {e}")),
            None => return Err("closed during login".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tcp_address_is_the_urls_authority() {
        assert_eq!(host_port("ws://127.0.0.1:8081"), Some("127.0.0.1:8081"));
        assert_eq!(
            host_port("ws://127.0.0.1:8081/verto"),
            Some("127.0.0.1:8081")
        );
        assert_eq!(host_port("wss://127.0.0.1:8082"), None);
    }
}
