//! The module side of the boundary: the descriptor a module exports, the
//! [`declare_module!`](crate::declare_module) macro that writes it, and
//! [`ModuleContext`], the safe face of the host's services.
//!
//! Everything the macro generates catches panics: a panic inside any
//! function the host calls becomes [`Status::PANIC`], its message goes to
//! the host's log with the module's name, and the host marks the module
//! faulted instead of dying.

use crate::abi::RStr;
use crate::abi_struct;
use crate::host::{EventDesc, HostServices, OutStream};
use crate::interfaces::{
    ApiInterface, ApplicationInterface, ChatInterface, ChatMessage, EndpointInterface,
};
use crate::session::{trampolines, Endpoint, OwnedSession, Session};
use crate::sync::Mutex;
use crate::types::{InterfaceKind, KeyValue, LogLevel, ModuleHandle, SessionRef, Status};
use core::ffi::c_void;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// A module's own load or unload function, as `declare_module!` takes it.
pub type ModuleFn = fn(&ModuleContext) -> Result<(), ModuleError>;

/// How the record that carries a failed load's [`ModuleError`] begins (the
/// host reports the rest as the reason).
pub const LOAD_FAILED: &str = "load failed: ";

/// Why a module's load or unload failed: what the switch shows in its
/// `load` reply (`module load routine returned an error: …`) and logs.
/// `?` turns a `String`, a `&str` or a [`HostError`] into one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleError {
    /// Its configuration is missing or wrong.
    Config(String),
    /// Something it needs (a port, a device, a file) is not available.
    Resource(String),
    /// The host refused a service call.
    Host(HostError),
    /// Anything else.
    Other(String),
}

impl std::fmt::Display for ModuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModuleError::Config(m) => write!(f, "configuration: {m}"),
            ModuleError::Resource(m) => write!(f, "resource: {m}"),
            ModuleError::Host(e) => write!(f, "{e}"),
            ModuleError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ModuleError {}

impl From<String> for ModuleError {
    fn from(m: String) -> Self {
        ModuleError::Other(m)
    }
}

impl From<&str> for ModuleError {
    fn from(m: &str) -> Self {
        ModuleError::Other(m.to_string())
    }
}

impl From<crate::config::ConfigError> for ModuleError {
    fn from(e: crate::config::ConfigError) -> Self {
        ModuleError::Config(e.0)
    }
}

impl From<HostError> for ModuleError {
    fn from(e: HostError) -> Self {
        ModuleError::Host(e)
    }
}

/// What a module's load returns: `Result<S, ModuleError>`, where `S` is
/// the module's state — kept for the module while it is loaded, handed to
/// its entries by [`ModuleContext::state`], dropped after its unload
/// (`()` for a module without one).
pub trait LoadOutcome {
    /// The state to keep, or the load's error.
    fn into_state(self) -> Result<Arc<dyn Any + Send + Sync>, ModuleError>;
}

impl<S: Any + Send + Sync> LoadOutcome for Result<S, ModuleError> {
    fn into_state(self) -> Result<Arc<dyn Any + Send + Sync>, ModuleError> {
        self.map(|s| Arc::new(s) as Arc<dyn Any + Send + Sync>)
    }
}

/// `module_load`: called once, on a host thread, with the host's services.
pub type ModuleLoadFn =
    unsafe extern "C" fn(services: *const HostServices, module: ModuleHandle) -> Status;
/// `module_shutdown`: the last call before the library is closed.
pub type ModuleUnloadFn = unsafe extern "C" fn() -> Status;
/// `module_runtime`: called in a loop on its own host thread until it returns
/// `TERM` or the module is being unloaded.
pub type ModuleRuntimeFn = unsafe extern "C" fn() -> Status;

abi_struct! {
    /// What a module is: FreeSWITCH's `switch_loadable_module_function_table`
    /// plus a name, version and description.
    pub struct ModuleDescriptor {
        /// `mod_x`.
        pub name: RStr,
        /// The module's own version.
        pub version: RStr,
        /// One line for `show modules`.
        pub description: RStr,
        /// Called once at load.
        pub load: ModuleLoadFn,
        /// Called once before the library is closed.
        pub unload: Option<ModuleUnloadFn>,
        /// Run in a loop on its own thread while loaded.
        pub runtime: Option<ModuleRuntimeFn>,
        /// `MODULE_FLAG_*` bits; the others are reserved, zero.
        pub flags: u32,
        /// The module's live-reload contract (null: none; then a busy
        /// module is not reloaded). Read only from a module of minor 2 or
        /// later. (ABI 6.2)
        [since 2]
        pub handover: *const crate::handover::HandoverTable,
    }
}

