//! The audio a call sends: 160 μ-law bytes per 20 ms, each packet
//! different from every other packet of the call and of the other calls,
//! so an echo tells which packet it is. The first three bytes carry the
//! packet's number. Every byte avoids 0x00, 0x7F and 0xFF: 0x7F and 0xFF
//! are both zero and 0x00 is clipped by some encoders, so a switch that
//! decodes and encodes again could change them.

use std::time::Duration;

/// The packet interval.
pub const PTIME: Duration = Duration::from_millis(20);
/// Samples (and PCMU bytes) per packet.
pub const SAMPLES: u64 = 160;

/// Values a byte may take: 1..=126 and 128..=254.
const SAFE: u32 = 252;
/// Radix of the packet number: digits 1..=126.
const DIGIT: u32 = 126;

fn safe_byte(v: u32) -> u8 {
    let v = v % SAFE;
    if v < 126 {
        (v + 1) as u8
    } else {
        (v + 2) as u8
    }
}

/// Packet `n` of call `call`.
pub fn packet(call: usize, n: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(SAMPLES as usize);
    b.push((n / (DIGIT * DIGIT) % DIGIT + 1) as u8);
    b.push((n / DIGIT % DIGIT + 1) as u8);
    b.push((n % DIGIT + 1) as u8);
    let seed = (call as u32)
        .wrapping_mul(40_503)
        .wrapping_add(n.wrapping_mul(11));
    for i in 3..SAMPLES as u32 {
        b.push(safe_byte(seed.wrapping_add(i.wrapping_mul(13))));
    }
    b
}

/// The packet number an echo carries, if it looks like one of ours.
pub fn number(data: &[u8]) -> Option<u32> {
    if data.len() != SAMPLES as usize {
        return None;
    }
    let digit = |b: u8| (1..=DIGIT as u8).contains(&b).then(|| u32::from(b) - 1);
    Some((digit(data[0])? * DIGIT + digit(data[1])?) * DIGIT + digit(data[2])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_says_its_own_number() {
        for n in [0, 1, 125, 126, 15_875, 15_876, 1_999_999] {
            assert_eq!(number(&packet(3, n)), Some(n));
        }
        assert_eq!(number(&[0u8; 160]), None);
        assert_eq!(number(&[1u8; 80]), None);
    }

    #[test]
    fn no_byte_is_one_a_transcoder_may_change() {
        for call in 0..20 {
            for n in 0..300 {
                let p = packet(call, n);
                assert_eq!(p.len(), 160);
                assert!(
                    p.iter().all(|b| ![0x00, 0x7F, 0xFF].contains(b)),
                    "{call} {n}"
                );
            }
        }
    }

    #[test]
    fn neighbouring_packets_and_calls_differ() {
        assert_ne!(packet(0, 10), packet(0, 11));
        assert_ne!(packet(0, 10), packet(1, 10));
        assert_ne!(packet(0, 10)[3..], packet(0, 46)[3..]);
    }
}
