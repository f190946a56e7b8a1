//! Live reload (`reload mod_sofia` with calls up): what one version of the
//! module hands the next, and how SIP traffic is shared while both run.
//!
//! The old version, on export, stops reading its sockets (it keeps them
//! for sending), closes its registration store, stops gateway
//! registrations and NAT keep-alive pings (without un-REGISTERing), and
//! hands over every listening socket's descriptor with the bytes below.
//! The new version adopts those descriptors instead of binding (the port
//! never closes) and reads everything; a message whose Call-ID the old
//! version (or one older still, for a chain of draining versions) still
//! has work under goes back to it through the host
//! ([`forward`]), which enqueues it into the old SIP thread as if read
//! from the same socket (the host's `deliver`, [`claim`]); the old version answers on the
//! socket it still holds. Connections the old version accepted stay with
//! it while they carry its calls; the others it closes (at export, then as
//! calls end), so the phones on them reconnect to the new version. When
//! no older version takes a message, the new one handles it as any
//! unknown dialog (481).
//!
//! # The handover format: `mod_sofia/handover-v1`, version 1
//!
//! UTF-8 text, one record per line (`\n`), each a keyword, one space and
//! a value; unknown keywords are skipped (a later build of version 1 may
//! add records), a first line other than the header refuses the data:
//!
//! ```text
//! hotswitch mod_sofia handover 1
//! profile <name>            each profile the old version serves, in order
//! socket <name>             each descriptor handed over, named
//!                           "<transport> <ip>:<port>" (udp, tcp, tls, ws, wss)
//! generation <n>           the old version's generation: 1 for a version
//!                           loaded without a handover, one more than its
//!                           predecessor's for each live reload after
//! call-id <Call-ID>         a dialog or transaction the old version still has
//! from-generation <n>       the `forward` lines after it, up to the next
//!                           such line, belong to older generation n (before
//!                           any: of a generation not known, as a build
//!                           without generations writes them)
//! forward <Call-ID>         one it forwards to an older version of its own
//! registration <binding>    a binding, only when registrations are kept in
//!                           memory (no registration-db, no odbc-dsn); the
//!                           fields separated by U+0001 as the redb store
//!                           writes them
//! ```
//!
//! The `generation` and `from-generation` records were added within
//! version 1: a build without them skips them and reads the rest as
//! before.
//!
//! The new version forwards both `call-id` and `forward` Call-IDs to the
//! older versions (the host offers each message to all of them at once)
//! and keeps each Call-ID with the generation that has it. It drops one
//! from its set when no older version takes a message for it, and drops
//! a whole generation's when no older version answers to that generation
//! any more ([`prune`]: 1 s after the version loaded, then every 2 s; a
//! delivery on channel [`PROBE`] whose data is `generation <n>`). A
//! Call-ID of no known generation is asked about alone (the data is the
//! Call-ID). So the set follows the versions still draining, whatever
//! the number of Call-IDs: asking about each Call-ID under 100 calls/s
//! and a reload every 2 s (2,000 and more inherited) cost as much as the
//! calls themselves, and without asking the set grew with every reload.

use crate::registrar::Registration;
use hotswitch_plugin_api::sync::{Mutex, RwLock};
use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The format's name: the same across versions that hand over to each other.
pub const FORMAT: &str = "mod_sofia/handover-v1";
/// The format version this build writes.
pub const VERSION: u32 = 1;
/// The oldest format version this build reads.
pub const READS_FROM: u32 = 1;

const HEADER: &str = "hotswitch mod_sofia handover 1";

/// What one version hands the next (the data part; the descriptors go
/// separately).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Handed {
    pub profiles: Vec<String>,
    pub sockets: Vec<String>,
    /// The old version's generation (`None` from a build without them).
    pub generation: Option<u64>,
    /// The old version's own dialogs and transactions.
    pub own: Vec<String>,
    /// What it forwards further back, with the generation that has each.
    pub forward: Vec<(Option<u64>, String)>,
    pub registrations: Vec<Registration>,
}