/// [`ModuleDescriptor::flags`]: a panic in one of this module's callbacks
/// leaves its other calls sound. The host then ends only the call that
/// panicked (and hangs up its session with `CRASH`) instead of faulting the
/// module and hanging up all its sessions. `declare_module!`'s
/// `panic_safe: true` sets it.
pub const MODULE_FLAG_PANIC_SAFE: u32 = 1;

/// [`ModuleDescriptor::flags`]: every endpoint of this module returns at
/// once from `read_frame` when given
/// [`READ_FLAG_NOBLOCK`](crate::READ_FLAG_NOBLOCK) (it never waits there
/// for a frame, a lock held across network waits, or a device), and its
/// `read_frame` and `write_frame` may run on any host thread. The core may
/// then serve this module's bridged legs from its shared media loop — a
/// few threads that wake every 20 ms and move every ready frame of many
/// legs — instead of a thread that wakes for each packet of each leg.
/// A module without it keeps a thread per bridged leg. An older host
/// ignores the bit. `declare_module!`'s `noblock_read: true` sets it.
pub const MODULE_FLAG_NOBLOCK_READ: u32 = 2;

// Static data: the descriptor never changes after the macro writes it.
unsafe impl Sync for ModuleDescriptor {}

static SERVICES: AtomicPtr<HostServices> = AtomicPtr::new(core::ptr::null_mut());
static HANDLE: AtomicU64 = AtomicU64::new(0);
static NAME: OnceLock<&'static str> = OnceLock::new();
/// The state the module's load returned, handed to its entries by
/// [`ModuleContext::state`] and dropped after its unload.
static STATE: Mutex<Option<Arc<dyn Any + Send + Sync>>> = Mutex::new(None);
/// Closures registered as interfaces, kept alive until the module unloads.
static KEEP: Mutex<Vec<Box<dyn Any + Send + Sync>>> = Mutex::new(Vec::new());

/// Runs `f`, turning a panic into `default`.
///
/// ```
/// use hotswitch_plugin_api::{module::guard_or, Status};
/// assert_eq!(guard_or(Status::PANIC, || Status::SUCCESS), Status::SUCCESS);
/// ```
pub fn guard_or<T>(default: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(default)
}

/// Runs `f`, turning a panic into [`Status::PANIC`].
pub fn guard(f: impl FnOnce() -> Status) -> Status {
    guard_or(Status::PANIC, f)
}

pub(crate) fn services() -> Option<&'static HostServices> {
    // SAFETY: the host keeps its services table alive for as long as this
    // library is loaded; the pointer is only ever set by `__load`.
    unsafe { SERVICES.load(Ordering::Acquire).as_ref() }
}

pub(crate) fn handle() -> ModuleHandle {
    ModuleHandle {
        id: HANDLE.load(Ordering::Acquire),
    }
}

/// Writes one record to the host's log (what the forwarding logger uses).
fn host_log(level: LogLevel, target: &str, message: &str, file: &str, line: u32) {
    if let Some(s) = services() {
        // SAFETY: host function from the live services table; all views are
        // of locals that outlive the call.
        unsafe {
            (s.log)(
                handle(),
                level,
                RStr::new(target),
                RStr::new(message),
                RStr::new(file),
                line,
            )
        }
    }
}

/// The `log` backend every module gets: records go to the host's logger,
/// tagged with the module's name. (Each module has its own copy of `log`,
/// so without this its `log::info!` would reach nothing.)
struct ForwardLogger;

impl log::Log for ForwardLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        match services() {
            // SAFETY: host function from the live services table.
            Some(s) => (metadata.level() as u32) <= unsafe { (s.log_level)() }.0,
            None => false,
        }
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let owned;
        let message = match record.args().as_str() {
            Some(s) => s,
            None => {
                owned = record.args().to_string();
                &owned
            }
        };
        host_log(
            LogLevel::from_log(record.level()),
            record.target(),
            message,
            record.file().unwrap_or(""),
            record.line().unwrap_or(0),
        );
    }

    fn flush(&self) {}
}

static LOGGER: ForwardLogger = ForwardLogger;

