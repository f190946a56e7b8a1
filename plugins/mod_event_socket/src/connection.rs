//! One client connection, inbound or outbound: a reader that turns bytes
//! into packets and runs their commands in order, a writer fed by a
//! bounded queue, and (once the client subscribes) an event pump.
//!
//! Commands reply in FreeSWITCH's words at this edge; what they do to
//! sessions lives in [`crate::session_ops`].

use crate::command::{self, Command, FilterCommand};
use crate::frames::{self, Format, GOODBYE, LOST_EVENTS, SHUTTING_DOWN};
use crate::outbound::Link;
use crate::outbox::{self, Outbox};
use crate::packet::{parser, Packet};
use crate::pump::{self, Control, Feed};
use crate::selection::{Selection, BACKGROUND_JOB};
use crate::service::{LiveGuard, Service};
use crate::session_ops;
use hotswitch_plugin_api::sansio::Protocol;
use hotswitch_plugin_api::{LogLevel, ModuleContext};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

/// How long a client has to authenticate (outbound: to send its first
/// command).
const AUTH_TIMEOUT: Duration = Duration::from_secs(25);
/// How often a connection checks that its controlled session still exists.
const SESSION_CHECK: Duration = Duration::from_secs(1);
/// How long a closing connection may take to flush.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a connection came from.
pub enum Origin {
    /// A client connected to the listener.
    Inbound {
        /// Its address, for the log.
        peer: String,
    },
    /// The `socket` application connected out for a call.
    Outbound(Link),
}

