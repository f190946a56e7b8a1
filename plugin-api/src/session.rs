//! The safe face of sessions for module code: [`Session`] (a borrowed
//! handle), [`OwnedSession`] (a reference the module holds), [`Profile`]
//! (an owned caller profile) and the [`Endpoint`] trait, which
//! [`ModuleContext::add_endpoint`](crate::ModuleContext::add_endpoint) turns
//! into FreeSWITCH's `io_routines` and `state_handler` tables with every
//! callback guarded against panics.

use crate::abi::RStr;
use crate::frame::{FrameBuf, FrameView};
use crate::host::{HostServices, DIRECTION_OUTBOUND};
use crate::interfaces::{CallerProfile, CoreMessage, Dtmf, Frame, OutgoingRequest};
use crate::module::{collect, services, HostError};
use crate::types::{CallCause, ChannelState, KillSignal, MessageId, SessionRef, Status};
use core::ffi::c_void;
use core::marker::PhantomData;
use std::any::Any;

fn svc() -> &'static HostServices {
    services().expect("host services are set before any session exists")
}

fn check(st: Status) -> Result<(), HostError> {
    if st.is_success() {
        Ok(())
    } else {
        Err(HostError(st))
    }
}

/// A session the host lent for the duration of a call into the module:
/// `'a` is that call, so a `Session` cannot be kept past it. To keep a
/// session longer, take a hold with [`Session::hold`] (FreeSWITCH's
/// `switch_core_session_locate`), released when the [`OwnedSession`] drops.
///
/// The handle inside is an id the host checks on every call: a forged or
/// stale one gets an error status, never undefined behaviour.
/// Not `Copy`: what it lends (its private state) is tied to a borrow of
/// it, so copying one out of an [`OwnedSession`] cannot outlive the hold.
#[derive(Debug)]
pub struct Session<'a> {
    raw: SessionRef,
    _call: PhantomData<&'a ()>,
}

