//! SMS PDUs (3GPP TS 23.040 / 23.038), pure functions: SMS-SUBMIT (what we
//! send) and SMS-DELIVER (what the modem hands us), in the GSM 7-bit
//! default alphabet or UCS-2, split and reassembled with the 8-bit
//! concatenation header. The modem simulator includes this file too, for
//! the other direction of each PDU.
//!
//! No crate on crates.io does this with a maintained, small dependency set
//! (`sms-pdu` pulls the unmaintained `encoding` crate and `rand`), so it is
//! written here, against the standard's examples.

use std::fmt;

/// Why a PDU could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PduError(pub String);

impl fmt::Display for PduError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad PDU: {}", self.0)
    }
}

impl std::error::Error for PduError {}

fn err<T>(what: &str) -> Result<T, PduError> {
    Err(PduError(what.to_string()))
}

/// One part of a concatenated message: (reference, total, sequence from 1).
pub type Concat = (u16, u8, u8);

/// A received SMS-DELIVER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    /// The sender (`+` for international numbers).
    pub from: String,
    /// The text of this part.
    pub text: String,
    /// The concatenation header, if this is one part of a longer message.
    pub concat: Option<Concat>,
    /// The service centre time stamp, `YY/MM/DD,hh:mm:ss`.
    pub timestamp: String,
}

/// A decoded SMS-SUBMIT (the simulator's side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// The recipient.
    pub to: String,
    /// The text of this part.
    pub text: String,
    /// The concatenation header.
    pub concat: Option<Concat>,
}

/// An encoded PDU ready for `AT+CMGS=<tpdu_len>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPdu {
    /// Hex text, SMSC part included.
    pub hex: String,
    /// Octets after the SMSC part (the number `AT+CMGS` takes).
    pub tpdu_len: usize,
}

/// GSM 03.38 default alphabet; index = septet value.
const GSM7: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table (after ESC).
const GSM7_EXT: [(u8, char); 10] = [
    (0x0A, '\u{0c}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// The septets of `c` in the default alphabet (one, or ESC and one).
fn gsm7_septets(c: char) -> Option<Vec<u8>> {
    if c != '\u{1b}' {
        if let Some(i) = GSM7.iter().position(|&g| g == c) {
            return Some(vec![i as u8]);
        }
    }
    GSM7_EXT
        .iter()
        .find(|(_, g)| *g == c)
        .map(|(s, _)| vec![0x1b, *s])
}

/// True when all of `text` fits the GSM 7-bit alphabet.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm7_septets(c).is_some())
}

fn gsm7_decode(septets: &[u8]) -> String {
    let mut out = String::new();
    let mut esc = false;
    for &s in septets {
        let s = s & 0x7f;
        if esc {
            esc = false;
            match GSM7_EXT.iter().find(|(v, _)| *v == s) {
                Some((_, c)) => out.push(*c),
                None => out.push(GSM7[s as usize]),
            }
        } else if s == 0x1b {
            esc = true;
        } else {
            out.push(GSM7[s as usize]);
        }
    }
    out
}

/// Packs `head` octets, fill bits to a septet boundary, then `septets`.
fn pack7(head: &[u8], septets: &[u8]) -> Vec<u8> {
    let mut bits: Vec<bool> = Vec::new();
    for &o in head {
        bits.extend((0..8).map(|i| o >> i & 1 == 1));
    }
    while !bits.len().is_multiple_of(7) {
        bits.push(false);
    }
    for &s in septets {
        bits.extend((0..7).map(|i| s >> i & 1 == 1));
    }
    bits.chunks(8)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |o, (i, &b)| o | (b as u8) << i)
        })
        .collect()
}

/// Unpacks `count` septets after `head_octets` octets (and their fill).
fn unpack7(data: &[u8], head_octets: usize, count: usize) -> Vec<u8> {
    let skip = (head_octets * 8).div_ceil(7) * 7;
    let bit = |n: usize| data.get(n / 8).is_some_and(|o| o >> (n % 8) & 1 == 1);
    (skip / 7..count)
        .map(|k| (0..7).fold(0u8, |s, i| s | (bit(k * 7 + i) as u8) << i))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Hex text to octets.
pub fn unhex(s: &str) -> Result<Vec<u8>, PduError> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return err("odd length or not hex");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).or_else(|_| err("not hex")))
        .collect()
}