/// The load trampoline `declare_module!` generates. Not for direct use.
///
/// # Safety
/// Called by the host only, with its live services table.
#[doc(hidden)]
pub unsafe fn __load<R: LoadOutcome>(
    services: *const HostServices,
    module: ModuleHandle,
    name: &'static str,
    load: fn(&ModuleContext) -> R,
) -> Status {
    SERVICES.store(services as *mut HostServices, Ordering::Release);
    HANDLE.store(module.id, Ordering::Release);
    let _ = NAME.set(name);
    let _entry = crate::alloc::enter("load");
    guard(|| {
        let _ = log::set_logger(&LOGGER);
        log::set_max_level(log::LevelFilter::Trace);
        // This hook belongs to this module's own copy of std: it reports
        // panics through the host's log, and (unlike std's default hook)
        // never touches the thread's identity, which would leave a
        // destructor pointing into this library after it is closed.
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(non-string panic payload)");
            let (file, line) = info
                .location()
                .map(|l| (l.file(), l.line()))
                .unwrap_or(("", 0));
            host_log(
                LogLevel::ERROR,
                name,
                &format!("module {name} panicked at {file}:{line}: {msg}"),
                file,
                line,
            );
        }));
        match load(&ModuleContext { _private: () }).into_state() {
            Ok(state) => {
                *STATE.lock() = Some(state);
                Status::SUCCESS
            }
            Err(e) => {
                // The host takes this record as the reason it reports.
                log::error!("{LOAD_FAILED}{e}");
                Status::GENERR
            }
        }
    })
}

/// The unload trampoline `declare_module!` generates. Not for direct use.
#[doc(hidden)]
pub fn __unload(unload: Option<ModuleFn>) -> Status {
    let _entry = crate::alloc::enter("unload");
    let status = guard(|| match unload {
        Some(f) => match f(&ModuleContext { _private: () }) {
            Ok(()) => Status::SUCCESS,
            Err(e) => {
                log::error!("unload failed: {e}");
                Status::GENERR
            }
        },
        None => Status::SUCCESS,
    });
    // Drop every interface closure now, while this library's code is still
    // mapped; the host holds none of them.
    let kept = guard_or(Vec::new(), || std::mem::take(&mut *KEEP.lock()));
    let state = guard_or(None, || STATE.lock().take());
    let dropped = guard(|| {
        drop(state);
        drop(kept);
        // The hook `__load` installed is a heap allocation in this module's
        // std; statics are never dropped, so free it before the library goes.
        drop(std::panic::take_hook());
        Status::SUCCESS
    });
    if status.is_success() {
        dropped
    } else {
        status
    }
}

/// The runtime trampoline `declare_module!` generates. Not for direct use.
#[doc(hidden)]
pub fn __runtime(runtime: fn(&ModuleContext) -> Status) -> Status {
    let _entry = crate::alloc::enter("runtime");
    guard(|| runtime(&ModuleContext { _private: () }))
}

/// A host-owned output stream: what an api command writes its reply into.
///
/// ```
/// use std::fmt::Write;
/// # use hotswitch_plugin_api::Stream;
/// fn reply(out: &mut Stream, name: &str) {
///     let _ = writeln!(out, "+OK hello {name}");
/// }
/// ```
pub struct Stream {
    raw: *mut OutStream,
}

impl Stream {
    /// Wraps a stream the host handed over.
    ///
    /// # Safety
    /// `raw` must be a live host stream (or null, which discards output).
    pub unsafe fn from_raw(raw: *mut OutStream) -> Stream {
        Stream { raw }
    }
}

impl std::fmt::Write for Stream {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        // SAFETY: `from_raw`'s contract.
        unsafe { OutStream::write_str(self.raw, s) };
        Ok(())
    }
}

/// A module's view of the host: register interfaces, read configuration,
/// fire events, run api commands. Handed to the module's load, unload and
/// runtime functions.
pub struct ModuleContext {
    _private: (),
}

/// Why a host service refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError(pub Status);

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "host refused: {:?}", self.0)
    }
}

impl std::error::Error for HostError {}

fn check(status: Status) -> Result<(), HostError> {
    if status.is_success() {
        Ok(())
    } else {
        Err(HostError(status))
    }
}

fn keep<T: Send + Sync + 'static>(value: T) -> *mut c_void {
    let boxed = Box::new(value);
    let ptr = &*boxed as *const T as *mut c_void;
    KEEP.lock().push(boxed);
    ptr
}

pub(crate) unsafe extern "C" fn collect_into_string(ctx: *mut c_void, text: RStr) {
    let s = &mut *(ctx as *mut String);
    s.push_str(&text.to_str());
}

/// Runs `f` with a host stream that collects into a `String`.
pub(crate) fn collect<R>(f: impl FnOnce(*mut OutStream) -> R) -> (R, String) {
    let mut text = String::new();
    let mut out = OutStream {
        ctx: &mut text as *mut String as *mut c_void,
        write: collect_into_string,
    };
    let r = f(&mut out);
    (r, text)
}