impl<'a> Session<'a> {
    /// Wraps a handle the host lent for a call.
    ///
    /// # Safety
    /// The host checks the handle on every use, so a bad one only gets
    /// errors; but [`private`](Session::private) borrows the session's
    /// state for as long as this value lives, so the session must stay
    /// alive that long (true for the call the host lent it to).
    pub unsafe fn from_raw(raw: SessionRef) -> Session<'a> {
        Session {
            raw,
            _call: PhantomData,
        }
    }

    /// Takes a hold on the session, to keep it past this call (FreeSWITCH's
    /// `switch_core_session_locate`); `None` once it is gone.
    pub fn hold(&self) -> Option<OwnedSession> {
        crate::ModuleContext::current().session_locate(&self.uuid())
    }

    /// The host's handle.
    pub fn raw(&self) -> SessionRef {
        self.raw
    }

    /// The session's uuid.
    pub fn uuid(&self) -> String {
        // SAFETY: host function; the stream outlives the call.
        collect(|out| unsafe { (svc().session_uuid)(self.raw, out) }).1
    }

    /// A channel variable or caller-profile field.
    pub fn var(&self, name: &str) -> Option<String> {
        // SAFETY: host function; the stream outlives the call.
        let (st, s) =
            collect(|out| unsafe { (svc().channel_get_variable)(self.raw, RStr::new(name), out) });
        st.is_success().then_some(s)
    }

    /// Sets a channel variable (empty unsets).
    pub fn set_var(&self, name: &str, value: &str) {
        // SAFETY: host function.
        unsafe { (svc().channel_set_variable)(self.raw, RStr::new(name), RStr::new(value)) };
    }

    /// The channel's state.
    pub fn state(&self) -> ChannelState {
        // SAFETY: host function.
        unsafe { (svc().channel_get_state)(self.raw) }
    }

    /// Moves the channel to `state`.
    pub fn set_state(&self, state: ChannelState) -> Result<(), HostError> {
        // SAFETY: host function.
        check(unsafe { (svc().channel_set_state)(self.raw, state) })
    }

    /// True for an outbound channel.
    pub fn is_outbound(&self) -> bool {
        // SAFETY: host function.
        unsafe { (svc().channel_direction)(self.raw) == DIRECTION_OUTBOUND }
    }

    /// Sets the channel's name.
    pub fn set_name(&self, name: &str) {
        // SAFETY: host function.
        unsafe { (svc().channel_set_name)(self.raw, RStr::new(name)) };
    }

    /// Replaces the caller profile.
    pub fn set_profile(&self, p: &Profile) {
        p.with_raw(|raw| {
            // SAFETY: host function; `raw` points into `p` for the call.
            unsafe { (svc().channel_set_caller_profile)(self.raw, raw) };
        })
    }

    /// Hangs up with `cause` (the first hangup wins).
    pub fn hangup(&self, cause: CallCause) {
        // SAFETY: host function.
        unsafe { (svc().channel_hangup)(self.raw, cause) };
    }

    /// True once the call is hanging up or gone.
    pub fn is_down(&self) -> bool {
        // SAFETY: host function.
        unsafe { (svc().channel_is_down)(self.raw) != 0 }
    }

    /// Answers the call.
    pub fn answer(&self) -> Result<(), HostError> {
        // SAFETY: host function.
        check(unsafe { (svc().channel_answer)(self.raw) })
    }

    /// Sends early media.
    pub fn pre_answer(&self) -> Result<(), HostError> {
        // SAFETY: host function.
        check(unsafe { (svc().channel_pre_answer)(self.raw) })
    }

    /// Signals ringing.
    pub fn ring_ready(&self) -> Result<(), HostError> {
        // SAFETY: host function.
        check(unsafe { (svc().channel_ring_ready)(self.raw) })
    }

    /// Records that the far end answered.
    pub fn mark_answered(&self) {
        // SAFETY: host function.
        unsafe { (svc().channel_mark_answered)(self.raw) };
    }

    /// Records early media from the far end.
    pub fn mark_pre_answered(&self) {
        // SAFETY: host function.
        unsafe { (svc().channel_mark_pre_answered)(self.raw) };
    }

    /// Records that the far end rings.
    pub fn mark_ring_ready(&self) {
        // SAFETY: host function.
        unsafe { (svc().channel_mark_ring_ready)(self.raw) };
    }

    /// The far end put the call on hold (`true`) or took it off: the core
    /// fires CHANNEL_HOLD / CHANNEL_UNHOLD, sets the call state HELD and
    /// plays hold music to a bridged party until the hold ends.
    pub fn mark_hold(&self, on: bool) {
        // SAFETY: host function.
        unsafe { (svc().channel_mark_hold)(self.raw, on as u32) };
    }

    /// Lets the session run.
    pub fn start(&self) -> Result<(), HostError> {
        // SAFETY: host function.
        check(unsafe { (svc().session_start)(self.raw) })
    }

    /// Gives the session its endpoint's private state (FreeSWITCH's
    /// `tech_pvt`), once. The host keeps it with the session and drops it
    /// through this module when the session itself goes (after
    /// `on_destroy`, once no [`OwnedSession`] holds it), so it can be
    /// borrowed for as long as the session is lent. Only the module whose
    /// endpoint the session belongs to may attach it; a second attach is
    /// refused and `value` dropped.
    pub fn set_private<T: Any + Send + Sync>(&self, value: T) -> Result<(), HostError> {
        let boxed: Box<PrivateBox> = Box::new(Box::new(value));
        let data = Box::into_raw(boxed) as *mut c_void;
        let module = crate::module::handle();
        // SAFETY: host function; on success the host owns `data` and frees
        // it with `drop_private`.
        let st = unsafe { (svc().session_set_private)(module, self.raw, data, drop_private) };
        if !st.is_success() {
            // SAFETY: refused: `data` is still ours.
            drop(unsafe { Box::from_raw(data as *mut PrivateBox) });
        }
        check(st)
    }

    /// The endpoint's private state attached with [`set_private`]
    /// (`None` when there is none, it is not a `T`, or the session belongs
    /// to another module's endpoint).
    ///
    /// [`set_private`]: Session::set_private
    pub fn private<T: Any + Send + Sync>(&self) -> Option<&T> {
        let module = crate::module::handle();
        // SAFETY: host function.
        let p = unsafe { (svc().session_get_private)(module, self.raw) } as *const PrivateBox;
        // SAFETY: the host hands this module back only what its
        // `set_private` attached, and frees it only when the session is
        // dropped, which cannot happen while `self` lives (lent for a call,
        // or borrowed from an OwnedSession's hold).
        let b: &PrivateBox = unsafe { p.as_ref() }?;
        b.downcast_ref::<T>()
    }

    /// Queues an indication for the session's thread.
    pub fn queue_message(&self, id: MessageId, string_arg: &str, numeric_arg: i64) {
        let m = CoreMessage {
            id,
            from: RStr::EMPTY,
            string_arg: RStr::new(string_arg),
            numeric_arg,
            args: core::ptr::null(),
            arg_count: 0,
        };
        // SAFETY: host function; the host copies the message.
        unsafe { (svc().session_queue_message)(self.raw, &m) };
    }

    /// Runs an application on the session (from its own thread).
    pub fn execute(&self, app: &str, arg: &str) -> Result<(), HostError> {
        self.execute_with_uuid(app, arg, "")
    }

    /// Runs an application, its events carrying `app_uuid` as
    /// Application-UUID (sendmsg's `Event-UUID`).
    pub fn execute_with_uuid(&self, app: &str, arg: &str, app_uuid: &str) -> Result<(), HostError> {
        // SAFETY: host function.
        check(unsafe {
            (svc().session_execute_application)(
                self.raw,
                RStr::new(app),
                RStr::new(arg),
                RStr::new(app_uuid),
            )
        })
    }

    /// The session's channel data, as a CHANNEL_DATA event carries it.
    pub fn channel_data(&self) -> Option<crate::subscription::Item> {
        let mut item = crate::subscription::Item {
            kind: crate::subscription::ItemKind::Event,
            headers: Vec::new(),
            text: String::new(),
        };
        let mut v = crate::host::EventVisitor {
            ctx: &mut item as *mut crate::subscription::Item as *mut c_void,
            begin: crate::subscription::v_begin,
            header: crate::subscription::v_header,
            text: crate::subscription::v_text,
        };
        // SAFETY: host function; `v` and `item` outlive the call.
        let st = unsafe { (svc().session_channel_data)(self.raw, &mut v) };
        st.is_success().then_some(item)
    }

    /// Queues an application to run at the session's next check point;
    /// `app_uuid` (may be empty) becomes its events' Application-UUID.
    pub fn queue_application(
        &self,
        app: &str,
        arg: &str,
        loops: u32,
        app_uuid: &str,
    ) -> Result<(), HostError> {
        // SAFETY: host function.
        check(unsafe {
            (svc().session_queue_application)(
                self.raw,
                RStr::new(app),
                RStr::new(arg),
                loops,
                RStr::new(app_uuid),
            )
        })
    }

    /// Hands the core a digit received from the far end.
    pub fn queue_dtmf(&self, digit: char, duration_ms: u32) {
        let d = Dtmf {
            digit: digit as u32,
            duration_ms,
            source: 3,
        };
        // SAFETY: host function; the host copies the digit.
        unsafe { (svc().channel_queue_dtmf)(self.raw, &d) };
    }

    /// The next received digit, waiting up to `timeout_ms`; `Err` when the
    /// call ended.
    pub fn read_dtmf(&self, timeout_ms: u32) -> Result<Option<char>, HostError> {
        let mut d = Dtmf {
            digit: 0,
            duration_ms: 0,
            source: 0,
        };
        // SAFETY: host function; `d` outlives the call.
        match unsafe { (svc().session_read_dtmf)(self.raw, timeout_ms, &mut d) } {
            Status::SUCCESS => Ok(char::from_u32(d.digit)),
            Status::TIMEOUT => Ok(None),
            st => Err(HostError(st)),
        }
    }

    /// Drops received digits not yet read.
    pub fn flush_dtmf(&self) {
        // SAFETY: host function.
        unsafe { (svc().session_flush_dtmf)(self.raw) };
    }

    /// Expands `${…}` for this session.
    pub fn expand(&self, text: &str) -> String {
        // SAFETY: host function; the stream outlives the call.
        collect(|out| unsafe { (svc().session_expand)(self.raw, RStr::new(text), out) }).1
    }

    /// Originates `dialstring` and bridges to it until the bridge ends:
    /// `Ok(cause the far side ended with)` or `Err(why it failed)`.
    pub fn bridge(&self, dialstring: &str) -> Result<CallCause, CallCause> {
        let mut cause = CallCause::NONE;
        // SAFETY: host function; `cause` outlives the call.
        let st = unsafe { (svc().session_bridge)(self.raw, RStr::new(dialstring), &mut cause) };
        if st.is_success() {
            Ok(cause)
        } else {
            Err(cause)
        }
    }

    /// Plays `path`; see [`HostServices::session_play`].
    pub fn play(&self, path: &str, terminators: &str, flags: u32) -> (Status, Option<char>) {
        let mut digit = 0u32;
        // SAFETY: host function; `digit` outlives the call.
        let st = unsafe {
            (svc().session_play)(
                self.raw,
                RStr::new(path),
                RStr::new(terminators),
                flags,
                &mut digit,
            )
        };
        (st, char::from_u32(digit).filter(|c| *c != '\0'))
    }

    /// Records into `path`; see [`HostServices::session_record`].
    pub fn record(&self, path: &str, limit_secs: u32, terminators: &str) -> (Status, Option<char>) {
        let mut digit = 0u32;
        // SAFETY: host function; `digit` outlives the call.
        let st = unsafe {
            (svc().session_record)(
                self.raw,
                RStr::new(path),
                limit_secs,
                RStr::new(terminators),
                &mut digit,
            )
        };
        (st, char::from_u32(digit).filter(|c| *c != '\0'))
    }

    /// Starts or stops recording both directions into `path`.
    pub fn record_session(&self, path: &str, start: bool) -> Result<(), HostError> {
        // SAFETY: host function.
        check(unsafe { (svc().session_record_session)(self.raw, RStr::new(path), start as u32) })
    }

    /// Parks the session.
    pub fn park(&self) -> Result<(), HostError> {
        // SAFETY: host function.
        check(unsafe { (svc().session_park)(self.raw) })
    }

    /// Sleeps while handling messages; false if interrupted.
    pub fn sleep(&self, ms: u32) -> bool {
        // SAFETY: host function.
        unsafe { (svc().session_sleep)(self.raw, ms) }.is_success()
    }

    /// Sends the call to another extension.
    pub fn transfer(
        &self,
        destination: &str,
        dialplan: &str,
        context: &str,
    ) -> Result<(), HostError> {
        // SAFETY: host function.
        check(unsafe {
            (svc().session_transfer)(
                self.raw,
                RStr::new(destination),
                RStr::new(dialplan),
                RStr::new(context),
            )
        })
    }

    /// Fires an event carrying this channel's data (`event_id` as
    /// [`ModuleContext::fire_event`](crate::ModuleContext::fire_event)'s).
    pub fn fire_event(
        &self,
        event_id: u32,
        subclass: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<(), HostError> {
        // SAFETY: everything the description points at outlives the call.
        crate::module::with_event(event_id, subclass, headers, body, |ev| {
            check(unsafe { (svc().session_fire_event)(self.raw, ev) })
        })
    }

    /// Reads a frame from the session's endpoint into `buf`; the frame
    /// (empty unless `SUCCESS`) views the bytes read.
    pub fn read_frame<'b>(&self, buf: &'b mut [u8], timeout_ms: u32) -> (Status, FrameView<'b>) {
        let mut f = Frame::lending(buf);
        // SAFETY: host function; `f` points at `buf`, which outlives the call.
        let st = unsafe { (svc().session_read_frame)(self.raw, &mut f, timeout_ms) };
        if st != Status::SUCCESS || f.datalen > f.buflen {
            f.datalen = 0;
        }
        // SAFETY: the host wrote `datalen` (at most `buflen`) bytes of `buf`
        // and a static codec name.
        (st, unsafe { FrameView::from_host(&f) })
    }

    /// Sends the caller's audio back until the call ends or moves on (a
    /// transfer, a park): the `echo` application. The switch moves the
    /// frames — for an endpoint that reads without blocking, in its shared
    /// media loop, while this thread sleeps. `SUCCESS` when the echo ended;
    /// `GENERR` when a read failed.
    pub fn echo(&self) -> Status {
        // SAFETY: host function (ABI 6.3; a module built against it is
        // refused by an older host).
        unsafe { (svc().session_echo)(self.raw) }
    }

    /// Writes a frame to the session's endpoint.
    pub fn write_frame(&self, frame: &FrameView) -> Status {
        // SAFETY: host function; the frame and its data outlive the call.
        unsafe { (svc().session_write_frame)(self.raw, frame.raw()) }
    }

    /// Sends a DTMF digit.
    pub fn send_dtmf(&self, digit: char, duration_ms: u32) -> Status {
        let d = Dtmf {
            digit: digit as u32,
            duration_ms,
            source: 4,
        };
        // SAFETY: host function.
        unsafe { (svc().session_send_dtmf)(self.raw, &d) }
    }
}

