//! The `dahdi` driver: a span's channels are `/dev/dahdi/channel` opened
//! once per channel and bound with `DAHDI_SPECIFY`, in the span's law
//! with 160-byte (20 ms) blocks. Hook and ring commands are `DAHDI_HOOK`;
//! line events come from `DAHDI_GETEVENT` when a read reports `ELAST`.
//!
//! Built everywhere, usable only on a machine with the DAHDI kernel
//! driver and a card; without them `open` fails and the span does not
//! start. It has never run against hardware here. For ISDN the D channel
//! is opened in the same way (the card's HDLC framing), but Q.921 (LAPD)
//! is not implemented, so a real PRI will not come up on this driver.
//! Constants are from `dahdi/user.h`.

use super::Driver;
use crate::config::{Signalling, SpanConfig};
use crate::g711::Law;
use crate::wire::{Msg, Packet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::time::Duration;

const DAHDI_CODE: u64 = 0xda;
const fn iow(nr: u64) -> u64 {
    (1 << 30) | (4 << 16) | (DAHDI_CODE << 8) | nr
}
const fn ior(nr: u64) -> u64 {
    (2 << 30) | (4 << 16) | (DAHDI_CODE << 8) | nr
}
const DAHDI_SET_BLOCKSIZE: u64 = iow(1);
const DAHDI_HOOK: u64 = iow(7);
const DAHDI_GETEVENT: u64 = ior(8);
const DAHDI_SPECIFY: u64 = iow(38);
const DAHDI_SETLAW: u64 = iow(39);

const DAHDI_ONHOOK: i32 = 0;
const DAHDI_OFFHOOK: i32 = 1;
const DAHDI_RING: i32 = 5;
const DAHDI_RINGOFF: i32 = 6;
const DAHDI_LAW_MULAW: i32 = 1;
const DAHDI_LAW_ALAW: i32 = 2;

const DAHDI_EVENT_ONHOOK: i32 = 1;
const DAHDI_EVENT_RINGOFFHOOK: i32 = 2;
const DAHDI_EVENT_RINGERON: i32 = 10;
const DAHDI_EVENT_RINGEROFF: i32 = 11;
const DAHDI_EVENT_RINGBEGIN: i32 = 18;
/// `read` fails with this errno when an event is waiting.
const ELAST: i32 = 500;

struct Chan {
    number: u16,
    file: File,
}

/// A span of DAHDI channels.
pub struct DahdiSpan {
    chans: Vec<Chan>,
    d_channel: Option<u16>,
    fxo: bool,
    offset: u32,
}

fn ioctl(f: &File, req: u64, val: &mut i32) -> io::Result<()> {
    // SAFETY: every request used here takes a pointer to one int.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), req as _, val as *mut i32) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl DahdiSpan {
    /// Opens every voice channel (and the D channel for ISDN).
    pub fn open(cfg: &SpanConfig) -> io::Result<DahdiSpan> {
        let mut numbers = cfg.channels.clone();
        if matches!(cfg.signalling, Signalling::Isdn(_)) {
            numbers.push(cfg.d_channel);
        }
        let mut chans = Vec::new();
        for n in numbers {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/dahdi/channel")?;
            let mut dev = (cfg.dahdi_offset + n as u32) as i32;
            ioctl(&file, DAHDI_SPECIFY, &mut dev)?;
            if n != cfg.d_channel {
                let mut law = if cfg.law == Law::Ulaw {
                    DAHDI_LAW_MULAW
                } else {
                    DAHDI_LAW_ALAW
                };
                ioctl(&file, DAHDI_SETLAW, &mut law)?;
                let mut bs = 160;
                ioctl(&file, DAHDI_SET_BLOCKSIZE, &mut bs)?;
            }
            chans.push(Chan { number: n, file });
        }
        Ok(DahdiSpan {
            chans,
            d_channel: matches!(cfg.signalling, Signalling::Isdn(_)).then_some(cfg.d_channel),
            fxo: cfg.signalling == Signalling::Fxo,
            offset: cfg.dahdi_offset,
        })
    }

    fn chan(&self, n: u16) -> Option<&Chan> {
        self.chans.iter().find(|c| c.number == n)
    }

    fn event(&self, c: &Chan) -> io::Result<Option<Packet>> {
        let mut e = 0;
        ioctl(&c.file, DAHDI_GETEVENT, &mut e)?;
        let msg = match e {
            DAHDI_EVENT_ONHOOK => Msg::OnHook,
            // An FXO port sees the exchange ringing; an FXS port sees the
            // phone lifted.
            DAHDI_EVENT_RINGOFFHOOK if self.fxo => Msg::RingOn,
            DAHDI_EVENT_RINGOFFHOOK => Msg::OffHook,
            DAHDI_EVENT_RINGBEGIN | DAHDI_EVENT_RINGERON => Msg::RingOn,
            DAHDI_EVENT_RINGEROFF => Msg::RingOff,
            _ => return Ok(None),
        };
        Ok(Some(Packet::new(c.number, msg)))
    }
}

impl Driver for DahdiSpan {
    fn send(&self, p: &Packet) -> io::Result<()> {
        let Some(c) = self.chan(p.chan) else {
            return Ok(());
        };
        let hook = |v: i32| {
            let mut v = v;
            ioctl(&c.file, DAHDI_HOOK, &mut v)
        };
        match &p.msg {
            Msg::Audio(b) | Msg::DFrame(b) => (&c.file).write_all(b),
            Msg::OffHook => hook(DAHDI_OFFHOOK),
            Msg::OnHook => hook(DAHDI_ONHOOK),
            Msg::RingOn => hook(DAHDI_RING),
            Msg::RingOff => hook(DAHDI_RINGOFF),
            Msg::Hello | Msg::Bye | Msg::Frames(_) => Ok(()),
        }
    }

    fn recv(&self, timeout: Duration) -> io::Result<Vec<Packet>> {
        self.recv_one(timeout).map(|p| p.into_iter().collect())
    }

    fn close(&self) {}

    fn describe(&self) -> String {
        format!(
            "dahdi channels {}..{}",
            self.offset + self.chans.first().map(|c| c.number as u32).unwrap_or(0),
            self.offset + self.chans.last().map(|c| c.number as u32).unwrap_or(0)
        )
    }
}

impl DahdiSpan {
    fn recv_one(&self, timeout: Duration) -> io::Result<Option<Packet>> {
        let mut fds: Vec<libc::pollfd> = self
            .chans
            .iter()
            .map(|c| libc::pollfd {
                fd: c.file.as_raw_fd(),
                events: libc::POLLIN | libc::POLLPRI,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as _, timeout.as_millis() as i32) };
        if n <= 0 {
            return Ok(None);
        }
        for (fd, c) in fds.iter().zip(&self.chans) {
            if fd.revents & libc::POLLPRI != 0 {
                return self.event(c);
            }
            if fd.revents & libc::POLLIN != 0 {
                let mut buf = [0u8; 1024];
                return match (&c.file).read(&mut buf) {
                    Ok(n) if Some(c.number) == self.d_channel => {
                        Ok(Some(Packet::new(c.number, Msg::DFrame(buf[..n].to_vec()))))
                    }
                    Ok(n) => Ok(Some(Packet::new(c.number, Msg::Audio(buf[..n].to_vec())))),
                    Err(e) if e.raw_os_error() == Some(ELAST) => self.event(c),
                    Err(e) => Err(e),
                };
            }
        }
        Ok(None)
    }
}
