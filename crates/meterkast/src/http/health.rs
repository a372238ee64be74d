//! Why `/healthz` says `degraded`: every part of the daemon that can fail while it
//! keeps serving has one check here, which adds a reason per failure. `/healthz`
//! answers HTTP 200 either way (the daemon is alive), with `"status":"degraded"` and the
//! reasons while any check finds one.

use super::AppState;

/// One check: adds a human-readable reason per failure it finds.
pub type Check = fn(&AppState, &mut Vec<String>);

/// Every check, in the order their reasons are listed. A new source of failures is
/// one more line here.
pub const CHECKS: &[Check] = &[sources];

/// The reasons for `degraded`; empty when all is well.
pub fn reasons(s: &AppState) -> Vec<String> {
    let mut out = Vec::new();
    for check in CHECKS {
        check(s, &mut out);
    }
    out
}

/// A source whose link is down by a failure (cannot open the port, connection
/// refused, silent too long): it delivers nothing.
fn sources(s: &AppState, out: &mut Vec<String>) {
    for st in s.sources.iter() {
        let st = st.lock().expect("status lock");
        if st.failing {
            out.push(format!("source {}: {}", st.name, st.note));
        }
    }
}