impl Handed {
    /// The bytes in format version 1.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::with_capacity(64 + 48 * (self.own.len() + self.forward.len()));
        let mut forward: Vec<&(Option<u64>, String)> = self.forward.iter().collect();
        // Those of no known generation first, before any `from-generation`.
        forward.sort_by_key(|(g, _)| *g);
        out.push_str(HEADER);
        out.push('\n');
        let mut line = |k: &str, v: &str| {
            // A value never spans lines (Call-IDs hold no whitespace).
            if !v.is_empty() && !v.contains(['\n', '\r']) {
                out.push_str(k);
                out.push(' ');
                out.push_str(v);
                out.push('\n');
            }
        };
        for p in &self.profiles {
            line("profile", p);
        }
        for s in &self.sockets {
            line("socket", s);
        }
        if let Some(g) = self.generation {
            line("generation", &g.to_string());
        }
        for c in &self.own {
            line("call-id", c);
        }
        let mut current = None;
        for (g, c) in forward {
            if *g != current {
                if let Some(g) = g {
                    line("from-generation", &g.to_string());
                }
                current = *g;
            }
            line("forward", c);
        }
        for r in &self.registrations {
            line("registration", &r.encode());
        }
        out.into_bytes()
    }

    /// Reads format version 1.
    pub fn decode(data: &[u8]) -> Result<Handed, String> {
        let text =
            std::str::from_utf8(data).map_err(|e| format!("handover data is not UTF-8: {e}"))?;
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err("handover data does not start with its header".into());
        }
        let mut h = Handed::default();
        let mut of = None;
        for l in lines {
            let Some((k, v)) = l.split_once(' ') else {
                continue;
            };
            match k {
                "profile" => h.profiles.push(v.to_string()),
                "socket" => h.sockets.push(v.to_string()),
                "generation" => h.generation = v.parse().ok(),
                "call-id" => h.own.push(v.to_string()),
                "from-generation" => of = v.parse().ok(),
                "forward" => h.forward.push((of, v.to_string())),
                "registration" => match Registration::decode(v) {
                    Some(r) => h.registrations.push(r),
                    None => log::warn!("handover: a registration that does not decode; skipped"),
                },
                _ => {}
            }
        }
        Ok(h)
    }
}

/// Descriptors handed to this version at load, until the profiles take
/// them.
static FDS: Mutex<Vec<(String, OwnedFd)>> = Mutex::new(Vec::new());
/// New version: the Call-IDs older versions still have, each with the
/// generation that has it (`None`: not known, from a build without
/// generations).
static INHERITED: RwLock<Option<HashMap<String, Option<u64>>>> = RwLock::new(None);
/// This version's generation (see the format above); 0 until load.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Quick test before the set's lock: anything inherited at all.
static ANY_INHERITED: AtomicBool = AtomicBool::new(false);
/// Old version, after export: the Call-IDs it still has work under
/// (refreshed by its SIP thread as calls end).
static OWNED: RwLock<Option<HashSet<String>>> = RwLock::new(None);

/// How a message goes to the previous version: `(channel, peer, data)` →
/// taken. Set at load to the host's `handover_forward`.
pub type ForwardFn = fn(&str, &str, &[u8]) -> bool;
static FORWARD: RwLock<Option<ForwardFn>> = RwLock::new(None);

/// Sets how messages reach the previous version.
pub fn set_forward(f: ForwardFn) {
    *FORWARD.write() = Some(f);
}

/// A version loaded without a handover: the first generation.
pub fn first_generation() {
    GENERATION.store(1, Ordering::Release);
}

