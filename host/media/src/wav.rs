//! WAV files as sources and sinks of session audio, over the `hound`
//! crate: prompts to play and recordings to write. A session hears mono
//! 16-bit audio at its own rate, so [`WavReader`] turns whatever the file
//! holds into that: channels are averaged, 8-, 24- and 32-bit integer and
//! 32-bit float samples are scaled to 16 bits, and the rate is converted
//! with [`Resampler`]. [`WavWriter`] writes what a session records: mono,
//! 16-bit, at the session's rate.
//!
//! Every error names the file, since the one reading it in a log is usually
//! looking for a missing or mis-encoded prompt.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};

use super::resample::{ResampleError, Resampler, MAX_RATE, MIN_RATE};

/// Frames decoded from the file per refill: 20 ms at 48 kHz.
const CHUNK_FRAMES: usize = 960;

#[derive(Debug)]
pub enum WavError {
    /// The file could not be opened (missing, unreadable).
    Open {
        path: PathBuf,
        source: io::Error,
    },
    /// The file is not a WAV file, or one in an encoding `hound` does not
    /// read (A-law, µ-law, ADPCM and 64-bit float WAVs among them).
    Format {
        path: PathBuf,
        source: hound::Error,
    },
    /// Reading the samples failed part way, e.g. a truncated file.
    Read {
        path: PathBuf,
        source: hound::Error,
    },
    /// The file could not be created.
    Create {
        path: PathBuf,
        source: io::Error,
    },
    Write {
        path: PathBuf,
        source: hound::Error,
    },
    /// A rate outside what the resampler supports, the file's or the
    /// session's.
    BadRate {
        path: PathBuf,
        rate: u32,
    },
}

impl fmt::Display for WavError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WavError::Open { path, source } => {
                write!(f, "cannot open {}: {source}", path.display())
            }
            WavError::Format { path, source } => {
                write!(
                    f,
                    "{} is not a WAV file we can read: {source}",
                    path.display()
                )
            }
            WavError::Read { path, source } => {
                write!(f, "error reading {}: {source}", path.display())
            }
            WavError::Create { path, source } => {
                write!(f, "cannot create {}: {source}", path.display())
            }
            WavError::Write { path, source } => {
                write!(f, "error writing {}: {source}", path.display())
            }
            WavError::BadRate { path, rate } => write!(
                f,
                "{}: sample rate {rate} Hz is outside {MIN_RATE}..={MAX_RATE} Hz",
                path.display()
            ),
        }
    }
}

impl std::error::Error for WavError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WavError::Open { source, .. } | WavError::Create { source, .. } => Some(source),
            WavError::Format { source, .. }
            | WavError::Read { source, .. }
            | WavError::Write { source, .. } => Some(source),
            WavError::BadRate { .. } => None,
        }
    }
}

/// Reads a WAV file as mono 16-bit samples at a chosen rate.
pub struct WavReader {
    path: PathBuf,
    reader: hound::WavReader<BufReader<File>>,
    spec: hound::WavSpec,
    rate: u32,
    resampler: Resampler,
    /// Converted samples not yet handed out, from `pending_at` on.
    pending: Vec<i16>,
    pending_at: usize,
    frames: Vec<i16>,
    file_done: bool,
}

