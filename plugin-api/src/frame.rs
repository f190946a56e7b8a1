//! Safe views of media frames: what an endpoint's `read_frame` fills
//! ([`FrameBuf`], the buffer the host lent) and what `write_frame` is given
//! ([`FrameView`], read-only). Only this crate makes them, from a host
//! frame or from a slice it borrows, so their data pointer always points
//! at the bytes it claims: no module writes `unsafe` to touch a frame.

use crate::abi::RStr;
use crate::interfaces::Frame;
use std::borrow::Cow;
use std::marker::PhantomData;

/// The frame the host lent to `read_frame`: fill its buffer and describe
/// what you put there. Reads of the other fields go through `Deref`.
pub struct FrameBuf<'a> {
    raw: &'a mut Frame,
}

impl<'a> FrameBuf<'a> {
    /// Wraps the host's frame.
    ///
    /// # Safety
    /// `raw.data` must point to `raw.buflen` writable bytes for `'a` (or be
    /// null), as the host's frame for `read_frame` does.
    pub(crate) unsafe fn new(raw: &'a mut Frame) -> FrameBuf<'a> {
        FrameBuf { raw }
    }

    /// The whole buffer the host lent (empty if none).
    pub fn buffer(&mut self) -> &mut [u8] {
        if self.raw.data.is_null() {
            return &mut [];
        }
        // SAFETY: `new`'s contract: `buflen` writable bytes at `data`.
        unsafe { std::slice::from_raw_parts_mut(self.raw.data, self.raw.buflen as usize) }
    }

    /// Says the first `len` bytes of the buffer hold `samples` samples of
    /// 8 kHz mono audio in `codec` (`L16`, `PCMU`, `PCMA`): for audio
    /// decoded in place into [`buffer`](FrameBuf::buffer).
    pub fn describe(&mut self, len: usize, samples: u32, codec: &'static str) {
        self.raw.datalen = len.min(self.raw.buflen as usize) as u32;
        self.raw.samples = samples;
        self.raw.rate = 8000;
        self.raw.channels = 1;
        self.raw.codec = RStr::from_static(codec);
    }

    /// Copies 8 kHz mono audio in `codec` into the buffer, as much as
    /// fits, and describes it; returns the bytes copied. What most
    /// endpoints' `read_frame` ends with.
    pub fn fill(&mut self, bytes: &[u8], codec: &'static str) -> usize {
        let buf = self.buffer();
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        let samples = if codec == "L16" { n / 2 } else { n } as u32;
        self.describe(n, samples, codec);
        n
    }

    /// Sets the sample rate (after `fill` or `describe`, when not 8 kHz).
    pub fn set_rate(&mut self, rate: u32) {
        self.raw.rate = rate;
    }

    /// Sets the `FRAME_FLAG_*` bits.
    pub fn set_flags(&mut self, flags: u32) {
        self.raw.flags = flags;
    }
}

impl std::ops::Deref for FrameBuf<'_> {
    type Target = Frame;
    fn deref(&self) -> &Frame {
        self.raw
    }
}

/// A frame for reading: the one `write_frame` is given, or one a module
/// read with `Session::read_frame`.
pub struct FrameView<'a> {
    raw: Frame,
    _data: PhantomData<&'a [u8]>,
}

impl<'a> FrameView<'a> {
    /// Views a host frame.
    ///
    /// # Safety
    /// `raw.data` must point to `raw.datalen` readable bytes and `raw.codec`
    /// be valid for `'a` (or be null / empty).
    pub(crate) unsafe fn from_host(raw: &Frame) -> FrameView<'a> {
        FrameView {
            raw: Frame { ..*raw },
            _data: PhantomData,
        }
    }

    /// A frame of `data`, 8 kHz mono audio in `codec`.
    pub fn new(data: &'a [u8], samples: u32, codec: &'static str) -> FrameView<'a> {
        FrameView {
            raw: Frame {
                codec: RStr::from_static(codec),
                rate: 8000,
                channels: 1,
                samples,
                timestamp: 0,
                seq: 0,
                ssrc: 0,
                payload_type: 0,
                flags: 0,
                data: data.as_ptr() as *mut u8,
                datalen: data.len() as u32,
                buflen: data.len() as u32,
            },
            _data: PhantomData,
        }
    }

    /// The frame's bytes.
    pub fn data(&self) -> &'a [u8] {
        if self.raw.data.is_null() || self.raw.datalen == 0 {
            return &[];
        }
        // SAFETY: `from_host`'s contract, or `new`'s slice.
        unsafe { std::slice::from_raw_parts(self.raw.data, self.raw.datalen as usize) }
    }

    /// The codec name (`L16`, `PCMU`, `PCMA`).
    pub fn codec(&self) -> Cow<'a, str> {
        // SAFETY: `from_host`'s contract, or a static name.
        unsafe { self.raw.codec.to_str() }
    }

    /// The frame as the boundary struct (to hand to the host).
    pub(crate) fn raw(&self) -> &Frame {
        &self.raw
    }
}

impl Frame {
    /// An empty frame lending `buf` (for `session_read_frame`).
    pub(crate) fn lending(buf: &mut [u8]) -> Frame {
        Frame {
            codec: RStr::EMPTY,
            rate: 0,
            channels: 1,
            samples: 0,
            timestamp: 0,
            seq: 0,
            ssrc: 0,
            payload_type: 0,
            flags: 0,
            data: buf.as_mut_ptr(),
            datalen: 0,
            buflen: buf.len() as u32,
        }
    }
}

impl std::ops::Deref for FrameView<'_> {
    type Target = Frame;
    fn deref(&self) -> &Frame {
        &self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_frame(buf: &mut [u8]) -> Frame {
        Frame {
            codec: RStr::EMPTY,
            rate: 0,
            channels: 0,
            samples: 0,
            timestamp: 0,
            seq: 0,
            ssrc: 0,
            payload_type: 0,
            flags: 0,
            data: buf.as_mut_ptr(),
            datalen: 0,
            buflen: buf.len() as u32,
        }
    }

    #[test]
    fn fill_copies_what_fits_and_describes_it() {
        let mut buf = [0u8; 4];
        let mut raw = host_frame(&mut buf);
        // SAFETY: `raw` points at `buf`.
        let mut f = unsafe { FrameBuf::new(&mut raw) };
        assert_eq!(f.fill(&[1, 2, 3, 4, 5, 6], "L16"), 4);
        assert_eq!((f.datalen, f.samples, f.rate), (4, 2, 8000));
        // SAFETY: as above; the frame now holds 4 bytes of `buf`.
        let v = unsafe { FrameView::from_host(&raw) };
        assert_eq!(v.data(), &[1, 2, 3, 4]);
        assert_eq!(v.codec(), "L16");
    }

    #[test]
    fn a_view_of_a_slice_reads_it_back() {
        let bytes = [9u8; 160];
        let v = FrameView::new(&bytes, 160, "PCMU");
        assert_eq!(v.data().len(), 160);
        assert_eq!(v.codec(), "PCMU");
    }
}
