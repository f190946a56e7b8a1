//! The little signal processing a TDM line needs: a Goertzel filter, an
//! in-band DTMF detector (what FXS digit collection listens with), and a
//! phase-continuous generator of one or two tones (dial tone, busy tone,
//! DTMF digits). Pure functions of the samples; 8 kHz mono.

use std::f64::consts::PI;

/// The sample rate of every TDM channel.
pub const RATE: f64 = 8000.0;
/// Samples in one 20 ms frame.
pub const FRAME: usize = 160;

/// Power of `samples` at `freq` (squared magnitude of the DTFT there).
pub fn goertzel(samples: &[i16], freq: f64) -> f64 {
    let coeff = 2.0 * (2.0 * PI * freq / RATE).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The share of `samples`' energy that is a tone at `freq`: about 1 for a
/// pure tone, about 0 when the tone is absent.
pub fn tone_share(samples: &[i16], freq: f64) -> f64 {
    let energy: f64 = samples.iter().map(|&x| (x as f64) * (x as f64)).sum();
    if energy < 1.0 || samples.is_empty() {
        return 0.0;
    }
    goertzel(samples, freq) / (energy * samples.len() as f64 / 2.0)
}

const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// The two frequencies of a DTMF digit.
pub fn dtmf_freqs(digit: char) -> Option<(f64, f64)> {
    let d = digit.to_ascii_uppercase();
    for (r, row) in KEYS.iter().enumerate() {
        if let Some(c) = row.iter().position(|&k| k == d) {
            return Some((ROWS[r], COLS[c]));
        }
    }
    None
}

/// In-band DTMF detection, 20 ms blocks: a digit is reported once when two
/// blocks in a row hold it, and again only after a block without it.
#[derive(Debug, Default)]
pub struct DtmfDetector {
    pending: Vec<i16>,
    candidate: Option<char>,
    reported: Option<char>,
}

impl DtmfDetector {
    /// A detector with nothing heard.
    pub fn new() -> DtmfDetector {
        DtmfDetector::default()
    }

    /// Feeds samples; returns the digits that completed.
    pub fn feed(&mut self, samples: &[i16]) -> Vec<char> {
        let mut out = Vec::new();
        self.pending.extend_from_slice(samples);
        while self.pending.len() >= FRAME {
            let block: Vec<i16> = self.pending.drain(..FRAME).collect();
            let d = block_digit(&block);
            if d.is_some() && d == self.candidate && self.reported != d {
                out.extend(d);
                self.reported = d;
            }
            if d.is_none() {
                self.reported = None;
            }
            self.candidate = d;
        }
        out
    }
}

/// The digit one block holds, if it clearly holds one.
fn block_digit(block: &[i16]) -> Option<char> {
    let n = block.len() as f64;
    let energy: f64 = block.iter().map(|&x| (x as f64) * (x as f64)).sum();
    // Below about -45 dBm0 is silence.
    if energy / n < 100.0 * 100.0 {
        return None;
    }
    let rows: Vec<f64> = ROWS.iter().map(|&f| goertzel(block, f)).collect();
    let cols: Vec<f64> = COLS.iter().map(|&f| goertzel(block, f)).collect();
    let best = |v: &[f64]| {
        let mut i = 0;
        for j in 1..v.len() {
            if v[j] > v[i] {
                i = j;
            }
        }
        i
    };
    let (r, c) = (best(&rows), best(&cols));
    // Each of the two tones stands out from its group (6 dB) …
    let clear = |v: &[f64], i: usize| v.iter().enumerate().all(|(j, &p)| j == i || p * 4.0 < v[i]);
    if !clear(&rows, r) || !clear(&cols, c) {
        return None;
    }
    // … the twist is under 8 dB …
    let (pr, pc) = (rows[r], cols[c]);
    if pr > pc * 6.3 || pc > pr * 6.3 {
        return None;
    }
    // … and the two tones are most of the block's energy.
    if (pr + pc) / (energy * n / 2.0) < 0.6 {
        return None;
    }
    Some(KEYS[r][c])
}

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
