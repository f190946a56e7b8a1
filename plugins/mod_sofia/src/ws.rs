//! SIP over WebSocket (RFC 7118): the `ws-binding` and `wss-binding`
//! listeners' connections. The upgrade must offer the `sip` subprotocol
//! (§4) and complete within `tcp-message-timeout`; each WebSocket message
//! is one SIP message (§5), text or binary, and what the SIP thread sends
//! goes out as one text message. A connection lives by the profile's TCP
//! limits (caps, idle timeout), and a peer that sends something that is
//! not WebSocket is closed with a log line; other connections go on.
//!
//! Live reload: a message for a dialog of an older version goes back to it
//! through the host ([`crate::handover::forward`]) as over UDP and TCP;
//! a connection the SIP thread lets go (a draining version's connection
//! without calls) is closed with 1001, going away, and the browser
//! reconnects to the new version.

use crate::config::TcpLimits;
use crate::leg::Input;
use crate::sip::transaction::Proto;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// The largest SIP message taken over a WebSocket.
const MAX_MESSAGE: usize = 64 * 1024;

/// Whether a `Sec-WebSocket-Protocol` value offers `sip`.
fn offers_sip(v: &str) -> bool {
    v.split(',').any(|p| p.trim().eq_ignore_ascii_case("sip"))
}

/// The upgrade's answer: `sip` chosen, or 400 when the client did not
/// offer it.
#[allow(clippy::result_large_err)]
fn choose_sip(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let offered = req
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .any(|v| v.to_str().is_ok_and(offers_sip));
    if !offered {
        let mut e = ErrorResponse::new(Some("the sip subprotocol is required (RFC 7118)".into()));
        *e.status_mut() = StatusCode::BAD_REQUEST;
        return Err(e);
    }
    resp.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
    Ok(resp)
}