/// What a session's private state is kept as: `Any`, so that reading it
/// back checks its type.
type PrivateBox = Box<dyn Any + Send + Sync>;

/// The module-side free function handed to the host with private data.
unsafe extern "C" fn drop_private(data: *mut c_void) -> Status {
    crate::module::guard(|| {
        if !data.is_null() {
            // SAFETY: a pointer `set_private` made from a Box<PrivateBox>;
            // the host calls this once.
            drop(unsafe { Box::from_raw(data as *mut PrivateBox) });
        }
        Status::SUCCESS
    })
}

/// A reference to a session the module holds (from `session_request` or
/// `session_locate`); released when dropped.
#[derive(Debug)]
pub struct OwnedSession {
    session: Session<'static>,
}

impl OwnedSession {
    /// Takes over a reference the host handed out.
    ///
    /// # Safety
    /// `raw` must carry a reference this value may release.
    pub unsafe fn from_raw(raw: SessionRef) -> OwnedSession {
        OwnedSession {
            // SAFETY: the hold this value owns keeps the session alive.
            session: unsafe { Session::from_raw(raw) },
        }
    }

    /// Gives the reference up without releasing it (to hand it to the core,
    /// e.g. as `outgoing_channel`'s new session).
    pub fn into_raw(self) -> SessionRef {
        let raw = self.session.raw;
        core::mem::forget(self);
        raw
    }
}