/// Borrowed views of `pairs`, for a call that lends them to the host.
pub(crate) fn key_values<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Vec<KeyValue> {
    pairs
        .iter()
        .map(|(k, v)| KeyValue {
            key: RStr::new(k.as_ref()),
            value: RStr::new(v.as_ref()),
        })
        .collect()
}

/// Runs `f` with an event description lent to the host for the call.
pub(crate) fn with_event<R>(
    event_id: u32,
    subclass: &str,
    headers: &[(&str, &str)],
    body: &str,
    f: impl FnOnce(&EventDesc) -> R,
) -> R {
    let kv = key_values(headers);
    let ev = EventDesc {
        event_id,
        subclass: RStr::new(subclass),
        headers: kv.as_ptr(),
        header_count: kv.len(),
        body: RStr::new(body),
    };
    f(&ev)
}

unsafe extern "C" fn api_trampoline<F>(
    user_data: *mut c_void,
    args: RStr,
    _session: SessionRef,
    out: *mut OutStream,
) -> Status
where
    F: Fn(&str, &mut Stream) + Send + Sync + 'static,
{
    let _entry = crate::alloc::enter("api");
    guard(|| {
        let f = &*(user_data as *const F);
        let mut stream = Stream::from_raw(out);
        f(&args.to_str(), &mut stream);
        Status::SUCCESS
    })
}

unsafe extern "C" fn app_trampoline<F>(
    user_data: *mut c_void,
    session: SessionRef,
    data: RStr,
) -> Status
where
    F: Fn(Session, &str) + Send + Sync + 'static,
{
    let _entry = crate::alloc::enter("application");
    guard(|| {
        let f = &*(user_data as *const F);
        // SAFETY: the host lends the session for this call.
        f(unsafe { Session::from_raw(session) }, &data.to_str());
        Status::SUCCESS
    })
}

unsafe extern "C" fn chat_trampoline<F>(user_data: *mut c_void, msg: *const ChatMessage) -> Status
where
    F: Fn(&Chat) -> Status + Send + Sync + 'static,
{
    let _entry = crate::alloc::enter("chat_send");
    guard(|| {
        let f = &*(user_data as *const F);
        let Some(m) = msg.as_ref() else {
            return Status::FALSE;
        };
        let headers = if m.headers.is_null() {
            Vec::new()
        } else {
            core::slice::from_raw_parts(m.headers, m.header_count)
                .iter()
                .map(|kv| (kv.key.to_str().into_owned(), kv.value.to_str().into_owned()))
                .collect()
        };
        f(&Chat {
            proto: m.proto.to_str().into_owned(),
            from: m.from.to_str().into_owned(),
            to: m.to.to_str().into_owned(),
            subject: m.subject.to_str().into_owned(),
            body: m.body.to_str().into_owned(),
            hint: m.hint.to_str().into_owned(),
            headers,
        })
    })
}

/// A text message, owned (the safe form of [`ChatMessage`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chat {
    /// Protocol (`sip`, `gsmopen`, `verto`).
    pub proto: String,
    /// Sender.
    pub from: String,
    /// Recipient.
    pub to: String,
    /// Subject, often empty.
    pub subject: String,
    /// The text.
    pub body: String,
    /// Routing hint.
    pub hint: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

impl ModuleContext {
    /// The context of the running module (for code that was not handed one,
    /// such as an endpoint's callbacks).
    pub fn current() -> ModuleContext {
        ModuleContext { _private: () }
    }

