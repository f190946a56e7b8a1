//! The I/O shell around [`protocol`]: a TCP connection,
//! authenticated, with a reader thread that routes the server's packets —
//! replies to the caller waiting for them, events and log records (and the
//! end of the connection) to whoever prints them.

use super::protocol::{self, DecodeError, EncodeError, Kind, Packet};
use hotswitch_plugin_api::sansio::Protocol;
use hotswitch_plugin_api::sync::Mutex;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Something the server sent that nobody asked for.
#[derive(Debug)]
pub enum Notice {
    /// An event (`text/event-*`).
    Event(Packet),
    /// A log record (`log/data`).
    Log(Packet),
    /// The connection ended; nothing follows.
    Closed(Ending),
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The server sent its disconnect notice (the text) and closed.
    Goodbye(String),
    /// The server closed without a word.
    Eof,
    /// The server sent bytes that are not the protocol.
    Malformed(String),
    /// The socket failed.
    Io(String),
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Goodbye(text) => {
                let text = text.trim();
                if text.is_empty() {
                    write!(f, "the server disconnected")
                } else {
                    write!(f, "the server disconnected: {}", text.replace('\n', " "))
                }
            }
            Ending::Eof => write!(f, "the server closed the connection"),
            Ending::Malformed(e) => {
                write!(f, "malformed packet from the server ({e}); disconnected")
            }
            Ending::Io(e) => write!(f, "connection lost: {e}"),
        }
    }
}

