//! The audio codecs the core speaks itself: `L16` (our internal linear
//! frames), `PCMU` (G.711 µ-law) and `PCMA` (G.711 A-law), named as
//! FreeSWITCH names them. Anything richer (Opus, G.722, …) belongs to a
//! codec module; these three are in the core because every endpoint can fall
//! back to them and because tones, files and the DTMF detector work on linear
//! samples that must cross to and from G.711 somewhere.
//!
//! G.711 is written here rather than taken from a crate: it is a few lines of
//! bit arithmetic, and the decoders are 256-entry tables built at compile
//! time. Encoders round to the nearest quantisation level and decoders return
//! the middle of each level, as ITU-T G.711 specifies.

use std::fmt;
use std::str::FromStr;

/// A codec the core can encode and decode without a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Linear 16-bit PCM. On the wire (RFC 3551) L16 is big-endian, but
    /// frames inside hotswitch carry it little-endian, as FreeSWITCH's
    /// internal L16 frames do; an RTP endpoint swaps bytes at its edge.
    L16,
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

/// A codec name no codec answers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownCodec(pub String);

impl fmt::Display for UnknownCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown codec '{}' (known: L16, PCMU, PCMA)", self.0)
    }
}

impl std::error::Error for UnknownCodec {}

impl Codec {
    pub const ALL: [Codec; 3] = [Codec::L16, Codec::Pcmu, Codec::Pcma];

    /// The name as FreeSWITCH spells it in `absolute_codec_string`, SDP and
    /// `show codec`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::L16 => "L16",
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// Looks a codec up by name, ignoring case (`pcmu`, `PCMU`, `Pcmu`).
    pub fn from_name(name: &str) -> Option<Codec> {
        Codec::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The static RTP payload type (RFC 3551). L16 has none here: its
    /// static types (10 and 11) mean 44.1 kHz only, so an endpoint offering
    /// L16 at telephony rates negotiates a dynamic one.
    pub fn payload_type(self) -> Option<u8> {
        match self {
            Codec::L16 => None,
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
        }
    }

    /// Bytes one sample takes in this codec.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            Codec::L16 => 2,
            Codec::Pcmu | Codec::Pcma => 1,
        }
    }

    /// Linear samples in `bytes` of this codec; a trailing half sample of
    /// L16 does not count.
    pub fn samples_in(self, bytes: usize) -> usize {
        bytes / self.bytes_per_sample()
    }

    pub fn encode(self, pcm: &[i16]) -> Vec<u8> {
        match self {
            Codec::L16 => pcm.iter().flat_map(|s| s.to_le_bytes()).collect(),
            Codec::Pcmu => pcm.iter().map(|&s| linear_to_ulaw(s)).collect(),
            Codec::Pcma => pcm.iter().map(|&s| linear_to_alaw(s)).collect(),
        }
    }

    /// Decodes `bytes`; for L16 an odd trailing byte is dropped, since half a
    /// sample has no value.
    pub fn decode(self, bytes: &[u8]) -> Vec<i16> {
        match self {
            Codec::L16 => bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect(),
            Codec::Pcmu => bytes.iter().map(|&b| ulaw_to_linear(b)).collect(),
            Codec::Pcma => bytes.iter().map(|&b| alaw_to_linear(b)).collect(),
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Codec {
    type Err = UnknownCodec;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Codec::from_name(s).ok_or_else(|| UnknownCodec(s.to_string()))
    }
}

/// Re-encodes `bytes` from one codec to another through linear samples.
/// Same codec in and out returns the bytes untouched, so relaying a call
/// whose legs agree costs a copy and never a requantisation.
pub fn transcode(from: Codec, to: Codec, bytes: &[u8]) -> Vec<u8> {
    if from == to {
        return bytes.to_vec();
    }
    to.encode(&from.decode(bytes))
}

pub use hotswitch_plugin_api::g711::{
    alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l16_is_little_endian_and_drops_a_trailing_half_sample() {
        let bytes = Codec::L16.encode(&[1, -2, 0x1234]);
        assert_eq!(bytes, [0x01, 0x00, 0xFE, 0xFF, 0x34, 0x12]);
        assert_eq!(Codec::L16.decode(&bytes), [1, -2, 0x1234]);
        assert_eq!(Codec::L16.decode(&bytes[..5]), [1, -2]);
        assert_eq!(Codec::L16.samples_in(5), 2);
    }

    #[test]
    fn names_follow_freeswitch_and_are_found_ignoring_case() {
        for codec in Codec::ALL {
            assert_eq!(Codec::from_name(codec.name()), Some(codec));
            assert_eq!(Codec::from_name(&codec.name().to_lowercase()), Some(codec));
            assert_eq!(codec.name().parse::<Codec>(), Ok(codec));
        }
        assert_eq!(Codec::Pcmu.to_string(), "PCMU");
        let err = "G729".parse::<Codec>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown codec 'G729' (known: L16, PCMU, PCMA)"
        );
    }

    #[test]
    fn static_payload_types_are_those_of_rfc_3551() {
        assert_eq!(Codec::Pcmu.payload_type(), Some(0));
        assert_eq!(Codec::Pcma.payload_type(), Some(8));
        assert_eq!(Codec::L16.payload_type(), None);
    }

    #[test]
    fn transcoding_between_laws_keeps_the_signal() {
        let pcm: Vec<i16> = (0..400)
            .map(|i| ((i * 157) % 20000 - 10000) as i16)
            .collect();
        let ulaw = Codec::Pcmu.encode(&pcm);
        let alaw = transcode(Codec::Pcmu, Codec::Pcma, &ulaw);
        let back = Codec::Pcma.decode(&alaw);
        for (x, y) in pcm.iter().zip(&back) {
            // Twice G.711's half step (one requantisation per law).
            let tolerance = 2 * ((*x as i32).abs() / 32 + 16);
            assert!((*x as i32 - *y as i32).abs() <= tolerance);
        }
        let l16 = transcode(Codec::Pcma, Codec::L16, &alaw);
        assert_eq!(Codec::L16.decode(&l16), back);
    }

    #[test]
    fn transcoding_to_the_same_codec_returns_the_bytes_untouched() {
        let odd = [0x12, 0x34, 0x56];
        assert_eq!(transcode(Codec::L16, Codec::L16, &odd), odd);
        assert_eq!(transcode(Codec::Pcmu, Codec::Pcmu, &odd), odd);
    }
}
