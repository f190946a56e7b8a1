//! Real-time pacing for media: when the next 20 ms frame is due, how late
//! each one went out, and what to do when the process has fallen far
//! behind. Sans-IO: the caller owns the clock and the sleeping, passes
//! `Instant`s in, and gets deadlines and lateness out, so tests drive
//! hours of frames in microseconds.
//!
//! Deadlines are `start + n · period`, never "last tick + period": a tick
//! that is served late does not push the ones after it, so the stream keeps
//! the sender's clock over a call of any length, as RTP timestamps must.
//! After a stall longer than a few periods (a stopped VM, a swapped-out
//! process), the pacer does not burst out every missed frame to catch up;
//! it skips to the first deadline still ahead and counts what it skipped,
//! which is what a jitter buffer at the far end copes with best.

use std::fmt;
use std::time::{Duration, Instant};

/// How many periods behind the pacer may fall before it skips ahead.
pub const DEFAULT_MAX_BEHIND: u32 = 5;

/// Deadlines at a fixed period from a fixed start.
#[derive(Clone, Debug)]
pub struct Pacer {
    start: Instant,
    period: Duration,
    /// The next deadline is `start + next · period`.
    next: u64,
    max_behind: u32,
    served: u64,
    skipped: u64,
}

impl Pacer {
    /// A pacer whose first deadline is one period after `start`. A zero
    /// period is taken as one nanosecond, so that nothing divides by zero.
    pub fn new(start: Instant, period: Duration) -> Self {
        Pacer {
            start,
            period: period.max(Duration::from_nanos(1)),
            next: 1,
            max_behind: DEFAULT_MAX_BEHIND,
            served: 0,
            skipped: 0,
        }
    }

    /// Sets how many periods late a tick may be before the pacer skips the
    /// deadlines already missed.
    pub fn with_max_behind(mut self, periods: u32) -> Self {
        self.max_behind = periods;
        self
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    /// When the next frame is due: sleep until then, then [`Pacer::tick`].
    pub fn next_deadline(&self) -> Instant {
        self.deadline(self.next)
    }

    /// Serves the next deadline at `now` and returns how late that is (zero
    /// when `now` is not past it: ticking early serves the deadline early).
    pub fn tick(&mut self, now: Instant) -> Duration {
        let deadline = self.deadline(self.next);
        let lateness = now.saturating_duration_since(deadline);
        self.next += 1;
        self.served += 1;
        let limit = self.period.saturating_mul(self.max_behind);
        if lateness > limit {
            let elapsed = now.saturating_duration_since(self.start).as_nanos();
            let resume = (elapsed / self.period.as_nanos()) as u64 + 1;
            if resume > self.next {
                self.skipped += resume - self.next;
                self.next = resume;
            }
        }
        lateness
    }

    /// Deadlines served by [`Pacer::tick`].
    pub fn served(&self) -> u64 {
        self.served
    }

    /// Deadlines given up after falling too far behind.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    fn deadline(&self, n: u64) -> Instant {
        let nanos = self.period.as_nanos() * n as u128;
        let offset = Duration::new(
            (nanos / 1_000_000_000) as u64,
            (nanos % 1_000_000_000) as u32,
        );
        self.start + offset
    }
}

/// Exact below 32 µs; above, 16 buckets per power of two (within 6.25%).
const EXACT_BELOW: u32 = 32;
const SUB_BUCKETS: u32 = 16;
const SUB_BITS: u32 = 4;
const BUCKETS: usize = (EXACT_BELOW + (32 - 5) * SUB_BUCKETS) as usize;