impl core::ops::Deref for OwnedSession {
    type Target = Session<'static>;
    fn deref(&self) -> &Session<'static> {
        &self.session
    }
}

impl Drop for OwnedSession {
    fn drop(&mut self) {
        if let Some(s) = services() {
            // SAFETY: this value owns one reference.
            unsafe { (s.session_release)(self.session.raw) };
        }
    }
}

/// An owned caller profile (the safe form of [`CallerProfile`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Profile {
    pub username: String,
    pub dialplan: String,
    pub caller_id_name: String,
    pub caller_id_number: String,
    pub orig_caller_id_name: String,
    pub orig_caller_id_number: String,
    pub callee_id_name: String,
    pub callee_id_number: String,
    pub network_addr: String,
    pub ani: String,
    pub aniii: String,
    pub rdnis: String,
    pub destination_number: String,
    pub source: String,
    pub context: String,
    pub chan_name: String,
}

impl Profile {
    /// Copies a profile the host lent.
    ///
    /// # Safety
    /// `p`'s strings must be alive.
    pub unsafe fn from_raw(p: &CallerProfile) -> Profile {
        let s = |r: RStr| r.to_str().into_owned();
        Profile {
            username: s(p.username),
            dialplan: s(p.dialplan),
            caller_id_name: s(p.caller_id_name),
            caller_id_number: s(p.caller_id_number),
            orig_caller_id_name: s(p.orig_caller_id_name),
            orig_caller_id_number: s(p.orig_caller_id_number),
            callee_id_name: s(p.callee_id_name),
            callee_id_number: s(p.callee_id_number),
            network_addr: s(p.network_addr),
            ani: s(p.ani),
            aniii: s(p.aniii),
            rdnis: s(p.rdnis),
            destination_number: s(p.destination_number),
            source: s(p.source),
            context: s(p.context),
            chan_name: s(p.chan_name),
        }
    }

