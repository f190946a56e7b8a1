//! The wideband codecs of a leg, to and from 8 kHz linear audio (the
//! frames the core carries): Opus (libopus through `audiopus`, run at an
//! 8 kHz sampling rate — libopus resamples inside — on a 48 kHz RTP
//! clock, in-band FEC on) and G.722 (`ezk-g722`'s port of the reference
//! coder at its 16 kHz rate, the 8 kHz audio interpolated up and the
//! decoded audio averaged down by pairs; RFC 3551's 8000 Hz RTP clock). One
//! [`Transcoder`] per leg keeps each coder's state.

use crate::sdp::Codec;
use audiopus::coder::{Decoder as OpusDecoder, Encoder as OpusEncoder};
use audiopus::{Application, Channels, SampleRate};
use ezk_g722::libg722::Bitrate;
use ezk_g722::libg722::{decoder::Decoder as G722Decoder, encoder::Encoder as G722Encoder};
use hotswitch_plugin_api::config::Element;
use std::sync::atomic::{AtomicU8, Ordering};

/// Samples in 20 ms at 8 kHz.
const FRAME: usize = 160;

/// The Opus encoder's complexity when `opus.conf` does not say: 5. The
/// encoder is most of a transcoded call's cost, and at the 8 kHz audio
/// the core carries 5 sounds as 10 does: one 20 ms frame costs 51 µs
/// instead of 94 (release, this machine; decoding 4 µs). libopus's own
/// default, 10, is one setting away.
pub const DEFAULT_OPUS_COMPLEXITY: u8 = 5;

static OPUS_COMPLEXITY: AtomicU8 = AtomicU8::new(DEFAULT_OPUS_COMPLEXITY);

/// Reads `opus.conf` as FreeSWITCH's mod_opus does, for what applies
/// here: `complexity` (0–10). Encoders made from now on use it.
pub fn configure(opus_conf: Option<&Element>) {
    let mut complexity = DEFAULT_OPUS_COMPLEXITY;
    for p in opus_conf.into_iter().flat_map(|r| r.descendants("param")) {
        let (Some(name), Some(value)) = (p.attr("name"), p.attr("value")) else {
            continue;
        };
        if name != "complexity" {
            continue;
        }
        match value.trim().parse::<u8>() {
            Ok(c) if c <= 10 => complexity = c,
            _ => log::warn!(
                "opus.conf: complexity {:?} is not 0 to 10; using {DEFAULT_OPUS_COMPLEXITY}",
                value
            ),
        }
    }
    OPUS_COMPLEXITY.store(complexity, Ordering::Relaxed);
}

/// A leg's coder states, made on first use.
#[derive(Default)]
pub struct Transcoder {
    opus_enc: Option<OpusEncoder>,
    opus_dec: Option<OpusDecoder>,
    g722_enc: Option<G722Encoder>,
    g722_dec: Option<G722Decoder>,
    /// 8 kHz samples between a decode and an encode, kept so that a
    /// frame costs no allocation: take it, use it, put it back.
    pub scratch: Vec<i16>,
}

impl Transcoder {
    /// Encodes 8 kHz `pcm` as `codec` into `out`; the bytes written.
    pub fn encode(&mut self, codec: Codec, pcm: &[i16], out: &mut [u8]) -> usize {
        match codec {
            Codec::Pcmu | Codec::Pcma => {
                let f = match codec {
                    Codec::Pcmu => hotswitch_plugin_api::g711::linear_to_ulaw,
                    _ => hotswitch_plugin_api::g711::linear_to_alaw,
                };
                let n = pcm.len().min(out.len());
                for (o, s) in out.iter_mut().zip(pcm) {
                    *o = f(*s);
                }
                n
            }
            Codec::G722 => {
                let enc = self
                    .g722_enc
                    .get_or_insert_with(|| G722Encoder::new(Bitrate::Mode1_64000, false, false));
                // 8 kHz to 16 kHz: each sample, then the midpoint to the next.
                let mut up = Vec::with_capacity(pcm.len() * 2);
                for (i, &s) in pcm.iter().enumerate() {
                    let next = pcm.get(i + 1).copied().unwrap_or(s);
                    up.push(s);
                    up.push(((s as i32 + next as i32) / 2) as i16);
                }
                let bytes = enc.encode(&up);
                let n = bytes.len().min(out.len());
                out[..n].copy_from_slice(&bytes[..n]);
                n
            }
            Codec::Opus => {
                if self.opus_enc.is_none() {
                    match OpusEncoder::new(SampleRate::Hz8000, Channels::Mono, Application::Voip) {
                        Ok(mut e) => {
                            let _ = e.set_inband_fec(true);
                            let _ = e.set_complexity(OPUS_COMPLEXITY.load(Ordering::Relaxed));
                            self.opus_enc = Some(e);
                        }
                        Err(e) => {
                            log::error!("Opus encoder: {e}");
                            return 0;
                        }
                    }
                }
                let Some(enc) = &self.opus_enc else { return 0 };
                enc.encode(pcm, out).unwrap_or_else(|e| {
                    log::debug!("Opus encode: {e}");
                    0
                })
            }
        }
    }

