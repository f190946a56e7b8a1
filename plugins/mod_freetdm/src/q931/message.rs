//! Q.931 messages as bytes: protocol discriminator 0x08, a two-octet call
//! reference with its flag, the message type, and the information
//! elements basic call control uses (bearer capability, cause, channel
//! identification, progress indicator, calling and called party numbers).

/// Message types of basic call control (Q.931 table 4-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgType {
    /// 0x05
    Setup,
    /// 0x02
    CallProceeding,
    /// 0x01
    Alerting,
    /// 0x03
    Progress,
    /// 0x07
    Connect,
    /// 0x0f
    ConnectAck,
    /// 0x45
    Disconnect,
    /// 0x4d
    Release,
    /// 0x5a
    ReleaseComplete,
    /// 0x7d
    Status,
}

impl MsgType {
    fn code(self) -> u8 {
        match self {
            MsgType::Setup => 0x05,
            MsgType::CallProceeding => 0x02,
            MsgType::Alerting => 0x01,
            MsgType::Progress => 0x03,
            MsgType::Connect => 0x07,
            MsgType::ConnectAck => 0x0f,
            MsgType::Disconnect => 0x45,
            MsgType::Release => 0x4d,
            MsgType::ReleaseComplete => 0x5a,
            MsgType::Status => 0x7d,
        }
    }

    fn from_code(c: u8) -> Option<MsgType> {
        Some(match c {
            0x05 => MsgType::Setup,
            0x02 => MsgType::CallProceeding,
            0x01 => MsgType::Alerting,
            0x03 => MsgType::Progress,
            0x07 => MsgType::Connect,
            0x0f => MsgType::ConnectAck,
            0x45 => MsgType::Disconnect,
            0x4d => MsgType::Release,
            0x5a => MsgType::ReleaseComplete,
            0x7d => MsgType::Status,
            _ => return None,
        })
    }

    /// The name Q.931 gives it.
    pub fn name(self) -> &'static str {
        match self {
            MsgType::Setup => "SETUP",
            MsgType::CallProceeding => "CALL PROCEEDING",
            MsgType::Alerting => "ALERTING",
            MsgType::Progress => "PROGRESS",
            MsgType::Connect => "CONNECT",
            MsgType::ConnectAck => "CONNECT ACKNOWLEDGE",
            MsgType::Disconnect => "DISCONNECT",
            MsgType::Release => "RELEASE",
            MsgType::ReleaseComplete => "RELEASE COMPLETE",
            MsgType::Status => "STATUS",
        }
    }
}

/// A Q.931 message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Call reference value (15 bits).
    pub cr: u16,
    /// The call reference flag: set in messages sent by the side that did
    /// not allocate the reference.
    pub cr_flag: bool,
    /// Which message.
    pub mt: MsgType,
    /// Bearer capability: speech, 64 kbit/s circuit, G.711 of this law
    /// (`true` = µ-law).
    pub bearer_ulaw: Option<bool>,
    /// Cause value (Q.850).
    pub cause: Option<u8>,
    /// B channel (exclusive), for a PRI.
    pub channel: Option<u8>,
    /// Progress description (8: in-band information available).
    pub progress: Option<u8>,
    /// Calling party number.
    pub calling: Option<String>,
    /// Called party number.
    pub called: Option<String>,
}

/// Why bytes are not a message we understand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the header, or an IE runs past the end.
    Truncated,
    /// Not protocol discriminator 0x08.
    NotQ931,
    /// A message type outside basic call control.
    UnknownType(u8),
}

impl Message {
    /// A message with no IEs.
    pub fn new(mt: MsgType, cr: u16, cr_flag: bool) -> Message {
        Message {
            cr,
            cr_flag,
            mt,
            bearer_ulaw: None,
            cause: None,
            channel: None,
            progress: None,
            calling: None,
            called: None,
        }
    }