/// This version's generation.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// New version, at load: keeps what the old one handed over.
pub fn adopt(h: &Handed, fds: Vec<(String, OwnedFd)>) {
    *FDS.lock() = fds;
    GENERATION.store(h.generation.unwrap_or(0) + 1, Ordering::Release);
    let set: HashMap<String, Option<u64>> = h
        .forward
        .iter()
        .map(|(g, id)| (id.clone(), *g))
        .chain(h.own.iter().map(|id| (id.clone(), h.generation)))
        .collect();
    log::info!(
        "handover: {} sockets and {} Call-IDs ({} forwarded further) from the previous version of profiles {}",
        FDS.lock().len(),
        set.len(),
        h.forward.len(),
        h.profiles.join(", ")
    );
    ANY_INHERITED.store(!set.is_empty(), Ordering::Release);
    *INHERITED.write() = Some(set);
}

/// The handed descriptor named `name`, if there is one.
pub fn take_fd(name: &str) -> Option<OwnedFd> {
    let mut fds = FDS.lock();
    let i = fds.iter().position(|(n, _)| n == name)?;
    Some(fds.remove(i).1)
}

/// Closes the handed descriptors no profile took (a profile the new
/// configuration no longer has).
pub fn drop_unclaimed() {
    for (name, _) in std::mem::take(&mut *FDS.lock()) {
        log::info!("handover: socket {name} is not in the new configuration; closed");
    }
}

/// The Call-IDs older versions still have, with their generations (for
/// this version's own export).
pub fn inherited() -> Vec<(Option<u64>, String)> {
    INHERITED
        .read()
        .as_ref()
        .map(|s| s.iter().map(|(id, g)| (*g, id.clone())).collect())
        .unwrap_or_default()
}

/// Whether this version inherited any Call-ID it has not forgotten yet.
pub fn any_inherited() -> bool {
    ANY_INHERITED.load(Ordering::Acquire)
}

fn inherits(call_id: &str) -> bool {
    ANY_INHERITED.load(Ordering::Acquire)
        && INHERITED
            .read()
            .as_ref()
            .is_some_and(|s| s.contains_key(call_id))
}

/// Drops `call_ids` from the inherited set, under one lock.
fn forget_inherited<S: AsRef<str>>(call_ids: &[S]) {
    let mut g = INHERITED.write();
    if let Some(s) = g.as_mut() {
        for id in call_ids {
            s.remove(id.as_ref());
        }
        if s.is_empty() {
            ANY_INHERITED.store(false, Ordering::Release);
        }
    }
}

fn call_forward(channel: &str, peer: &str, data: &[u8]) -> bool {
    let f = *FORWARD.read();
    f.is_some_and(|f| f(channel, peer, data))
}

/// Reader side (new version): true when `data` belongs to an older
/// version; it is then handed back through the host off the reader, on
/// the runtime's blocking pool, and if no older version takes it after
/// all (its call ended meanwhile) it comes back through `back`, to be
/// handled here (481 and the like). False: this version's, the caller
/// goes on with it.
///
/// Not on the reader itself: a hand-back waits until the older versions
/// have answered, and a reader blocked meanwhile reads nothing —
/// under 100 calls/s with a reload every 2 s the socket's buffer then
/// overflowed and ACKs were lost, each call then held 32 s for its ACK,
/// and the load grew until nothing got through.
pub fn forward(
    channel: &str,
    peer: &str,
    data: &[u8],
    back: impl FnOnce(Vec<u8>) + Send + 'static,
) -> bool {
    if !ANY_INHERITED.load(Ordering::Acquire) {
        return false;
    }
    let Some(id) = call_id_of(data) else {
        return false;
    };
    if !inherits(id) {
        return false;
    }
    let (channel, peer, data, id) = (
        channel.to_string(),
        peer.to_string(),
        data.to_vec(),
        id.to_string(),
    );
    hand_back(Box::new(move || {
        if call_forward(&channel, &peer, &data) {
            return;
        }
        // No older version has it any more: ours from now on, and no
        // more asking.
        forget_inherited(&[id]);
        back(data);
    }));
    true
}

