//! What the modem's result codes mean: which lines end a command, and the
//! hangup cause of each way a call can fail (3GPP TS 27.007).

use hotswitch_plugin_api::CallCause;

pub(super) fn line_is_final(l: &str) -> bool {
    l == "OK"
        || l == "ERROR"
        || l.starts_with("+CME ERROR")
        || l.starts_with("+CMS ERROR")
        || l == "NO CARRIER"
        || l == "BUSY"
        || l == "NO ANSWER"
        || l == "NO DIALTONE"
}

/// A final result for a call that had not been answered.
pub(super) fn cause_of(result: &str) -> CallCause {
    match result {
        "BUSY" => CallCause::USER_BUSY,
        "NO ANSWER" => CallCause::NO_ANSWER,
        "NO CARRIER" => CallCause::NO_USER_RESPONSE,
        "NO DIALTONE" => CallCause::NETWORK_OUT_OF_ORDER,
        r if r.starts_with("+CME ERROR") => cme_cause(r),
        _ => CallCause::NORMAL_TEMPORARY_FAILURE,
    }
}

/// `+CME ERROR: <n>` (3GPP TS 27.007 §9.2) as a hangup cause.
fn cme_cause(r: &str) -> CallCause {
    let n: u32 = r
        .rsplit(':')
        .next()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(100);
    match n {
        10..=18 => CallCause::REQUESTED_CHAN_UNAVAIL, // SIM missing / PIN / PUK
        30 | 31 => CallCause::NETWORK_OUT_OF_ORDER,   // no network service / timeout
        32 => CallCause::OUTGOING_CALL_BARRED,        // emergency calls only
        _ => CallCause::NORMAL_TEMPORARY_FAILURE,
    }
}

/// The quoted or bare fields after `prefix`.
pub(super) fn fields<'a>(line: &'a str, prefix: &str) -> Vec<&'a str> {
    line[prefix.len()..]
        .split(',')
        .map(|f| f.trim().trim_matches('"'))
        .collect()
}