/// An address: length in digits, type, swapped BCD.
fn encode_address(number: &str) -> Vec<u8> {
    let (toa, digits) = match number.strip_prefix('+') {
        Some(d) => (0x91u8, d),
        None => (0x81u8, number),
    };
    let digits: Vec<u8> = digits
        .bytes()
        .filter_map(|b| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'*' => Some(0xA),
            b'#' => Some(0xB),
            _ => None,
        })
        .collect();
    let mut out = vec![digits.len() as u8, toa];
    for pair in digits.chunks(2) {
        out.push(pair[0] | pair.get(1).copied().unwrap_or(0xF) << 4);
    }
    out
}

/// Reads an address at `p`; returns it and the position after it.
fn decode_address(b: &[u8], p: usize) -> Result<(String, usize), PduError> {
    let (&len, &toa) = match (b.get(p), b.get(p + 1)) {
        (Some(l), Some(t)) => (l, t),
        _ => return err("address cut short"),
    };
    let octets = (len as usize).div_ceil(2);
    let body = b
        .get(p + 2..p + 2 + octets)
        .ok_or(PduError("address".into()))?;
    let s = if toa & 0x70 == 0x50 {
        // Alphanumeric sender: packed GSM 7-bit, `len` counts semi-octets.
        gsm7_decode(&unpack7(body, 0, len as usize * 4 / 7))
    } else {
        let mut s = String::new();
        if toa & 0x70 == 0x10 {
            s.push('+');
        }
        for &o in body {
            for d in [o & 0xF, o >> 4] {
                match d {
                    0..=9 => s.push((b'0' + d) as char),
                    0xA => s.push('*'),
                    0xB => s.push('#'),
                    0xC..=0xE => s.push((b'a' + d - 0xA) as char),
                    _ => {}
                }
            }
        }
        s
    };
    Ok((s, p + 2 + octets))
}

/// The text split into parts, each as (DCS, UDL, user data without UDH).
enum Coding {
    Gsm7,
    Ucs2,
}

/// Splits `text` into the user data of each part (septets or UCS-2 octets).
fn split(text: &str) -> (Coding, Vec<Vec<u8>>) {
    if is_gsm7(text) {
        let chars: Vec<Vec<u8>> = text.chars().filter_map(gsm7_septets).collect();
        let total: usize = chars.iter().map(Vec::len).sum();
        let limit = if total <= 160 { 160 } else { 153 };
        let mut parts = vec![Vec::new()];
        for c in chars {
            // An escape pair never straddles two parts.
            if parts
                .last()
                .is_some_and(|p: &Vec<u8>| p.len() + c.len() > limit)
            {
                parts.push(Vec::new());
            }
            parts.last_mut().expect("one part at least").extend(c);
        }
        (Coding::Gsm7, parts)
    } else {
        let units: Vec<u16> = text.encode_utf16().collect();
        let limit = if units.len() <= 70 { 70 } else { 67 };
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut i = 0;
        while i < units.len() {
            let mut end = (i + limit).min(units.len());
            // Never split a surrogate pair.
            if end < units.len() && (0xD800..0xDC00).contains(&units[end - 1]) {
                end -= 1;
            }
            parts.push(units[i..end].iter().flat_map(|u| u.to_be_bytes()).collect());
            i = end;
        }
        if parts.is_empty() {
            parts.push(Vec::new());
        }
        (Coding::Ucs2, parts)
    }
}

/// The user-data fields of each part: (UDHI set, DCS, UDL, UD octets).
fn user_data(text: &str, reference: u8) -> Vec<(bool, u8, u8, Vec<u8>)> {
    let (coding, parts) = split(text);
    let total = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let udh: Vec<u8> = if total > 1 {
                vec![5, 0, 3, reference, total as u8, i as u8 + 1]
            } else {
                Vec::new()
            };
            match coding {
                Coding::Gsm7 => {
                    let udl = (udh.len() * 8).div_ceil(7) + p.len();
                    (total > 1, 0x00, udl as u8, pack7(&udh, &p))
                }
                Coding::Ucs2 => {
                    let mut ud = udh.clone();
                    ud.extend(&p);
                    (total > 1, 0x08, ud.len() as u8, ud)
                }
            }
        })
        .collect()
}

