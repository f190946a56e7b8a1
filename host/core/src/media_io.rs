//! Media on sessions: reading and writing frames through a session's
//! endpoint (with the `record_session` tap on both directions), playback of
//! files and `tone_stream://` / `silence_stream://` paced in real time,
//! recording, and the statistics of the pacing timer.
//!
//! The session rate is 8 kHz mono L16 inside the core; frames from
//! endpoints in PCMU/PCMA are decoded, frames to them are L16 (endpoints
//! transcode to what they negotiated).

use crate::containment::call_entry;
use crate::core::Core;
use crate::event::EventType;
use crate::media::pacer::Stats;
use crate::media::{Codec, Pacer, ToneGenerator, WavReader, WavWriter};
use crate::session::Session;
use hotswitch_plugin_api::sync::Mutex;
use hotswitch_plugin_api::{Frame, RStr, Status};
use std::collections::VecDeque;
use std::ffi::c_void;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The core's audio rate.
pub const RATE: u32 = 8000;
/// Samples in one 20 ms frame at [`RATE`].
pub const FRAME_SAMPLES: usize = 160;
const PTIME: Duration = Duration::from_millis(20);

/// Lateness of every paced frame since start (or the last reset).
pub static PACING: Mutex<Option<Stats>> = Mutex::new(None);

fn record_lateness(late: Duration) {
    let mut p = PACING.lock();
    p.get_or_insert_with(Stats::new).record(late);
}

/// A frame that owns its bytes, lent out as a [`Frame`].
pub fn frame_of(data: &mut [u8], codec: &'static str, samples: u32) -> Frame {
    Frame {
        codec: RStr::from_static(codec),
        rate: RATE,
        channels: 1,
        samples,
        timestamp: 0,
        seq: 0,
        ssrc: 0,
        payload_type: 0,
        flags: 0,
        data: data.as_mut_ptr(),
        datalen: data.len() as u32,
        buflen: data.len() as u32,
    }
}

/// Samples carried by a frame (L16, PCMU, PCMA).
pub fn frame_samples(f: &Frame) -> Vec<i16> {
    if f.data.is_null() || f.datalen == 0 {
        return Vec::new();
    }
    // SAFETY: the frame's data is valid for `datalen` bytes during the call.
    let bytes = unsafe { std::slice::from_raw_parts(f.data, f.datalen as usize) };
    // SAFETY: the codec view lives as long as the frame.
    let codec = Codec::from_name(&unsafe { f.codec.to_str() }).unwrap_or(Codec::L16);
    codec.decode(bytes)
}

/// What `record_session` keeps on a channel.
pub struct Recorder {
    writer: WavWriter,
    read: VecDeque<i16>,
    written: VecDeque<i16>,
    pub path: String,
}

impl Recorder {
    fn push(&mut self, read_side: bool, samples: &[i16]) {
        let q = if read_side {
            &mut self.read
        } else {
            &mut self.written
        };
        q.extend(samples);
        self.drain(false);
    }

    /// Mixes what both directions have in common; a direction silent for
    /// five frames is treated as silence rather than holding the other back.
    fn drain(&mut self, all: bool) {
        loop {
            let (r, w) = (self.read.len(), self.written.len());
            let n = if r >= FRAME_SAMPLES && w >= FRAME_SAMPLES {
                FRAME_SAMPLES
            } else if all || r.max(w) >= 5 * FRAME_SAMPLES {
                r.max(w).min(FRAME_SAMPLES)
            } else {
                0
            };
            if n == 0 {
                return;
            }
            let mixed: Vec<i16> = (0..n)
                .map(|_| {
                    let a = self.read.pop_front().unwrap_or(0) as i32;
                    let b = self.written.pop_front().unwrap_or(0) as i32;
                    (a + b).clamp(i16::MIN as i32, i16::MAX as i32) as i16
                })
                .collect();
            if let Err(e) = self.writer.write(&mixed) {
                log::warn!("record_session: {e}");
                return;
            }
        }
    }

    /// Writes what is left and closes the file.
    pub fn finish(mut self) {
        self.drain(true);
        if let Err(e) = self.writer.finalize() {
            log::warn!("record_session: {e}");
        }
    }
}

fn tap(s: &Session, read_side: bool, f: &Frame) {
    let mut rec = s.recorder.lock();
    if let Some(r) = rec.as_mut() {
        r.push(read_side, &frame_samples(f));
    }
}

/// Reads one frame from the session's endpoint into `buf`.
pub fn read_frame(s: &Arc<Session>, buf: &mut [u8]) -> (Status, Frame) {
    read_frame_flags(s, buf, 0)
}

