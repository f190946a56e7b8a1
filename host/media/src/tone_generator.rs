//! Playing a tone or silence address: [`ToneGenerator`] renders a parsed
//! [`ToneSource`] as mono samples at whatever rate the session runs, on
//! demand, a frame at a time, for as long as the script lasts (for ever,
//! with `;loops=-1`). It follows libteletone's rendering so that a script
//! sounds as it does in FreeSWITCH: the same levels, cadences and repeats.
//!
//! `v` is each frequency's level in dBm0 on the G.711 scale, where a
//! full-scale sine is +3.14 dBm0, and the frequencies of a tone are
//! averaged, not summed. The default `v=-7` therefore peaks at about
//! 10 200 (-10 dBFS) for a single frequency.
//! Durations are kept in time, not in samples: FreeSWITCH's defaults are
//! 2000 and 500 samples, which are 250 ms and 62.5 ms at 8 kHz, and here
//! they are those times at every rate.
//!
//! `L=` replays the script with the settings it left behind (a `v=` late in
//! the script makes the next pass's first tones quieter, as in
//! libteletone), while each `;loops` pass starts from the defaults, since
//! FreeSWITCH replays the rendered audio.

use super::goertzel::dtmf_frequencies;
use super::tone::{
    Repeat, ToneElement, ToneError, ToneScript, ToneSource, MAX_VOLUME_DB, MIN_VOLUME_DB,
};

/// libteletone's defaults: `v=-7`, and keys of 2000 samples with 500 after,
/// at its 8 kHz.
pub const DEFAULT_VOLUME_DB: f64 = -7.0;
const DEFAULT_DURATION_US: u64 = 250_000;
const DEFAULT_WAIT_US: u64 = 62_500;
/// A full-scale sine's level on the G.711 scale, plus 3.02 dB: µ-law's full
/// scale is +3.14 dBm0, and the 3.02 dB take a sine's peak to its RMS.
const DBM0_MAX_POWER: f64 = 6.16;

/// Peak amplitude of one frequency at `db` dBm0, as libteletone scales it.
fn amplitude(db: f64) -> f64 {
    32767.0 * std::f64::consts::SQRT_2 * 10f64.powf((db - DBM0_MAX_POWER) / 20.0)
}

/// Plays a [`ToneSource`] as mono samples at a chosen rate.
#[derive(Clone, Debug)]
pub struct ToneGenerator {
    rate: u32,
    player: Player,
}

#[derive(Clone, Debug)]
enum Player {
    /// Samples left, or `None` for ever.
    Silence(Option<u64>),
    Script(Box<ScriptPlayer>),
}

impl ToneGenerator {
    /// A generator at `rate` samples per second; a rate of 0 makes nothing.
    pub fn new(source: &ToneSource, rate: u32) -> Self {
        let player = match source {
            ToneSource::Silence(_) if rate == 0 => Player::Silence(Some(0)),
            ToneSource::Silence(s) => {
                Player::Silence(s.duration_ms.map(|ms| ms_to_samples(ms, rate)))
            }
            ToneSource::Tone(script) => {
                Player::Script(Box::new(ScriptPlayer::new(script.clone(), rate)))
            }
        };
        ToneGenerator { rate, player }
    }

    /// Parses `address` and makes a generator for it.
    pub fn from_address(address: &str, rate: u32) -> Result<Self, ToneError> {
        Ok(Self::new(&address.parse()?, rate))
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Writes the next samples into `out`; returns how many, which is less
    /// than `out.len()` only when the source ends, and 0 once it has.
    pub fn fill(&mut self, out: &mut [i16]) -> usize {
        match &mut self.player {
            Player::Silence(None) => {
                out.fill(0);
                out.len()
            }
            Player::Silence(Some(left)) => {
                let n = (*left).min(out.len() as u64) as usize;
                out[..n].fill(0);
                *left -= n as u64;
                n
            }
            Player::Script(player) => player.fill(out),
        }
    }

    pub fn is_finished(&self) -> bool {
        match &self.player {
            Player::Silence(left) => *left == Some(0),
            Player::Script(player) => player.finished,
        }
    }
}

fn ms_to_samples(ms: u32, rate: u32) -> u64 {
    us_to_samples(ms as u64 * 1000, rate)
}

fn us_to_samples(us: u64, rate: u32) -> u64 {
    (us * rate as u64 + 500_000) / 1_000_000
}

/// The settings a script has made so far.
#[derive(Clone, Debug)]
struct Settings {
    volume: f64,
    key_duration_us: u64,
    key_wait_us: u64,
    /// Volume steps per ramp step: -1 down, +1 up, 0 no ramp.
    ramp_direction: f64,
    ramp_step_ms: u32,
    ramp_db: f64,
    repeat_next: Repeat,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            volume: DEFAULT_VOLUME_DB,
            key_duration_us: DEFAULT_DURATION_US,
            key_wait_us: DEFAULT_WAIT_US,
            ramp_direction: 0.0,
            ramp_step_ms: 0,
            ramp_db: 1.0,
            repeat_next: Repeat::Times(1),
        }
    }
}