impl fmt::Debug for WavReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WavReader")
            .field("path", &self.path)
            .field("spec", &self.spec)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl WavReader {
    /// Opens `path` for reading at `rate` samples per second.
    pub fn open(path: impl AsRef<Path>, rate: u32) -> Result<Self, WavError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| WavError::Open {
            path: path.clone(),
            source,
        })?;
        let reader =
            hound::WavReader::new(BufReader::new(file)).map_err(|source| WavError::Format {
                path: path.clone(),
                source,
            })?;
        let spec = reader.spec();
        let supported = match spec.sample_format {
            hound::SampleFormat::Int => (1..=32).contains(&spec.bits_per_sample),
            hound::SampleFormat::Float => spec.bits_per_sample == 32,
        };
        if !supported || spec.channels == 0 {
            return Err(WavError::Format {
                path,
                source: hound::Error::Unsupported,
            });
        }
        let resampler = Resampler::new(spec.sample_rate, rate).map_err(
            |ResampleError::RateOutOfRange { rate }| WavError::BadRate {
                path: path.clone(),
                rate,
            },
        )?;
        Ok(WavReader {
            path,
            reader,
            spec,
            rate,
            resampler,
            pending: Vec::new(),
            pending_at: 0,
            frames: Vec::with_capacity(CHUNK_FRAMES),
            file_done: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rate samples come out at.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The rate stored in the file.
    pub fn file_rate(&self) -> u32 {
        self.spec.sample_rate
    }

    /// The channels stored in the file (they are averaged into one).
    pub fn file_channels(&self) -> u16 {
        self.spec.channels
    }

    /// Fills `out` with the next samples; returns how many, which is less
    /// than `out.len()` only at the end of the file, and 0 after it.
    pub fn read(&mut self, out: &mut [i16]) -> Result<usize, WavError> {
        let mut written = 0;
        while written < out.len() {
            if self.pending_at == self.pending.len() {
                if self.file_done {
                    break;
                }
                self.pending.clear();
                self.pending_at = 0;
                self.refill()?;
                continue;
            }
            let n = (self.pending.len() - self.pending_at).min(out.len() - written);
            out[written..written + n]
                .copy_from_slice(&self.pending[self.pending_at..self.pending_at + n]);
            self.pending_at += n;
            written += n;
        }
        Ok(written)
    }

    /// Reads everything that is left.
    pub fn read_to_end(&mut self) -> Result<Vec<i16>, WavError> {
        let mut all = Vec::new();
        let mut chunk = [0i16; 4096];
        loop {
            let n = self.read(&mut chunk)?;
            all.extend_from_slice(&chunk[..n]);
            if n < chunk.len() {
                return Ok(all);
            }
        }
    }

    /// Decodes the next chunk of the file into `pending`, converted.
    fn refill(&mut self) -> Result<(), WavError> {
        self.frames.clear();
        let channels = self.spec.channels as usize;
        let bits = self.spec.bits_per_sample;
        let wanted = CHUNK_FRAMES * channels;
        let mut frame_sum = 0i32;
        let mut in_frame = 0usize;
        let mut push = |sample: i16, frames: &mut Vec<i16>| {
            frame_sum += sample as i32;
            in_frame += 1;
            if in_frame == channels {
                frames.push((frame_sum / channels as i32) as i16);
                frame_sum = 0;
                in_frame = 0;
            }
        };
        let path = &self.path;
        let read_error = |source| WavError::Read {
            path: path.clone(),
            source,
        };
        match self.spec.sample_format {
            hound::SampleFormat::Int => {
                for sample in self.reader.samples::<i32>().take(wanted) {
                    push(
                        int_to_i16(sample.map_err(read_error)?, bits),
                        &mut self.frames,
                    );
                }
            }
            hound::SampleFormat::Float => {
                for sample in self.reader.samples::<f32>().take(wanted) {
                    push(float_to_i16(sample.map_err(read_error)?), &mut self.frames);
                }
            }
        }
        let at_end = self.frames.len() < CHUNK_FRAMES;
        self.resampler.process(&self.frames, &mut self.pending);
        if at_end {
            self.resampler.flush(&mut self.pending);
            self.file_done = true;
        }
        Ok(())
    }
}

/// Scales an integer sample of `bits` bits to 16 bits: wider samples lose
/// their low bits, narrower ones are shifted up.
fn int_to_i16(sample: i32, bits: u16) -> i16 {
    if bits >= 16 {
        (sample >> (bits - 16)) as i16
    } else {
        (sample << (16 - bits)) as i16
    }
}

fn float_to_i16(sample: f32) -> i16 {
    (sample * 32768.0)
        .round()
        .clamp(i16::MIN as f32, i16::MAX as f32) as i16
}

/// Writes mono 16-bit samples to a WAV file. The header's lengths are
/// right only after [`WavWriter::finalize`]; dropping the writer finalises
/// too, but cannot report an error.
pub struct WavWriter {
    path: PathBuf,
    writer: hound::WavWriter<BufWriter<File>>,
}

impl fmt::Debug for WavWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WavWriter")
            .field("path", &self.path)
            .field("rate", &self.writer.spec().sample_rate)
            .finish_non_exhaustive()
    }
}