/// Reads one frame with endpoint `flags` (e.g. `READ_FLAG_NOBLOCK`).
pub fn read_frame_flags(s: &Arc<Session>, buf: &mut [u8], flags: u32) -> (Status, Frame) {
    let mut f = frame_of(buf, "L16", 0);
    f.datalen = 0;
    let Some(rf) = s.endpoint.io.read_frame else {
        return (Status::NOTIMPL, f);
    };
    let (ud, sref) = (s.endpoint.user_data, s.as_ref());
    let fp = crate::core::SendPtr(&mut f as *mut Frame as *const Frame);
    let _io = s.io_call(0);
    let st = call_entry(&s.endpoint.module, "read_frame", Some(s), move || {
        let fp = fp;
        // SAFETY: the session holds its endpoint's module; the frame and
        // its buffer outlive the call.
        unsafe { rf(ud as *mut c_void, sref, fp.0 as *mut Frame, flags) }
    })
    .unwrap_or(Status::GENERR);
    if st == Status::SUCCESS && f.datalen > 0 {
        tap(s, true, &f);
    }
    (st, f)
}

/// Writes a frame to the session's endpoint.
pub fn write_frame(s: &Arc<Session>, f: &Frame) -> Status {
    let Some(wf) = s.endpoint.io.write_frame else {
        return Status::NOTIMPL;
    };
    tap(s, false, f);
    let (ud, sref) = (s.endpoint.user_data, s.as_ref());
    let fp = crate::core::SendPtr(f as *const Frame);
    let _io = s.io_call(1);
    call_entry(&s.endpoint.module, "write_frame", Some(s), move || {
        let fp = fp;
        // SAFETY: as in `read_frame`.
        unsafe { wf(ud as *mut c_void, sref, fp.0, 0) }
    })
    .unwrap_or(Status::GENERR)
}

/// Writes L16 samples as one frame.
pub fn write_samples(s: &Arc<Session>, samples: &[i16]) -> Status {
    let mut bytes = Codec::L16.encode(samples);
    let f = frame_of(&mut bytes, "L16", samples.len() as u32);
    write_frame(s, &f)
}

/// How a playback or a recording ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// A terminator (or, when asked, any digit) ended it.
    Digit(char),
    /// The call ended or moved on.
    Interrupted,
    NotFound(String),
}

enum Source {
    Tone(ToneGenerator),
    Wav(Box<WavReader>),
}

impl Source {
    fn open(path: &str) -> Result<Source, String> {
        if path.starts_with("tone_stream://") || path.starts_with("silence_stream://") {
            return ToneGenerator::from_address(path, RATE)
                .map(Source::Tone)
                .map_err(|e| e.to_string());
        }
        WavReader::open(path, RATE)
            .map(|w| Source::Wav(Box::new(w)))
            .map_err(|e| e.to_string())
    }

    fn fill(&mut self, out: &mut [i16]) -> usize {
        match self {
            Source::Tone(t) => t.fill(out),
            Source::Wav(w) => w.read(out).unwrap_or_else(|e| {
                log::warn!("playback: {e}");
                0
            }),
        }
    }
}

/// A channel variable read as FreeSWITCH's `switch_true`.
pub fn var_true(s: &Session, name: &str) -> bool {
    s.ch()
        .var(name)
        .is_some_and(crate::dialplan_xml::switch_true)
}

/// Reads what the session sends without waiting, as FreeSWITCH's playback
/// loop keeps reading while it writes: taps such as `record_session` see
/// it, digits in the media are noticed, the endpoint's queue does not fill.
pub fn drain(s: &Arc<Session>, buf: &mut [u8]) {
    for _ in 0..4 {
        let (st, _) = read_frame_flags(s, buf, hotswitch_plugin_api::READ_FLAG_NOBLOCK);
        if st != Status::SUCCESS {
            break;
        }
    }
}

/// A sound the core plays on its own while something else goes on —
/// ringback while a call is placed, music to a held party: FreeSWITCH's
/// `ringback` / `transfer_ringback` / `hold_music` values, played a frame
/// at a time and started again at their end.
pub struct Looping {
    path: String,
    src: Source,
}

impl Looping {
    /// FreeSWITCH's forms: `%(on,off,freqs)` (a teletone script),
    /// `tone_stream://…`, `silence_stream://…` or a WAV file.
    pub fn open(value: &str) -> Result<Looping, String> {
        let value = value.trim();
        let path = if value.starts_with("%(") {
            format!("tone_stream://{value};loops=-1")
        } else if value == "silence" {
            "silence_stream://-1".to_string()
        } else {
            value.to_string()
        };
        let src = Source::open(&path)?;
        Ok(Looping { path, src })
    }