    /// Lends a raw view of this profile to `f`.
    pub fn with_raw<R>(&self, f: impl FnOnce(&CallerProfile) -> R) -> R {
        let r = RStr::new;
        let raw = CallerProfile {
            username: r(&self.username),
            dialplan: r(&self.dialplan),
            caller_id_name: r(&self.caller_id_name),
            caller_id_number: r(&self.caller_id_number),
            orig_caller_id_name: r(&self.orig_caller_id_name),
            orig_caller_id_number: r(&self.orig_caller_id_number),
            callee_id_name: r(&self.callee_id_name),
            callee_id_number: r(&self.callee_id_number),
            network_addr: r(&self.network_addr),
            ani: r(&self.ani),
            aniii: r(&self.aniii),
            rdnis: r(&self.rdnis),
            destination_number: r(&self.destination_number),
            source: r(&self.source),
            context: r(&self.context),
            chan_name: r(&self.chan_name),
        };
        f(&raw)
    }
}

/// What the core asks of [`Endpoint::outgoing`] (the safe form of
/// [`OutgoingRequest`]).
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// Everything after `tech/` in the dial string.
    pub dial_data: String,
    /// The profile to clone onto the new leg.
    pub profile: Profile,
    /// The leg's variables (`{}` and `[]` of the dial string).
    pub vars: Vec<(String, String)>,
    /// `sof::*` flags.
    pub flags: u32,
    /// The session originating the call, if any.
    pub originator: Option<Session<'a>>,
}

