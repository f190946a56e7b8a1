//! An event's headers, kept in one buffer, and the pools that let the
//! buffers of delivered events serve the next ones.

use super::url_encode_into;
use crossbeam_channel::{bounded, Receiver, Sender};

/// An event's headers in order (duplicates allowed), kept in one buffer:
/// names and values back to back, with their bounds. Building an event
/// used to allocate two strings per header, and freeing them on the
/// subscriber's thread was most of what an event cost.
///
/// A header may also carry its value's plain (URL-encoded) form, given by
/// whoever knows it already — the switch's identity, the date of the
/// current second, numbers — so that serialising the event copies it
/// instead of encoding the same bytes for every event.
#[derive(Clone, Debug, Default)]
pub struct Headers {
    text: String,
    spans: Vec<Span>,
}

/// Where a header lies in [`Headers::text`]: its name from `name` to
/// `value`, its value from `value` to `end`; its plain form from `end` to
/// `plain`, or (`plain == end`) still to be encoded, or (`plain == SAFE`)
/// the value itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    name: u32,
    value: u32,
    end: u32,
    plain: u32,
}

/// [`Span::plain`] of a value that needs no encoding.
const SAFE: u32 = u32::MAX;

impl Headers {
    /// Room for `count` headers of `bytes` bytes in all.
    pub fn with_capacity(bytes: usize, count: usize) -> Headers {
        Headers {
            text: String::with_capacity(bytes),
            spans: Vec::with_capacity(count),
        }
    }

    fn push_name(&mut self, name: &str) -> (u32, u32) {
        let start = self.text.len() as u32;
        self.text.push_str(name);
        (start, self.text.len() as u32)
    }

    /// Appends a header as it is (even with an empty value).
    pub fn push(&mut self, name: &str, value: &str) {
        let (name, at) = self.push_name(name);
        self.text.push_str(value);
        let end = self.text.len() as u32;
        self.spans.push(Span {
            name,
            value: at,
            end,
            plain: end,
        });
    }

    /// Appends a header with the plain form of its value, already known
    /// (`None`: the value needs no encoding).
    pub fn push_with_plain(&mut self, name: &str, value: &str, plain: Option<&str>) {
        let (name, at) = self.push_name(name);
        self.text.push_str(value);
        let end = self.text.len() as u32;
        let plain = match plain {
            None => SAFE,
            Some(p) => {
                self.text.push_str(p);
                self.text.len() as u32
            }
        };
        self.spans.push(Span {
            name,
            value: at,
            end,
            plain,
        });
    }

    /// Appends a header whose value is a number, formatted in place.
    pub fn push_number(&mut self, name: &str, n: u64) {
        let (name, at) = self.push_name(name);
        push_decimal(&mut self.text, n);
        self.spans.push(Span {
            name,
            value: at,
            end: self.text.len() as u32,
            plain: SAFE,
        });
    }

    /// How many headers.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The headers in order, as (name, value).
    pub fn iter(&self) -> HeaderIter<'_> {
        HeaderIter {
            text: &self.text,
            spans: self.spans.iter(),
        }
    }

    /// The header at `index` (in order), as (name, value).
    pub fn at(&self, index: usize) -> Option<(&str, &str)> {
        let s = self.spans.get(index)?;
        Some((
            &self.text[s.name as usize..s.value as usize],
            &self.text[s.value as usize..s.end as usize],
        ))
    }

    /// Where the headers called one of `names` (exactly) are, in order,
    /// into `at`; how many, or `None` when `at` is too short.
    pub(super) fn positions(&self, names: &[&[u8]], at: &mut [u32]) -> Option<usize> {
        let mut n = 0;
        for (i, s) in self.spans.iter().enumerate() {
            // Byte slices: a name is ASCII, no boundaries to check.
            let name = &self.text.as_bytes()[s.name as usize..s.value as usize];
            if names.contains(&name) {
                *at.get_mut(n)? = i as u32;
                n += 1;
            }
        }
        Some(n)
    }

    /// The first header called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Appends `Name: urlenc(value)` lines (an empty value is `_undef_`).
    pub(super) fn write_plain(&self, out: &mut String) {
        let t = self.text.as_str();
        for s in &self.spans {
            out.push_str(&t[s.name as usize..s.value as usize]);
            out.push_str(": ");
            let value = &t[s.value as usize..s.end as usize];
            if value.is_empty() {
                out.push_str("_undef_");
            } else if s.plain == SAFE {
                out.push_str(value);
            } else if s.plain != s.end {
                out.push_str(&t[s.end as usize..s.plain as usize]);
            } else {
                url_encode_into(value, out);
            }
            out.push('\n');
        }
    }

    /// About how long the plain form of these headers is.
    pub(super) fn plain_len_hint(&self) -> usize {
        self.text.len() + 3 * self.spans.len()
    }
}