    /// The bytes on the D channel.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![
            0x08,
            0x02,
            ((self.cr >> 8) as u8 & 0x7f) | if self.cr_flag { 0x80 } else { 0 },
            self.cr as u8,
            self.mt.code(),
        ];
        if let Some(ulaw) = self.bearer_ulaw {
            b.extend_from_slice(&[0x04, 0x03, 0x80, 0x90, if ulaw { 0xa2 } else { 0xa3 }]);
        }
        if let Some(c) = self.cause {
            // Coding standard CCITT, location: public network serving the
            // local user.
            b.extend_from_slice(&[0x08, 0x02, 0x82, 0x80 | (c & 0x7f)]);
        }
        if let Some(ch) = self.channel {
            // PRI, exclusive, B channel units, channel number.
            b.extend_from_slice(&[0x18, 0x03, 0xa9, 0x83, 0x80 | (ch & 0x7f)]);
        }
        if let Some(p) = self.progress {
            b.extend_from_slice(&[0x1e, 0x02, 0x82, 0x80 | (p & 0x7f)]);
        }
        for (id, num) in [(0x6c, &self.calling), (0x70, &self.called)] {
            if let Some(n) = num {
                // Type national, plan ISDN/telephony (E.164).
                b.push(id);
                b.push((n.len() + 1) as u8);
                b.push(0xa1);
                b.extend_from_slice(n.as_bytes());
            }
        }
        b
    }

    /// Reads a message; unknown IEs are skipped.
    pub fn decode(b: &[u8]) -> Result<Message, DecodeError> {
        if b.len() < 2 {
            return Err(DecodeError::Truncated);
        }
        if b[0] != 0x08 {
            return Err(DecodeError::NotQ931);
        }
        let crl = (b[1] & 0x0f) as usize;
        if b.len() < 3 + crl {
            return Err(DecodeError::Truncated);
        }
        let (mut cr, mut cr_flag) = (0u16, false);
        for (i, &o) in b[2..2 + crl].iter().enumerate() {
            let o = if i == 0 {
                cr_flag = o & 0x80 != 0;
                o & 0x7f
            } else {
                o
            };
            cr = (cr << 8) | o as u16;
        }
        let code = b[2 + crl];
        let mt = MsgType::from_code(code).ok_or(DecodeError::UnknownType(code))?;
        let mut m = Message::new(mt, cr, cr_flag);
        let mut i = 3 + crl;
        while i < b.len() {
            let id = b[i];
            if id & 0x80 != 0 {
                // Single-octet IE (shift, more data, …).
                i += 1;
                continue;
            }
            let len = *b.get(i + 1).ok_or(DecodeError::Truncated)? as usize;
            let body = b.get(i + 2..i + 2 + len).ok_or(DecodeError::Truncated)?;
            match id {
                0x04 if body.len() >= 3 => m.bearer_ulaw = Some(body[2] & 0x1f != 0x03),
                0x08 if body.len() >= 2 => {
                    // Octet 3a (recommendation) is present when octet 3's
                    // extension bit is clear.
                    let at = if body[0] & 0x80 == 0 { 2 } else { 1 };
                    m.cause = body.get(at).map(|c| c & 0x7f);
                }
                0x18 if !body.is_empty() => m.channel = body.last().map(|c| c & 0x7f),
                0x1e if body.len() >= 2 => m.progress = Some(body[1] & 0x7f),
                0x6c | 0x70 if !body.is_empty() => {
                    let mut at = 1;
                    if body[0] & 0x80 == 0 && id == 0x6c {
                        at = 2; // octet 3a: presentation and screening
                    }
                    let digits = String::from_utf8_lossy(body.get(at..).unwrap_or(&[]))
                        .chars()
                        .filter(|c| c.is_ascii_graphic())
                        .collect();
                    if id == 0x6c {
                        m.calling = Some(digits);
                    } else {
                        m.called = Some(digits);
                    }
                }
                _ => {}
            }
            i += 2 + len;
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setup_with_every_ie_round_trips() {
        let mut m = Message::new(MsgType::Setup, 0x1234, false);
        m.bearer_ulaw = Some(true);
        m.channel = Some(7);
        m.calling = Some("5551000".into());
        m.called = Some("1000".into());
        let b = m.encode();
        assert_eq!(&b[..5], &[0x08, 0x02, 0x12, 0x34, 0x05]);
        assert_eq!(Message::decode(&b), Ok(m));
    }

    #[test]
    fn a_disconnect_carries_its_cause_and_the_flag() {
        let mut m = Message::new(MsgType::Disconnect, 5, true);
        m.cause = Some(17);
        let b = m.encode();
        assert_eq!(b[2], 0x80);
        let d = Message::decode(&b).unwrap();
        assert_eq!((d.cause, d.cr_flag, d.cr), (Some(17), true, 5));
    }

    #[test]
    fn foreign_bytes_are_errors_not_panics() {
        assert_eq!(Message::decode(&[0x09, 0, 0]), Err(DecodeError::NotQ931));
        assert_eq!(Message::decode(&[0x08]), Err(DecodeError::Truncated));
        assert_eq!(
            Message::decode(&[0x08, 0x02, 0, 1, 0x33]),
            Err(DecodeError::UnknownType(0x33))
        );
        assert_eq!(
            Message::decode(&[0x08, 0x02, 0, 1, 0x05, 0x70, 9, 0xa1]),
            Err(DecodeError::Truncated)
        );
        // A cause with octet 3a.
        let m = Message::decode(&[0x08, 0x02, 0, 1, 0x45, 0x08, 0x03, 0x02, 0x80, 0x91]).unwrap();
        assert_eq!(m.cause, Some(17));
    }
}