/// Lateness statistics over any number of ticks, in constant memory: a
/// log-scaled histogram of microseconds, so a percentile is an upper bound
/// within 6.25% (never above the true maximum), while count, mean and
/// maximum are exact.
#[derive(Clone)]
pub struct Stats {
    count: u64,
    total: Duration,
    max: Duration,
    buckets: Vec<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            count: 0,
            total: Duration::ZERO,
            max: Duration::ZERO,
            buckets: vec![0; BUCKETS],
        }
    }

    pub fn record(&mut self, lateness: Duration) {
        self.count += 1;
        self.total = self.total.saturating_add(lateness);
        self.max = self.max.max(lateness);
        let micros = lateness.as_micros().min(u32::MAX as u128) as u32;
        self.buckets[bucket_of(micros)] += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> Duration {
        self.max
    }

    pub fn mean(&self) -> Duration {
        match self.count {
            0 => Duration::ZERO,
            n => Duration::from_nanos((self.total.as_nanos() / n as u128) as u64),
        }
    }

    pub fn p50(&self) -> Duration {
        self.percentile(0.50)
    }

    pub fn p99(&self) -> Duration {
        self.percentile(0.99)
    }

    /// The lateness that a share `q` (0..=1) of ticks did not exceed; zero
    /// before any tick.
    pub fn percentile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let upper = Duration::from_micros(bucket_upper(index) as u64);
                return upper.min(self.max);
            }
        }
        self.max
    }
}

impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stats({self})")
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={} p50={}µs p99={}µs max={}µs",
            self.count,
            self.p50().as_micros(),
            self.p99().as_micros(),
            self.max.as_micros()
        )
    }
}

fn bucket_of(micros: u32) -> usize {
    if micros < EXACT_BELOW {
        return micros as usize;
    }
    let exponent = 31 - micros.leading_zeros();
    let sub = (micros >> (exponent - SUB_BITS)) & (SUB_BUCKETS - 1);
    (EXACT_BELOW + (exponent - 5) * SUB_BUCKETS + sub) as usize
}