    /// Decodes a `codec` payload to 8 kHz samples, appended to `pcm`.
    pub fn decode(&mut self, codec: Codec, payload: &[u8], pcm: &mut Vec<i16>) {
        match codec {
            Codec::Pcmu => pcm.extend(
                payload
                    .iter()
                    .map(|b| hotswitch_plugin_api::g711::ulaw_to_linear(*b)),
            ),
            Codec::Pcma => pcm.extend(
                payload
                    .iter()
                    .map(|b| hotswitch_plugin_api::g711::alaw_to_linear(*b)),
            ),
            Codec::G722 => {
                let dec = self
                    .g722_dec
                    .get_or_insert_with(|| G722Decoder::new(Bitrate::Mode1_64000, false, false));
                // 16 kHz to 8 kHz: the mean of each pair (a low-pass first).
                let wide = dec.decode(payload);
                pcm.extend(
                    wide.chunks_exact(2)
                        .map(|p| ((p[0] as i32 + p[1] as i32) / 2) as i16),
                );
            }
            Codec::Opus => {
                if self.opus_dec.is_none() {
                    match OpusDecoder::new(SampleRate::Hz8000, Channels::Mono) {
                        Ok(d) => self.opus_dec = Some(d),
                        Err(e) => {
                            log::error!("Opus decoder: {e}");
                            return;
                        }
                    }
                }
                let Some(dec) = &mut self.opus_dec else {
                    return;
                };
                // Up to 120 ms a packet, on the stack: this runs for
                // every packet of every Opus leg.
                let mut out = [0i16; FRAME * 6];
                let Ok(packet) = payload.try_into() else {
                    return;
                };
                let Ok(signals) = (&mut out[..]).try_into() else {
                    return;
                };
                match dec.decode(Some(packet), signals, false) {
                    Ok(n) => pcm.extend_from_slice(&out[..n.min(out.len())]),
                    Err(e) => log::debug!("Opus decode: {e}"),
                }
            }
        }
    }
}

/// RTP timestamp units for `samples` at 8 kHz in `codec`.
pub fn rtp_clock(codec: Codec, samples: u32) -> u32 {
    match codec {
        Codec::Opus => samples * 6,
        _ => samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_conf_sets_the_encoders_complexity_and_a_bad_value_keeps_the_default() {
        let conf = |v: &str| {
            Element::parse(&format!(
                r#"<configuration name="opus.conf"><settings><param name="complexity" value="{v}"/></settings></configuration>"#
            ))
            .unwrap()
        };
        configure(Some(&conf("2")));
        assert_eq!(OPUS_COMPLEXITY.load(Ordering::Relaxed), 2);
        let mut t = Transcoder::default();
        let mut out = [0u8; 400];
        assert!(t.encode(Codec::Opus, &tone(160, 440.0), &mut out) > 0);
        assert_eq!(t.opus_enc.as_ref().unwrap().complexity().unwrap(), 2);
        configure(Some(&conf("11")));
        assert_eq!(
            OPUS_COMPLEXITY.load(Ordering::Relaxed),
            DEFAULT_OPUS_COMPLEXITY
        );
        configure(Some(&conf("10")));
        assert_eq!(OPUS_COMPLEXITY.load(Ordering::Relaxed), 10);
        configure(None);
        assert_eq!(
            OPUS_COMPLEXITY.load(Ordering::Relaxed),
            DEFAULT_OPUS_COMPLEXITY
        );
    }

    fn tone(n: usize, freq: f64) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin()) as i16
            })
            .collect()
    }

    /// Goertzel power of `freq` over `x`, relative to the signal's energy.
    fn share(x: &[i16], freq: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * freq / 8000.0;
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &v in x {
            let s = v as f64 + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let p = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
        let e: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
        2.0 * p / (x.len() as f64 * e.max(1.0))
    }

    #[test]
    fn a_tone_survives_each_codec_there_and_back() {
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus] {
            let mut t = Transcoder::default();
            let mut back = Vec::new();
            let input = tone(FRAME * 50, 1000.0);
            for frame in input.chunks(FRAME) {
                let mut buf = [0u8; 400];
                let n = t.encode(codec, frame, &mut buf);
                assert!(n > 0, "{codec:?}");
                t.decode(codec, &buf[..n], &mut back);
            }
            assert_eq!(back.len(), input.len(), "{codec:?}");
            // Past the coders' start-up delay.
            let s = share(&back[FRAME * 10..], 1000.0);
            assert!(s > 0.8, "{codec:?}: the tone carries {s:.2} of the energy");
        }
    }
}