    fn svc(&self) -> Result<&'static HostServices, HostError> {
        services().ok_or(HostError(Status::GENERR))
    }

    /// The state the module's load returned (see [`LoadOutcome`]), if it
    /// is of type `S`: what its api commands, applications, endpoints and
    /// runtime use instead of statics. `None` before load has returned
    /// (an entry the host calls while load still runs) and after unload.
    ///
    /// ```no_run
    /// use hotswitch_plugin_api::{ModuleContext, ModuleError};
    /// use std::fmt::Write;
    /// struct Hello { greeting: String }
    /// fn load(m: &ModuleContext) -> Result<Hello, ModuleError> {
    ///     m.add_api("hello", "Say hello", "hello", |_, out| {
    ///         if let Some(h) = ModuleContext::current().state::<Hello>() {
    ///             let _ = writeln!(out, "+OK {}", h.greeting);
    ///         }
    ///     })?;
    ///     Ok(Hello { greeting: "hi".into() })
    /// }
    /// ```
    pub fn state<S: Any + Send + Sync>(&self) -> Option<Arc<S>> {
        let st = STATE.lock().clone()?;
        st.downcast::<S>().ok()
    }

    /// The module's name (as declared).
    pub fn name(&self) -> &'static str {
        NAME.get().copied().unwrap_or("")
    }

    /// Registers an api command: `f(args, out)` writes its reply.
    ///
    /// ```no_run
    /// use std::fmt::Write;
    /// # fn load(m: &hotswitch_plugin_api::ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    /// m.add_api("hello", "Say hello", "hello [name]", |args, out| {
    ///     let _ = writeln!(out, "+OK hello {}", if args.is_empty() { "world" } else { args });
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_api<F>(
        &self,
        name: &str,
        description: &str,
        syntax: &str,
        f: F,
    ) -> Result<(), HostError>
    where
        F: Fn(&str, &mut Stream) + Send + Sync + 'static,
    {
        let s = self.svc()?;
        let iface = ApiInterface {
            name: RStr::new(name),
            description: RStr::new(description),
            syntax: RStr::new(syntax),
            user_data: keep(f),
            func: api_trampoline::<F>,
        };
        // SAFETY: the host copies the interface during the call.
        check(unsafe { (s.register_api)(handle(), &iface) })
    }

    /// Registers a dialplan application: `f(session, data)` runs it.
    pub fn add_application<F>(
        &self,
        name: &str,
        description: &str,
        syntax: &str,
        flags: u32,
        f: F,
    ) -> Result<(), HostError>
    where
        F: Fn(Session, &str) + Send + Sync + 'static,
    {
        let s = self.svc()?;
        let iface = ApplicationInterface {
            name: RStr::new(name),
            description: RStr::new(description),
            syntax: RStr::new(syntax),
            flags,
            user_data: keep(f),
            func: app_trampoline::<F>,
        };
        // SAFETY: the host copies the interface during the call.
        check(unsafe { (s.register_application)(handle(), &iface) })
    }

    /// Registers a chat protocol: `f(message)` sends a message.
    pub fn add_chat<F>(&self, proto: &str, f: F) -> Result<(), HostError>
    where
        F: Fn(&Chat) -> Status + Send + Sync + 'static,
    {
        let s = self.svc()?;
        #[allow(clippy::needless_update)]
        let iface = ChatInterface {
            name: RStr::new(proto),
            user_data: keep(f),
            send: chat_trampoline::<F>,
            #[cfg(feature = "test-skew-layout")]
            skew: 0,
        };
        // SAFETY: the host copies the interface during the call.
        check(unsafe { (s.register_chat)(handle(), &iface) })
    }

    /// Registers an endpoint from its raw tables. The endpoint's callbacks
    /// must catch their own panics (use [`guard`] / [`guard_or`]).
    pub fn add_endpoint_raw(&self, iface: &EndpointInterface) -> Result<(), HostError> {
        let s = self.svc()?;
        // SAFETY: the host copies the interface during the call.
        check(unsafe { (s.register_endpoint)(handle(), iface) })
    }

    /// Registers an endpoint written against the [`Endpoint`] trait; every
    /// callback is guarded against panics.
    pub fn add_endpoint<E: Endpoint>(&self, name: &str, endpoint: E) -> Result<(), HostError> {
        use crate::interfaces::IoRoutines;
        use trampolines as t;
        let iface = EndpointInterface {
            name: RStr::new(name),
            user_data: keep(endpoint),
            io: IoRoutines {
                outgoing_channel: Some(t::outgoing::<E>),
                read_frame: Some(t::read_frame::<E>),
                write_frame: Some(t::write_frame::<E>),
                kill_channel: Some(t::kill_channel::<E>),
                send_dtmf: Some(t::send_dtmf::<E>),
                receive_message: Some(t::receive_message::<E>),
                receive_event: None,
                state_change: None,
                state_run: None,
            },
            state: crate::session::state_table::<E>(),
        };
        self.add_endpoint_raw(&iface)
    }

    /// Adds a handler run for every channel's state changes; returns its id
    /// (it is removed at unload anyway).
    pub fn add_state_handler<H: crate::session::StateHandler>(
        &self,
        h: H,
    ) -> Result<u64, HostError> {
        use crate::session::HandlerOnly;
        let s = self.svc()?;
        let table = crate::session::state_table::<HandlerOnly<H>>();
        let ud = keep(HandlerOnly(h));
        // SAFETY: host function; the table is copied, `ud` lives until unload.
        let id = unsafe { (s.add_state_handler)(handle(), &table, ud) };
        if id == 0 {
            Err(HostError(Status::GENERR))
        } else {
            Ok(id)
        }
    }

    /// Creates a session on this module's endpoint `endpoint`.
    pub fn session_request(
        &self,
        endpoint: &str,
        outbound: bool,
    ) -> Result<OwnedSession, HostError> {
        let s = self.svc()?;
        let mut raw = SessionRef::NULL;
        let dir = if outbound {
            crate::host::DIRECTION_OUTBOUND
        } else {
            crate::host::DIRECTION_INBOUND
        };
        // SAFETY: host function; `raw` receives one reference.
        check(unsafe { (s.session_request)(handle(), RStr::new(endpoint), dir, &mut raw) })?;
        // SAFETY: the host handed us one reference.
        Ok(unsafe { OwnedSession::from_raw(raw) })
    }

    /// Opens an event/log subscription with a queue of `capacity` items.
    pub fn subscribe(&self, capacity: u32) -> Result<crate::subscription::Subscription, HostError> {
        let s = self.svc()?;
        // SAFETY: host function.
        let id = unsafe { (s.event_subscribe)(handle(), capacity) };
        if id == 0 {
            return Err(HostError(Status::GENERR));
        }
        Ok(crate::subscription::Subscription {
            id,
            module: handle(),
        })
    }

    /// Finds a session by uuid.
    pub fn session_locate(&self, uuid: &str) -> Option<OwnedSession> {
        let s = self.svc().ok()?;
        let mut raw = SessionRef::NULL;
        // SAFETY: host function; `raw` receives one reference.
        let st = unsafe { (s.session_locate)(handle(), RStr::new(uuid), &mut raw) };
        // SAFETY: on success the host handed us one reference.
        st.is_success()
            .then(|| unsafe { OwnedSession::from_raw(raw) })
    }

    /// Removes one of this module's interfaces.
    pub fn remove_interface(&self, kind: InterfaceKind, name: &str) -> Result<(), HostError> {
        let s = self.svc()?;
        // SAFETY: host function; the view outlives the call.
        check(unsafe { (s.unregister_interface)(handle(), kind, RStr::new(name)) })
    }

    /// The XML text of configuration section `name` (e.g. `skel.conf`), read
    /// fresh from the host's configuration.
    pub fn config_section(&self, name: &str) -> Option<String> {
        let s = self.svc().ok()?;
        // SAFETY: the stream and its string outlive the call.
        let (st, text) =
            collect(|out| unsafe { (s.config_section)(handle(), RStr::new(name), out) });
        st.is_success().then_some(text)
    }

    /// Configuration section `name` (e.g. `skel.conf`) as a parsed tree
    /// whose root is its `<configuration>` element: `Ok(None)` when the
    /// configuration has no such section, an error naming the byte where
    /// its XML is broken. Read fresh from the host each call; the tree is
    /// the module's own (see [`config`](crate::config)).
    ///
    /// ```no_run
    /// # fn load(m: &hotswitch_plugin_api::ModuleContext) -> Result<(), hotswitch_plugin_api::ModuleError> {
    /// let greeting = m
    ///     .config("skel.conf")?
    ///     .and_then(|c| Some(c.child("settings")?.param("greeting")?.to_string()))
    ///     .unwrap_or_else(|| "hello".into());
    /// # Ok(())
    /// # }
    /// ```
    pub fn config(
        &self,
        name: &str,
    ) -> Result<Option<crate::config::Element>, crate::config::ConfigError> {
        self.config_section(name)
            .map(|text| crate::config::Element::parse(&text))
            .transpose()
    }

    /// Fires an event: `event_id` is FreeSWITCH's number, named by
    /// [`EventId`](crate::EventId) (`EventId::CUSTOM.id()`, with a
    /// `subclass`).
    pub fn fire_event(
        &self,
        event_id: u32,
        subclass: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<(), HostError> {
        let s = self.svc()?;
        // SAFETY: everything the description points at outlives the call.
        with_event(event_id, subclass, headers, body, |ev| {
            check(unsafe { (s.fire_event)(handle(), ev) })
        })
    }

    /// Runs an api command and returns its output.
    pub fn execute_api(&self, command: &str, args: &str) -> Result<String, HostError> {
        let s = self.svc()?;
        // SAFETY: the stream and its string outlive the call.
        let (st, text) = collect(|out| unsafe {
            (s.execute_api)(
                handle(),
                RStr::new(command),
                RStr::new(args),
                SessionRef::NULL,
                out,
            )
        });
        check(st).map(|()| text)
    }

    /// Sends a text message through whichever module serves `chat.proto`.
    pub fn send_chat(&self, chat: &Chat) -> Result<(), HostError> {
        let s = self.svc()?;
        let kv = key_values(&chat.headers);
        let m = ChatMessage {
            proto: RStr::new(&chat.proto),
            from: RStr::new(&chat.from),
            to: RStr::new(&chat.to),
            subject: RStr::new(&chat.subject),
            body: RStr::new(&chat.body),
            hint: RStr::new(&chat.hint),
            headers: kv.as_ptr(),
            header_count: kv.len(),
        };
        // SAFETY: everything the message points at outlives the call.
        check(unsafe { (s.send_chat)(handle(), &m) })
    }

    /// Whether the core takes new sessions (`outbound`: placed by the
    /// switch; else calls coming in): false while that direction is paused
    /// (`fsctl pause`), while a shutdown drains the calls (`fsctl shutdown
    /// elegant`) or once the switch stops. An endpoint turns new calls away
    /// meanwhile (mod_sofia: `503` with `Retry-After`).
    pub fn core_ready(&self, outbound: bool) -> bool {
        let dir = if outbound {
            crate::host::DIRECTION_OUTBOUND
        } else {
            crate::host::DIRECTION_INBOUND
        };
        match services() {
            // SAFETY: host function from the live services table.
            Some(s) => unsafe { (s.core_ready)(handle(), dir) != 0 },
            None => false,
        }
    }

    /// False once the host has begun unloading this module: a runtime loop
    /// or a thread of the module's own stops when it sees this.
    pub fn running(&self) -> bool {
        match services() {
            // SAFETY: host function from the live services table.
            Some(s) => unsafe { (s.module_running)(handle()) != 0 },
            None => false,
        }
    }
}