/// The parts of an SMS-SUBMIT to `to` carrying `text`; `reference` ties the
/// parts of a long message together.
pub fn encode_submit(to: &str, text: &str, reference: u8) -> Vec<EncodedPdu> {
    user_data(text, reference)
        .into_iter()
        .map(|(udhi, dcs, udl, ud)| {
            // First octet: SMS-SUBMIT, relative validity period, UDHI.
            let mut t = vec![0x11 | if udhi { 0x40 } else { 0 }, 0x00];
            t.extend(encode_address(to));
            t.extend([0x00, dcs, 0xAA, udl]);
            t.extend(ud);
            EncodedPdu {
                hex: format!("00{}", hex(&t)),
                tpdu_len: t.len(),
            }
        })
        .collect()
}

/// The parts of an SMS-DELIVER from `from` (what a modem stores).
pub fn encode_deliver(from: &str, text: &str, reference: u8) -> Vec<EncodedPdu> {
    user_data(text, reference)
        .into_iter()
        .map(|(udhi, dcs, udl, ud)| {
            let mut t = vec![0x04 | if udhi { 0x40 } else { 0 }];
            t.extend(encode_address(from));
            t.extend([0x00, dcs]);
            // 26/11/22 15:00:00 +0: semi-octets swapped.
            t.extend([0x62, 0x11, 0x22, 0x51, 0x00, 0x00, 0x00]);
            t.push(udl);
            t.extend(ud);
            EncodedPdu {
                hex: format!("00{}", hex(&t)),
                tpdu_len: t.len(),
            }
        })
        .collect()
}

