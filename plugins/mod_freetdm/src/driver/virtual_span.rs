//! The `virtual` driver: a span is a directory with a Unix datagram
//! socket, `span.sock`, that the line simulator talks to. Whoever sent the
//! last datagram is the peer the span answers.
//!
//! The line is the clock, as a card's is: audio towards the line waits in
//! a transmit buffer and goes out, all channels in one datagram, when the
//! line's next frame arrives (or after 25 ms when no line audio comes,
//! e.g. nobody is off hook). Signalling goes at once. A send waits at most
//! [`SEND_PATIENCE`] for room in the peer's queue (Linux keeps only
//! `net.unix.max_dgram_qlen` datagrams, 10 by default), then the frame is
//! dropped, as a full TDM buffer would drop it.

use super::Driver;
use crate::wire::{Msg, Packet, SPAN_SOCKET};
use hotswitch_plugin_api::sync::Mutex;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Channels per datagram towards the line.
const BATCH: usize = 256;
/// How long audio waits for the line's clock before it goes anyway.
const NO_CLOCK: Duration = Duration::from_millis(25);
/// Frames kept for the line's next tick at most (older ones are dropped).
const MAX_PENDING: usize = 4096;

/// The longest a send waits for the peer to take a datagram.
pub const SEND_PATIENCE: Duration = Duration::from_millis(5);

/// A span on a socket directory.
pub struct VirtualSpan {
    path: PathBuf,
    rx: UnixDatagram,
    tx: UnixDatagram,
    peer: Mutex<Option<PathBuf>>,
    /// The read timeout set on `rx` (set again only when it changes).
    timeout: Mutex<Duration>,
    /// Room for the largest datagram (a tick of many channels).
    buf: Mutex<Vec<u8>>,
    /// Audio for the line's next tick.
    pending: Mutex<Vec<(u16, Vec<u8>)>>,
    /// When the oldest frame in `pending` came.
    pending_since: Mutex<Option<Instant>>,
}

impl VirtualSpan {
    /// Binds `<dir>/span.sock` (replacing a stale one).
    pub fn open(dir: &Path) -> io::Result<VirtualSpan> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(SPAN_SOCKET);
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path)?;
        let tx = UnixDatagram::unbound()?;
        tx.set_write_timeout(Some(SEND_PATIENCE))?;
        Ok(VirtualSpan {
            path,
            rx,
            tx,
            peer: Mutex::new(None),
            timeout: Mutex::new(Duration::ZERO),
            buf: Mutex::new(vec![0; 256 * 1024]),
            pending: Mutex::new(Vec::new()),
            pending_since: Mutex::new(None),
        })
    }

    fn remember(&self, from: &SocketAddr) {
        if let Some(p) = from.as_pathname() {
            let mut peer = self.peer.lock();
            if peer.as_deref() != Some(p) {
                log::info!("{} is attached to {}", p.display(), self.path.display());
                // Connected once, sends need no path lookup each.
                match self.tx.connect(p) {
                    Ok(()) => *peer = Some(p.to_path_buf()),
                    Err(e) => log::warn!("cannot reach {}: {e}", p.display()),
                }
            }
        }
    }
}

impl VirtualSpan {
    fn transmit(&self, datagram: &[u8]) -> io::Result<()> {
        if self.peer.lock().is_none() {
            return Ok(());
        }
        match self.tx.send(datagram) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(())
            }
            Err(e) => {
                // The simulator went away; the next one says hello.
                *self.peer.lock() = None;
                Err(e)
            }
        }
    }

    /// Sends the audio waiting for the line's clock, as one datagram per
    /// [`BATCH`] channels.
    fn flush(&self) -> io::Result<()> {
        let frames = {
            let mut pending = self.pending.lock();
            *self.pending_since.lock() = None;
            std::mem::take(&mut *pending)
        };
        for batch in frames.chunks(BATCH) {
            self.transmit(&Packet::new(0, Msg::Frames(batch.to_vec())).encode())?;
        }
        Ok(())
    }
}

