//! A channel's audio towards its session: frames from the line wait in a
//! small queue that the session's `read_frame` takes them from, outside
//! the span's lock; the call's generation keeps a late reader off the
//! next call on the channel.

use hotswitch_plugin_api::sync::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Frames kept for a session that does not read (older ones are dropped).
const MAX_QUEUED: usize = 25;

/// What [`Media::read`] found.
pub enum Read {
    /// A frame from the line.
    Frame(Vec<u8>),
    /// No frame in time.
    Nothing,
    /// The channel no longer carries this call.
    Gone,
}

/// A channel's audio towards its session, outside the span's lock.
#[derive(Default)]
pub struct Media {
    frames: Mutex<VecDeque<Vec<u8>>>,
    ready: Condvar,
    /// The call whose session reads and writes now (0: none).
    pub(super) active: AtomicU64,
    /// In-band digits are being sent: the session's audio waits.
    pub(super) sending_digits: AtomicBool,
}

impl Media {
    /// The next frame for call `generation`, waiting up to `wait`.
    pub fn read(&self, generation: u64, wait: Option<Duration>) -> Read {
        let mut q = self.frames.lock();
        if self.active.load(Ordering::Acquire) != generation {
            return Read::Gone;
        }
        if q.is_empty() {
            if let Some(w) = wait {
                q = self.ready.wait_timeout(q, w).0;
            }
        }
        match q.pop_front() {
            Some(f) => Read::Frame(f),
            None => Read::Nothing,
        }
    }

    /// Wakes a reader (the call is being torn down).
    pub fn wake(&self) {
        self.ready.notify_all();
    }

    /// True while call `generation` may write to the line.
    pub(super) fn writable(&self, generation: u64) -> bool {
        self.active.load(Ordering::Acquire) == generation
            && !self.sending_digits.load(Ordering::Acquire)
    }

    pub(super) fn push(&self, frame: Vec<u8>) {
        if self.active.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut q = self.frames.lock();
        if q.len() >= MAX_QUEUED {
            q.pop_front();
        }
        q.push_back(frame);
        self.ready.notify_one();
    }

    pub(super) fn activate(&self, generation: u64) {
        self.frames.lock().clear();
        self.active.store(generation, Ordering::Release);
        self.ready.notify_all();
    }

    /// The call is over: readers return, writes stop.
    pub(super) fn deactivate(&self) {
        self.active.store(0, Ordering::Release);
        self.ready.notify_all();
    }
}