type HandBack = Box<dyn FnOnce() + Send>;

/// Hand-backs waiting, and how many blocking-pool threads take them.
static HAND_BACKS: Mutex<(VecDeque<HandBack>, usize)> = Mutex::new((VecDeque::new(), 0));

/// At most this many of the runtime's blocking threads hand messages
/// back at once. A thread per message (`spawn_blocking` each) grew the
/// pool to ~300 threads under load, each waiting on the host, and every
/// purge then had that many threads to look at; 4 were too few (at
/// 100 calls/s hand-backs queued behind each other for seconds, ACKs
/// arrived after the calls had given up on them).
const HAND_BACK_THREADS: usize = 16;

fn hand_back(job: HandBack) {
    let mut q = HAND_BACKS.lock();
    q.0.push_back(job);
    if q.1 >= HAND_BACK_THREADS {
        return;
    }
    q.1 += 1;
    drop(q);
    tokio::task::spawn_blocking(|| loop {
        let job = {
            let mut q = HAND_BACKS.lock();
            match q.0.pop_front() {
                Some(j) => j,
                None => {
                    q.1 -= 1;
                    return;
                }
            }
        };
        job();
    });
}

/// Unload: frees what the statics hold. A library's statics are not
/// dropped when it is closed, so what they still own would be lost to
/// the switch at every reload (measured: 83 MB in use after 100 reloads
/// under load, with nothing up).
pub fn release() {
    *INHERITED.write() = None;
    ANY_INHERITED.store(false, Ordering::Release);
    *OWNED.write() = None;
    FDS.lock().clear();
    *HAND_BACKS.lock() = (VecDeque::new(), 0);
}

/// Old version, after export: the Call-IDs it has work under.
pub fn set_owned(ids: HashSet<String>) {
    *OWNED.write() = Some(ids);
}

/// Old version, reload failed: takes new work again.
pub fn clear_owned() {
    *OWNED.write() = None;
}

/// The host's `deliver` (old version): true when the message is this
/// version's (the caller enqueues it). What is not, it leaves: the host
/// offers every message to all older versions at once, and passing it on
/// from here would keep this version's forwarder busy while older ones
/// look.
pub fn claim(data: &[u8]) -> bool {
    call_id_of(data).is_some_and(owns)
}

/// The channel of a probe: "does an older version still have this
/// Call-ID" (the data is the Call-ID), asked to prune the inherited set.
pub const PROBE: &str = "mod_sofia probe";

/// Drops the inherited Call-IDs no older version has any more (their calls
/// ended without a message since), asking each with a [`PROBE`]. Keeps the
/// set, and each export's data, to the calls really up.
pub fn prune() {
    static PRUNING: AtomicBool = AtomicBool::new(false);
    // A draining version forwards nothing any more (the host asks every
    // older version), so only the current one's set matters.
    let draining = OWNED.read().is_some();
    if draining || !ANY_INHERITED.load(Ordering::Acquire) || PRUNING.swap(true, Ordering::AcqRel) {
        return;
    }
    prune_now();
    PRUNING.store(false, Ordering::Release);
}

fn prune_now() {
    let all = inherited();
    // One question per generation: is a version of it still there?
    let generations: HashSet<u64> = all.iter().filter_map(|(g, _)| *g).collect();
    let gone_generations: HashSet<u64> = generations
        .into_iter()
        .filter(|g| !call_forward(PROBE, "", format!("generation {g}").as_bytes()))
        .collect();
    // One question per Call-ID of no known generation (from a build
    // without them: it answers only those).
    let gone: Vec<String> = all
        .into_iter()
        .filter(|(g, id)| match g {
            Some(g) => gone_generations.contains(g),
            None => !call_forward(PROBE, "", id.as_bytes()),
        })
        .map(|(_, id)| id)
        .collect();
    if gone.is_empty() {
        return;
    }
    forget_inherited(&gone);
    log::info!(
        "handover: {} inherited Call-IDs no older version has any more; forgotten",
        gone.len()
    );
}

