//! Log lines by time, not by count: a flood of bad input (or a source that keeps
//! failing) writes a bounded number of lines whatever its rate.
//!
//! [`Summaries`]: per cause, the first occurrence at once, then at most one line per
//! [`SUMMARY_EVERY`] with how many happened since. [`Repeats`]: a condition that
//! persists (a port that cannot be opened) at once, then after 1, 2, 4 … minutes, at
//! most hourly.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often at most a cause's summary line is written.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// The first pause before a persisting condition is said again; it doubles.
pub const REPEAT_FIRST: Duration = Duration::from_secs(60);

/// The longest pause before a persisting condition is said again.
pub const REPEAT_MAX: Duration = Duration::from_secs(3600);

/// What to log for one more occurrence of a cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Say {
    /// The first of its cause: say it in full.
    First,
    /// A summary is due: `count` occurrences since the last line (this one included).
    Summary {
        /// Occurrences since the last line of this cause, this one included.
        count: u64,
    },
    /// Counted, not said.
    Nothing,
}

#[derive(Debug)]
struct Window {
    unsaid: u64,
    last_said: Instant,
}

/// Per-cause limiter: first at once, then one summary per [`SUMMARY_EVERY`].
#[derive(Debug, Default)]
pub struct Summaries {
    causes: HashMap<&'static str, Window>,
}

impl Summaries {
    /// Counts one occurrence of `cause` now.
    pub fn hit(&mut self, cause: &'static str) -> Say {
        self.hit_at(cause, Instant::now())
    }

    /// Counts one occurrence of `cause` at `now`.
    pub fn hit_at(&mut self, cause: &'static str, now: Instant) -> Say {
        let Some(w) = self.causes.get_mut(cause) else {
            self.causes.insert(
                cause,
                Window {
                    unsaid: 0,
                    last_said: now,
                },
            );
            return Say::First;
        };
        w.unsaid += 1;
        if now.saturating_duration_since(w.last_said) < SUMMARY_EVERY {
            return Say::Nothing;
        }
        let count = std::mem::take(&mut w.unsaid);
        w.last_said = now;
        Say::Summary { count }
    }

    /// The causes with occurrences not yet said and their counts (for a last summary
    /// when the source stops); they count as said afterwards.
    pub fn take_unsaid(&mut self) -> Vec<(&'static str, u64)> {
        let mut out: Vec<_> = self
            .causes
            .iter_mut()
            .filter(|(_, w)| w.unsaid > 0)
            .map(|(c, w)| (*c, std::mem::take(&mut w.unsaid)))
            .collect();
        out.sort();
        out
    }
}

/// A persisting condition said with backoff: at once, then after [`REPEAT_FIRST`],
/// doubling up to [`REPEAT_MAX`].
#[derive(Debug, Default)]
pub struct Repeats {
    next: Option<Instant>,
    gap: Duration,
    unsaid: u64,
}

impl Repeats {
    /// One more occurrence now; `Some(n)` when it is to be said, `n` being the
    /// occurrences since the last line (1 for the first).
    pub fn hit(&mut self) -> Option<u64> {
        self.hit_at(Instant::now())
    }

    /// One more occurrence at `now`.
    pub fn hit_at(&mut self, now: Instant) -> Option<u64> {
        self.unsaid += 1;
        match self.next {
            Some(t) if now < t => return None,
            Some(_) => self.gap = (self.gap * 2).min(REPEAT_MAX),
            None => self.gap = REPEAT_FIRST,
        }
        self.next = Some(now + self.gap);
        Some(std::mem::take(&mut self.unsaid))
    }

    /// Whether the condition is on (occurred since the last [`Repeats::clear`]).
    pub fn active(&self) -> bool {
        self.next.is_some()
    }

    /// The condition is over: the next occurrence is said at once again.
    pub fn clear(&mut self) {
        *self = Repeats::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_line_then_one_summary_a_minute_and_the_counts_add_up() {
        let t0 = Instant::now();
        let mut s = Summaries::default();
        let mut lines = 0;
        let mut said = 0;
        // 10 events a millisecond for 5 minutes of a clock we drive.
        let total = 5 * 60 * 1000 * 10u64;
        for i in 0..total {
            let now = t0 + Duration::from_micros(i * 100);
            match s.hit_at("checksum", now) {
                Say::First => {
                    lines += 1;
                    said += 1
                }
                Say::Summary { count } => {
                    lines += 1;
                    said += count
                }
                Say::Nothing => {}
            }
        }
        let rest: u64 = s.take_unsaid().iter().map(|(_, n)| n).sum();
        assert!(lines <= 6, "{lines} lines");
        assert_eq!(said + rest, total);
        assert!(s.take_unsaid().is_empty());
        assert_eq!(s.hit_at("other", t0), Say::First);
    }

    #[test]
    fn a_persisting_failure_is_said_at_once_then_with_a_doubling_pause() {
        let t0 = Instant::now();
        let mut r = Repeats::default();
        let said: Vec<_> = (0..4 * 3600)
            .filter_map(|s| r.hit_at(t0 + Duration::from_secs(s)).map(|n| (s, n)))
            .collect();
        let at: Vec<u64> = said.iter().map(|(s, _)| *s).collect();
        assert_eq!(at[..6], [0, 60, 180, 420, 900, 1860]);
        assert!(at.windows(2).all(|w| w[1] - w[0] <= 3600));
        assert_eq!(
            said.iter().map(|(_, n)| n).sum::<u64>(),
            at.last().unwrap() + 1
        );
        r.clear();
        assert!(!r.active());
        assert_eq!(r.hit_at(t0), Some(1));
    }
}