#[derive(Clone, Debug)]
struct ScriptPlayer {
    script: ToneScript,
    rate: u32,
    settings: Settings,
    next_element: usize,
    /// Whole-script passes still to play after this one, once `L=` is seen.
    script_passes: Option<u32>,
    loops_left: Repeat,
    produced_this_loop: u64,
    sounding: Option<Sounding>,
    finished: bool,
}

/// The tone being played.
#[derive(Clone, Debug)]
struct Sounding {
    /// Phase increment per sample, in radians, for each frequency.
    increments: Vec<f64>,
    phases: Vec<f64>,
    on: u64,
    off: u64,
    /// Position within the current on+off.
    at: u64,
    repeats_left: Repeat,
    base_volume: f64,
    volume: f64,
    amplitude: f64,
    ramp_direction: f64,
    ramp_step: u64,
    ramp_db: f64,
    since_ramp: u64,
}

impl Sounding {
    /// Back to the start of the tone: libteletone renders each repetition
    /// afresh, so phase and ramp start over too.
    fn restart(&mut self) {
        self.phases.iter_mut().for_each(|p| *p = 0.0);
        self.at = 0;
        self.volume = self.base_volume;
        self.amplitude = amplitude(self.volume);
        self.since_ramp = 0;
    }

    fn next_sample(&mut self) -> i16 {
        if self.ramp_direction != 0.0 {
            self.since_ramp += 1;
            if self.since_ramp >= self.ramp_step {
                let volume = self.volume + self.ramp_direction * self.ramp_db;
                if (MIN_VOLUME_DB..=MAX_VOLUME_DB).contains(&volume) {
                    self.volume = volume;
                    self.amplitude = amplitude(volume);
                    self.since_ramp = 0;
                }
            }
        }
        let mut sum = 0.0;
        for (phase, increment) in self.phases.iter_mut().zip(&self.increments) {
            sum += phase.sin();
            *phase = (*phase + increment) % std::f64::consts::TAU;
        }
        let value = self.amplitude * sum / self.increments.len() as f64;
        value.round().clamp(i16::MIN as f64, i16::MAX as f64) as i16
    }
}

impl ScriptPlayer {
    fn new(script: ToneScript, rate: u32) -> Self {
        let loops_left = script.loops;
        ScriptPlayer {
            script,
            rate,
            settings: Settings::default(),
            next_element: 0,
            script_passes: None,
            loops_left,
            produced_this_loop: 0,
            sounding: None,
            finished: rate == 0,
        }
    }

    fn fill(&mut self, out: &mut [i16]) -> usize {
        let mut written = 0;
        while written < out.len() && !self.finished {
            let Some(tone) = self.sounding.as_mut() else {
                self.start_next_tone();
                continue;
            };
            let period = tone.on + tone.off;
            if tone.at == period {
                match &mut tone.repeats_left {
                    Repeat::Forever => tone.restart(),
                    Repeat::Times(n) if *n > 1 => {
                        *n -= 1;
                        tone.restart();
                    }
                    Repeat::Times(_) => self.sounding = None,
                }
                continue;
            }
            let n = (period - tone.at).min((out.len() - written) as u64) as usize;
            let chunk = &mut out[written..written + n];
            for sample in chunk.iter_mut() {
                *sample = if tone.at < tone.on {
                    tone.next_sample()
                } else {
                    0
                };
                tone.at += 1;
            }
            written += n;
            self.produced_this_loop += n as u64;
        }
        written
    }