/// Declares a module: writes the exported header and descriptor, and wraps
/// `load`, `unload` and `runtime` so that panics are caught and logging
/// reaches the host. An optional `panic_safe: true` sets
/// [`MODULE_FLAG_PANIC_SAFE`], an optional `noblock_read: true`
/// [`MODULE_FLAG_NOBLOCK_READ`]; an optional last `handover: &SPEC` (a
/// `&'static` [`HandoverSpec`](crate::HandoverSpec)) makes the module take
/// part in live reload (see [`handover`](crate::handover)).
///
/// ```no_run
/// use hotswitch_plugin_api::{declare_module, ModuleContext, ModuleError};
/// use std::fmt::Write;
///
/// declare_module! {
///     name: "mod_hello",
///     description: "Says hello",
///     load: load,
///     unload: None,
///     runtime: None,
/// }
///
/// fn load(m: &ModuleContext) -> Result<(), ModuleError> {
///     log::info!("hello is loading");
///     m.add_api("hello", "Say hello", "hello", |_, out| {
///         let _ = writeln!(out, "+OK hello");
///     })?;
///     Ok(())
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! declare_module {
    (
        name: $name:expr,
        description: $desc:expr,
        load: $load:expr,
        unload: $unload:expr,
        runtime: $runtime:expr
        $(, panic_safe: $panic_safe:expr)?
        $(, noblock_read: $noblock_read:expr)?
        $(, handover: $handover:expr)? $(,)?
    ) => {
        #[doc(hidden)]
        pub mod __hotswitch_module {
            #[allow(unused_imports)]
            use super::*;

            const NAME: &str = $name;
            const UNLOAD: Option<$crate::module::ModuleFn> =
                $unload;
            const RUNTIME: Option<fn(&$crate::ModuleContext) -> $crate::Status> = $runtime;
            const PANIC_SAFE: bool = false $(|| $panic_safe)?;
            const NOBLOCK_READ: bool = false $(|| $noblock_read)?;

            const __HS_HANDOVER: Option<&'static $crate::HandoverSpec> =
                $crate::__handover_opt!($($handover)?);

            unsafe extern "C" fn export_entry(
                sink: *const $crate::handover::HandoverSink,
            ) -> $crate::Status {
                match __HS_HANDOVER {
                    Some(h) => $crate::handover::__export(h, sink),
                    None => $crate::Status::NOTIMPL,
                }
            }

            unsafe extern "C" fn resume_entry() -> $crate::Status {
                match __HS_HANDOVER {
                    Some(h) => $crate::handover::__resume(h),
                    None => $crate::Status::NOTIMPL,
                }
            }

            unsafe extern "C" fn deliver_entry(
                d: *const $crate::handover::DeliveryDesc,
            ) -> u32 {
                match __HS_HANDOVER {
                    Some(h) => $crate::handover::__deliver(h, d),
                    None => 0,
                }
            }

            static __HS_HANDOVER_TABLE: Option<$crate::handover::HandoverTable> = match __HS_HANDOVER {
                Some(h) => Some($crate::handover::HandoverTable::__new(
                    h,
                    export_entry,
                    resume_entry,
                    deliver_entry,
                )),
                None => None,
            };

            unsafe extern "C" fn load_entry(
                services: *const $crate::HostServices,
                module: $crate::ModuleHandle,
            ) -> $crate::Status {
                $crate::module::__load(services, module, NAME, $load)
            }

            unsafe extern "C" fn unload_entry() -> $crate::Status {
                $crate::module::__unload(UNLOAD)
            }

            unsafe extern "C" fn runtime_entry() -> $crate::Status {
                match RUNTIME {
                    Some(f) => $crate::module::__runtime(f),
                    None => $crate::Status::TERM,
                }
            }

            static DESCRIPTOR: $crate::ModuleDescriptor = $crate::ModuleDescriptor {
                name: $crate::RStr::from_static(NAME),
                version: $crate::RStr::from_static(env!("CARGO_PKG_VERSION")),
                description: $crate::RStr::from_static($desc),
                load: load_entry,
                unload: Some(unload_entry),
                runtime: if RUNTIME.is_some() {
                    Some(runtime_entry)
                } else {
                    None
                },
                flags: if PANIC_SAFE {
                    $crate::module::MODULE_FLAG_PANIC_SAFE
                } else {
                    0
                } | if NOBLOCK_READ {
                    $crate::module::MODULE_FLAG_NOBLOCK_READ
                } else {
                    0
                },
                handover: match &__HS_HANDOVER_TABLE {
                    Some(t) => t as *const $crate::handover::HandoverTable,
                    None => ::core::ptr::null(),
                },
            };

            /// What this module's allocator counts; the host reads it
            /// and sets its limit (see `hotswitch_plugin_api::alloc`).
            #[no_mangle]
            #[used]
            pub static hotswitch_module_memory: $crate::alloc::MemoryGauge =
                $crate::alloc::MemoryGauge::new();

            #[global_allocator]
            static ALLOCATOR: $crate::alloc::CountingAlloc =
                $crate::alloc::CountingAlloc::new(&hotswitch_module_memory);

            #[no_mangle]
            #[used]
            pub static hotswitch_module_header: $crate::abi::ModuleHeader =
                $crate::abi::ModuleHeader::new(&DESCRIPTOR);
        }
    };
}

