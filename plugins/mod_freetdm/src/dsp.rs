//! The little signal processing a TDM line needs: tone measurement and
//! in-band DTMF detection (the media crate's Goertzel filters, shared with
//! the core), and a phase-continuous generator of one or two tones (dial
//! tone, busy tone, DTMF digits). Pure functions of the samples; 8 kHz
//! mono.

use hotswitch_media::goertzel;
use std::f64::consts::PI;

/// The sample rate of every TDM channel.
pub const RATE: f64 = 8000.0;
/// Samples in one 20 ms frame.
pub const FRAME: usize = 160;

/// The share of `samples`' energy that is a tone at `freq`: about 1 for a
/// pure tone, about 0 when the tone is absent.
pub fn tone_share(samples: &[i16], freq: f64) -> f64 {
    let energy = goertzel::energy(samples);
    if energy < 1.0 {
        return 0.0;
    }
    goertzel::power(samples, RATE as u32, freq) / energy
}

/// The two frequencies of a DTMF digit.
pub fn dtmf_freqs(digit: char) -> Option<(f64, f64)> {
    goertzel::dtmf_frequencies(digit)
}

/// In-band DTMF detection (what FXS digit collection listens with): the
/// media crate's, as the core's bridge uses.
pub use hotswitch_media::goertzel::DtmfDetector;

/// One or two tones, phase-continuous across calls.
#[derive(Clone, Debug)]
pub struct ToneGen {
    freqs: Vec<f64>,
    amplitude: f64,
    n: u64,
}

impl ToneGen {
    /// Tones at `freqs`, each with peak `amplitude`.
    pub fn new(freqs: &[f64], amplitude: f64) -> ToneGen {
        ToneGen {
            freqs: freqs.to_vec(),
            amplitude,
            n: 0,
        }
    }

    /// North American dial tone, 350 + 440 Hz.
    pub fn dial_tone() -> ToneGen {
        ToneGen::new(&[350.0, 440.0], 4000.0)
    }

    /// Busy tone, 480 + 620 Hz (cadence left to the caller).
    pub fn busy_tone() -> ToneGen {
        ToneGen::new(&[480.0, 620.0], 4000.0)
    }

    /// The tone of a DTMF digit.
    pub fn dtmf(digit: char) -> Option<ToneGen> {
        dtmf_freqs(digit).map(|(r, c)| ToneGen::new(&[r, c], 7000.0))
    }

    /// Appends `count` samples.
    pub fn fill(&mut self, count: usize, out: &mut Vec<i16>) {
        for _ in 0..count {
            let t = self.n as f64 / RATE;
            let v: f64 = self
                .freqs
                .iter()
                .map(|f| (2.0 * PI * f * t).sin() * self.amplitude)
                .sum();
            out.push(v.clamp(-32767.0, 32767.0) as i16);
            self.n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits_in(sequence: &str, tone_ms: usize, gap_ms: usize, offset: usize) -> Vec<char> {
        let mut samples = vec![0i16; offset];
        for d in sequence.chars() {
            ToneGen::dtmf(d).unwrap().fill(tone_ms * 8, &mut samples);
            samples.extend(std::iter::repeat_n(0, gap_ms * 8));
        }
        let mut det = DtmfDetector::new();
        // Fed in uneven pieces, as frames of any size arrive.
        samples.chunks(97).flat_map(|c| det.feed(c)).collect()
    }

    #[test]
    fn every_digit_is_detected_once_from_its_tones() {
        let all = "0123456789*#ABCD";
        assert_eq!(digits_in(all, 80, 60, 0).iter().collect::<String>(), all);
        assert_eq!(
            digits_in("9196", 60, 40, 37).iter().collect::<String>(),
            "9196"
        );
    }

    #[test]
    fn the_same_digit_twice_needs_a_gap_and_a_long_tone_is_one_digit() {
        assert_eq!(digits_in("11", 100, 60, 0), vec!['1', '1']);
        assert_eq!(digits_in("5", 1000, 0, 0), vec!['5']);
    }

    #[test]
    fn dial_tone_speech_like_tones_and_silence_are_not_digits() {
        let mut det = DtmfDetector::new();
        let mut s = Vec::new();
        ToneGen::dial_tone().fill(8000, &mut s);
        ToneGen::new(&[1000.0], 8000.0).fill(8000, &mut s);
        ToneGen::new(&[697.0], 8000.0).fill(8000, &mut s);
        s.extend(std::iter::repeat_n(0, 8000));
        assert!(det.feed(&s).is_empty());
    }

    #[test]
    fn tone_share_finds_a_tone_and_not_its_neighbours() {
        let mut s = Vec::new();
        ToneGen::new(&[1000.0], 8000.0).fill(1600, &mut s);
        assert!(tone_share(&s, 1000.0) > 0.9);
        assert!(tone_share(&s, 1400.0) < 0.01);
        assert_eq!(tone_share(&[0; 160], 1000.0), 0.0);
    }
}