/// Reads UDL and UD at `p` given the DCS and the UDHI bit.
fn decode_user_data(
    b: &[u8],
    p: usize,
    dcs: u8,
    udhi: bool,
) -> Result<(String, Option<Concat>), PduError> {
    let udl = *b.get(p).ok_or(PduError("no UDL".into()))? as usize;
    let ud = &b[p + 1..];
    let alphabet = if dcs & 0xC0 == 0 {
        (dcs >> 2) & 3
    } else if dcs & 0xF0 == 0xF0 {
        (dcs >> 2) & 1
    } else {
        (dcs >> 2) & 3
    };
    let mut concat = None;
    let mut head = 0;
    if udhi {
        let udhl = *ud.first().ok_or(PduError("no UDH".into()))? as usize;
        let h = ud
            .get(1..1 + udhl)
            .ok_or(PduError("UDH cut short".into()))?;
        let mut i = 0;
        while i + 1 < h.len() {
            let (iei, l) = (h[i], h[i + 1] as usize);
            let v = h.get(i + 2..i + 2 + l).unwrap_or(&[]);
            match (iei, v) {
                (0x00, [r, t, s]) => concat = Some((*r as u16, *t, *s)),
                (0x08, [r1, r2, t, s]) => concat = Some((u16::from_be_bytes([*r1, *r2]), *t, *s)),
                _ => {}
            }
            i += 2 + l;
        }
        head = 1 + udhl;
    }
    let text = match alphabet {
        0 => {
            if (udl * 7).div_ceil(8) > ud.len() {
                return err("user data shorter than its length");
            }
            gsm7_decode(&unpack7(ud, head, udl))
        }
        2 => {
            let body = ud.get(head..udl).ok_or(PduError("UCS-2 data".into()))?;
            let units: Vec<u16> = body
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => {
            let body = ud.get(head..udl).ok_or(PduError("8-bit data".into()))?;
            String::from_utf8_lossy(body).into_owned()
        }
    };
    Ok((text, concat))
}

/// Skips the SMSC part; returns the position of the first TPDU octet.
fn skip_smsc(b: &[u8]) -> Result<usize, PduError> {
    let l = *b.first().ok_or(PduError("empty".into()))? as usize;
    if b.len() < l + 2 {
        return err("cut short after the SMSC");
    }
    Ok(1 + l)
}

/// Reads an SMS-DELIVER (hex, SMSC part included, as `+CMGR` shows it).
pub fn decode_deliver(hex_text: &str) -> Result<Deliver, PduError> {
    let b = unhex(hex_text)?;
    let mut p = skip_smsc(&b)?;
    let first = b[p];
    if first & 0x03 != 0 {
        return err("not an SMS-DELIVER");
    }
    let (from, q) = decode_address(&b, p + 1)?;
    p = q;
    let dcs = *b.get(p + 1).ok_or(PduError("no DCS".into()))?;
    let ts = b
        .get(p + 2..p + 9)
        .ok_or(PduError("no time stamp".into()))?;
    let d = |o: u8| (o & 0xF) * 10 + (o >> 4);
    let timestamp = format!(
        "{:02}/{:02}/{:02},{:02}:{:02}:{:02}",
        d(ts[0]),
        d(ts[1]),
        d(ts[2]),
        d(ts[3]),
        d(ts[4]),
        d(ts[5])
    );
    let (text, concat) = decode_user_data(&b, p + 9, dcs, first & 0x40 != 0)?;
    Ok(Deliver {
        from,
        text,
        concat,
        timestamp,
    })
}

/// Reads an SMS-SUBMIT (hex, SMSC part included).
pub fn decode_submit(hex_text: &str) -> Result<Submit, PduError> {
    let b = unhex(hex_text)?;
    let p = skip_smsc(&b)?;
    let first = b[p];
    if first & 0x03 != 0x01 {
        return err("not an SMS-SUBMIT");
    }
    let (to, q) = decode_address(&b, p + 2)?;
    let dcs = *b.get(q + 1).ok_or(PduError("no DCS".into()))?;
    let vp_len = match (first >> 3) & 3 {
        0 => 0,
        2 => 1,
        _ => 7,
    };
    let (text, concat) = decode_user_data(&b, q + 2 + vp_len, dcs, first & 0x40 != 0)?;
    Ok(Submit { to, text, concat })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_in_gsm7_packs_as_the_standard_example() {
        // "hellohello" from the classic PDU tutorials.
        let septets: Vec<u8> = "hellohello"
            .chars()
            .flat_map(|c| gsm7_septets(c).unwrap())
            .collect();
        assert_eq!(hex(&pack7(&[], &septets)), "E8329BFD4697D9EC37");
    }

    #[test]
    fn a_known_deliver_pdu_decodes_sender_time_and_text() {
        let pdu = "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37";
        let d = decode_deliver(pdu).unwrap();
        assert_eq!(d.from, "27838890001");
        assert_eq!(d.text, "hellohello");
        assert_eq!(d.timestamp, "99/03/29,15:16:59");
        assert_eq!(d.concat, None);
    }

    #[test]
    fn a_short_ascii_submit_is_one_gsm7_part_that_reads_back() {
        let parts = encode_submit("+46708251358", "Hello [world] €5", 1);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].hex.len() / 2 - 1, parts[0].tpdu_len);
        let s = decode_submit(&parts[0].hex).unwrap();
        assert_eq!(s.to, "+46708251358");
        assert_eq!(s.text, "Hello [world] €5");
        assert_eq!(s.concat, None);
    }

    #[test]
    fn three_hundred_cyrillic_characters_take_five_ucs2_parts_that_reassemble() {
        let text: String = "Привет, мир! ".chars().cycle().take(300).collect();
        let parts = encode_submit("5551234", &text, 42);
        assert_eq!(parts.len(), 5);
        let mut joined = String::new();
        for (i, p) in parts.iter().enumerate() {
            assert!(p.tpdu_len <= 140 + 15, "fits one SMS");
            let s = decode_submit(&p.hex).unwrap();
            assert_eq!(s.concat, Some((42, 5, i as u8 + 1)));
            joined.push_str(&s.text);
        }
        assert_eq!(joined, text);
    }

    #[test]
    fn a_long_gsm7_text_is_split_at_153_septets_without_breaking_escapes() {
        let text: String = "ab{".chars().cycle().take(400).collect();
        let parts = encode_deliver("+15551234", &text, 7);
        assert!(parts.len() >= 3);
        let mut joined = String::new();
        for p in &parts {
            let d = decode_deliver(&p.hex).unwrap();
            assert_eq!(d.from, "+15551234");
            assert_eq!(d.concat.unwrap().0, 7);
            joined.push_str(&d.text);
        }
        assert_eq!(joined, text);
    }

    #[test]
    fn emoji_outside_the_bmp_are_never_split_between_parts() {
        let text: String = "😀".repeat(100);
        let parts = encode_deliver("123", &text, 1);
        let joined: String = parts
            .iter()
            .map(|p| decode_deliver(&p.hex).unwrap().text)
            .collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for g in ["", "0", "zz", "00", "0004", "07917283010010F504", "00040B"] {
            assert!(decode_deliver(g).is_err(), "{g}");
            assert!(decode_submit(g).is_err(), "{g}");
        }
    }
}
