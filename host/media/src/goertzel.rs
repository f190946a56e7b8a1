//! Measuring single frequencies: the Goertzel filter, and the in-band DTMF
//! detector built on it. The Goertzel filter computes one bin of a DFT at
//! any frequency in one pass with one multiply per sample, which is all a
//! tone check needs: "is there 1004 Hz in this?", "which of these eight
//! DTMF frequencies are present?". Tests of the other media modules use it
//! to check what they generate; the core uses the detector for
//! `spandsp_start_dtmf`-style in-band detection.
//!
//! Powers are normalised so that a sine of amplitude `A` at the measured
//! frequency reads `A²/2`, its mean square: a tone's power can be compared
//! with [`energy`] of the whole block directly.

/// The DTMF keypad: rows are the low group, columns the high group (ITU-T
/// Q.23).
pub const DTMF_ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
pub const DTMF_COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const DTMF_KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Below this mean square (a sine of peak 32, about -60 dBFS) a block is
/// treated as silence by [`dominant`].
const SILENCE_POWER: f64 = 512.0;

/// The power of `freq` in `samples` taken at `rate`, as the mean square of
/// the sine that would produce it. Empty input or a zero rate reads 0.
pub fn power(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let [p] = powers(samples, rate, [freq]);
    p
}

/// [`power`] of each of `freqs`, in one pass over `samples`: the filters
/// run side by side, so a block costs one walk instead of `N` (the in-band
/// DTMF detector runs on every frame of a leg that needs it).
pub fn powers<const N: usize>(samples: &[i16], rate: u32, freqs: [f64; N]) -> [f64; N] {
    if samples.is_empty() || rate == 0 {
        return [0.0; N];
    }
    let coeff = freqs.map(|f| 2.0 * (2.0 * std::f64::consts::PI * f / rate as f64).cos());
    let (mut s1, mut s2) = ([0.0f64; N], [0.0f64; N]);
    for &x in samples {
        let x = x as f64;
        for k in 0..N {
            let s0 = x + coeff[k] * s1[k] - s2[k];
            s2[k] = s1[k];
            s1[k] = s0;
        }
    }
    let n = samples.len() as f64;
    std::array::from_fn(|k| {
        2.0 * (s1[k] * s1[k] + s2[k] * s2[k] - coeff[k] * s1[k] * s2[k]) / (n * n)
    })
}

/// The mean square of `samples`: the total power every [`power`] reading
/// is a share of.
pub fn energy(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        / samples.len() as f64
}

/// The candidate frequency with the most power in `samples`, or `None` when
/// there are no candidates or the strongest is too quiet to mean anything.
pub fn dominant(samples: &[i16], rate: u32, candidates: &[f64]) -> Option<f64> {
    candidates
        .iter()
        .map(|&f| (f, power(samples, rate, f)))
        .filter(|&(_, p)| p >= SILENCE_POWER)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(f, _)| f)
}

/// The row and column frequencies of a DTMF key (`0`-`9`, `*`, `#`,
/// `A`-`D` in either case).
pub fn dtmf_frequencies(digit: char) -> Option<(f64, f64)> {
    let digit = digit.to_ascii_uppercase();
    DTMF_KEYS.iter().enumerate().find_map(|(row, keys)| {
        keys.iter()
            .position(|&k| k == digit)
            .map(|col| (DTMF_ROWS[row], DTMF_COLS[col]))
    })
}

/// 102 samples at 8 kHz (12.75 ms): a Goertzel bin then spans about the
/// spacing of neighbouring DTMF frequencies, so each one's neighbours fall
/// near a null of its response.
const BLOCK_AT_8K: u32 = 102;
/// Each of the two tones must be at least this strong (a sine of peak about
/// 250, -42 dBFS): quieter pairs are line noise, not a keypress.
const MIN_TONE_POWER: f64 = 250.0 * 250.0 / 2.0;
/// The row tone may be up to 8 dB stronger than the column tone …
const MAX_ROW_OVER_COL: f64 = 6.31;
/// … and the column tone up to 4 dB stronger than the row tone (ITU-T Q.24
/// lets the high group be hotter, since lines lose more of it).
const MAX_COL_OVER_ROW: f64 = 2.51;
/// The winning row (column) must beat every other row (column) by 8 dB.
const RELATIVE_PEAK: f64 = 6.31;
/// The two tones must carry this share of the block's energy; speech and
/// noise spread theirs over many frequencies.
const MIN_PAIR_SHARE: f64 = 0.6;

