//! Sample-rate conversion of mono 16-bit audio, for when a file, a tone or
//! the other leg of a bridge runs at another rate than the session (8 kHz
//! G.711 against 16 kHz wideband, 44.1 or 48 kHz recordings).
//!
//! The converter is band-limited interpolation with a windowed-sinc kernel
//! (Blackman window) cut off just below the lower rate's Nyquist frequency.
//! Linear interpolation would be shorter, but when a 44.1 kHz prompt comes
//! down to 8 kHz everything above 4 kHz would fold back as audible
//! aliases; the kernel removes it first.
//!
//! Output sample `n` sits exactly at input time `n · from / to`; the ratio
//! is kept as a reduced fraction, so there is no drift however long the
//! stream. The kernel needs a few input samples past each output, so
//! output lags input by about that many samples; [`Resampler::flush`] ends
//! the stream and emits the tail. Because every output is computed the same
//! way however the input was chunked, feeding a stream in pieces gives
//! exactly the samples of feeding it at once.

use std::fmt;

/// Lowest and highest rates accepted: enough for any telephony or studio
/// rate, and bounded so that the kernel stays a reasonable length.
pub const MIN_RATE: u32 = 1000;
pub const MAX_RATE: u32 = 384_000;

/// Zero crossings of the kernel on each side of its centre at the lower of
/// the two rates: longer kernels cut more sharply but cost more per sample.
const ZERO_CROSSINGS: f64 = 8.0;
/// Where the pass band ends, as a fraction of the lower rate's Nyquist
/// frequency: 3.68 kHz when going to 8 kHz, leaving room for the kernel's
/// transition band below 4 kHz.
const ROLLOFF: f64 = 0.92;
/// Kernel tables bigger than this (in taps) are not kept; such odd rate
/// pairs compute their taps for each output instead.
const MAX_TABLE_TAPS: usize = 1 << 18;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResampleError {
    /// A rate outside [`MIN_RATE`]..=[`MAX_RATE`].
    RateOutOfRange { rate: u32 },
}

impl fmt::Display for ResampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResampleError::RateOutOfRange { rate } => write!(
                f,
                "sample rate {rate} Hz is outside the supported {MIN_RATE}..={MAX_RATE} Hz"
            ),
        }
    }
}

impl std::error::Error for ResampleError {}

