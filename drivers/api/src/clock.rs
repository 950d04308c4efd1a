//! The monotonic clock drivers bound their waits with.
//!
//! kernel-core installs its clock once the counter frequency is known
//! ([`install`]); until then [`now_micros`] is `None` and drivers bound
//! their waits by a count of register reads instead.

use core::time::Duration;

static NOW_MICROS: spin::Once<fn() -> Option<u64>> = spin::Once::new();

/// Installs the kernel's clock: microseconds since an arbitrary fixed
/// point, `None` while the frequency is unknown. The first call wins.
pub fn install(now_micros: fn() -> Option<u64>) {
    NOW_MICROS.call_once(|| now_micros);
}

/// Microseconds on the monotonic clock, once it runs.
pub fn now_micros() -> Option<u64> {
    (NOW_MICROS.get()?)()
}

/// A deadline on the monotonic clock: [`Deadline::expired`] says whether
/// the wait is over. Without a clock it counts calls instead
/// (`fallback_polls`), so that a wait is bounded either way.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    end_micros: Option<u64>,
    polls_left: u64,
}

impl Deadline {
    /// `timeout` from now; `fallback_polls` calls of
    /// [`Deadline::expired`] when the clock does not run yet.
    pub fn after(timeout: Duration, fallback_polls: u64) -> Self {
        let micros = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX);
        Self {
            end_micros: now_micros().map(|now| now.saturating_add(micros)),
            polls_left: fallback_polls,
        }
    }

    /// Whether the deadline passed. Call it once per poll.
    pub fn expired(&mut self) -> bool {
        match (self.end_micros, now_micros()) {
            (Some(end), Some(now)) => now >= end,
            _ => {
                self.polls_left = self.polls_left.saturating_sub(1);
                self.polls_left == 0
            }
        }
    }
}

/// Polls `done` until it returns `Some`, or `timeout` passed (see
/// [`Deadline`]); `None` on timeout.
pub fn poll_until<T>(
    timeout: Duration,
    fallback_polls: u64,
    mut done: impl FnMut() -> Option<T>,
) -> Option<T> {
    let mut deadline = Deadline::after(timeout, fallback_polls);
    loop {
        if let Some(value) = done() {
            return Some(value);
        }
        if deadline.expired() {
            return None;
        }
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_clock_a_wait_is_bounded_by_polls() {
        let mut calls = 0;
        let result: Option<()> = poll_until(Duration::from_secs(1), 5, || {
            calls += 1;
            None
        });
        assert_eq!(result, None);
        assert_eq!(calls, 5);
        assert_eq!(poll_until(Duration::from_secs(1), 5, || Some(7)), Some(7));
    }
}
