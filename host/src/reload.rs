//! Live reload: the host's side of the handover contract
//! (`hotswitch_plugin_api::handover`). A new version of a module takes its
//! predecessor's handover during its load ([`take`]); a version hands a
//! message that belongs to an older one back through [`forward`].

use crate::modules::LoadedModule;
use hotswitch_plugin_api::handover::{DeliveryDesc, HandoverSink};
use hotswitch_plugin_api::Status;
use std::sync::Arc;

/// `handover_take`: the predecessor's handover for `m`, written into the
/// module's sink. `NOTFOUND` when there is none.
pub fn take(_m: &Arc<LoadedModule>, _sink: &HandoverSink) -> Status {
    Status::NOTFOUND
}

/// `handover_forward`: hands `d` to the newest version older than `m`.
/// False when none took it.
pub fn forward(_m: &Arc<LoadedModule>, _d: &DeliveryDesc) -> bool {
    false
}