impl WavWriter {
    /// Creates (or truncates) `path` for samples at `rate`.
    pub fn create(path: impl AsRef<Path>, rate: u32) -> Result<Self, WavError> {
        let path = path.as_ref().to_path_buf();
        if !(MIN_RATE..=MAX_RATE).contains(&rate) {
            return Err(WavError::BadRate { path, rate });
        }
        let file = File::create(&path).map_err(|source| WavError::Create {
            path: path.clone(),
            source,
        })?;
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::new(BufWriter::new(file), spec).map_err(|source| {
            WavError::Write {
                path: path.clone(),
                source,
            }
        })?;
        Ok(WavWriter { path, writer })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&mut self, samples: &[i16]) -> Result<(), WavError> {
        for &sample in samples {
            self.writer
                .write_sample(sample)
                .map_err(|source| WavError::Write {
                    path: self.path.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Samples written so far.
    pub fn samples_written(&self) -> u32 {
        self.writer.len()
    }

    /// Writes the final lengths into the header and closes the file.
    pub fn finalize(self) -> Result<(), WavError> {
        let WavWriter { path, writer } = self;
        writer
            .finalize()
            .map_err(|source| WavError::Write { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::tests::sines;
    use crate::goertzel::{dominant, power};

    const CANDIDATES: [f64; 5] = [400.0, 800.0, 1000.0, 1200.0, 2000.0];

    /// A directory of its own for each test, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("hs-media-wav-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            TempDir(dir)
        }

        fn join(&self, file: &str) -> PathBuf {
            self.0.join(file)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn spec(
        channels: u16,
        sample_rate: u32,
        bits_per_sample: u16,
        sample_format: hound::SampleFormat,
    ) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate,
            bits_per_sample,
            sample_format,
        }
    }

    fn write_with_hound(
        path: &Path,
        spec: hound::WavSpec,
        frames: usize,
        mut sample: impl FnMut(usize, u16) -> f64,
    ) {
        let mut writer = hound::WavWriter::create(path, spec).expect("create");
        for n in 0..frames {
            for c in 0..spec.channels {
                let v = sample(n, c);
                match (spec.sample_format, spec.bits_per_sample) {
                    (hound::SampleFormat::Float, _) => writer.write_sample(v as f32),
                    (_, 8) => writer.write_sample((v * 127.0) as i8),
                    (_, 16) => writer.write_sample((v * 32767.0) as i16),
                    (_, bits) => {
                        writer.write_sample((v * ((1i64 << (bits - 1)) - 1) as f64) as i32)
                    }
                }
                .expect("write");
            }
        }
        writer.finalize().expect("finalize");
    }

    fn sine(rate: u32, freq: f64, level: f64) -> impl FnMut(usize, u16) -> f64 {
        move |n, _| level * (2.0 * std::f64::consts::PI * freq * n as f64 / rate as f64).sin()
    }

    #[test]
    fn a_tone_written_at_8k_reads_back_at_16k_with_its_frequency() {
        let dir = TempDir::new("roundtrip");
        let path = dir.join("tone.wav");
        let mut writer = WavWriter::create(&path, 8000).expect("create");
        let tone = sines(8000, 8000, &[(1000.0, 10000.0)]);
        for frame in tone.chunks(160) {
            writer.write(frame).expect("write");
        }
        assert_eq!(writer.samples_written(), 8000);
        writer.finalize().expect("finalize");

        let mut reader = WavReader::open(&path, 16000).expect("open");
        assert_eq!((reader.file_rate(), reader.file_channels()), (8000, 1));
        let samples = reader.read_to_end().expect("read");
        assert_eq!(samples.len(), 16000);
        let steady = &samples[200..15800];
        assert_eq!(dominant(steady, 16000, &CANDIDATES), Some(1000.0));
        assert!((power(steady, 16000, 1000.0) / 50_000_000.0 - 1.0).abs() < 0.02);
    }

    #[test]
    fn the_same_rate_reads_back_the_exact_samples() {
        let dir = TempDir::new("exact");
        let path = dir.join("exact.wav");
        let pcm: Vec<i16> = (0..1000).map(|i| (i * 61 % 65536 - 32768) as i16).collect();
        let mut writer = WavWriter::create(&path, 8000).expect("create");
        writer.write(&pcm).expect("write");
        writer.finalize().expect("finalize");
        let mut reader = WavReader::open(&path, 8000).expect("open");
        assert_eq!(reader.read_to_end().expect("read"), pcm);
        assert_eq!(reader.read(&mut [0; 10]).expect("read"), 0);
    }

    #[test]
    fn stereo_24_bit_at_44100_becomes_mono_16_bit_at_8000() {
        let dir = TempDir::new("stereo24");
        let path = dir.join("stereo.wav");
        let spec = spec(2, 44100, 24, hound::SampleFormat::Int);
        // The same tone in both channels, so the average keeps its level.
        write_with_hound(&path, spec, 44100, sine(44100, 1000.0, 0.3));
        let samples = WavReader::open(&path, 8000)
            .expect("open")
            .read_to_end()
            .expect("read");
        assert_eq!(samples.len(), 8000);
        let steady = &samples[200..7800];
        assert_eq!(dominant(steady, 8000, &CANDIDATES), Some(1000.0));
        let expected = (0.3f64 * 32768.0).powi(2) / 2.0;
        assert!((power(steady, 8000, 1000.0) / expected - 1.0).abs() < 0.03);
    }

    #[test]
    fn channels_are_averaged() {
        let dir = TempDir::new("downmix");
        let path = dir.join("downmix.wav");
        let spec = spec(2, 8000, 16, hound::SampleFormat::Int);
        let mut writer = hound::WavWriter::create(&path, spec).expect("create");
        for (l, r) in [(1000i16, 3000i16), (-4000, 0), (32767, 32767)] {
            writer.write_sample(l).expect("write");
            writer.write_sample(r).expect("write");
        }
        writer.finalize().expect("finalize");
        let samples = WavReader::open(&path, 8000)
            .expect("open")
            .read_to_end()
            .expect("read");
        assert_eq!(samples, [2000, -2000, 32767]);
    }

    #[test]
    fn eight_bit_and_float_files_are_scaled_to_16_bits() {
        let dir = TempDir::new("formats");
        for (name, bits, format) in [
            ("u8.wav", 8, hound::SampleFormat::Int),
            ("f32.wav", 32, hound::SampleFormat::Float),
            ("i32.wav", 32, hound::SampleFormat::Int),
        ] {
            let path = dir.join(name);
            let spec = spec(1, 16000, bits, format);
            write_with_hound(&path, spec, 16000, sine(16000, 1000.0, 0.5));
            let samples = WavReader::open(&path, 8000)
                .expect("open")
                .read_to_end()
                .expect("read");
            let steady = &samples[200..7800];
            assert_eq!(dominant(steady, 8000, &CANDIDATES), Some(1000.0), "{name}");
            let expected = (0.5f64 * 32768.0).powi(2) / 2.0;
            let ratio = power(steady, 8000, 1000.0) / expected;
            assert!((ratio - 1.0).abs() < 0.05, "{name}: level ratio {ratio}");
        }
    }

    #[test]
    fn reading_in_small_pieces_gives_the_whole_file() {
        let dir = TempDir::new("pieces");
        let path = dir.join("pieces.wav");
        let spec = spec(1, 48000, 16, hound::SampleFormat::Int);
        write_with_hound(&path, spec, 12345, sine(48000, 1000.0, 0.5));
        let whole = WavReader::open(&path, 8000)
            .expect("open")
            .read_to_end()
            .expect("read");
        let mut reader = WavReader::open(&path, 8000).expect("open");
        let mut pieces = Vec::new();
        let mut frame = [0i16; 160];
        loop {
            let n = reader.read(&mut frame).expect("read");
            pieces.extend_from_slice(&frame[..n]);
            if n == 0 {
                break;
            }
        }
        assert_eq!(pieces, whole);
        assert_eq!(whole.len(), 12345usize.div_ceil(6));
    }

    #[test]
    fn a_missing_file_is_reported_with_its_path() {
        let dir = TempDir::new("missing");
        let path = dir.join("no-such-prompt.wav");
        let err = WavReader::open(&path, 8000).unwrap_err();
        assert!(matches!(err, WavError::Open { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("cannot open {}: ", path.display())),
            "{message}"
        );
    }

    #[test]
    fn a_file_that_is_not_wav_is_reported_with_its_path() {
        let dir = TempDir::new("notwav");
        let path = dir.join("prompt.wav");
        std::fs::write(&path, "this is text, not RIFF").expect("write");
        let err = WavReader::open(&path, 8000).unwrap_err();
        assert!(matches!(err, WavError::Format { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.starts_with(&format!(
            "{} is not a WAV file we can read: ",
            path.display()
        )));
    }

    #[test]
    fn a_rate_the_resampler_cannot_take_is_refused() {
        let dir = TempDir::new("badrate");
        let path = dir.join("ok.wav");
        WavWriter::create(&path, 8000)
            .expect("create")
            .finalize()
            .expect("finalize");
        let err = WavReader::open(&path, 0).unwrap_err();
        assert!(matches!(err, WavError::BadRate { rate: 0, .. }), "{err:?}");
        let err = WavWriter::create(dir.join("zero.wav"), 0).unwrap_err();
        assert!(err.to_string().contains("zero.wav"), "{err}");
    }

    #[test]
    fn a_writer_in_a_missing_directory_reports_the_path() {
        let dir = TempDir::new("nodir");
        let path = dir.join("missing-dir/rec.wav");
        let err = WavWriter::create(&path, 8000).unwrap_err();
        assert!(matches!(err, WavError::Create { .. }), "{err:?}");
        assert!(err.to_string().contains("missing-dir/rec.wav"), "{err}");
    }

    #[test]
    fn an_empty_file_reads_as_no_samples() {
        let dir = TempDir::new("empty");
        let path = dir.join("empty.wav");
        WavWriter::create(&path, 16000)
            .expect("create")
            .finalize()
            .expect("finalize");
        let mut reader = WavReader::open(&path, 8000).expect("open");
        assert_eq!(reader.read(&mut [0; 160]).expect("read"), 0);
    }
}