impl Outgoing<'_> {
    /// A variable of the request.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An indication or message for a session (the safe form of
/// [`CoreMessage`]).
#[derive(Clone, Debug)]
pub struct Message {
    /// Which message.
    pub id: MessageId,
    /// Its string argument.
    pub string_arg: String,
    /// Its numeric argument.
    pub numeric_arg: i64,
}

/// An endpoint written in safe Rust: implement what it does, leave the rest
/// to the defaults (which report success and do nothing).
#[allow(unused_variables)]
pub trait Endpoint: Send + Sync + 'static {
    /// Creates an outbound leg (FreeSWITCH's `outgoing_channel`): request a
    /// session, name it, set its profile and state CS_INIT, and return it.
    fn outgoing(&self, req: &Outgoing) -> Result<OwnedSession, CallCause> {
        Err(CallCause::CHAN_NOT_IMPLEMENTED)
    }
    /// `on_init` … `on_destroy`: run before the core's handler for the state.
    fn on_state(&self, session: &Session, state: ChannelState) -> Status {
        Status::SUCCESS
    }
    /// An indication for the session.
    fn receive_message(&self, session: &Session, msg: &Message) -> Status {
        Status::SUCCESS
    }
    /// Interrupt (`BREAK`) or tear down (`KILL`) the endpoint side.
    fn kill_channel(&self, session: &Session, sig: KillSignal) -> Status {
        Status::SUCCESS
    }
    /// Fills `frame` (its buffer is the host's); with
    /// [`READ_FLAG_NOBLOCK`](crate::READ_FLAG_NOBLOCK) in `flags`, returns
    /// `TIMEOUT` at once when no frame is ready.
    fn read_frame(&self, session: &Session, frame: &mut FrameBuf, flags: u32) -> Status {
        Status::BREAK
    }
    /// Takes a frame towards the far end.
    fn write_frame(&self, session: &Session, frame: &FrameView) -> Status {
        Status::SUCCESS
    }
    /// Sends a digit.
    fn send_dtmf(&self, session: &Session, dtmf: &Dtmf) -> Status {
        Status::SUCCESS
    }
}