/// Why a connection ends.
enum Ending {
    /// The client closed (or the socket failed): nothing more to send.
    Gone,
    /// Queue the disconnect notice with this text, flush, close.
    Close(&'static str),
    /// Drop what is queued, send the notice with this text, close.
    Kill(&'static str),
}

/// What a command leaves to the read loop.
enum Flow {
    Continue,
    End(Ending),
}

struct Conn {
    service: Arc<Service>,
    peer: String,
    authed: bool,
    outbound: Option<Link>,
    outbox: Arc<Outbox>,
    /// Replies to the packets of one read, sent together.
    replies: Vec<u8>,
    reply_frames: usize,
    control_tx: mpsc::UnboundedSender<Control>,
    control_rx: mpsc::UnboundedReceiver<Control>,
    feed: Option<Arc<Feed>>,
    /// The session this connection controls (outbound, or `myevents <uuid>`).
    controlled: Option<String>,
    /// `linger`: seconds to keep serving after the hangup (-1: until the
    /// client closes).
    linger: Option<i64>,
    /// Until when a lingering connection stays (None: not lingering yet, or
    /// for ever).
    linger_until: Option<Instant>,
    hung_up: bool,
    resume: bool,
    logging: bool,
    overflowed: bool,
}

/// Serves one connection to its end.
pub async fn serve(stream: TcpStream, origin: Origin, service: Arc<Service>, _live: LiveGuard) {
    let (peer, outbound) = match origin {
        Origin::Inbound { peer } => (peer, None),
        Origin::Outbound(link) => (format!("outbound {}", link.uuid), Some(link)),
    };
    let (mut reader, writer) = stream.into_split();
    let outbox = Outbox::new(service.config.queue_size);
    let writer = tokio::spawn(outbox::write_loop(outbox.clone(), writer));
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let mut conn = Conn {
        service: service.clone(),
        peer,
        authed: outbound.is_some(),
        controlled: outbound.as_ref().map(|l| l.uuid.clone()),
        outbound,
        outbox,
        replies: Vec::new(),
        reply_frames: 0,
        control_tx,
        control_rx,
        feed: None,
        linger: None,
        linger_until: None,
        hung_up: false,
        resume: false,
        logging: false,
        overflowed: false,
    };
    log::debug!("event socket: {} connected", conn.peer);
    if conn.outbound.is_none() {
        conn.send(frames::auth_request());
    } else if let Err(e) = conn.start_feed() {
        log::error!("event socket: {}: {e}", conn.peer);
    }
    let mut shutdown = service.shutdown.subscribe();
    let ending = conn.read_loop(&mut reader, &mut shutdown).await;
    conn.finish(ending, writer).await;
    log::debug!("event socket: {} closed", conn.peer);
}

fn reply_text_is_error(t: &str) -> bool {
    t.starts_with("-ERR")
}

impl Conn {
    /// Queues a frame to go out with the other replies of this read; a full
    /// queue marks the client as not reading.
    fn send(&mut self, frame: Vec<u8>) {
        if self.overflowed {
            return;
        }
        self.replies.extend_from_slice(&frame);
        self.reply_frames += 1;
    }

    /// Hands the replies queued so far to the writer.
    fn flush_replies(&mut self) {
        if self.reply_frames == 0 || self.overflowed {
            return;
        }
        match self.outbox.push(&mut self.replies, self.reply_frames) {
            Ok(()) | Err(outbox::Refused::Closed) => {}
            Err(outbox::Refused::Full) => {
                self.overflowed = true;
                let _ = self.control_tx.send(Control::Overflow);
            }
        }
        self.replies.clear();
        self.reply_frames = 0;
    }

    fn reply(&mut self, text: &str) {
        if reply_text_is_error(text) {
            log::debug!("event socket: {}: {text}", self.peer);
        }
        if !self.overflowed {
            frames::command_reply_into(&mut self.replies, text);
            self.reply_frames += 1;
        }
    }

    fn start_feed(&mut self) -> Result<Arc<Feed>, String> {
        if let Some(f) = &self.feed {
            return Ok(f.clone());
        }
        let selection = Selection {
            controlled: self.controlled.clone(),
            ..Selection::default()
        };
        let feed = pump::start(
            &self.service,
            selection,
            self.outbox.clone(),
            self.control_tx.clone(),
        )?;
        self.feed = Some(feed.clone());
        Ok(feed)
    }

    async fn read_loop(
        &mut self,
        reader: &mut tokio::net::tcp::OwnedReadHalf,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Ending {
        let mut parser = parser();
        let mut buf = vec![0u8; 16 * 1024];
        let first_deadline = Instant::now() + AUTH_TIMEOUT;
        let mut got_first = false;
        let mut check = tokio::time::interval(SESSION_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            loop {
                match parser.poll_event() {
                    Some(Ok(p)) => {
                        got_first = true;
                        if let Flow::End(e) = self.handle(p).await {
                            return e;
                        }
                    }
                    None => break,
                    Some(Err(e)) if !e.is_fatal() => {
                        got_first = true;
                        log::info!("event socket: {}: {e}", self.peer);
                        self.reply("-ERR command parse error.");
                    }
                    Some(Err(e)) => {
                        log::warn!("event socket: {}: {e}; disconnecting", self.peer);
                        return Ending::Close(GOODBYE);
                    }
                }
            }
            self.flush_replies();
            let waiting_first = !self.authed || (self.outbound.is_some() && !got_first);
            let deadline = if waiting_first {
                Some(first_deadline)
            } else {
                self.linger_until
            };
            // Shutting down (unload, reload): what is queued still goes
            // out before the notice — above all the api/response of the
            // client whose `reload mod_event_socket` started it, which
            // FreeSWITCH answers before the disconnect.
            if *shutdown.borrow_and_update() {
                return Ending::Close(SHUTTING_DOWN);
            }
            tokio::select! {
                biased;
                _ = shutdown.changed() => return Ending::Close(SHUTTING_DOWN),
                c = self.control_rx.recv() => match c {
                    Some(Control::Overflow) => {
                        log::warn!(
                            "event socket: {} is not reading: its queue of {} frames is full; disconnecting",
                            self.peer, self.service.config.queue_size
                        );
                        return Ending::Kill(LOST_EVENTS);
                    }
                    Some(Control::Lost) => {
                        log::warn!(
                            "event socket: {} lost events: the switch's queue of {} events for it is full; disconnecting",
                            self.peer, self.service.config.queue_size * pump::HOST_QUEUE_FACTOR
                        );
                        return Ending::Kill(LOST_EVENTS);
                    }
                    Some(Control::Hangup(name)) => {
                        if let Some(e) = self.on_hangup(&name) {
                            return e;
                        }
                    }
                    None => {}
                },
                _ = sleep_until(deadline.unwrap_or(first_deadline)), if deadline.is_some() => {
                    if waiting_first {
                        log::info!("event socket: {}: no command within {} s", self.peer, AUTH_TIMEOUT.as_secs());
                    }
                    return Ending::Close(GOODBYE);
                }
                _ = check.tick(), if self.controlled.is_some() && !self.hung_up => {
                    if let Some(name) = self.controlled.as_deref().and_then(session_ops::gone) {
                        if let Some(e) = self.on_hangup(&name) {
                            return e;
                        }
                    }
                }
                r = reader.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return Ending::Gone,
                    Ok(n) => parser.handle_input(&buf[..n]),
                },
            }
        }
    }

    /// The controlled session hung up: linger or say goodbye.
    fn on_hangup(&mut self, channel_name: &str) -> Option<Ending> {
        if self.hung_up {
            return None;
        }
        self.hung_up = true;
        let Some(secs) = self.linger else {
            return Some(Ending::Close(GOODBYE));
        };
        let uuid = self.controlled.clone().unwrap_or_default();
        self.send(frames::linger_notice(&uuid, channel_name, secs));
        if secs >= 0 {
            self.linger_until = Some(Instant::now() + Duration::from_secs(secs as u64));
        }
        None
    }

    async fn finish(&mut self, ending: Ending, mut writer: tokio::task::JoinHandle<()>) {
        if let Some(f) = self.feed.take() {
            f.stop();
        }
        let controlled = self.controlled.clone();
        let notice = |text: &str| frames::disconnect_notice(text, controlled.as_deref());
        match ending {
            Ending::Gone => {
                self.flush_replies();
                self.outbox.close();
            }
            Ending::Close(text) => {
                self.send(notice(text));
                let overflowed = self.overflowed;
                self.flush_replies();
                if overflowed || self.overflowed {
                    self.outbox.kill(notice(LOST_EVENTS));
                } else {
                    self.outbox.close();
                }
            }
            Ending::Kill(text) => self.outbox.kill(notice(text)),
        }
        if tokio::time::timeout(FLUSH_TIMEOUT, &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
        if let Some(link) = &self.outbound {
            session_ops::after_socket_closed(link, self.resume);
        }
    }

    /// Runs one packet's command. Replies to `sendevent` wait for the rest
    /// of the read (a client pipelining events gets them in one write);
    /// any other reply goes to the writer at once, before anything the
    /// command causes (a bgapi's job, events of a new subscription).
    async fn handle(&mut self, packet: Packet) -> Flow {
        let cmd = command::parse(packet);
        let batched = matches!(cmd, Command::Sendevent { .. });
        let flow = self.run_command(cmd).await;
        if !batched {
            self.flush_replies();
        }
        flow
    }

    async fn run_command(&mut self, cmd: Command) -> Flow {
        if let Command::Exit = cmd {
            self.reply("+OK bye");
            return Flow::End(Ending::Close(GOODBYE));
        }
        if !self.authed {
            return self.handle_unauthed(cmd);
        }
        let session = self.controlled.is_some();
        match cmd {
            Command::Filter(f) => self.filter(f),
            Command::Resume if session => {
                self.resume = true;
                if let Some(u) = &self.controlled {
                    session_ops::set_var(u, "socket_resume", "true");
                }
                self.reply("+OK");
            }
            Command::Connect if self.outbound.is_some() => {
                if let Some(link) = &self.outbound {
                    let data = session_ops::channel_data(link);
                    link.connected();
                    self.send(data);
                }
            }
            Command::Getvar(name) if session => {
                let v = self
                    .controlled
                    .as_deref()
                    .and_then(|u| session_ops::get_var(u, &name))
                    .unwrap_or_default();
                self.reply(&v);
            }
            Command::Myevents { uuid, format } if session || uuid.is_some() => {
                self.myevents(uuid, format)
            }
            Command::DivertEvents(v) => self.reply(match (session, v) {
                (false, _) => "-ERR not controlling a session.",
                (true, None) => "-ERR missing value.",
                (true, Some(true)) => "+OK events diverted",
                (true, Some(false)) => "+OK events not diverted",
            }),
            Command::Sendmsg { uuid, message } => {
                self.flush_replies();
                let r = session_ops::sendmsg(
                    uuid.as_deref(),
                    self.controlled.as_deref(),
                    self.outbound.as_ref(),
                    message,
                )
                .await;
                self.reply(&r);
            }
            _ if self.outbound.as_ref().is_some_and(|l| !l.full) => {
                self.reply("-ERR command not found")
            }
            Command::Sendevent {
                name,
                headers,
                body,
            } => {
                let r = session_ops::sendevent(&name, &headers, body.as_deref());
                self.reply(&r);
            }
            Command::Api { command, args } => {
                self.flush_replies();
                let text = run_api(command, args).await;
                self.send(frames::api_response(&text));
            }
            Command::Bgapi {
                command,
                args,
                job_uuid,
            } => self.bgapi(command, args, job_uuid),
            Command::Log(level) => self.log(&level),
            Command::Nolog => {
                if self.logging {
                    self.logging = false;
                    if let Some(f) = &self.feed {
                        f.set_log_level(LogLevel::OFF);
                    }
                    self.reply("+OK no longer logging");
                } else {
                    self.reply("-ERR not loging");
                }
            }
            Command::Linger(secs) => {
                if !session {
                    self.reply("-ERR not controlling a session");
                } else {
                    let secs = secs.filter(|s| *s >= 0).unwrap_or(-1);
                    self.linger = Some(secs);
                    if secs >= 0 {
                        self.reply(&format!("+OK will linger {secs} seconds"));
                    } else {
                        self.reply("+OK will linger");
                    }
                }
            }
            Command::Nolinger => {
                if session {
                    self.linger = None;
                    self.reply("+OK will not linger");
                } else {
                    self.reply("-ERR not controlling a session");
                }
            }
            Command::Event { format, names } => self.event(format, &names),
            Command::Nixevent(names) => {
                let known = self.update_selection(|s| {
                    let n = s.events.remove(&names);
                    if n > 0 {
                        s.events_on = true;
                    }
                    n
                });
                self.reply(if known == 0 {
                    "-ERR no keywords supplied"
                } else {
                    "+OK events nixed"
                });
            }
            Command::Noevents => {
                let was_on = self.update_selection(|s| {
                    let on = s.events_on;
                    s.events_on = false;
                    s.myevents = false;
                    s.events = Default::default();
                    on
                });
                self.reply(if was_on {
                    "+OK no longer listening for events"
                } else {
                    "-ERR not listening for events"
                });
            }
            _ => self.reply("-ERR command not found"),
        }
        Flow::Continue
    }

    fn handle_unauthed(&mut self, cmd: Command) -> Flow {
        match cmd {
            Command::Auth(pw) if pw == self.service.config.password => {
                self.authed = true;
                self.reply("+OK accepted");
                Flow::Continue
            }
            Command::Auth(_) | Command::Userauth => {
                log::warn!("event socket: {}: authentication failed", self.peer);
                self.reply("-ERR invalid");
                Flow::End(Ending::Close(GOODBYE))
            }
            _ => {
                self.reply("-ERR command not found");
                Flow::Continue
            }
        }
    }

    /// Changes the selection (starting the feed if needed) and tells the
    /// host what to deliver now.
    fn update_selection<R>(&mut self, f: impl FnOnce(&mut Selection) -> R) -> R {
        match self.start_feed() {
            Ok(feed) => {
                let r = f(&mut feed.selection());
                feed.refresh_interest();
                r
            }
            Err(e) => {
                log::error!("event socket: {}: {e}", self.peer);
                f(&mut Selection::default())
            }
        }
    }

    fn event(&mut self, format: Option<Format>, names: &[String]) {
        let (known, format) = self.update_selection(|s| {
            if format.is_some() {
                s.format = format;
            }
            let n = s.events.add(names);
            if n > 0 {
                s.events_on = true;
            }
            (n, s.format.unwrap_or(Format::Plain))
        });
        if known == 0 {
            self.reply("-ERR no keywords supplied");
        } else {
            self.reply(&format!("+OK event listener enabled {}", format.as_str()));
        }
    }

    fn myevents(&mut self, uuid: Option<String>, format: Option<Format>) {
        if self.feed.as_ref().is_some_and(|f| f.selection().myevents) {
            return self.reply("-ERR aready enabled.");
        }
        if self.controlled.is_none() {
            let Some(u) = uuid.filter(|u| session_ops::exists(u)) else {
                return self.reply("-ERR invalid uuid");
            };
            self.controlled = Some(u);
        }
        let controlled = self.controlled.clone();
        self.update_selection(|s| {
            s.controlled = controlled;
            if format.is_some() {
                s.format = format;
            }
            s.enable_myevents();
        });
        self.reply("+OK Events Enabled");
    }

    fn filter(&mut self, f: FilterCommand) {
        let text = match &f {
            FilterCommand::Add { header, value } => {
                format!("+OK filter added. [{header}]=[{value}]")
            }
            FilterCommand::Delete { header, value } => format!(
                "+OK filter deleted. [{header}][{}]",
                value.as_deref().unwrap_or("")
            ),
            FilterCommand::DeleteAll => "+OK filter deleted. [all][]".to_string(),
            FilterCommand::Invalid => return self.reply("-ERR invalid syntax"),
        };
        self.update_selection(|s| match f {
            FilterCommand::Add { header, value } => s.filters.add(&header, &value),
            FilterCommand::Delete { header, value } => s.filters.delete(&header, value.as_deref()),
            FilterCommand::DeleteAll => s.filters.clear(),
            FilterCommand::Invalid => {}
        });
        self.reply(&text);
    }

    fn log(&mut self, level: &str) {
        let Some((fs_level, host_level)) = log_level(level) else {
            return self.reply("-ERR invalid log level");
        };
        match self.start_feed() {
            Ok(feed) => {
                feed.set_log_level(host_level);
                self.logging = true;
                self.reply(&format!("+OK log level {level} [{fs_level}]"));
            }
            Err(e) => self.reply(&format!("-ERR {e}")),
        }
    }

    fn bgapi(&mut self, command: String, args: String, job_uuid: Option<String>) {
        let job = job_uuid.unwrap_or_else(|| session_ops::new_uuid().to_string());
        // The reply is queued before the job starts, so that it always
        // precedes the job's BACKGROUND_JOB event.
        self.send(frames::command_reply_with(
            &format!("+OK Job-UUID: {job}"),
            &[("Job-UUID", &job)],
        ));
        self.flush_replies();
        let owner = self.controlled.clone().unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            let output = execute_api(&command, &args);
            let headers = [
                ("Job-UUID", job.as_str()),
                ("Job-Owner-UUID", owner.as_str()),
                ("Job-Command", command.as_str()),
                ("Job-Command-Arg", args.as_str()),
            ];
            if let Err(e) =
                ModuleContext::current().fire_event(BACKGROUND_JOB, "", &headers, &output)
            {
                log::warn!("event socket: BACKGROUND_JOB for {job} not fired: {e}");
            }
        });
    }
}

/// Runs an api command on a blocking thread; FreeSWITCH's text for failures.
async fn run_api(command: String, args: String) -> String {
    let text = tokio::task::spawn_blocking(move || execute_api(&command, &args)).await;
    let text = text.unwrap_or_else(|_| "-ERR api command failed\n".to_string());
    if text.is_empty() {
        "-ERR no reply\n".to_string()
    } else {
        text
    }
}

fn execute_api(command: &str, args: &str) -> String {
    ModuleContext::current()
        .execute_api(command, args)
        .unwrap_or_else(|_| format!("-ERR {command} Command not found!\n"))
}

/// `log <level>`: FreeSWITCH's level number and the host's level.
fn log_level(s: &str) -> Option<(u32, LogLevel)> {
    let n = match s.to_ascii_lowercase().as_str() {
        "" | "debug" => 7,
        "console" => 0,
        "alert" => 1,
        "crit" => 2,
        "err" | "error" => 3,
        "warning" | "warn" => 4,
        "notice" => 5,
        "info" => 6,
        d => d.parse::<u32>().ok().filter(|n| *n <= 7)?,
    };
    let host = match n {
        0..=3 => LogLevel::ERROR,
        4 => LogLevel::WARN,
        5 | 6 => LogLevel::INFO,
        _ => LogLevel::DEBUG,
    };
    Some((n, host))
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_levels_take_freeswitchs_names_and_numbers() {
        use super::log_level;
        use hotswitch_plugin_api::LogLevel;
        assert_eq!(log_level(""), Some((7, LogLevel::DEBUG)));
        assert_eq!(log_level("INFO"), Some((6, LogLevel::INFO)));
        assert_eq!(log_level("4"), Some((4, LogLevel::WARN)));
        assert_eq!(log_level("err"), Some((3, LogLevel::ERROR)));
        assert_eq!(log_level("loud"), None);
        assert_eq!(log_level("9"), None);
    }
}