/// `declare_module!`'s optional `handover:` as an `Option`. Not for direct
/// use.
#[doc(hidden)]
#[macro_export]
macro_rules! __handover_opt {
    () => {
        None
    };
    ($h:expr) => {
        Some($h)
    };
}

/// True when `s` can stand as one word of an api command's arguments: not
/// empty, no white space or control characters, none of the characters
/// the core expands (`$ { }`). Check names that come from the network (a
/// digest username, a verto login) with it before building a command
/// line such as `user_data <user>@<domain> param password` from them.
///
/// ```
/// use hotswitch_plugin_api::is_api_word;
/// assert!(is_api_word("1000@127.0.0.1"));
/// assert!(!is_api_word("1000 attr"));
/// assert!(!is_api_word("${x}"));
/// assert!(!is_api_word(""));
/// ```
pub fn is_api_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, '$' | '{' | '}'))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    unsafe extern "C" fn nop_load(_: *const HostServices, _: ModuleHandle) -> Status {
        Status::SUCCESS
    }

    pub(crate) static TEST_DESCRIPTOR: ModuleDescriptor = ModuleDescriptor {
        name: RStr::from_static("mod_test"),
        version: RStr::from_static("0"),
        description: RStr::from_static(""),
        load: nop_load,
        unload: None,
        runtime: None,
        flags: 0,
        handover: core::ptr::null(),
    };

    #[test]
    fn the_state_load_returns_is_handed_back_by_its_type() {
        let st = Ok::<_, ModuleError>(41u32).into_state().unwrap();
        *STATE.lock() = Some(st);
        let m = ModuleContext::current();
        assert_eq!(m.state::<u32>().as_deref(), Some(&41));
        assert!(m.state::<String>().is_none());
        *STATE.lock() = None;
        assert!(m.state::<u32>().is_none());
        let failed = Err::<u32, _>(ModuleError::Config("x".into())).into_state();
        assert_eq!(failed.err(), Some(ModuleError::Config("x".into())));
    }

    #[test]
    fn guard_turns_a_panic_into_status_panic() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let st = guard(|| panic!("boom"));
        std::panic::set_hook(prev);
        assert_eq!(st, Status::PANIC);
    }
}