    /// Reads elements, applying settings, up to the next tone that makes
    /// sound; at the end of the script, starts the next pass or loop or
    /// finishes.
    fn start_next_tone(&mut self) {
        while let Some(element) = self.script.elements.get(self.next_element) {
            self.next_element += 1;
            let s = &mut self.settings;
            let (freqs, on_us, off_us) = match element {
                ToneElement::Volume(db) => {
                    s.volume = *db;
                    continue;
                }
                ToneElement::KeyDuration(ms) => {
                    s.key_duration_us = *ms as u64 * 1000;
                    continue;
                }
                ToneElement::KeyWait(ms) => {
                    s.key_wait_us = *ms as u64 * 1000;
                    continue;
                }
                ToneElement::Ramp { step_ms, rising } => {
                    s.ramp_step_ms = *step_ms;
                    s.ramp_direction = if *rising { 1.0 } else { -1.0 };
                    continue;
                }
                ToneElement::RampStep(db) => {
                    s.ramp_db = *db;
                    continue;
                }
                ToneElement::RepeatNext(repeat) => {
                    s.repeat_next = *repeat;
                    continue;
                }
                ToneElement::RepeatScript(n) => {
                    if self.script_passes.is_none() {
                        self.script_passes = Some(n.saturating_sub(1));
                    }
                    continue;
                }
                ToneElement::Ignored(_) => continue,
                ToneElement::Tone {
                    on_ms,
                    off_ms,
                    freqs,
                } => (freqs.clone(), *on_ms as u64 * 1000, *off_ms as u64 * 1000),
                ToneElement::Digit {
                    digit,
                    on_ms,
                    off_ms,
                } => {
                    let Some((row, col)) = dtmf_frequencies(*digit) else {
                        continue;
                    };
                    let on = on_ms.map_or(s.key_duration_us, |ms| ms as u64 * 1000);
                    let off = off_ms.map_or(s.key_wait_us, |ms| ms as u64 * 1000);
                    (vec![row, col], on, off)
                }
            };
            // `l=` is spent by the tone it precedes, whether or not it sounds.
            let repeats = std::mem::replace(&mut s.repeat_next, Repeat::Times(1));
            let (on, off) = (
                us_to_samples(on_us, self.rate),
                us_to_samples(off_us, self.rate),
            );
            if freqs.is_empty() || on + off == 0 {
                continue;
            }
            let rate = self.rate as f64;
            let mut tone = Sounding {
                increments: freqs
                    .iter()
                    .map(|f| std::f64::consts::TAU * f / rate)
                    .collect(),
                phases: vec![0.0; freqs.len()],
                on,
                off,
                at: 0,
                repeats_left: repeats,
                base_volume: s.volume,
                volume: s.volume,
                amplitude: 0.0,
                ramp_direction: s.ramp_direction,
                ramp_step: ms_to_samples(s.ramp_step_ms, self.rate),
                ramp_db: s.ramp_db,
                since_ramp: 0,
            };
            tone.restart();
            self.sounding = Some(tone);
            return;
        }
        self.end_of_script();
    }