    /// The next frame of samples; silence when the source cannot go on.
    pub fn next_frame(&mut self, out: &mut [i16]) {
        let mut n = self.src.fill(out);
        if n == 0 {
            if let Ok(src) = Source::open(&self.path) {
                self.src = src;
                n = self.src.fill(out);
            }
        }
        out[n..].fill(0);
    }
}

/// A [`Looping`] sound written to a session in real time, one frame per
/// [`PacedSound::step`]: ringback to a caller, music to a held party.
pub struct PacedSound {
    src: Looping,
    pacer: Option<Pacer>,
}

impl PacedSound {
    /// See [`Looping::open`] for the forms of `value`.
    pub fn open(value: &str) -> Result<PacedSound, String> {
        Ok(PacedSound {
            src: Looping::open(value)?,
            pacer: None,
        })
    }

    /// Waits until the next frame is due (the first is due at once) and
    /// writes it to `to`. The wait ends early when `waiter` is signalled
    /// (a hangup, an answer, a digit): then nothing is written and the
    /// result is false, so that the caller looks at what happened first.
    pub fn step(&mut self, waiter: &Session, to: &Arc<Session>) -> bool {
        let now = Instant::now();
        let pacer = self
            .pacer
            .get_or_insert_with(|| Pacer::new(now.checked_sub(PTIME).unwrap_or(now), PTIME));
        let deadline = pacer.next_deadline();
        if deadline > now {
            let gen = waiter.signal_generation();
            waiter.wait_signal(gen, deadline - now);
            if Instant::now() < deadline {
                return false;
            }
        }
        let mut samples = [0i16; FRAME_SAMPLES];
        self.src.next_frame(&mut samples);
        write_samples(to, &samples);
        pacer.tick(Instant::now());
        true
    }
}

/// Checks queued digits: a terminator (or any digit with `any`) ends the
/// operation; other digits stay queued for whoever reads them next.
fn digit_stop(s: &Session, terminators: &str, any: bool) -> Option<char> {
    s.take_dtmf_if(|c| any || terminators.contains(c))
}

/// Plays `path` to the session in real time.
pub fn play(
    core: &Core,
    s: &Arc<Session>,
    path: &str,
    terminators: &str,
    any_digit: bool,
) -> Outcome {
    let mut src = match Source::open(path) {
        Ok(src) => src,
        Err(e) => {
            log::warn!("{}: playback of {path} failed: {e}", s.uuid);
            s.ch()
                .set_var("current_application_response", "FILE NOT FOUND");
            return Outcome::NotFound(e);
        }
    };
    s.fire(
        core,
        EventType::PLAYBACK_START,
        true,
        &[("Playback-File-Path", path)],
    );
    let state = s.state();
    let mut pacer = Pacer::new(Instant::now(), PTIME);
    let mut buf = [0i16; FRAME_SAMPLES];
    let mut rbuf = vec![0u8; 8192];
    let outcome = loop {
        if s.is_down() || s.state() != state {
            break Outcome::Interrupted;
        }
        if let Some(d) = digit_stop(s, terminators, any_digit) {
            break Outcome::Digit(d);
        }
        let n = src.fill(&mut buf);
        if n == 0 {
            break Outcome::Done;
        }
        write_samples(s, &buf[..n]);
        drain(s, &mut rbuf);
        let deadline = pacer.next_deadline();
        let now = Instant::now();
        if deadline > now {
            let gen = s.signal_generation();
            // Woken early by a digit or a hangup: check at once, then go on
            // sleeping to the deadline if nothing ended the playback.
            s.wait_signal(gen, deadline - now);
            let now = Instant::now();
            if now < deadline
                && !s.is_down()
                && digit_stop(s, terminators, any_digit)
                    .map(|d| {
                        s.requeue_dtmf_front(d);
                    })
                    .is_none()
            {
                std::thread::sleep(deadline - now);
            }
        }
        record_lateness(pacer.tick(Instant::now()));
    };
    let status = if outcome == Outcome::Done {
        "done"
    } else {
        "break"
    };
    {
        let mut ch = s.ch();
        ch.set_var(
            "current_application_response",
            if outcome == Outcome::Done {
                "FILE PLAYED"
            } else {
                "PLAYBACK_TERMINATED"
            },
        );
        if let Outcome::Digit(d) = outcome {
            ch.set_var("playback_terminator_used", &d.to_string());
        }
    }
    s.fire(
        core,
        EventType::PLAYBACK_STOP,
        true,
        &[("Playback-File-Path", path), ("Playback-Status", status)],
    );
    outcome
}

