//! The wire format of the `virtual` driver: one datagram per message on a
//! Unix datagram socket, `[kind u8][channel u16 BE][payload]`.
//!
//! The span binds `<socket-dir>/span.sock`; the line simulator binds its
//! own socket (`sim.sock`) and says `Hello`; the span answers to whoever
//! spoke last. Directions:
//!
//! | message   | FXS span (sim = phones) | FXO span (sim = exchange) | ISDN span |
//! |-----------|-------------------------|---------------------------|-----------|
//! | `OffHook` | phone → span            | span → line (seize)       | –         |
//! | `OnHook`  | phone → span            | both (release / loop drop)| –         |
//! | `RingOn`  | span → phone            | line → span (ringing)     | –         |
//! | `RingOff` | span → phone            | line → span               | –         |
//! | `Audio`   | both, 8-bit G.711 of the span's law, 20 ms each            |||
//! | `DFrame`  | –                       | –                         | Q.931 on the D channel |
//! | `Frames`  | many channels' `Audio` in one datagram (line → span)                |||

/// The file names inside a span's socket directory.
pub const SPAN_SOCKET: &str = "span.sock";
/// The simulator's socket in the same directory.
pub const SIM_SOCKET: &str = "sim.sock";

/// One line event or frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// The simulator announces itself.
    Hello,
    /// Audio samples in the span's law.
    Audio(Vec<u8>),
    /// Loop closed (phone lifted, or line seized).
    OffHook,
    /// Loop open.
    OnHook,
    /// Ringing voltage on.
    RingOn,
    /// Ringing voltage off.
    RingOff,
    /// A layer-3 frame on the D channel.
    DFrame(Vec<u8>),
    /// The span is going away.
    Bye,
    /// Audio for many channels at once, as `(channel, samples)`: one
    /// datagram per 20 ms tick, as a card delivers a DMA block.
    Frames(Vec<(u16, Vec<u8>)>),
}

/// A message for one channel (channel 0: the span itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The channel number within the span.
    pub chan: u16,
    /// What happened.
    pub msg: Msg,
}

impl Packet {
    /// A packet for `chan`.
    pub fn new(chan: u16, msg: Msg) -> Packet {
        Packet { chan, msg }
    }

    /// The datagram.
    pub fn encode(&self) -> Vec<u8> {
        if let Msg::Frames(frames) = &self.msg {
            let mut out = vec![9];
            out.extend_from_slice(&self.chan.to_be_bytes());
            for (chan, audio) in frames {
                out.extend_from_slice(&chan.to_be_bytes());
                out.extend_from_slice(&(audio.len() as u16).to_be_bytes());
                out.extend_from_slice(audio);
            }
            return out;
        }
        let (kind, payload): (u8, &[u8]) = match &self.msg {
            Msg::Hello => (1, &[]),
            Msg::Audio(a) => (2, a),
            Msg::OffHook => (3, &[]),
            Msg::OnHook => (4, &[]),
            Msg::RingOn => (5, &[]),
            Msg::RingOff => (6, &[]),
            Msg::DFrame(d) => (7, d),
            Msg::Bye => (8, &[]),
            Msg::Frames(_) => unreachable!("encoded above"),
        };
        let mut out = Vec::with_capacity(3 + payload.len());
        out.push(kind);
        out.extend_from_slice(&self.chan.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Splits a `Frames` packet into one `Audio` packet per channel.
    pub fn split(self) -> Vec<Packet> {
        match self.msg {
            Msg::Frames(frames) => frames
                .into_iter()
                .map(|(chan, audio)| Packet::new(chan, Msg::Audio(audio)))
                .collect(),
            _ => vec![self],
        }
    }

    /// Reads a datagram; `None` if it is not one of ours.
    pub fn decode(b: &[u8]) -> Option<Packet> {
        if b.len() < 3 {
            return None;
        }
        let chan = u16::from_be_bytes([b[1], b[2]]);
        let payload = &b[3..];
        let msg = match b[0] {
            1 => Msg::Hello,
            2 => Msg::Audio(payload.to_vec()),
            3 => Msg::OffHook,
            4 => Msg::OnHook,
            5 => Msg::RingOn,
            6 => Msg::RingOff,
            7 => Msg::DFrame(payload.to_vec()),
            8 => Msg::Bye,
            9 => {
                let mut frames = Vec::new();
                let mut rest = payload;
                while rest.len() >= 4 {
                    let chan = u16::from_be_bytes([rest[0], rest[1]]);
                    let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
                    let audio = rest.get(4..4 + len)?;
                    frames.push((chan, audio.to_vec()));
                    rest = &rest[4 + len..];
                }
                Msg::Frames(frames)
            }
            _ => return None,
        };
        Some(Packet { chan, msg })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_survives_the_wire() {
        for msg in [
            Msg::Hello,
            Msg::Audio(vec![0xff; 160]),
            Msg::OffHook,
            Msg::OnHook,
            Msg::RingOn,
            Msg::RingOff,
            Msg::DFrame(vec![8, 2, 0, 1, 5]),
            Msg::Bye,
            Msg::Frames(vec![(1, vec![1; 160]), (2, vec![2; 160])]),
        ] {
            let p = Packet::new(23, msg);
            assert_eq!(Packet::decode(&p.encode()), Some(p));
        }
        assert_eq!(Packet::decode(&[10, 0, 1]), None);
        assert_eq!(Packet::decode(&[2]), None);
        assert_eq!(
            Packet::decode(&[9, 0, 0, 0, 1, 0, 9, 1]),
            None,
            "a frame cut short"
        );
    }
}