impl Driver for VirtualSpan {
    fn send(&self, p: &Packet) -> io::Result<()> {
        match &p.msg {
            // Audio waits for the line's next tick, as in a card's
            // transmit buffer.
            Msg::Audio(a) => {
                let mut pending = self.pending.lock();
                if pending.is_empty() {
                    *self.pending_since.lock() = Some(Instant::now());
                }
                if pending.len() >= MAX_PENDING {
                    pending.remove(0);
                }
                pending.push((p.chan, a.clone()));
                Ok(())
            }
            _ => self.transmit(&p.encode()),
        }
    }

    fn recv(&self, timeout: Duration) -> io::Result<Vec<Packet>> {
        let timeout = timeout.max(Duration::from_millis(1));
        {
            let mut current = self.timeout.lock();
            if *current != timeout {
                self.rx.set_read_timeout(Some(timeout))?;
                *current = timeout;
            }
        }
        let mut buf = self.buf.lock();
        match self.rx.recv_from(&mut buf) {
            Ok((n, from)) => {
                self.remember(&from);
                let packets = Packet::decode(&buf[..n])
                    .map(Packet::split)
                    .unwrap_or_default();
                // The line's audio is its clock: a tick takes what waits.
                if packets.iter().any(|p| matches!(p.msg, Msg::Audio(_))) {
                    self.flush()?;
                }
                Ok(packets)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                // No clock from the line (nobody off hook): send what
                // has waited longer than a tick anyway.
                let stale = self
                    .pending_since
                    .lock()
                    .is_some_and(|t| t.elapsed() > NO_CLOCK);
                if stale {
                    self.flush()?;
                }
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    fn close(&self) {
        let _ = self.send(&Packet::new(0, Msg::Bye));
        let _ = std::fs::remove_file(&self.path);
    }

    fn describe(&self) -> String {
        let peer = self.peer.lock().clone();
        format!(
            "virtual {} (peer {})",
            self.path.display(),
            peer.map(|p| p.display().to_string())
                .unwrap_or_else(|| "none".into())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::SIM_SOCKET;

    #[test]
    fn audio_waits_for_the_lines_next_tick_and_signalling_does_not() {
        let dir = std::env::temp_dir().join(format!("ftdm-virtual-{}", std::process::id()));
        let span = VirtualSpan::open(&dir).unwrap();
        let sim = UnixDatagram::bind(dir.join(SIM_SOCKET)).unwrap();
        sim.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let span_path = dir.join(SPAN_SOCKET);
        let hello = Packet::new(0, Msg::Hello).encode();
        sim.send_to(&hello, &span_path).unwrap();
        assert_eq!(
            span.recv(Duration::from_secs(1)).unwrap(),
            [Packet::new(0, Msg::Hello)]
        );
        let mut buf = [0u8; 4096];
        // Signalling goes at once.
        span.send(&Packet::new(2, Msg::RingOn)).unwrap();
        let n = sim.recv(&mut buf).unwrap();
        assert_eq!(Packet::decode(&buf[..n]), Some(Packet::new(2, Msg::RingOn)));
        // Audio waits for the tick …
        span.send(&Packet::new(1, Msg::Audio(vec![1; 160])))
            .unwrap();
        span.send(&Packet::new(2, Msg::Audio(vec![2; 160])))
            .unwrap();
        assert!(sim.recv(&mut buf).is_err(), "nothing before the tick");
        let tick = Packet::new(0, Msg::Frames(vec![(1, vec![0xff; 160])])).encode();
        sim.send_to(&tick, &span_path).unwrap();
        let got = span.recv(Duration::from_secs(1)).unwrap();
        assert_eq!(got, [Packet::new(1, Msg::Audio(vec![0xff; 160]))]);
        // … and then goes, both channels in one datagram.
        let n = sim.recv(&mut buf).unwrap();
        assert_eq!(
            Packet::decode(&buf[..n]).unwrap().split(),
            [
                Packet::new(1, Msg::Audio(vec![1; 160])),
                Packet::new(2, Msg::Audio(vec![2; 160]))
            ]
        );
        // Without a clock from the line it goes after NO_CLOCK.
        span.send(&Packet::new(1, Msg::Audio(vec![3; 160])))
            .unwrap();
        std::thread::sleep(NO_CLOCK);
        assert!(span.recv(Duration::from_millis(5)).unwrap().is_empty());
        assert!(sim.recv(&mut buf).is_ok());
        span.close();
        assert!(!span_path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