/// A handler run for every channel's state changes (after the endpoint's
/// own), e.g. a CDR writer on `REPORTING`. Return `SUCCESS` to let the
/// remaining handlers and the core's run.
pub trait StateHandler: Send + Sync + 'static {
    /// Called as the channel enters `state`.
    fn on_state(&self, session: &Session, state: ChannelState) -> Status;
}

impl<F> StateHandler for F
where
    F: Fn(&Session, ChannelState) -> Status + Send + Sync + 'static,
{
    fn on_state(&self, session: &Session, state: ChannelState) -> Status {
        self(session, state)
    }
}

/// An endpoint that only handles states: what a global handler looks like
/// to the trampolines.
pub(crate) struct HandlerOnly<H: StateHandler>(pub H);

impl<H: StateHandler> Endpoint for HandlerOnly<H> {
    fn on_state(&self, session: &Session, state: ChannelState) -> Status {
        self.0.on_state(session, state)
    }
}

/// The state-handler table whose every member calls `E::on_state`.
pub(crate) fn state_table<E: Endpoint>() -> crate::interfaces::StateHandlers {
    use trampolines as t;
    crate::interfaces::StateHandlers {
        on_init: Some(t::on_init::<E>),
        on_routing: Some(t::on_routing::<E>),
        on_execute: Some(t::on_execute::<E>),
        on_hangup: Some(t::on_hangup::<E>),
        on_exchange_media: Some(t::on_exchange_media::<E>),
        on_soft_execute: Some(t::on_soft_execute::<E>),
        on_consume_media: Some(t::on_consume_media::<E>),
        on_hibernate: Some(t::on_hibernate::<E>),
        on_reset: Some(t::on_reset::<E>),
        on_park: Some(t::on_park::<E>),
        on_reporting: Some(t::on_reporting::<E>),
        on_destroy: Some(t::on_destroy::<E>),
    }
}

pub(crate) mod trampolines {
    use super::*;
    use crate::module::{guard, guard_or};

    unsafe fn ep<'a, E: Endpoint>(ud: *mut c_void) -> &'a E {
        &*(ud as *const E)
    }

    pub unsafe extern "C" fn outgoing<E: Endpoint>(
        ud: *mut c_void,
        req: *const OutgoingRequest,
        new_session: *mut SessionRef,
    ) -> CallCause {
        let _entry = crate::alloc::enter("outgoing_channel");
        guard_or(CallCause::CRASH, || {
            let Some(r) = req.as_ref() else {
                return CallCause::INVALID_MSG_UNSPECIFIED;
            };
            let vars = if r.vars.is_null() {
                Vec::new()
            } else {
                core::slice::from_raw_parts(r.vars, r.var_count)
                    .iter()
                    .map(|kv| (kv.key.to_str().into_owned(), kv.value.to_str().into_owned()))
                    .collect()
            };
            let o = Outgoing {
                dial_data: r.dial_data.to_str().into_owned(),
                profile: r
                    .profile
                    .as_ref()
                    .map(|p| Profile::from_raw(p))
                    .unwrap_or_default(),
                vars,
                flags: r.flags,
                originator: (!r.originator.is_null())
                    .then(|| unsafe { Session::from_raw(r.originator) }),
            };
            match ep::<E>(ud).outgoing(&o) {
                Ok(s) => {
                    *new_session = s.into_raw();
                    CallCause::SUCCESS
                }
                Err(c) => c,
            }
        })
    }

