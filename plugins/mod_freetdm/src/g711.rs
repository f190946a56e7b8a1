//! G.711 µ-law (PCMU) and A-law (PCMA), sample by sample: what a TDM
//! channel carries, 8 bits per sample at 8 kHz.

/// The codec a span's channels carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Law {
    /// µ-law, `PCMU` (North America, Japan).
    Ulaw,
    /// A-law, `PCMA` (Europe and most of the world).
    Alaw,
}

impl Law {
    /// From FreeSWITCH's codec name.
    pub fn from_name(name: &str) -> Option<Law> {
        match name.to_ascii_uppercase().as_str() {
            "PCMU" | "ULAW" | "MULAW" => Some(Law::Ulaw),
            "PCMA" | "ALAW" => Some(Law::Alaw),
            _ => None,
        }
    }

    /// FreeSWITCH's codec name.
    pub fn name(self) -> &'static str {
        match self {
            Law::Ulaw => "PCMU",
            Law::Alaw => "PCMA",
        }
    }

    /// Encodes linear samples.
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        out.extend(pcm.iter().map(|&s| match self {
            Law::Ulaw => ulaw_encode(s),
            Law::Alaw => alaw_encode(s),
        }));
    }

    /// Decodes into linear samples.
    pub fn decode(self, bytes: &[u8], out: &mut Vec<i16>) {
        out.extend(bytes.iter().map(|&b| match self {
            Law::Ulaw => ulaw_decode(b),
            Law::Alaw => alaw_decode(b),
        }));
    }
}

/// The sample conversions are plugin-api's, shared with the host and the
/// other endpoints.
pub use hotswitch_plugin_api::g711::{
    alaw_to_linear as alaw_decode, linear_to_alaw as alaw_encode, linear_to_ulaw as ulaw_encode,
    ulaw_to_linear as ulaw_decode,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_round_trips_within_its_quantisation_step() {
        for s in (-32000i32..32000).step_by(37) {
            let back = ulaw_decode(ulaw_encode(s as i16)) as i32;
            let step = (s.abs() / 16).max(8);
            assert!((back - s).abs() <= step, "{s} -> {back}");
        }
        assert_eq!(ulaw_encode(0), 0xff);
    }

    #[test]
    fn alaw_round_trips_within_its_quantisation_step() {
        for s in (-32000i32..32000).step_by(37) {
            let back = alaw_decode(alaw_encode(s as i16)) as i32;
            let step = (s.abs() / 16).max(16);
            assert!((back - s).abs() <= step, "{s} -> {back}");
        }
        assert_eq!(alaw_encode(0), 0xd5);
    }

    #[test]
    fn codec_names_are_freeswitchs() {
        assert_eq!(Law::from_name("pcmu"), Some(Law::Ulaw));
        assert_eq!(Law::Alaw.name(), "PCMA");
        assert_eq!(Law::from_name("G729"), None);
    }
}