/// Records what the session reads into a WAV file, for up to `limit`
/// (0: until a terminator or the end of the call).
pub fn record(
    core: &Core,
    s: &Arc<Session>,
    path: &str,
    limit: Duration,
    terminators: &str,
) -> Outcome {
    let mut w = match WavWriter::create(path, RATE) {
        Ok(w) => w,
        Err(e) => {
            log::warn!("{}: record: {e}", s.uuid);
            return Outcome::NotFound(e.to_string());
        }
    };
    s.fire(
        core,
        EventType::RECORD_START,
        true,
        &[("Record-File-Path", path)],
    );
    let state = s.state();
    let started = Instant::now();
    let mut buf = vec![0u8; 8192];
    let outcome = loop {
        if s.is_down() || s.state() != state {
            break Outcome::Interrupted;
        }
        if !limit.is_zero() && started.elapsed() >= limit {
            break Outcome::Done;
        }
        if let Some(d) = digit_stop(s, terminators, false) {
            break Outcome::Digit(d);
        }
        let (st, f) = read_frame(s, &mut buf);
        let samples = if st == Status::SUCCESS {
            frame_samples(&f)
        } else {
            Vec::new()
        };
        if samples.is_empty() {
            // No audio this period: the recording keeps real time.
            if st != Status::SUCCESS && st != Status::TIMEOUT && st != Status::BREAK {
                std::thread::sleep(PTIME);
            }
            let _ = w.write(&[0; FRAME_SAMPLES]);
        } else if let Err(e) = w.write(&samples) {
            log::warn!("{}: record: {e}", s.uuid);
            break Outcome::Interrupted;
        }
    };
    let ms = (w.samples_written() as u64 * 1000) / RATE as u64;
    if let Err(e) = w.finalize() {
        log::warn!("{}: record: {e}", s.uuid);
    }
    {
        let mut ch = s.ch();
        ch.set_var("record_ms", &ms.to_string());
        ch.set_var("record_seconds", &(ms / 1000).to_string());
        if let Outcome::Digit(d) = outcome {
            ch.set_var("playback_terminator_used", &d.to_string());
        }
    }
    s.fire(
        core,
        EventType::RECORD_STOP,
        true,
        &[("Record-File-Path", path)],
    );
    outcome
}

/// Starts (or with `start` false, stops) recording both directions of the
/// session into `path` in the background.
pub fn record_session(
    core: &Core,
    s: &Arc<Session>,
    path: &str,
    start: bool,
) -> Result<(), String> {
    let mut rec = s.recorder.lock();
    if !start {
        let Some(r) = rec.take() else {
            return Err("not recording".into());
        };
        let p = r.path.clone();
        r.finish();
        drop(rec);
        s.fire(
            core,
            EventType::RECORD_STOP,
            true,
            &[("Record-File-Path", &p)],
        );
        return Ok(());
    }
    if rec.is_some() {
        return Err("already recording".into());
    }
    let writer = WavWriter::create(path, RATE).map_err(|e| e.to_string())?;
    *rec = Some(Recorder {
        writer,
        read: VecDeque::new(),
        written: VecDeque::new(),
        path: path.to_string(),
    });
    drop(rec);
    s.fire(
        core,
        EventType::RECORD_START,
        true,
        &[("Record-File-Path", path)],
    );
    Ok(())
}

/// Ends a `record_session` when the call ends.
pub fn finish_recording(core: &Core, s: &Arc<Session>) {
    let r = s.recorder.lock().take();
    if let Some(r) = r {
        let p = r.path.clone();
        r.finish();
        s.fire(
            core,
            EventType::RECORD_STOP,
            true,
            &[("Record-File-Path", &p)],
        );
    }
}

/// The call ended while waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallEnded;

/// Waits up to `timeout` for a digit.
pub fn read_dtmf(s: &Arc<Session>, timeout: Duration) -> Result<Option<char>, CallEnded> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(d) = s.take_dtmf() {
            return Ok(char::from_u32(d.digit));
        }
        if s.is_down() {
            return Err(CallEnded);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let gen = s.signal_generation();
        if s.has_dtmf() {
            continue;
        }
        // As FreeSWITCH's digit collection does, keep reading media: an
        // endpoint learns of digits from its media (RFC 4733 events in RTP)
        // only while someone reads it.
        if s.endpoint.io.read_frame.is_some() {
            let mut buf = [0u8; 640];
            let (st, _) = read_frame(s, &mut buf);
            if st == Status::SUCCESS || st == Status::TIMEOUT {
                continue;
            }
        }
        s.wait_signal(gen, (deadline - now).min(PTIME));
    }
}