    fn end_of_script(&mut self) {
        self.next_element = 0;
        // A pass that rendered nothing would render nothing again (its
        // timings are the same), and repeating it would only spin.
        if self.produced_this_loop == 0 {
            self.finished = true;
            return;
        }
        if let Some(passes) = self.script_passes.as_mut() {
            if *passes > 0 {
                // `L=` replays the script with the settings it left behind.
                *passes -= 1;
                return;
            }
        }
        // `;loops` replays what the script rendered, so each loop starts
        // from the defaults again.
        self.loops_left = match self.loops_left {
            Repeat::Times(n) if n > 1 => Repeat::Times(n - 1),
            Repeat::Forever => Repeat::Forever,
            Repeat::Times(_) => {
                self.finished = true;
                return;
            }
        };
        self.settings = Settings::default();
        self.script_passes = None;
        self.produced_this_loop = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::{dominant, power, DtmfDetector};

    fn render(address: &str, rate: u32) -> Vec<i16> {
        let mut generator = match ToneGenerator::from_address(address, rate) {
            Ok(generator) => generator,
            Err(e) => panic!("{address}: {e}"),
        };
        let mut all = Vec::new();
        let mut frame = [0i16; 160];
        loop {
            let n = generator.fill(&mut frame);
            all.extend_from_slice(&frame[..n]);
            if n < frame.len() {
                assert!(generator.is_finished());
                assert_eq!(generator.fill(&mut frame), 0);
                return all;
            }
        }
    }

    /// Checks that `samples` are exactly the given (sound, silence) runs:
    /// each sound run is sounding to its last sample, never quiet for 8
    /// samples in a row (a sine touches zero now and then), and each silence
    /// is all zeros.
    fn assert_cadence(samples: &[i16], cadence: &[(usize, usize)]) {
        let total: usize = cadence.iter().map(|(on, off)| on + off).sum();
        assert_eq!(samples.len(), total, "total length");
        let mut at = 0;
        for (i, &(on, off)) in cadence.iter().enumerate() {
            let sound = &samples[at..at + on];
            assert!(
                sound.windows(8).all(|w| w.iter().any(|&s| s != 0)),
                "run {i} has a gap"
            );
            assert_ne!(sound.last(), Some(&0), "run {i} ends early");
            let silence = &samples[at + on..at + on + off];
            assert!(silence.iter().all(|&s| s == 0), "silence {i} is not silent");
            at += on + off;
        }
    }

    #[test]
    fn a_1004_hz_test_tone_lasts_one_second_at_1004_hz() {
        let samples = render("tone_stream://%(1000,0,1004)", 8000);
        assert_eq!(samples.len(), 8000);
        let found = dominant(&samples, 8000, &[440.0, 950.0, 1004.0, 1060.0, 2008.0]);
        assert_eq!(found, Some(1004.0));
    }

    #[test]
    fn the_default_level_is_libteletones_minus_7_dbm0() {
        let samples = render("tone_stream://%(1000,0,1004)", 8000);
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!((10150..=10220).contains(&peak), "peak {peak}");
        let quieter = render("tone_stream://v=-27;%(1000,0,1004)", 8000);
        let ratio = power(&samples, 8000, 1004.0) / power(&quieter, 8000, 1004.0);
        assert!((ratio / 100.0 - 1.0).abs() < 0.01, "20 dB is {ratio}x");
    }

    #[test]
    fn three_loops_of_on_off_have_the_right_length_and_gaps() {
        let samples = render("tone_stream://%(100,100,440);loops=3", 8000);
        assert_cadence(&samples, &[(800, 800); 3]);
    }

    #[test]
    fn timing_is_kept_at_other_rates() {
        let samples = render("tone_stream://%(100,50,440);loops=2", 44100);
        assert_cadence(&samples, &[(4410, 2205); 2]);
    }

    #[test]
    fn dtmf_pair_tones_are_heard_as_their_keys() {
        for (row, col, key) in [
            (697, 1209, '1'),
            (852, 1477, '9'),
            (941, 1336, '0'),
            (941, 1633, 'D'),
        ] {
            let samples = render(&format!("tone_stream://%(100,50,{row},{col})"), 8000);
            assert_eq!(DtmfDetector::new().feed(&samples), [key]);
        }
    }

    #[test]
    fn every_key_generated_by_name_is_detected() {
        let keys = "0123456789*#ABCD";
        let samples = render(&format!("tone_stream://d=100;w=50;{keys}"), 8000);
        assert_eq!(samples.len(), 16 * 1200);
        let heard: String = DtmfDetector::new().feed(&samples).into_iter().collect();
        assert_eq!(heard, keys);
    }

    #[test]
    fn keys_use_freeswitchs_default_timing_unless_given_their_own() {
        let samples = render("tone_stream://1;2(100,0)", 8000);
        assert_cadence(&samples, &[(2000, 500), (800, 0)]);
    }

    #[test]
    fn segments_play_in_order() {
        let samples = render("tone_stream://%(200,0,350,440);%(100,100,480,620)", 8000);
        assert_eq!(samples.len(), 1600 + 1600);
        let candidates = [350.0, 440.0, 480.0, 620.0];
        let first = dominant(&samples[..1600], 8000, &[350.0, 480.0]);
        let second = dominant(&samples[1600..2400], 8000, &[350.0, 480.0]);
        assert_eq!((first, second), (Some(350.0), Some(480.0)));
        assert!(dominant(&samples[2400..], 8000, &candidates).is_none());
    }

    #[test]
    fn l_repeats_the_next_tone_only() {
        let samples = render("tone_stream://l=3;%(100,100,440);%(100,0,620)", 8000);
        assert_eq!(samples.len(), 3 * 1600 + 800);
    }

    #[test]
    fn capital_l_repeats_the_whole_script_with_its_settings_carried_over() {
        let samples = render("tone_stream://%(100,0,440);L=3;v=-27;%(100,0,620)", 8000);
        assert_eq!(samples.len(), 3 * 1600);
        let loud = power(&samples[..800], 8000, 440.0);
        let carried = power(&samples[1600..2400], 8000, 440.0);
        assert!((loud / carried / 100.0 - 1.0).abs() < 0.01);
    }

    #[test]
    fn loops_and_capital_l_multiply() {
        let samples = render("tone_stream://L=2;%(10,10,440);loops=3", 8000);
        assert_eq!(samples.len(), 2 * 3 * 160);
    }

    #[test]
    fn each_loop_starts_from_the_default_settings() {
        let samples = render(
            "tone_stream://%(100,0,440);v=-27;%(100,0,440);loops=2",
            8000,
        );
        let first = power(&samples[..800], 8000, 440.0);
        let second_loop = power(&samples[1600..2400], 8000, 440.0);
        assert!((first / second_loop - 1.0).abs() < 0.01);
    }

    #[test]
    fn forever_keeps_producing() {
        let mut generator =
            ToneGenerator::from_address("tone_stream://%(20,20,440);loops=-1", 8000)
                .expect("valid address");
        let mut frame = [0i16; 160];
        for _ in 0..1000 {
            assert_eq!(generator.fill(&mut frame), 160);
        }
        assert!(!generator.is_finished());
    }

    #[test]
    fn a_forever_loop_of_nothing_ends_instead_of_spinning() {
        let samples = render("tone_stream://%(0,0,440);loops=-1", 8000);
        assert!(samples.is_empty());
        let samples = render("tone_stream://l=-1;%(0,0,440)", 8000);
        assert!(samples.is_empty());
        let samples = render("tone_stream://L=2000000000;%(0,0,440);loops=-1", 8000);
        assert!(samples.is_empty());
    }

    #[test]
    fn a_tone_whose_first_frequency_is_zero_plays_nothing() {
        let samples = render("tone_stream://%(100,100,0);%(100,0,440,0,620)", 8000);
        assert_eq!(samples.len(), 800);
        assert_eq!(dominant(&samples, 8000, &[440.0, 620.0]), Some(440.0));
        assert!(power(&samples, 8000, 620.0) < 1000.0);
    }

    #[test]
    fn a_falling_ramp_lowers_the_level_while_the_tone_sounds() {
        let samples = render("tone_stream://>=10;+=1;%(500,0,440)", 8000);
        let start = power(&samples[..400], 8000, 440.0);
        let end = power(&samples[3600..], 8000, 440.0);
        // 50 steps of 1 dB, with the level read over 50 ms windows.
        let drop_db = 10.0 * (start / end).log10();
        assert!((40.0..50.0).contains(&drop_db), "dropped {drop_db} dB");
    }

    #[test]
    fn silence_streams_are_as_long_as_asked() {
        let samples = render("silence_stream://500", 8000);
        assert_eq!(samples.len(), 4000);
        assert!(samples.iter().all(|&s| s == 0));
        assert_eq!(render("silence_stream://20,1400", 16000).len(), 320);
    }

    #[test]
    fn silence_of_zero_or_minus_one_is_for_ever() {
        for address in ["silence_stream://-1", "silence_stream://0"] {
            let mut generator = ToneGenerator::from_address(address, 8000).expect("valid address");
            let mut frame = [1i16; 160];
            assert_eq!(generator.fill(&mut frame), 160);
            assert!(frame.iter().all(|&s| s == 0));
            assert!(!generator.is_finished());
        }
    }

    #[test]
    fn a_generator_at_rate_zero_makes_nothing() {
        let mut frame = [0i16; 10];
        for address in ["tone_stream://%(100,0,440);loops=-1", "silence_stream://-1"] {
            let mut generator = ToneGenerator::from_address(address, 0).expect("valid address");
            assert_eq!(generator.fill(&mut frame), 0);
        }
    }
}
