//! The driver's SMS side: sending (text mode, or PDU parts each behind its
//! `>` prompt), reading (`+CMGR`/`+CMGL` in either mode), reassembling
//! long messages, and deleting each slot only after its message was
//! delivered.

use super::{Cmd, Driver, Event, Kind};
use crate::pdu;
use std::collections::BTreeMap;

/// Parts of a long incoming message, keyed by (sender, reference, total).
#[derive(Default)]
pub(super) struct Parts {
    texts: BTreeMap<u8, String>,
    indices: Vec<u32>,
    timestamp: String,
}

impl Driver {
    pub(super) fn queue_sms(&mut self, id: u64, to: &str, text: &str) {
        let text_mode_ok = !self.settings.sms_pdu
            && text.is_ascii()
            && pdu::is_gsm7(text)
            && text.len() <= 160
            && !text.contains('\u{1a}');
        if text_mode_ok {
            self.queue.push_back(Cmd {
                text: format!("AT+CMGS=\"{to}\""),
                kind: Kind::CmgsHead {
                    id,
                    body: format!("{text}\u{1a}"),
                    last: true,
                },
            });
            return;
        }
        if !self.settings.sms_pdu {
            // Non-ASCII or long text needs PDU mode for this message.
            self.queue.push_back(Cmd {
                text: "AT+CMGF=0".into(),
                kind: Kind::Mode,
            });
        }
        self.sms_ref = self.sms_ref.wrapping_add(1);
        let parts = pdu::encode_submit(to, text, self.sms_ref);
        let n = parts.len();
        for (i, p) in parts.into_iter().enumerate() {
            self.queue.push_back(Cmd {
                text: format!("AT+CMGS={}", p.tpdu_len),
                kind: Kind::CmgsHead {
                    id,
                    body: format!("{}\u{1a}", p.hex),
                    last: i + 1 == n,
                },
            });
        }
        if !self.settings.sms_pdu {
            self.queue.push_back(Cmd {
                text: "AT+CMGF=1".into(),
                kind: Kind::Mode,
            });
        }
    }

    /// A part failed: drop the message's other parts and report once.
    pub(super) fn sms_failed(&mut self, id: u64, why: String) {
        self.queue.retain(|c| {
            !matches!(c.kind, Kind::CmgsHead { id: i, .. } | Kind::CmgsBody { id: i, .. } if i == id)
        });
        self.event(Event::SmsSent {
            id,
            result: Err(why),
        });
    }

    /// `+CMGR`/`+CMGL` responses: each message header line, then its PDU
    /// or text.
    pub(super) fn read_messages(&mut self, lines: &[String], index: Option<u32>) {
        let mut i = 0;
        while i < lines.len() {
            let head = &lines[i];
            let (idx, rest) = if let Some(r) = head.strip_prefix("+CMGL:") {
                let f: Vec<&str> = r.splitn(2, ',').collect();
                (f[0].trim().parse().ok(), f.get(1).copied().unwrap_or(""))
            } else if let Some(r) = head.strip_prefix("+CMGR:") {
                (index, r)
            } else {
                log::warn!("unexpected line in a message listing, skipped: {head:?}");
                i += 1;
                continue;
            };
            let body = lines.get(i + 1).cloned().unwrap_or_default();
            i += 2;
            let Some(idx) = idx else {
                log::warn!("message without an index, skipped: {head:?}");
                continue;
            };
            if self.deleting.contains(&idx) {
                log::debug!("message {idx} already delivered, its delete is queued");
                continue;
            }
            if self.settings.sms_pdu {
                match pdu::decode_deliver(&body) {
                    Ok(d) => self.part(idx, d),
                    Err(e) => {
                        log::warn!("message {idx}: {e}; deleted");
                        self.delete(idx);
                    }
                }
            } else {
                // "REC UNREAD","+123",,"26/11/22,15:00:00+00"
                let f: Vec<&str> = rest
                    .split(',')
                    .map(|s| s.trim().trim_matches('"'))
                    .collect();
                let from = f.get(1).copied().unwrap_or("").to_string();
                let timestamp = f[f.len().saturating_sub(2)..].join(",");
                self.part(
                    idx,
                    pdu::Deliver {
                        from,
                        text: body,
                        concat: None,
                        timestamp,
                    },
                );
            }
        }
    }

    pub(super) fn delete(&mut self, index: u32) {
        if self.deleting.insert(index) {
            self.queue.push_back(Cmd {
                text: format!("AT+CMGD={index}"),
                kind: Kind::Cmgd(index),
            });
        }
    }

    /// One stored part: delivered when complete, then deleted (so a stop
    /// between reading and deleting leaves it on the SIM to read again).
    pub(super) fn part(&mut self, index: u32, d: pdu::Deliver) {
        let Some((reference, total, seq)) = d.concat.filter(|c| c.1 > 1) else {
            self.event(Event::SmsReceived {
                from: d.from,
                text: d.text,
                timestamp: d.timestamp,
            });
            self.delete(index);
            return;
        };
        let key = (d.from.clone(), reference, total);
        let p = self.parts.entry(key.clone()).or_default();
        if !p.indices.contains(&index) {
            p.indices.push(index);
        }
        p.texts.insert(seq, d.text);
        if seq == 1 || p.timestamp.is_empty() {
            p.timestamp = d.timestamp;
        }
        if p.texts.len() == total as usize {
            let p = self.parts.remove(&key).expect("present");
            self.event(Event::SmsReceived {
                from: d.from,
                text: p.texts.into_values().collect(),
                timestamp: p.timestamp,
            });
            for i in p.indices {
                self.delete(i);
            }
        }
    }
}
