//! The modem's audio port: a Unix stream socket carrying 20 ms frames of
//! 8 kHz signed 16-bit little-endian samples each way (modems with a
//! separate voice port; the simulator in tests).
//!
//! A thread per interface keeps the connection up and queues what it
//! reads; session threads take frames from the queue (waiting at most one
//! frame time) and write theirs straight to the socket with a short
//! timeout, so a stalled modem costs a dropped frame, never a stuck call.

use hotswitch_plugin_api::sync::{Condvar, Mutex};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Bytes in one 20 ms frame.
pub const FRAME_BYTES: usize = 320;
/// Frames kept for a reader that is behind.
const MAX_QUEUED: usize = 25;

pub struct AudioPort {
    path: String,
    writer: Mutex<Option<UnixStream>>,
    frames: Mutex<VecDeque<Vec<u8>>>,
    arrived: Condvar,
    /// A reconnect is due (set at disconnect).
    reset: Mutex<bool>,
}

impl AudioPort {
    pub fn new(path: &str) -> AudioPort {
        AudioPort {
            path: path.into(),
            writer: Mutex::new(None),
            frames: Mutex::new(VecDeque::new()),
            arrived: Condvar::new(),
            reset: Mutex::new(false),
        }
    }

    /// Keeps the connection and reads frames until `stopping()`.
    pub fn run(&self, stopping: impl Fn() -> bool) {
        let mut conn: Option<UnixStream> = None;
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        let mut warned = false;
        while !stopping() {
            if std::mem::take(&mut *self.reset.lock()) {
                conn = None;
            }
            let Some(c) = conn.as_mut() else {
                match UnixStream::connect(&self.path) {
                    Ok(c) => {
                        let _ = c.set_read_timeout(Some(Duration::from_millis(50)));
                        let _ = c.set_write_timeout(Some(Duration::from_millis(20)));
                        *self.writer.lock() = c.try_clone().ok();
                        conn = Some(c);
                        pending.clear();
                        warned = false;
                        log::info!("gsmopen: audio connected on {}", self.path);
                    }
                    Err(e) => {
                        if !warned {
                            log::warn!("gsmopen: audio device {}: {e}", self.path);
                            warned = true;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
                continue;
            };
            match c.read(&mut buf) {
                Ok(0) => {
                    conn = None;
                    *self.writer.lock() = None;
                }
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    let mut q = self.frames.lock();
                    while pending.len() >= FRAME_BYTES {
                        if q.len() >= MAX_QUEUED {
                            q.pop_front();
                        }
                        q.push_back(pending.drain(..FRAME_BYTES).collect());
                    }
                    drop(q);
                    self.arrived.notify_all();
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("gsmopen: audio device {}: {e}", self.path);
                    conn = None;
                    *self.writer.lock() = None;
                }
            }
        }
        *self.writer.lock() = None;
    }

    /// Drops the connection (the modem went away); the thread reconnects.
    pub fn disconnect(&self) {
        if let Some(w) = self.writer.lock().take() {
            let _ = w.shutdown(std::net::Shutdown::Both);
        }
        *self.reset.lock() = true;
        self.wake();
    }

    /// Forgets frames from before the call.
    pub fn flush(&self) {
        self.frames.lock().clear();
    }

    /// Wakes a reader waiting for a frame.
    pub fn wake(&self) {
        self.arrived.notify_all();
    }

    /// The next frame, waiting up to `wait`.
    pub fn read(&self, wait: Duration) -> Option<Vec<u8>> {
        let mut q = self.frames.lock();
        if q.is_empty() && !wait.is_zero() {
            q = self.arrived.wait_timeout(q, wait).0;
        }
        q.pop_front()
    }

    /// Sends samples towards the modem; a frame that cannot go now is lost.
    pub fn write(&self, bytes: &[u8]) {
        let mut w = self.writer.lock();
        if let Some(s) = w.as_mut() {
            if let Err(e) = s.write_all(bytes) {
                if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                    log::debug!("gsmopen: audio write: {e}");
                    *w = None;
                }
            }
        }
    }
}
