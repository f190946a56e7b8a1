//! Media: the audio the core itself makes, checks and moves, with no I/O
//! of its own beyond reading and writing WAV files.
//!
//! What crosses to endpoints is an [`AudioFrame`] (`frame`) in a [`Codec`]
//! (`codec`): L16, PCMU or PCMA, encoded and decoded here, transcoded when
//! two legs disagree. Audio a session plays comes from sources that make
//! linear samples on demand: [`ToneGenerator`] for `tone_stream://` and
//! `silence_stream://` addresses (`tone`), and [`WavReader`] for prompts
//! (`wav`); recordings go out through [`WavWriter`]. Whatever runs at
//! another rate than the session passes through a [`Resampler`]
//! (`resample`). `goertzel` measures frequencies: tests use it to check
//! what the other modules produce, and [`DtmfDetector`] hears keys pressed
//! in-band. [`Pacer`] (`pacer`) says when each 20 ms frame is due, from
//! `Instant`s the caller passes in, and its [`pacer::Stats`] say how late
//! they went.
//!
//! Everything here is sans-IO in time: nothing reads the clock or sleeps;
//! generators produce samples when asked and the pacer is told the time.

pub mod codec;
pub mod frame;
pub mod goertzel;
pub mod pacer;
pub mod resample;
pub mod tone;
pub mod tone_generator;
pub mod wav;

pub use codec::{transcode, Codec, UnknownCodec};
pub use frame::{ptime_samples, AudioFrame};
pub use goertzel::DtmfDetector;
pub use pacer::Pacer;
pub use resample::{resample, ResampleError, Resampler};
pub use tone::{ToneError, ToneScript, ToneSource};
pub use tone_generator::ToneGenerator;
pub use wav::{WavError, WavReader, WavWriter};