/// In-band DTMF detection over a stream of linear samples.
///
/// Samples are gathered into blocks of 12.75 ms; each block is classified
/// as one key or none. A key is reported once, when two blocks in a row
/// agree on it and it was not already held; it is released after two blocks
/// in a row agree on something else. One stray block, in either direction,
/// therefore neither starts nor ends a keypress, and a key held for seconds
/// is reported once.
#[derive(Clone, Debug)]
pub struct DtmfDetector {
    rate: u32,
    block: Vec<i16>,
    block_len: usize,
    last_block: Option<char>,
    held: Option<char>,
}

impl Default for DtmfDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfDetector {
    /// A detector for 8 kHz samples, the rate DTMF is specified at.
    pub fn new() -> Self {
        Self::with_rate(8000)
    }

    /// A detector for another sample rate; blocks keep their 12.75 ms
    /// length, so the thresholds mean the same. A zero rate is taken as
    /// 8 kHz.
    pub fn with_rate(rate: u32) -> Self {
        let rate = if rate == 0 { 8000 } else { rate };
        let block_len = ((rate as u64 * BLOCK_AT_8K as u64 + 4000) / 8000).max(1) as usize;
        DtmfDetector {
            rate,
            block: Vec::with_capacity(block_len),
            block_len,
            last_block: None,
            held: None,
        }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Feeds samples of any length; returns the keys whose press completed
    /// within them, in order.
    pub fn feed(&mut self, mut samples: &[i16]) -> Vec<char> {
        let mut digits = Vec::new();
        while !samples.is_empty() {
            let take = (self.block_len - self.block.len()).min(samples.len());
            self.block.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.block.len() == self.block_len {
                let key = classify(&self.block, self.rate);
                self.block.clear();
                if let Some(digit) = self.debounce(key) {
                    digits.push(digit);
                }
            }
        }
        digits
    }

    /// Forgets any partial block and held key, as after a break in the
    /// audio.
    pub fn reset(&mut self) {
        self.block.clear();
        self.last_block = None;
        self.held = None;
    }

    fn debounce(&mut self, key: Option<char>) -> Option<char> {
        let confirmed = key == self.last_block;
        self.last_block = key;
        if confirmed && key != self.held {
            self.held = key;
            return key;
        }
        None
    }
}

/// Which key, if any, one block holds.
fn classify(block: &[i16], rate: u32) -> Option<char> {
    let total = energy(block);
    if total < 2.0 * MIN_TONE_POWER {
        return None;
    }
    let [r0, r1, r2, r3, c0, c1, c2, c3] = powers(
        block,
        rate,
        [
            DTMF_ROWS[0],
            DTMF_ROWS[1],
            DTMF_ROWS[2],
            DTMF_ROWS[3],
            DTMF_COLS[0],
            DTMF_COLS[1],
            DTMF_COLS[2],
            DTMF_COLS[3],
        ],
    );
    let (rows, cols) = ([r0, r1, r2, r3], [c0, c1, c2, c3]);
    let row = strongest(&rows)?;
    let col = strongest(&cols)?;
    let (row_power, col_power) = (rows[row], cols[col]);
    let accepted = row_power >= MIN_TONE_POWER
        && col_power >= MIN_TONE_POWER
        && row_power <= col_power * MAX_ROW_OVER_COL
        && col_power <= row_power * MAX_COL_OVER_ROW
        && row_power + col_power >= MIN_PAIR_SHARE * total;
    accepted.then_some(DTMF_KEYS[row][col])
}

/// The index of the strongest power, if it beats every other by
/// [`RELATIVE_PEAK`].
fn strongest(powers: &[f64; 4]) -> Option<usize> {
    let (best, &peak) = powers
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    let clear = powers
        .iter()
        .enumerate()
        .all(|(i, &p)| i == best || p * RELATIVE_PEAK <= peak);
    clear.then_some(best)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A sum of sines of the given peak amplitudes, `len` samples at `rate`.
    pub(crate) fn sines(rate: u32, len: usize, parts: &[(f64, f64)]) -> Vec<i16> {
        (0..len)
            .map(|n| {
                let t = n as f64 / rate as f64;
                let v: f64 = parts
                    .iter()
                    .map(|&(f, a)| a * (2.0 * std::f64::consts::PI * f * t).sin())
                    .sum();
                v.round().clamp(-32768.0, 32767.0) as i16
            })
            .collect()
    }

    /// Deterministic noise (xorshift), uniform in ±`amplitude`.
    pub(crate) fn noise(len: usize, amplitude: f64, mut seed: u64) -> Vec<i16> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let unit = (seed >> 11) as f64 / (1u64 << 53) as f64;
                ((unit * 2.0 - 1.0) * amplitude) as i16
            })
            .collect()
    }

    /// Voiced "speech": a gliding fundamental with falling harmonics, plus
    /// breath noise.
    fn speech_like(len: usize) -> Vec<i16> {
        let mut phase = 0.0f64;
        let breath = noise(len, 1500.0, 0x5EED);
        (0..len)
            .map(|n| {
                let t = n as f64 / 8000.0;
                let f0 = 140.0 + 60.0 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
                phase += 2.0 * std::f64::consts::PI * f0 / 8000.0;
                let voiced: f64 = (1..=25)
                    .map(|k| 6000.0 / k as f64 * (k as f64 * phase).sin())
                    .sum();
                (voiced * 0.5 + breath[n] as f64).clamp(-32768.0, 32767.0) as i16
            })
            .collect()
    }

    #[test]
    fn a_sine_reads_its_mean_square_at_its_own_frequency() {
        let tone = sines(8000, 800, &[(1000.0, 10000.0)]);
        let p = power(&tone, 8000, 1000.0);
        assert!((p / 50_000_000.0 - 1.0).abs() < 0.01, "power {p}");
        assert!(power(&tone, 8000, 1500.0) < p / 1000.0);
        assert!((energy(&tone) / p - 1.0).abs() < 0.01);
    }

    #[test]
    fn filters_run_side_by_side_read_as_each_run_alone() {
        let mix = sines(
            8000,
            102,
            &[(697.0, 6000.0), (1336.0, 7000.0), (440.0, 900.0)],
        );
        let freqs = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0];
        for (f, p) in freqs.iter().zip(powers(&mix, 8000, freqs)) {
            let alone = power(&mix, 8000, *f);
            assert!(
                (p - alone).abs() <= alone.abs() * 1e-9,
                "{f} Hz: {p} vs {alone}"
            );
        }
        assert_eq!(powers(&[], 8000, [1000.0]), [0.0]);
        assert_eq!(powers(&mix, 0, [1000.0, 2000.0]), [0.0, 0.0]);
    }

    #[test]
    fn empty_input_has_no_power() {
        assert_eq!(power(&[], 8000, 1000.0), 0.0);
        assert_eq!(power(&[1, 2, 3], 0, 1000.0), 0.0);
        assert_eq!(energy(&[]), 0.0);
    }

    #[test]
    fn dominant_picks_the_strongest_candidate() {
        let mix = sines(8000, 1600, &[(440.0, 3000.0), (1004.0, 9000.0)]);
        assert_eq!(dominant(&mix, 8000, &[440.0, 1004.0, 2000.0]), Some(1004.0));
        assert_eq!(dominant(&mix, 8000, &[]), None);
    }

    #[test]
    fn dominant_finds_nothing_in_silence() {
        assert_eq!(dominant(&[0; 800], 8000, &[440.0, 1004.0]), None);
    }

    #[test]
    fn every_key_has_its_row_and_column() {
        assert_eq!(dtmf_frequencies('1'), Some((697.0, 1209.0)));
        assert_eq!(dtmf_frequencies('0'), Some((941.0, 1336.0)));
        assert_eq!(dtmf_frequencies('#'), Some((941.0, 1477.0)));
        assert_eq!(dtmf_frequencies('d'), Some((941.0, 1633.0)));
        assert_eq!(dtmf_frequencies('E'), None);
    }

    fn key_press(digit: char, rate: u32, ms: usize) -> Vec<i16> {
        let (row, col) = dtmf_frequencies(digit).expect("a DTMF key");
        sines(
            rate,
            rate as usize * ms / 1000,
            &[(row, 5000.0), (col, 5000.0)],
        )
    }

    #[test]
    fn detects_each_key_once_per_press() {
        let mut detector = DtmfDetector::new();
        let mut heard = Vec::new();
        for digit in "0123456789*#ABCD".chars() {
            heard.extend(detector.feed(&key_press(digit, 8000, 80)));
            heard.extend(detector.feed(&[0; 400]));
        }
        assert_eq!(heard.iter().collect::<String>(), "0123456789*#ABCD");
    }

    #[test]
    fn a_long_press_fed_in_odd_chunks_is_reported_once() {
        let mut detector = DtmfDetector::new();
        let press = key_press('5', 8000, 2000);
        let heard: Vec<char> = press.chunks(37).flat_map(|c| detector.feed(c)).collect();
        assert_eq!(heard, ['5']);
    }

    #[test]
    fn the_same_key_pressed_twice_is_reported_twice() {
        let mut detector = DtmfDetector::new();
        let mut heard = detector.feed(&key_press('7', 8000, 60));
        heard.extend(detector.feed(&[0; 320]));
        heard.extend(detector.feed(&key_press('7', 8000, 60)));
        assert_eq!(heard, ['7', '7']);
    }

    #[test]
    fn one_dropped_block_does_not_split_a_press() {
        let mut detector = DtmfDetector::new();
        let mut audio = key_press('9', 8000, 100);
        audio.extend(std::iter::repeat_n(0, 102));
        audio.extend(key_press('9', 8000, 100));
        assert_eq!(detector.feed(&audio), ['9']);
    }

    #[test]
    fn a_burst_shorter_than_two_blocks_is_ignored() {
        let mut detector = DtmfDetector::new();
        assert!(detector.feed(&key_press('3', 8000, 15)).is_empty());
        assert!(detector.feed(&[0; 800]).is_empty());
    }

    #[test]
    fn detects_keys_at_wideband_rates() {
        let mut detector = DtmfDetector::with_rate(16000);
        let mut audio = key_press('#', 16000, 80);
        audio.extend(vec![0; 1600]);
        audio.extend(key_press('8', 16000, 80));
        assert_eq!(detector.feed(&audio), ['#', '8']);
    }

    #[test]
    fn rejects_a_pair_with_too_much_twist() {
        let mut detector = DtmfDetector::new();
        let twisted = sines(8000, 800, &[(770.0, 8000.0), (1336.0, 1500.0)]);
        assert!(detector.feed(&twisted).is_empty());
    }

    #[test]
    fn quiet_pairs_are_not_keys() {
        let mut detector = DtmfDetector::new();
        let quiet = sines(8000, 800, &[(697.0, 100.0), (1209.0, 100.0)]);
        assert!(detector.feed(&quiet).is_empty());
    }

    #[test]
    fn reports_nothing_on_silence() {
        let mut detector = DtmfDetector::new();
        assert!(detector.feed(&[0; 16000]).is_empty());
    }

    #[test]
    fn reports_nothing_on_noise() {
        let mut detector = DtmfDetector::new();
        assert!(detector.feed(&noise(40000, 12000.0, 42)).is_empty());
    }

    #[test]
    fn reports_nothing_on_speech_like_sound() {
        let mut detector = DtmfDetector::new();
        assert!(detector.feed(&speech_like(80000)).is_empty());
    }

    #[test]
    fn reports_nothing_on_a_single_1004_hz_tone() {
        let mut detector = DtmfDetector::new();
        let tone = sines(8000, 16000, &[(1004.0, 10000.0)]);
        assert!(detector.feed(&tone).is_empty());
    }

    #[test]
    fn keys_survive_g711_coding() {
        use crate::codec::Codec;
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut audio = key_press('4', 8000, 60);
            audio.extend(vec![0; 400]);
            audio.extend(key_press('C', 8000, 60));
            let coded = codec.decode(&codec.encode(&audio));
            assert_eq!(DtmfDetector::new().feed(&coded), ['4', 'C'], "{codec}");
        }
    }

    #[test]
    fn tolerates_noise_under_a_key() {
        let mut detector = DtmfDetector::new();
        let press = key_press('6', 8000, 100);
        let hiss = noise(press.len(), 800.0, 7);
        let noisy: Vec<i16> = press
            .iter()
            .zip(&hiss)
            .map(|(a, b)| a.saturating_add(*b))
            .collect();
        assert_eq!(detector.feed(&noisy), ['6']);
    }
}