    pub unsafe extern "C" fn read_frame<E: Endpoint>(
        ud: *mut c_void,
        s: SessionRef,
        f: *mut Frame,
        flags: u32,
    ) -> Status {
        let _entry = crate::alloc::enter("read_frame");
        guard(|| match f.as_mut() {
            // SAFETY: the host lends `buflen` writable bytes at `data`.
            Some(f) => ep::<E>(ud).read_frame(
                &unsafe { Session::from_raw(s) },
                &mut unsafe { FrameBuf::new(f) },
                flags,
            ),
            None => Status::FALSE,
        })
    }

    pub unsafe extern "C" fn write_frame<E: Endpoint>(
        ud: *mut c_void,
        s: SessionRef,
        f: *const Frame,
        _flags: u32,
    ) -> Status {
        let _entry = crate::alloc::enter("write_frame");
        guard(|| match f.as_ref() {
            // SAFETY: the host's frame and its data live for the call.
            Some(f) => ep::<E>(ud).write_frame(&unsafe { Session::from_raw(s) }, &unsafe {
                FrameView::from_host(f)
            }),
            None => Status::FALSE,
        })
    }

    pub unsafe extern "C" fn kill_channel<E: Endpoint>(
        ud: *mut c_void,
        s: SessionRef,
        sig: KillSignal,
    ) -> Status {
        let _entry = crate::alloc::enter("kill_channel");
        guard(|| ep::<E>(ud).kill_channel(&unsafe { Session::from_raw(s) }, sig))
    }

    pub unsafe extern "C" fn send_dtmf<E: Endpoint>(
        ud: *mut c_void,
        s: SessionRef,
        d: *const Dtmf,
    ) -> Status {
        let _entry = crate::alloc::enter("send_dtmf");
        guard(|| match d.as_ref() {
            Some(d) => ep::<E>(ud).send_dtmf(&unsafe { Session::from_raw(s) }, d),
            None => Status::FALSE,
        })
    }

    pub unsafe extern "C" fn receive_message<E: Endpoint>(
        ud: *mut c_void,
        s: SessionRef,
        m: *const CoreMessage,
    ) -> Status {
        let _entry = crate::alloc::enter("receive_message");
        guard(|| match m.as_ref() {
            Some(m) => ep::<E>(ud).receive_message(
                &unsafe { Session::from_raw(s) },
                &Message {
                    id: m.id,
                    string_arg: m.string_arg.to_str().into_owned(),
                    numeric_arg: m.numeric_arg,
                },
            ),
            None => Status::FALSE,
        })
    }

    macro_rules! state_fn {
        ($name:ident, $state:expr) => {
            pub unsafe extern "C" fn $name<E: Endpoint>(ud: *mut c_void, s: SessionRef) -> Status {
                let _entry = crate::alloc::enter(stringify!($name));
                guard(|| ep::<E>(ud).on_state(&unsafe { Session::from_raw(s) }, $state))
            }
        };
    }
    state_fn!(on_init, ChannelState::INIT);
    state_fn!(on_routing, ChannelState::ROUTING);
    state_fn!(on_execute, ChannelState::EXECUTE);
    state_fn!(on_hangup, ChannelState::HANGUP);
    state_fn!(on_exchange_media, ChannelState::EXCHANGE_MEDIA);
    state_fn!(on_soft_execute, ChannelState::SOFT_EXECUTE);
    state_fn!(on_consume_media, ChannelState::CONSUME_MEDIA);
    state_fn!(on_hibernate, ChannelState::HIBERNATE);
    state_fn!(on_reset, ChannelState::RESET);
    state_fn!(on_park, ChannelState::PARK);
    state_fn!(on_reporting, ChannelState::REPORTING);
    state_fn!(on_destroy, ChannelState::DESTROY);
}
