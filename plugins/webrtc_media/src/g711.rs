//! G.711 (ITU-T, μ-law and A-law) for frames the core writes as L16.
//! Opus is not a law: its payloads are the endpoint's to code, and are
//! treated here as μ-law, which the media task never asks for.

use crate::Codec;

use hotswitch_plugin_api::g711::{
    alaw_to_linear as alaw_decode, linear_to_alaw as alaw, linear_to_ulaw as ulaw,
    ulaw_to_linear as ulaw_decode,
};

/// L16 (native-endian samples) to `codec`.
pub fn encode(codec: Codec, l16: &[u8]) -> Vec<u8> {
    let f = match codec {
        Codec::Pcma => alaw,
        Codec::Pcmu | Codec::Opus => ulaw,
    };
    l16.chunks_exact(2)
        .map(|c| f(i16::from_ne_bytes([c[0], c[1]])))
        .collect()
}

/// One law to the other.
pub fn transcode(from: Codec, to: Codec, data: &[u8]) -> Vec<u8> {
    if from == to {
        return data.to_vec();
    }
    let dec = match from {
        Codec::Pcma => alaw_decode,
        Codec::Pcmu | Codec::Opus => ulaw_decode,
    };
    let enc = match to {
        Codec::Pcma => alaw,
        Codec::Pcmu | Codec::Opus => ulaw,
    };
    data.iter().map(|b| enc(dec(*b))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_survives_decoding_and_encoding_again() {
        for b in 0..=255u8 {
            // 0x7F and 0xFF are both μ-law zero.
            if b != 0x7F {
                assert_eq!(ulaw(ulaw_decode(b)), b, "μ-law {b:#x}");
            }
            assert_eq!(alaw(alaw_decode(b)), b, "A-law {b:#x}");
        }
    }

    #[test]
    fn silence_and_full_scale_have_their_codes() {
        assert_eq!(ulaw(0), 0xFF);
        assert_eq!(alaw(0), 0xD5);
        assert_eq!(encode(Codec::Pcmu, &i16::MAX.to_ne_bytes()), vec![0x80]);
    }
}
