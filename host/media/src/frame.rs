//! The unit of audio the media core moves: one packet's worth of encoded
//! samples with its codec, rate and RTP-style timestamp. Endpoints read and
//! write these; the core decodes them to linear samples only when it has to
//! look at or mix the audio, and otherwise relays them as they are.

use std::time::Duration;

use super::codec::Codec;

/// One frame of mono audio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioFrame {
    pub codec: Codec,
    /// Samples per second.
    pub rate: u32,
    /// Samples in `data`.
    pub samples: u32,
    pub data: Vec<u8>,
    /// The first sample's position in the stream, in samples, wrapping as
    /// an RTP timestamp does.
    pub timestamp: u32,
}

impl AudioFrame {
    /// Encodes linear samples as one frame.
    pub fn from_samples(codec: Codec, rate: u32, pcm: &[i16], timestamp: u32) -> Self {
        AudioFrame {
            codec,
            rate,
            samples: pcm.len() as u32,
            data: codec.encode(pcm),
            timestamp,
        }
    }

    /// A frame of `samples` silent samples.
    pub fn silence(codec: Codec, rate: u32, samples: u32, timestamp: u32) -> Self {
        Self::from_samples(codec, rate, &vec![0; samples as usize], timestamp)
    }

    /// The frame's audio as linear samples.
    pub fn to_samples(&self) -> Vec<i16> {
        self.codec.decode(&self.data)
    }

    /// The same audio in another codec, with the same timing.
    pub fn transcoded(&self, codec: Codec) -> AudioFrame {
        AudioFrame {
            codec,
            rate: self.rate,
            samples: self.samples,
            data: super::codec::transcode(self.codec, codec, &self.data),
            timestamp: self.timestamp,
        }
    }

    /// How long the frame plays.
    pub fn duration(&self) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.samples as u64 * 1_000_000_000 / self.rate as u64)
    }

    /// The timestamp the frame after this one carries.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp.wrapping_add(self.samples)
    }
}

/// Samples in one packet of `ptime_ms` at `rate`: 160 for 20 ms at 8 kHz.
pub fn ptime_samples(rate: u32, ptime_ms: u32) -> u32 {
    (rate as u64 * ptime_ms as u64 / 1000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_20ms_packet_holds_the_usual_sample_counts() {
        assert_eq!(ptime_samples(8000, 20), 160);
        assert_eq!(ptime_samples(16000, 20), 320);
        assert_eq!(ptime_samples(48000, 20), 960);
        assert_eq!(ptime_samples(44100, 20), 882);
        assert_eq!(ptime_samples(8000, 30), 240);
    }

    #[test]
    fn samples_survive_a_trip_through_an_l16_frame() {
        let pcm: Vec<i16> = (0..160).map(|i| (i * 200 - 16000) as i16).collect();
        let frame = AudioFrame::from_samples(Codec::L16, 8000, &pcm, 1234);
        assert_eq!(frame.samples, 160);
        assert_eq!(frame.data.len(), 320);
        assert_eq!(frame.to_samples(), pcm);
    }

    #[test]
    fn a_g711_frame_has_a_byte_per_sample() {
        let frame = AudioFrame::from_samples(Codec::Pcmu, 8000, &[0; 160], 0);
        assert_eq!(frame.data, vec![0xFF; 160]);
        assert_eq!(frame.duration(), Duration::from_millis(20));
    }

    #[test]
    fn transcoding_a_frame_keeps_its_timing() {
        let frame = AudioFrame::silence(Codec::Pcma, 8000, 160, 4000);
        let l16 = frame.transcoded(Codec::L16);
        assert_eq!(
            (l16.codec, l16.rate, l16.samples, l16.timestamp),
            (Codec::L16, 8000, 160, 4000)
        );
        assert_eq!(l16.data.len(), 320);
        assert_eq!(frame.transcoded(Codec::Pcma), frame);
    }

    #[test]
    fn timestamps_advance_by_the_sample_count_and_wrap() {
        let frame = AudioFrame::silence(Codec::Pcmu, 8000, 160, u32::MAX - 99);
        assert_eq!(frame.next_timestamp(), 60);
    }
}
