//! Hangup causes ↔ SIP status codes, as FreeSWITCH maps them (RFC 3398
//! for the Q.850 side).

use hotswitch_plugin_api::CallCause;

/// The final response a UAS sends for a call the core ends before answer.
pub fn cause_to_sip(c: CallCause) -> (u16, &'static str) {
    match c {
        CallCause::UNALLOCATED_NUMBER
        | CallCause::NO_ROUTE_TRANSIT_NET
        | CallCause::NO_ROUTE_DESTINATION => (404, "Not Found"),
        CallCause::INVALID_NUMBER_FORMAT => (484, "Address Incomplete"),
        CallCause::USER_BUSY => (486, "Busy Here"),
        CallCause::NO_USER_RESPONSE => (408, "Request Timeout"),
        CallCause::NO_ANSWER | CallCause::SUBSCRIBER_ABSENT | CallCause::NORMAL_UNSPECIFIED => {
            (480, "Temporarily Unavailable")
        }
        CallCause::CALL_REJECTED | CallCause::DECLINE => (603, "Decline"),
        CallCause::NUMBER_CHANGED | CallCause::REDIRECTION_TO_NEW_DESTINATION => (410, "Gone"),
        CallCause::DESTINATION_OUT_OF_ORDER | CallCause::EXCHANGE_ROUTING_ERROR => {
            (502, "Bad Gateway")
        }
        CallCause::FACILITY_REJECTED => (501, "Not Implemented"),
        CallCause::NETWORK_OUT_OF_ORDER
        | CallCause::NORMAL_CIRCUIT_CONGESTION
        | CallCause::NORMAL_TEMPORARY_FAILURE
        | CallCause::SWITCH_CONGESTION
        | CallCause::REQUESTED_CHAN_UNAVAIL
        | CallCause::SERVICE_UNAVAILABLE => (503, "Service Unavailable"),
        CallCause::OUTGOING_CALL_BARRED | CallCause::INCOMING_CALL_BARRED => (403, "Forbidden"),
        CallCause::BEARERCAPABILITY_NOTAUTH
        | CallCause::BEARERCAPABILITY_NOTAVAIL
        | CallCause::BEARERCAPABILITY_NOTIMPL
        | CallCause::INCOMPATIBLE_DESTINATION
        | CallCause::NOT_ACCEPTABLE => (488, "Not Acceptable Here"),
        CallCause::RECOVERY_ON_TIMER_EXPIRE => (504, "Server Time-out"),
        CallCause::ORIGINATOR_CANCEL => (487, "Request Terminated"),
        CallCause::BUSY_EVERYWHERE => (600, "Busy Everywhere"),
        CallCause::DOES_NOT_EXIST_ANYWHERE => (604, "Does Not Exist Anywhere"),
        CallCause::USER_NOT_REGISTERED => (480, "Temporarily Unavailable"),
        _ => (480, "Temporarily Unavailable"),
    }
}

/// The hangup cause of a final failure response to our INVITE.
pub fn sip_to_cause(code: u16) -> CallCause {
    match code {
        401 | 402 | 403 | 407 | 603 => CallCause::CALL_REJECTED,
        404 | 485 | 604 => CallCause::UNALLOCATED_NUMBER,
        408 | 504 => CallCause::RECOVERY_ON_TIMER_EXPIRE,
        410 => CallCause::NUMBER_CHANGED,
        413 | 414 | 416 | 420 | 421 | 423 | 505 | 513 => CallCause::INTERWORKING,
        480 => CallCause::NO_USER_RESPONSE,
        400 | 481 | 500 | 503 => CallCause::NORMAL_TEMPORARY_FAILURE,
        486 | 600 => CallCause::USER_BUSY,
        484 => CallCause::INVALID_NUMBER_FORMAT,
        488 | 606 => CallCause::INCOMPATIBLE_DESTINATION,
        502 => CallCause::NETWORK_OUT_OF_ORDER,
        405 => CallCause::SERVICE_UNAVAILABLE,
        406 | 415 | 501 => CallCause::SERVICE_NOT_IMPLEMENTED,
        482 | 483 => CallCause::EXCHANGE_ROUTING_ERROR,
        487 => CallCause::ORIGINATOR_CANCEL,
        _ => CallCause::NORMAL_UNSPECIFIED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_cancel_map_both_ways() {
        assert_eq!(cause_to_sip(CallCause::USER_BUSY).0, 486);
        assert_eq!(sip_to_cause(486), CallCause::USER_BUSY);
        assert_eq!(cause_to_sip(CallCause::ORIGINATOR_CANCEL).0, 487);
        assert_eq!(sip_to_cause(487), CallCause::ORIGINATOR_CANCEL);
        assert_eq!(sip_to_cause(404), CallCause::UNALLOCATED_NUMBER);
        assert_eq!(cause_to_sip(CallCause::NO_ROUTE_DESTINATION).0, 404);
    }
}