/// Why a request failed.
#[derive(Debug)]
pub enum ClientError {
    /// No TCP connection.
    Connect { addr: String, error: String },
    /// The server's ACL refused us (its text).
    Refused(String),
    /// The password was refused (the reply).
    Auth(String),
    /// The server did not greet as an event socket does.
    NotEventSocket(String),
    /// The connection ended before the reply came.
    Closed(Ending),
    /// No reply within the timeout (it is discarded when it comes).
    Timeout(Duration),
    /// Ctrl-C while waiting (the reply is discarded when it comes).
    Interrupted,
    /// The command cannot be sent as it is.
    Encode(EncodeError),
    /// Writing failed.
    Io(io::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { addr, error } => write!(f, "cannot connect to {addr}: {error}"),
            ClientError::Refused(t) => write!(f, "the server refused the connection: {}", t.trim()),
            ClientError::Auth(t) => write!(f, "authentication failed: {}", t.trim()),
            ClientError::NotEventSocket(what) => {
                write!(f, "the server is not an event socket (it sent {what})")
            }
            ClientError::Closed(e) => write!(f, "{e}"),
            ClientError::Timeout(d) => write!(f, "no reply within {} ms", d.as_millis()),
            ClientError::Interrupted => write!(f, "interrupted; the reply will be discarded"),
            ClientError::Encode(e) => write!(f, "{e}"),
            ClientError::Io(e) => write!(f, "cannot send: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// What the reader thread hands the waiting caller.
type Reply = Packet;

/// An authenticated connection.
pub struct Client {
    writer: TcpStream,
    replies: Receiver<Reply>,
    /// Why the connection ended, once it has.
    ended: Arc<Mutex<Option<Ending>>>,
    /// Replies still to come for requests given up on.
    stale: usize,
    /// How long to wait for a reply (None: until it comes).
    pub timeout: Option<Duration>,
    /// Raised (by a signal handler) to stop waiting.
    pub interrupt: Arc<AtomicBool>,
}

impl Client {
    /// Connects, reads the greeting and authenticates. Events and log
    /// records go to the returned receiver, and so does the end of the
    /// connection, once.
    pub fn connect(
        host: &str,
        port: u16,
        password: &str,
        connect_timeout: Option<Duration>,
    ) -> Result<(Client, Receiver<Notice>), ClientError> {
        let addr = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let connect_err = |error: String| ClientError::Connect {
            addr: addr.clone(),
            error,
        };
        let addrs: Vec<_> = addr
            .to_socket_addrs()
            .map_err(|e| connect_err(e.to_string()))?
            .collect();
        let mut last = "no address".to_string();
        let mut stream = None;
        for a in &addrs {
            let r = match connect_timeout {
                Some(t) => TcpStream::connect_timeout(a, t),
                None => TcpStream::connect(a),
            };
            match r {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        let stream = stream.ok_or_else(|| connect_err(last))?;
        let _ = stream.set_nodelay(true);
        let reader = stream.try_clone().map_err(ClientError::Io)?;
        let (reply_tx, replies) = mpsc::channel();
        let (notice_tx, notices) = mpsc::channel();
        let ended = Arc::new(Mutex::new(None));
        let e = ended.clone();
        std::thread::Builder::new()
            .name("esl-reader".into())
            .spawn(move || read_loop(reader, reply_tx, notice_tx, e))
            .map_err(ClientError::Io)?;
        let mut c = Client {
            writer: stream,
            replies,
            ended,
            stale: 0,
            timeout: connect_timeout,
            interrupt: Arc::new(AtomicBool::new(false)),
        };
        let greeting = c.wait().map_err(|e| match e {
            ClientError::Closed(Ending::Goodbye(t)) => ClientError::Refused(t),
            e => e,
        })?;
        match greeting.kind() {
            Kind::AuthRequest => {}
            Kind::RudeRejection => return Err(ClientError::Refused(greeting.body)),
            k => return Err(ClientError::NotEventSocket(format!("{k:?}"))),
        }
        let reply = c.command(&format!("auth {password}"))?;
        if reply != "+OK accepted" {
            return Err(ClientError::Auth(reply));
        }
        Ok((c, notices))
    }

    /// Sends a command (`event plain ALL`, `log debug`…); returns its
    /// `Reply-Text`.
    pub fn command(&mut self, line: &str) -> Result<String, ClientError> {
        self.send(line)?;
        let p = self.wait()?;
        Ok(p.reply_text().to_string())
    }

    /// Runs an api command; returns its output.
    pub fn api(&mut self, line: &str) -> Result<String, ClientError> {
        self.send(&format!("api {line}"))?;
        let p = self.wait()?;
        match p.kind() {
            Kind::ApiResponse => Ok(p.body),
            // A refusal comes as a command reply (`-ERR command not found`).
            _ => Ok(p.reply_text().to_string()),
        }
    }

    /// Says goodbye (`exit`) and waits for the reply.
    pub fn exit(&mut self) {
        let t = self.timeout.replace(Duration::from_secs(2));
        let _ = self.command("exit");
        self.timeout = t;
        let _ = self.writer.shutdown(Shutdown::Both);
    }

    fn send(&mut self, line: &str) -> Result<(), ClientError> {
        let bytes = protocol::encode_command(line).map_err(ClientError::Encode)?;
        if let Some(e) = self.ended() {
            return Err(ClientError::Closed(e));
        }
        self.writer.write_all(&bytes).map_err(ClientError::Io)
    }

    fn ended(&self) -> Option<Ending> {
        self.ended.lock().clone()
    }

    /// The next reply, skipping those of requests given up on.
    fn wait(&mut self) -> Result<Reply, ClientError> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        self.interrupt.store(false, Ordering::SeqCst);
        loop {
            let slice = Duration::from_millis(100);
            let wait = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(slice),
                None => slice,
            };
            match self.replies.recv_timeout(wait) {
                Ok(_) if self.stale > 0 => self.stale -= 1,
                Ok(p) => return Ok(p),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(ClientError::Closed(self.ended().unwrap_or(Ending::Eof)))
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.interrupt.swap(false, Ordering::SeqCst) {
                        self.stale += 1;
                        return Err(ClientError::Interrupted);
                    }
                    if let (Some(d), Some(t)) = (deadline, self.timeout) {
                        if Instant::now() >= d {
                            self.stale += 1;
                            return Err(ClientError::Timeout(t));
                        }
                    }
                }
            }
        }
    }
}

/// Reads packets until the connection ends, then says how it ended.
fn read_loop(
    mut stream: TcpStream,
    replies: Sender<Reply>,
    notices: Sender<Notice>,
    ended: Arc<Mutex<Option<Ending>>>,
) {
    let mut decoder = protocol::decoder();
    let mut buf = vec![0u8; 64 * 1024];
    let mut goodbye: Option<String> = None;
    let ending = 'read: loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break 'read goodbye.take().map(Ending::Goodbye).unwrap_or(Ending::Eof),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                break 'read goodbye
                    .take()
                    .map(Ending::Goodbye)
                    .unwrap_or(Ending::Io(e.to_string()))
            }
        };
        decoder.handle_input(&buf[..n]);
        loop {
            match decoder.poll_event().map(|r| r.map(Packet::from)) {
                Some(Ok(p)) => match p.kind() {
                    Kind::Event => {
                        let _ = notices.send(Notice::Event(p));
                    }
                    Kind::Log => {
                        let _ = notices.send(Notice::Log(p));
                    }
                    Kind::DisconnectNotice if p.header("Content-Disposition") == Some("linger") => {
                    }
                    Kind::DisconnectNotice => goodbye = Some(p.body),
                    _ => {
                        if replies.send(p).is_err() {
                            break 'read Ending::Eof;
                        }
                    }
                },
                None => break,
                Some(Err(e)) => break 'read malformed(&e),
            }
        }
    };
    let _ = stream.shutdown(Shutdown::Both);
    *ended.lock() = Some(ending.clone());
    drop(replies);
    let _ = notices.send(Notice::Closed(ending));
}

fn malformed(e: &DecodeError) -> Ending {
    Ending::Malformed(e.to_string())
}