/// A streaming converter from one rate to another.
#[derive(Clone, Debug)]
pub struct Resampler {
    from: u32,
    to: u32,
    /// Output `n` is at input position `n · step / phases`, in lowest terms.
    step: u64,
    phases: u64,
    /// Taps before and after the centre; the kernel spans `2 · half` inputs.
    half: usize,
    /// Cut-off in cycles per input sample.
    cutoff: f64,
    /// `phases × 2·half` taps, one row per fractional position, when small
    /// enough to keep.
    table: Option<Vec<f32>>,
    /// Input samples from absolute index `history_start` on.
    history: Vec<f32>,
    history_start: u64,
    received: u64,
    produced: u64,
    scratch: Vec<f32>,
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        for rate in [from, to] {
            if !(MIN_RATE..=MAX_RATE).contains(&rate) {
                return Err(ResampleError::RateOutOfRange { rate });
            }
        }
        let g = gcd(from as u64, to as u64);
        let (step, phases) = (from as u64 / g, to as u64 / g);
        // Going down, the kernel widens by the ratio so that it cuts at the
        // output's Nyquist frequency rather than the input's.
        let ratio = (from as f64 / to as f64).max(1.0);
        let half = (ZERO_CROSSINGS * ratio).ceil() as usize;
        let cutoff = 0.5 * ROLLOFF / ratio;
        let mut resampler = Resampler {
            from,
            to,
            step,
            phases,
            half,
            cutoff,
            table: None,
            history: Vec::new(),
            history_start: 0,
            received: 0,
            produced: 0,
            scratch: vec![0.0; 2 * half],
        };
        let taps = phases as usize * 2 * half;
        if from != to && taps <= MAX_TABLE_TAPS {
            let mut table = vec![0.0; taps];
            for (phase, row) in table.chunks_exact_mut(2 * half).enumerate() {
                resampler.kernel_row(phase as u64, row);
            }
            resampler.table = Some(table);
        }
        Ok(resampler)
    }

    pub fn from_rate(&self) -> u32 {
        self.from
    }

    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Converts `input`, appending to `out` every output sample that the
    /// input so far fully determines.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.from == self.to {
            out.extend_from_slice(input);
            return;
        }
        self.history.extend(input.iter().map(|&s| s as f32));
        self.received += input.len() as u64;
        self.emit(out, false);
        self.trim();
    }

    /// Ends the stream: appends the outputs still owed for the input
    /// received (as if silence followed it), then starts afresh. After a
    /// flush, `n` input samples have given exactly `⌈n · to / from⌉`
    /// outputs.
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        if self.from != self.to {
            self.emit(out, true);
        }
        self.reset();
    }

    /// Drops the stream in progress without emitting its tail.
    pub fn reset(&mut self) {
        self.history.clear();
        self.history_start = 0;
        self.received = 0;
        self.produced = 0;
    }

    fn emit(&mut self, out: &mut Vec<i16>, flushing: bool) {
        let half = self.half as u64;
        loop {
            let position = self.produced * self.step;
            let centre = position / self.phases;
            let phase = position % self.phases;
            let ready = if flushing {
                centre < self.received
            } else {
                centre + half < self.received
            };
            if !ready {
                break;
            }
            let taps = match &self.table {
                Some(table) => {
                    let width = 2 * self.half;
                    let row = phase as usize * width;
                    &table[row..row + width]
                }
                None => {
                    let mut scratch = std::mem::take(&mut self.scratch);
                    self.kernel_row(phase, &mut scratch);
                    self.scratch = scratch;
                    &self.scratch[..]
                }
            };
            // Taps cover inputs centre-half+1 ..= centre+half; those before
            // the stream began, or after it ended, are silence.
            let first = centre as i64 - half as i64 + 1;
            let acc: f32 = taps
                .iter()
                .enumerate()
                .map(|(k, &w)| {
                    let index = first + k as i64;
                    if index < self.history_start as i64 || index >= self.received as i64 {
                        0.0
                    } else {
                        w * self.history[(index as u64 - self.history_start) as usize]
                    }
                })
                .sum();
            out.push(acc.round().clamp(i16::MIN as f32, i16::MAX as f32) as i16);
            self.produced += 1;
        }
    }

    /// Forgets input no future output will read.
    fn trim(&mut self) {
        let next_centre = self.produced * self.step / self.phases;
        let needed_from = (next_centre + 1).saturating_sub(self.half as u64);
        if needed_from > self.history_start {
            let drop = ((needed_from - self.history_start) as usize).min(self.history.len());
            self.history.drain(..drop);
            self.history_start += drop as u64;
        }
    }

    /// The taps for fractional position `phase / phases`, normalised to a
    /// gain of exactly one so that silence stays silence and DC stays DC.
    fn kernel_row(&self, phase: u64, row: &mut [f32]) {
        let frac = phase as f64 / self.phases as f64;
        let half = self.half as f64;
        let mut sum = 0.0;
        let mut weights = Vec::with_capacity(row.len());
        for k in 0..row.len() {
            // Distance from the output's position to input centre-half+1+k.
            let d = (k as f64 - half + 1.0) - frac;
            let x = 2.0 * self.cutoff * d;
            let sinc = if x.abs() < 1e-12 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            let w = sinc * blackman(d / half);
            sum += w;
            weights.push(w);
        }
        for (tap, w) in row.iter_mut().zip(weights) {
            *tap = (w / sum) as f32;
        }
    }
}

/// Converts a whole buffer at once.
pub fn resample(input: &[i16], from: u32, to: u32) -> Result<Vec<i16>, ResampleError> {
    let mut resampler = Resampler::new(from, to)?;
    let mut out = Vec::with_capacity((input.len() as u64 * to as u64 / from as u64) as usize + 1);
    resampler.process(input, &mut out);
    resampler.flush(&mut out);
    Ok(out)
}

