//! What a connection has yet to send: one buffer of bytes shared by the
//! connection (its replies), its event pump (events) and the writer task,
//! which takes everything waiting and writes it in one go.
//!
//! Producers append whole batches (a pump's burst of events, a read's worth
//! of replies), and the writer is woken only when the buffer was empty, so
//! a busy connection costs one wake-up and one `write` per burst, not per
//! frame. Buffers are handed over by swapping, not copying.
//!
//! The queue is bounded in frames (`queue-size`), counting those the writer
//! holds until they are written: a client that stops reading fills it and is
//! cut off; the switch never waits for a client.

use hotswitch_plugin_api::sync::{Mutex, MutexGuard};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

/// Why bytes were not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue holds `queue-size` frames: the client is not reading.
    Full,
    /// The connection is closing or gone.
    Closed,
}

#[derive(Default)]
struct State {
    /// Bytes waiting for the writer.
    bytes: Vec<u8>,
    /// Frames in `bytes`.
    waiting: usize,
    /// Frames the writer took and has not finished writing.
    writing: usize,
    /// Flush what is queued, then close.
    close: bool,
    /// Drop what is queued, send this notice, close.
    kill: Option<Vec<u8>>,
    /// The writer ended: nothing more can be sent.
    ended: bool,
}

/// A connection's outgoing queue.
pub struct Outbox {
    state: Mutex<State>,
    /// Wakes the writer when bytes arrive in an empty queue (or it must close).
    wake: Notify,
    /// Interrupts a write that waits for a client that does not read.
    killed: Notify,
    limit: usize,
}

impl Outbox {
    /// An empty queue of at most `limit` frames.
    pub fn new(limit: usize) -> Arc<Outbox> {
        Arc::new(Outbox {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            killed: Notify::new(),
            limit: limit.max(1),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Queues `frames` frames held in `buf`, whole or not at all. On success
    /// `buf` is left empty (possibly another buffer with some capacity).
    pub fn push(&self, buf: &mut Vec<u8>, frames: usize) -> Result<(), Refused> {
        let mut s = self.state();
        if s.ended || s.close || s.kill.is_some() {
            buf.clear();
            return Err(Refused::Closed);
        }
        if s.waiting + s.writing + frames > self.limit {
            return Err(Refused::Full);
        }
        let was_empty = s.bytes.is_empty();
        if was_empty {
            std::mem::swap(&mut s.bytes, buf);
        } else {
            s.bytes.extend_from_slice(buf);
        }
        buf.clear();
        s.waiting += frames;
        drop(s);
        if was_empty {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Sends what is queued, then closes the connection.
    pub fn close(&self) {
        self.state().close = true;
        self.wake.notify_one();
    }

    /// Drops what is queued, sends `notice` (if the client reads it within a
    /// second) and closes.
    pub fn kill(&self, notice: Vec<u8>) {
        {
            let mut s = self.state();
            s.kill = Some(notice);
            s.bytes = Vec::new();
            s.waiting = 0;
        }
        self.wake.notify_one();
        self.killed.notify_one();
    }

    /// Frames queued and not yet written.
    pub fn queued(&self) -> usize {
        let s = self.state();
        s.waiting + s.writing
    }
}

/// What the writer does next.
enum Next {
    Write,
    Wait,
    Close,
    Kill(Vec<u8>),
}

/// Writes what the outbox holds until it is closed, killed or the socket
/// fails.
pub async fn write_loop(outbox: Arc<Outbox>, mut w: OwnedWriteHalf) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let next = {
            let mut s = outbox.state();
            if let Some(notice) = s.kill.take() {
                Next::Kill(notice)
            } else if !s.bytes.is_empty() {
                buf.clear();
                std::mem::swap(&mut buf, &mut s.bytes);
                s.writing = s.waiting;
                s.waiting = 0;
                Next::Write
            } else if s.close {
                Next::Close
            } else {
                Next::Wait
            }
        };
        match next {
            Next::Wait => outbox.wake.notified().await,
            Next::Close => {
                let _ = w.shutdown().await;
                break;
            }
            Next::Kill(notice) => {
                kill_with(&mut w, &notice).await;
                break;
            }
            Next::Write => {
                let mut done = 0;
                while done < buf.len() {
                    tokio::select! {
                        biased;
                        r = w.write(&buf[done..]) => match r {
                            Ok(0) | Err(_) => {
                                outbox.state().ended = true;
                                return;
                            }
                            Ok(n) => done += n,
                        },
                        _ = outbox.killed.notified() => break,
                    }
                }
                outbox.state().writing = 0;
                // Large one-off buffers are not kept.
                if buf.capacity() > 4 << 20 {
                    buf = Vec::new();
                }
            }
        }
    }
    outbox.state().ended = true;
}

/// Sends the notice if the client reads it within a second, and closes.
async fn kill_with(w: &mut OwnedWriteHalf, notice: &[u8]) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = w.write_all(notice).await;
        let _ = w.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_beyond_the_limit_are_refused_whole_and_kept_by_the_caller() {
        let o = Outbox::new(3);
        let mut b = b"ab".to_vec();
        assert_eq!(o.push(&mut b, 2), Ok(()));
        assert!(b.is_empty());
        let mut c = b"cd".to_vec();
        assert_eq!(o.push(&mut c, 2), Err(Refused::Full));
        assert_eq!(c, b"cd");
        assert_eq!(o.push(&mut c, 1), Ok(()));
        assert_eq!(o.queued(), 3);
        assert_eq!(o.state().bytes, b"abcd");
    }

    #[test]
    fn nothing_is_queued_after_close_or_kill() {
        let o = Outbox::new(10);
        o.close();
        assert_eq!(o.push(&mut b"x".to_vec(), 1), Err(Refused::Closed));
        let o = Outbox::new(10);
        o.push(&mut b"x".to_vec(), 1).unwrap();
        o.kill(b"bye".to_vec());
        assert_eq!(o.queued(), 0);
        assert_eq!(o.push(&mut b"y".to_vec(), 1), Err(Refused::Closed));
    }
}
