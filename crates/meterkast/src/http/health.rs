//! Why `/healthz` says `degraded`: every part of the daemon that can fail while it
//! keeps serving has one check here, which adds a reason per failure. `/healthz`
//! answers HTTP 200 either way (the daemon is alive), with `"status":"degraded"` and the
//! reasons while any check finds one.

use super::AppState;

/// One check: adds a human-readable reason per failure it finds.
pub type Check = fn(&AppState, &mut Vec<String>);

/// Every check, in the order their reasons are listed. A new source of failures is
/// one more line here.
pub const CHECKS: &[Check] = &[sources, store];

/// The reasons for `degraded`; empty when all is well.
pub fn reasons(s: &AppState) -> Vec<String> {
    let mut out = Vec::new();
    for check in CHECKS {
        check(s, &mut out);
    }
    out
}

/// How long a source may send only frames that are rejected before it counts as not
/// delivering.
const REJECTING_FOR: i64 = 60;

/// A source that delivers nothing: its link is down by a failure (cannot open the
/// port, connection refused, silent too long), or all it sent for a minute was
/// rejected (wrong key, wrong line settings, a noisy line).
fn sources(s: &AppState, out: &mut Vec<String>) {
    let now = crate::source::now();
    for st in s.sources.iter() {
        let st = st.lock().expect("status lock");
        if st.failing {
            out.push(format!("source {}: {}", st.name, st.note));
            continue;
        }
        let Some((at, cause)) = st.last_rejected else {
            continue;
        };
        let quiet = st.last_frame.is_none_or(|t| t < at - REJECTING_FOR);
        if quiet && at >= now - REJECTING_FOR {
            out.push(format!(
                "source {}: every frame rejected for a minute or more (last cause: {cause}; see the log)",
                st.name
            ));
        }
    }
}

/// The store cannot write: commits fail (a full disk, a lost database connection) and
/// readings wait in memory to be retried.
fn store(s: &AppState, out: &mut Vec<String>) {
    if let Some(why) = s
        .metrics
        .store_trouble
        .lock()
        .expect("trouble lock")
        .clone()
    {
        out.push(format!("the store cannot write: {why}"));
    }
}