/// A [`PROBE`] from a newer version (the host asks every older version):
/// `generation <n>`, true when this version is of generation n; else a
/// Call-ID, true while this version has it.
pub fn probed(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    match text.strip_prefix("generation ") {
        Some(n) => n.parse::<u64>().is_ok_and(|n| n == generation()),
        None => owns(text),
    }
}

/// True when this (draining) version still has work under `call_id`.
fn owns(call_id: &str) -> bool {
    OWNED.read().as_ref().is_some_and(|s| s.contains(call_id))
}

/// The Call-ID of a SIP message as read (`Call-ID:` or its compact form
/// `i:`), without parsing the rest.
pub fn call_id_of(data: &[u8]) -> Option<&str> {
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(data.len());
    let head = std::str::from_utf8(&data[..end]).ok()?;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim_end();
        if name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i") {
            let v = value.trim();
            return (!v.is_empty()).then_some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_id_is_found_in_either_form_and_any_case() {
        let m = b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\r\ncall-ID :  abc@host \r\nCSeq: 2 BYE\r\n\r\nbody i: no";
        assert_eq!(call_id_of(m), Some("abc@host"));
        let m = b"SIP/2.0 200 OK\r\ni: 42\r\n\r\n";
        assert_eq!(call_id_of(m), Some("42"));
        // Only the headers count, and a missing one is none.
        assert_eq!(
            call_id_of(b"OPTIONS sip:a SIP/2.0\r\nTo: <sip:a>\r\n\r\nCall-ID: x"),
            None
        );
    }

    #[test]
    fn the_format_reads_back_what_it_writes_and_refuses_other_data() {
        let h = Handed {
            profiles: vec!["internal".into(), "external".into()],
            sockets: vec!["udp 127.0.0.1:5060".into(), "tcp 127.0.0.1:5060".into()],
            generation: Some(4),
            own: vec!["a@b".into(), "c".into()],
            forward: vec![
                (Some(3), "older".into()),
                (None, "unknown".into()),
                (Some(2), "oldest".into()),
                (Some(3), "older too".into()),
            ],
            registrations: vec![Registration {
                profile: "internal".into(),
                user: "1000".into(),
                domain: "127.0.0.1".into(),
                contact: "sip:1000@127.0.0.1:5062".into(),
                network: "127.0.0.1:5062".parse().unwrap(),
                transport: "UDP".into(),
                expires_at: 4_000_000_000,
                call_id: "reg".into(),
                user_agent: "sipp".into(),
                path: Vec::new(),
            }],
        };
        let bytes = h.encode();
        assert!(bytes.starts_with(b"hotswitch mod_sofia handover 1\nprofile internal\n"));
        let mut back = Handed::decode(&bytes).unwrap();
        // Written grouped by generation.
        back.forward.sort();
        let mut want = h.clone();
        want.forward.sort();
        assert_eq!(back, want);
        // A build without generations reads the Call-IDs all the same: the
        // generation records are ones it skips.
        let text = String::from_utf8(bytes.clone()).unwrap();
        let mut forwards: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("forward "))
            .collect();
        forwards.sort();
        assert_eq!(forwards, ["older", "older too", "oldest", "unknown"]);
        // Data from such a build: no generation known.
        let old =
            Handed::decode(b"hotswitch mod_sofia handover 1\ncall-id a\nforward b\n").unwrap();
        assert_eq!(old.generation, None);
        assert_eq!(old.forward, vec![(None, "b".to_string())]);
        let h = want;
        // Records a later build adds are skipped.
        let mut more = bytes.clone();
        more.extend_from_slice(b"gateway-state x\n");
        let mut back = Handed::decode(&more).unwrap();
        back.forward.sort();
        assert_eq!(back, h);
        assert!(Handed::decode(b"something else\n").is_err());
    }
}