/// Serves one accepted connection (`proto` WS or WSS, TLS already done)
/// until it closes; `channel` names its listener (a live reload's
/// forwarded message says where it came in).
pub async fn serve<S>(
    profile: usize,
    proto: Proto,
    s: S,
    from: SocketAddr,
    input: UnboundedSender<Input>,
    limits: TcpLimits,
    channel: Arc<str>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cfg = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(s, choose_sip, Some(cfg));
    let ws = match tokio::time::timeout(limits.message, upgrade).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            log::warn!(
                "{} {from}: WebSocket upgrade failed: {e}; closing",
                proto.as_str()
            );
            return;
        }
        Err(_) => {
            log::warn!(
                "{} {from}: WebSocket upgrade not complete after {} ms (tcp-message-timeout); closing",
                proto.as_str(),
                limits.message.as_millis()
            );
            return;
        }
    };
    let peer = from.to_string();
    let (mut sink, mut source) = ws.split();
    let (w, mut out) = unbounded_channel::<Vec<u8>>();
    if input.send(Input::TcpOpen { from, writer: w }).is_err() {
        return;
    }
    loop {
        tokio::select! {
            m = tokio::time::timeout(limits.idle, source.next()) => {
                let data = match m {
                    Err(_) => {
                        log::info!(
                            "{} {from}: idle for {} ms (tcp-idle-timeout); closing",
                            proto.as_str(),
                            limits.idle.as_millis()
                        );
                        break;
                    }
                    Ok(Some(Ok(Message::Text(t)))) => t.as_bytes().to_vec(),
                    Ok(Some(Ok(Message::Binary(b)))) => b.to_vec(),
                    Ok(Some(Ok(Message::Close(_)))) | Ok(None) => break,
                    Ok(Some(Ok(_))) => continue,
                    Ok(Some(Err(e))) => {
                        log::warn!("{} {from}: {e}; closing", proto.as_str());
                        break;
                    }
                };
                // RFC 5626 keep-alive (CRLF CRLF) in a message of its own.
                if data.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                // A previous version's dialog: back to it, through the host.
                let back = crate::shell::back_to(&input, move |data| Input::Stream {
                    profile,
                    proto,
                    from,
                    data,
                });
                if crate::handover::forward(&channel, &peer, &data, back) {
                    continue;
                }
                if input.send(Input::Stream { profile, proto, from, data }).is_err() {
                    break;
                }
            }
            b = out.recv() => {
                let Some(b) = b else {
                    // The SIP thread let the connection go (a draining
                    // version's, without calls): going away.
                    let away = CloseFrame {
                        code: CloseCode::Away,
                        reason: "reload".into(),
                    };
                    let _ = tokio::time::timeout(limits.message, sink.send(Message::Close(Some(away)))).await;
                    break;
                };
                let m = match String::from_utf8(b) {
                    Ok(t) => Message::text(t),
                    Err(e) => Message::binary(e.into_bytes()),
                };
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = sink.close().await;
    let _ = input.send(Input::TcpClosed { from });
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    /// A served connection over an in-memory stream, a client on its other
    /// end, and what the server hands the SIP thread.
    async fn connected() -> (
        tokio_tungstenite::WebSocketStream<tokio::io::DuplexStream>,
        tokio::sync::mpsc::UnboundedReceiver<Input>,
    ) {
        let (server, client) = tokio::io::duplex(64 * 1024);
        let (input, rx) = unbounded_channel();
        let from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        tokio::spawn(serve(
            0,
            Proto::Ws,
            server,
            from,
            input,
            TcpLimits::default(),
            "ws 127.0.0.1:5066".into(),
        ));
        let mut req = "ws://127.0.0.1:5066/".into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
        let (ws, _) = tokio_tungstenite::client_async(req, client).await.unwrap();
        (ws, rx)
    }

    #[tokio::test]
    async fn a_connection_the_sip_thread_lets_go_is_closed_going_away() {
        let (mut ws, mut rx) = connected().await;
        let Some(Input::TcpOpen { writer, .. }) = rx.recv().await else {
            panic!("the connection was not announced");
        };
        writer
            .send(b"OPTIONS sip:x SIP/2.0\r\n\r\n".to_vec())
            .unwrap();
        // What was queued goes out first, then the close (a draining
        // version dropping the connection's writer).
        drop(writer);
        let m = ws.next().await.unwrap().unwrap();
        assert_eq!(m, Message::text("OPTIONS sip:x SIP/2.0\r\n\r\n"));
        match ws.next().await {
            Some(Ok(Message::Close(Some(f)))) => assert_eq!(f.code, CloseCode::Away),
            other => panic!("not closed with 1001: {other:?}"),
        }
    }

    static FORWARDED: hotswitch_plugin_api::sync::Mutex<Vec<(String, String)>> =
        hotswitch_plugin_api::sync::Mutex::new(Vec::new());

    fn take_forwarded(channel: &str, peer: &str, data: &[u8]) -> bool {
        let id = crate::handover::call_id_of(data).unwrap_or_default();
        if id != "ws-old-call" {
            return false;
        }
        FORWARDED
            .lock()
            .push((channel.to_string(), peer.to_string()));
        true
    }

    #[tokio::test]
    async fn a_message_for_an_older_versions_dialog_is_forwarded_not_handled() {
        crate::handover::set_forward(take_forwarded);
        let h = crate::handover::Handed {
            own: vec!["ws-old-call".into()],
            ..Default::default()
        };
        crate::handover::adopt(&h, Vec::new());
        let (mut ws, mut rx) = connected().await;
        // The SIP thread keeps the connection's writer.
        let Some(Input::TcpOpen { writer: _kept, .. }) = rx.recv().await else {
            panic!("the connection was not announced");
        };
        let msg = |id: &str| {
            Message::text(format!(
                "BYE sip:a@b SIP/2.0\r\nCall-ID: {id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
            ))
        };
        ws.send(msg("ws-old-call")).await.unwrap();
        ws.send(msg("ws-new-call")).await.unwrap();
        // Only the current version's own message reaches its SIP thread.
        match rx.recv().await {
            Some(Input::Stream { data, .. }) => {
                assert_eq!(crate::handover::call_id_of(&data), Some("ws-new-call"))
            }
            _ => panic!("the current version's message did not arrive"),
        }
        // The older version's goes back through the host off the reader.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while FORWARDED.lock().is_empty() && std::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(
            *FORWARDED.lock(),
            [(
                "ws 127.0.0.1:5066".to_string(),
                "127.0.0.1:40000".to_string()
            )]
        );
    }

    #[test]
    fn the_sip_subprotocol_is_found_among_those_offered() {
        assert!(offers_sip("sip"));
        assert!(offers_sip("chat, SIP"));
        assert!(!offers_sip("sips, chat"));
    }

    #[test]
    fn an_upgrade_without_sip_is_refused_and_one_with_it_answered_sip() {
        let req = |proto: Option<&str>| {
            let mut b = Request::builder().uri("/");
            if let Some(p) = proto {
                b = b.header("Sec-WebSocket-Protocol", p);
            }
            b.body(()).unwrap()
        };
        let e = choose_sip(&req(None), Response::default()).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let r = choose_sip(&req(Some("sip")), Response::default()).unwrap();
        assert_eq!(r.headers()["Sec-WebSocket-Protocol"], "sip");
    }
}