/// Equal when the same names have the same values in the same order,
/// whether or not a plain form came with them.
impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

/// The headers of a [`Headers`] in order, as (name, value).
pub struct HeaderIter<'a> {
    text: &'a str,
    spans: std::slice::Iter<'a, Span>,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, &'a str);
    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let s = self.spans.next()?;
        Some((
            &self.text[s.name as usize..s.value as usize],
            &self.text[s.value as usize..s.end as usize],
        ))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl ExactSizeIterator for HeaderIter<'_> {}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a str);
    type IntoIter = HeaderIter<'a>;
    fn into_iter(self) -> HeaderIter<'a> {
        self.iter()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Headers {
        let mut h = Headers::default();
        for (k, v) in pairs {
            h.push(k.as_ref(), v.as_ref());
        }
        h
    }
}

/// Buffers of events nobody holds any more, kept for the next events.
///
/// An event is built on the thread that fires it and dropped on whichever
/// subscriber's thread lets go of it last. Freed there, its buffers went
/// back to the firing thread's malloc arena under that arena's lock, while
/// the firing thread was allocating from it: the two threads took turns on
/// the lock (a futex wake-up in most events). Reused instead, they never
/// meet malloc.
pub(super) struct Pool<T> {
    tx: Sender<T>,
    rx: Receiver<T>,
}

impl<T> Pool<T> {
    pub(super) fn new(size: usize) -> Pool<T> {
        let (tx, rx) = bounded(size);
        Pool { tx, rx }
    }

    pub(super) fn take(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// Keeps `item` if there is room (else it is freed).
    pub(super) fn give(&self, item: T) {
        let _ = self.tx.try_send(item);
    }
}

/// How many spare buffers of each kind are kept, and the largest kept: one
/// grown by an unusual event is freed rather than kept.
pub(super) const POOL_SIZE: usize = 256;
const POOL_MAX_BYTES: usize = 16 * 1024;

fn header_pool() -> &'static Pool<Headers> {
    static POOL: std::sync::OnceLock<Pool<Headers>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| Pool::new(POOL_SIZE))
}

fn text_pool() -> &'static Pool<String> {
    static POOL: std::sync::OnceLock<Pool<String>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| Pool::new(POOL_SIZE))
}

impl Headers {
    /// Empty headers in buffers a dropped event left, or new ones with room
    /// for `count` headers of `bytes` bytes.
    pub(super) fn reused(bytes: usize, count: usize) -> Headers {
        match header_pool().take() {
            Some(h) => h,
            None => Headers::with_capacity(bytes, count),
        }
    }

    /// Gives the buffers back for another event.
    pub(super) fn recycle(mut self) {
        if self.text.capacity() <= POOL_MAX_BYTES && self.spans.capacity() <= POOL_MAX_BYTES / 16 {
            self.text.clear();
            self.spans.clear();
            header_pool().give(self);
        }
    }
}

/// An empty string in a buffer a dropped event left, or a new one of
/// `bytes`.
pub(super) fn reused_text(bytes: usize) -> String {
    match text_pool().take() {
        Some(mut s) => {
            s.reserve(bytes);
            s
        }
        None => String::with_capacity(bytes),
    }
}

pub(super) fn recycle_text(mut s: String) {
    if s.capacity() <= POOL_MAX_BYTES {
        s.clear();
        text_pool().give(s);
    }
}

/// Appends `n` in decimal.
pub(super) fn push_decimal(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}