/// The Blackman window over `x` in -1..=1, zero outside.
fn blackman(x: f64) -> f64 {
    if x.abs() >= 1.0 {
        return 0.0;
    }
    let a = std::f64::consts::PI * x;
    0.42 + 0.5 * a.cos() + 0.08 * (2.0 * a).cos()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::tests::sines;
    use crate::goertzel::{dominant, power};

    const CANDIDATES: [f64; 6] = [250.0, 500.0, 800.0, 1000.0, 1250.0, 2000.0];

    #[test]
    fn a_1khz_tone_from_44100_still_measures_1khz_at_8000() {
        let tone = sines(44100, 44100, &[(1000.0, 10000.0)]);
        let out = resample(&tone, 44100, 8000).expect("supported rates");
        assert_eq!(out.len(), 8000);
        let steady = &out[100..7900];
        assert_eq!(dominant(steady, 8000, &CANDIDATES), Some(1000.0));
        let p = power(steady, 8000, 1000.0);
        assert!((p / 50_000_000.0 - 1.0).abs() < 0.02, "power {p}");
    }

    #[test]
    fn chunked_input_gives_exactly_the_one_shot_output() {
        let tone = sines(44100, 20000, &[(1000.0, 8000.0), (3100.0, 3000.0)]);
        for (from, to) in [(44100, 8000), (8000, 44100), (16000, 48000), (48000, 16000)] {
            let one_shot = resample(&tone, from, to).expect("supported rates");
            let mut resampler = Resampler::new(from, to).expect("supported rates");
            let mut chunked = Vec::new();
            for chunk in tone.chunks(333) {
                resampler.process(chunk, &mut chunked);
            }
            resampler.flush(&mut chunked);
            assert_eq!(chunked, one_shot, "{from} -> {to}");
        }
    }

    #[test]
    fn output_length_is_the_input_length_scaled_up() {
        for (from, to, n, expected) in [
            (8000, 16000, 160, 320),
            (16000, 8000, 321, 161),
            (8000, 48000, 160, 960),
            (44100, 8000, 441, 80),
            (8000, 8000, 77, 77),
        ] {
            let out = resample(&vec![100; n], from, to).expect("supported rates");
            assert_eq!(out.len(), expected, "{from} -> {to}");
        }
    }

    #[test]
    fn steady_levels_pass_unchanged() {
        let out = resample(&[1000; 4000], 8000, 16000).expect("supported rates");
        assert!(out[100..7900].iter().all(|&s| s == 1000));
        let out = resample(&[-2000; 8000], 48000, 8000).expect("supported rates");
        assert!(out[100..1300].iter().all(|&s| s == -2000));
    }

    #[test]
    fn upsampling_keeps_a_tone_where_it_was() {
        let tone = sines(8000, 8000, &[(1000.0, 10000.0)]);
        for to in [16000, 48000, 44100] {
            let out = resample(&tone, 8000, to).expect("supported rates");
            let steady = &out[200..out.len() - 200];
            assert_eq!(
                dominant(steady, to, &CANDIDATES),
                Some(1000.0),
                "8000 -> {to}"
            );
        }
    }

    #[test]
    fn content_above_the_new_nyquist_is_removed_not_folded() {
        // Linear interpolation would fold 5 kHz at 16 kHz down to 3 kHz at 8.
        let tone = sines(16000, 16000, &[(5000.0, 10000.0)]);
        let out = resample(&tone, 16000, 8000).expect("supported rates");
        let alias = power(&out[100..7900], 8000, 3000.0);
        assert!(alias < 50_000_000.0 * 0.001, "alias power {alias}");
    }

    #[test]
    fn same_rate_is_a_copy() {
        let input = [1, -2, 3, i16::MAX, i16::MIN];
        assert_eq!(
            resample(&input, 8000, 8000).expect("supported rates"),
            input
        );
    }

    #[test]
    fn rates_out_of_range_are_refused() {
        assert_eq!(
            Resampler::new(0, 8000).unwrap_err(),
            ResampleError::RateOutOfRange { rate: 0 }
        );
        let err = Resampler::new(8000, 1_000_000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sample rate 1000000 Hz is outside the supported 1000..=384000 Hz"
        );
    }

    #[test]
    fn odd_rate_pairs_without_a_table_give_the_same_samples() {
        // 8000 -> 44099 has 44099 phases: too many to tabulate.
        let tone = sines(8000, 2000, &[(1000.0, 10000.0)]);
        let mut direct = Resampler::new(8000, 44099).expect("supported rates");
        assert!(direct.table.is_none());
        let mut out = Vec::new();
        direct.process(&tone, &mut out);
        direct.flush(&mut out);
        assert_eq!(out.len(), (2000u64 * 44099).div_ceil(8000) as usize);
        assert_eq!(dominant(&out[200..10000], 44099, &CANDIDATES), Some(1000.0));
    }

    #[test]
    fn a_flushed_resampler_starts_a_new_stream() {
        let tone = sines(16000, 1600, &[(1000.0, 10000.0)]);
        let mut resampler = Resampler::new(16000, 8000).expect("supported rates");
        let mut first = Vec::new();
        resampler.process(&tone, &mut first);
        resampler.flush(&mut first);
        let mut second = Vec::new();
        resampler.process(&tone, &mut second);
        resampler.flush(&mut second);
        assert_eq!(first, second);
    }
}
