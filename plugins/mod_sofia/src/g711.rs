//! G.711 μ-law and A-law (ITU-T G.711), for frames the core hands over
//! as L16 or in the other law.

/// μ-law byte of a linear sample.
pub fn ulaw_encode(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = sample as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let exponent = (7 - ((s as u32) << 17).leading_zeros().min(7)) as i32;
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Linear sample of a μ-law byte.
pub fn ulaw_decode(b: u8) -> i16 {
    let b = !b;
    let sign = b & 0x80;
    let exponent = ((b >> 4) & 0x07) as i32;
    let mantissa = (b & 0x0f) as i32;
    let s = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -s } else { s }) as i16
}

/// A-law byte of a linear sample.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s >= 0 {
        0x80
    } else {
        s = -s - 1;
        0
    };
    s = s.min(32767);
    let b = if s < 256 {
        (s >> 4) as u8
    } else {
        let exponent = 31 - (s as u32).leading_zeros() - 7;
        let mantissa = (s >> (exponent + 3)) & 0x0f;
        ((exponent << 4) as i32 | mantissa) as u8
    };
    (b | sign) ^ 0x55
}

/// Linear sample of an A-law byte.
pub fn alaw_decode(b: u8) -> i16 {
    let b = b ^ 0x55;
    let sign = b & 0x80;
    let exponent = ((b >> 4) & 0x07) as i32;
    let mantissa = (b & 0x0f) as i32;
    let s = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if sign != 0 { s } else { -s }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_laws_round_trip_within_their_step() {
        for s in (-32000i32..32000).step_by(37) {
            let s = s as i16;
            let u = ulaw_decode(ulaw_encode(s));
            let a = alaw_decode(alaw_encode(s));
            let tol = (s as i32).abs() / 16 + 16;
            assert!(((u as i32) - s as i32).abs() <= tol, "ulaw {s} -> {u}");
            assert!(((a as i32) - s as i32).abs() <= tol, "alaw {s} -> {a}");
        }
    }

    #[test]
    fn silence_has_the_usual_codes() {
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(alaw_encode(0), 0xd5);
        // Every code decodes and encodes back to itself.
        for b in 0..=255u8 {
            assert_eq!(
                ulaw_encode(ulaw_decode(b)),
                if b == 0x7f { 0xff } else { b }
            );
            assert_eq!(alaw_encode(alaw_decode(b)), b);
        }
    }
}
