//! G.711 (ITU-T): μ-law and A-law to and from 16-bit linear samples, for
//! endpoints that carry PCMU/PCMA and the core that mixes in L16. Pure
//! functions with no state; decoding is a table lookup.
//!
//! ```
//! use hotswitch_plugin_api::g711;
//! assert_eq!(g711::linear_to_ulaw(0), 0xFF);
//! assert_eq!(g711::alaw_to_linear(g711::linear_to_alaw(1000)), 1008);
//! ```

/// µ-law adds this bias so that every segment starts at a power of two.
const ULAW_BIAS: i32 = 0x84;
/// The largest magnitude µ-law can represent once biased.
const ULAW_CLIP: i32 = 32635;

/// The μ-law code of a linear sample.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let sign: u8 = if sample < 0 { 0x80 } else { 0 };
    let magnitude = (sample as i32).abs().min(ULAW_CLIP) + ULAW_BIAS;
    // The biased magnitude is at least 0x84, so its top bit is 7..=14 and the
    // segment is that position minus 7.
    let exponent = (31 - magnitude.leading_zeros() as i32) - 7;
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    !(sign | ((exponent as u8) << 4) | mantissa as u8)
}

/// The linear sample of a μ-law code.
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// The A-law code of a linear sample.
pub fn linear_to_alaw(sample: i16) -> u8 {
    // A-law quantises 13-bit magnitudes; negative values are mapped with
    // -x-1 (one's complement) so that 0 and -1 land in the two levels
    // nearest zero rather than both in one.
    let (mask, magnitude) = if sample >= 0 {
        (0xD5u8, (sample as i32) >> 3)
    } else {
        (0x55u8, (-(sample as i32) - 1) >> 3)
    };
    // Magnitudes are below 4096, so the segment is at most 7. Segments 0
    // and 1 share the finest step, and their codes are simply magnitude / 2.
    let code = if magnitude < 64 {
        (magnitude >> 1) as u8
    } else {
        let segment = (31 - magnitude.leading_zeros() as i32) - 4;
        ((segment as u8) << 4) | ((magnitude >> segment) & 0x0F) as u8
    };
    code ^ mask
}

/// The linear sample of an A-law code.
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

static ULAW_DECODE: [i16; 256] = build_ulaw_table();
static ALAW_DECODE: [i16; 256] = build_alaw_table();

const fn build_ulaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        let code = !(i as u8);
        let exponent = ((code >> 4) & 0x07) as i32;
        let mantissa = (code & 0x0F) as i32;
        let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
        table[i] = if code & 0x80 != 0 {
            -magnitude as i16
        } else {
            magnitude as i16
        };
        i += 1;
    }
    table
}

const fn build_alaw_table() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        let code = (i as u8) ^ 0x55;
        let segment = ((code >> 4) & 0x07) as i32;
        let mantissa = (code & 0x0F) as i32;
        // Middle of the level, in 16-bit scale: half a step is 8 in the
        // first two segments and doubles with every segment after.
        let magnitude = match segment {
            0 => (mantissa << 4) + 8,
            _ => ((mantissa << 4) + 0x108) << (segment - 1),
        };
        table[i] = if code & 0x80 != 0 {
            magnitude as i16
        } else {
            -magnitude as i16
        };
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Half a quantisation step at `x` (16-bit scale) for either law, plus
    /// the rounding of A-law's 13-bit input.
    fn g711_tolerance(x: i16) -> i32 {
        (x as i32).abs() / 32 + 16
    }

    #[test]
    fn silence_encodes_to_the_reference_codes() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
    }

    #[test]
    fn full_scale_decodes_to_the_reference_extremes() {
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn ulaw_round_trip_stays_within_half_a_step_for_every_sample() {
        for x in i16::MIN..=i16::MAX {
            let back = ulaw_to_linear(linear_to_ulaw(x));
            let err = (back as i32 - x as i32).abs();
            assert!(err <= g711_tolerance(x), "{x} -> {back} (error {err})");
        }
    }

    #[test]
    fn alaw_round_trip_stays_within_half_a_step_for_every_sample() {
        for x in i16::MIN..=i16::MAX {
            let back = alaw_to_linear(linear_to_alaw(x));
            let err = (back as i32 - x as i32).abs();
            assert!(err <= g711_tolerance(x), "{x} -> {back} (error {err})");
        }
    }

    #[test]
    fn every_g711_code_survives_decode_then_encode() {
        for code in 0..=255u8 {
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "A-law {code:#04x}"
            );
            let back = linear_to_ulaw(ulaw_to_linear(code));
            // µ-law has two codes for zero (0x7F and 0xFF); both mean silence.
            if code != 0x7F {
                assert_eq!(back, code, "µ-law {code:#04x}");
            }
        }
    }

    #[test]
    fn encoders_are_monotonic_in_the_decoded_domain() {
        let mut last_u = i16::MIN;
        let mut last_a = i16::MIN;
        for x in (i16::MIN..=i16::MAX).step_by(7) {
            let u = ulaw_to_linear(linear_to_ulaw(x));
            let a = alaw_to_linear(linear_to_alaw(x));
            assert!(u >= last_u && a >= last_a, "not monotonic at {x}");
            last_u = u;
            last_a = a;
        }
    }
}