/// The largest value that falls in bucket `index`.
fn bucket_upper(index: usize) -> u32 {
    let index = index as u32;
    if index < EXACT_BELOW {
        return index;
    }
    let exponent = (index - EXACT_BELOW) / SUB_BUCKETS + 5;
    let sub = (index - EXACT_BELOW) % SUB_BUCKETS;
    let width = 1u64 << (exponent - SUB_BITS);
    let lower = (SUB_BUCKETS as u64 + sub as u64) * width;
    (lower + width - 1).min(u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTIME: Duration = Duration::from_millis(20);

    /// Deterministic jitter in 0..max_us microseconds.
    fn jitter(n: u64, max_us: u64) -> Duration {
        Duration::from_micros(n.wrapping_mul(2_654_435_761) % max_us)
    }

    #[test]
    fn the_first_deadline_is_one_period_after_the_start() {
        let start = Instant::now();
        let pacer = Pacer::new(start, PTIME);
        assert_eq!(pacer.next_deadline(), start + PTIME);
    }

    #[test]
    fn late_ticks_do_not_move_later_deadlines() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, PTIME);
        for n in 1..=10_000u64 {
            let deadline = pacer.next_deadline();
            assert_eq!(deadline, start + PTIME * n as u32);
            let late = jitter(n, 5000);
            assert_eq!(pacer.tick(deadline + late), late);
        }
        assert_eq!(pacer.next_deadline(), start + PTIME * 10_001);
        assert_eq!((pacer.served(), pacer.skipped()), (10_000, 0));
    }

    #[test]
    fn an_hour_of_frames_ends_exactly_on_time() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, PTIME);
        let frames = 3600 * 50;
        for n in 0..frames {
            let now = pacer.next_deadline() + jitter(n, 3000);
            pacer.tick(now);
        }
        assert_eq!(
            pacer.next_deadline() - start,
            Duration::from_secs(3600) + PTIME
        );
    }

    #[test]
    fn an_early_tick_reads_as_on_time() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, PTIME);
        assert_eq!(pacer.tick(start + Duration::from_millis(5)), Duration::ZERO);
        assert_eq!(pacer.next_deadline(), start + PTIME * 2);
    }

    #[test]
    fn a_short_stall_is_caught_up_frame_by_frame() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, PTIME);
        // 60 ms late is 3 periods: within the default 5, so every missed
        // deadline is still served, back to back.
        let now = start + PTIME + Duration::from_millis(60);
        let lateness: Vec<u128> = (0..4).map(|_| pacer.tick(now).as_millis()).collect();
        assert_eq!(lateness, [60, 40, 20, 0]);
        assert_eq!(pacer.skipped(), 0);
        assert_eq!(pacer.next_deadline(), start + PTIME * 5);
    }

    #[test]
    fn a_long_stall_skips_ahead_and_counts_the_skips() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, PTIME);
        pacer.tick(start + PTIME);
        // The process stops for a second: deadline 2 is served 990 ms late,
        // and deadlines 3..=51 (all at or before now) are given up.
        let now = start + Duration::from_millis(1030);
        assert_eq!(pacer.tick(now), Duration::from_millis(990));
        assert_eq!(pacer.skipped(), 49);
        assert_eq!(pacer.next_deadline(), start + PTIME * 52);
        assert!(pacer.next_deadline() > now);
        // Back on the start-based grid.
        assert_eq!(pacer.tick(start + PTIME * 52), Duration::ZERO);
    }

    #[test]
    fn the_skip_threshold_can_be_changed() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, PTIME).with_max_behind(1);
        // 45 ms late is over one period: deadlines 2 and 3 have passed too.
        pacer.tick(start + PTIME + Duration::from_millis(45));
        assert_eq!(pacer.skipped(), 2);
        assert_eq!(pacer.next_deadline(), start + PTIME * 4);
    }

    #[test]
    fn a_zero_period_does_not_divide_by_zero() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, Duration::ZERO);
        pacer.tick(start + Duration::from_millis(1));
        assert!(pacer.next_deadline() > start + Duration::from_millis(1));
    }

    #[test]
    fn stats_report_percentiles_within_their_resolution() {
        let mut stats = Stats::new();
        for ms in 1..=100u64 {
            stats.record(Duration::from_millis(ms));
        }
        let within = |got: Duration, want_ms: u64| {
            let want = want_ms as f64 * 1000.0;
            let got = got.as_micros() as f64;
            got >= want && got <= want * 1.0625
        };
        assert!(within(stats.p50(), 50), "p50 {:?}", stats.p50());
        assert!(within(stats.p99(), 99), "p99 {:?}", stats.p99());
        assert_eq!(stats.max(), Duration::from_millis(100));
        assert_eq!(stats.count(), 100);
        assert_eq!(stats.mean(), Duration::from_micros(50_500));
    }

    #[test]
    fn small_lateness_is_counted_exactly() {
        let mut stats = Stats::new();
        for us in [3, 3, 3, 7, 7, 12, 12, 12, 12, 30] {
            stats.record(Duration::from_micros(us));
        }
        assert_eq!(stats.p50(), Duration::from_micros(7));
        assert_eq!(stats.p99(), Duration::from_micros(30));
        assert_eq!(stats.percentile(0.0), Duration::from_micros(3));
        assert_eq!(stats.to_string(), "n=10 p50=7µs p99=30µs max=30µs");
    }

    #[test]
    fn percentiles_never_exceed_the_maximum() {
        let mut stats = Stats::new();
        stats.record(Duration::from_micros(1000));
        assert_eq!(stats.p99(), Duration::from_micros(1000));
        stats.record(Duration::from_secs(7200));
        assert_eq!(stats.max(), Duration::from_secs(7200));
        assert!(stats.p99() <= stats.max());
    }

    #[test]
    fn empty_stats_read_zero() {
        let stats = Stats::new();
        assert_eq!(
            (stats.p50(), stats.p99(), stats.max(), stats.mean()),
            (
                Duration::ZERO,
                Duration::ZERO,
                Duration::ZERO,
                Duration::ZERO
            )
        );
    }

    #[test]
    fn buckets_cover_every_microsecond_value_in_order() {
        let mut last = 0;
        for micros in (0..=u32::MAX).step_by(9973).chain([u32::MAX]) {
            let index = bucket_of(micros);
            assert!(index < BUCKETS && index >= last);
            assert!(bucket_upper(index) >= micros);
            last = index;
        }
    }

    #[test]
    fn a_paced_loop_with_stats_reports_its_jitter() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, PTIME);
        let mut stats = Stats::new();
        for n in 0..1000 {
            let now = pacer.next_deadline() + jitter(n, 2000);
            stats.record(pacer.tick(now));
        }
        assert_eq!(stats.count(), 1000);
        assert!(stats.max() < Duration::from_millis(2));
        assert!(stats.p50() <= stats.p99() && stats.p99() <= stats.max());
    }
}
