//! The core: what one running switch is — its identity, configuration,
//! event bus, interface registries and modules — and how a command line
//! turns into an api call.

use crate::config::Config;
use crate::event::{EventBus, EventType, Identity};
use crate::interfaces::{ApiImpl, Registry};
use crate::modules::{ModuleManager, Unavailable};
use crate::origin;
use crate::services::write_to_string;
use hotswitch_plugin_api::sync::{Condvar, Mutex};
use hotswitch_plugin_api::{ChatMessage, OutStream, RStr, SessionRef, Status};
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// How the core is set up.
#[derive(Clone, Debug)]
pub struct CoreOptions {
    pub conf_dir: PathBuf,
    pub module_dirs: Vec<PathBuf>,
    /// Where shadow copies of modules live (private to this process).
    pub shadow_dir: PathBuf,
    /// Globals known before the configuration is read (`base_dir`,
    /// `log_dir`, … from the command line).
    pub globals: Vec<(String, String)>,
}

/// Why an api call failed; `Display` is the reply text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    NotFound(String),
    Unavailable(Unavailable),
    Panicked {
        module: String,
        command: String,
        faulted: bool,
    },
    Internal(String),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::NotFound(c) => writeln!(f, "-ERR {c} Command not found!"),
            ApiError::Unavailable(u) => writeln!(f, "-ERR [{u}]"),
            ApiError::Panicked {
                module,
                command,
                faulted: true,
            } => writeln!(
                f,
                "-ERR [module {module} panicked in '{command}'; it is marked faulted]"
            ),
            ApiError::Panicked {
                module, command, ..
            } => writeln!(
                f,
                "-ERR [module {module} panicked in '{command}'; it is panic-safe and stays loaded]"
            ),
            ApiError::Internal(e) => writeln!(f, "-ERR [{e}]"),
        }
    }
}

/// A raw pointer that the caller promises is valid for the call it crosses
/// a thread for.
pub(crate) struct SendPtr<T>(pub *const T);
unsafe impl<T> Send for SendPtr<T> {}

/// A module's global state handlers.
pub struct GlobalHandler {
    pub id: u64,
    pub table: hotswitch_plugin_api::StateHandlers,
    pub user_data: usize,
    pub module: Arc<crate::modules::LoadedModule>,
}

/// Global state handlers, read on every state change (a snapshot is one
/// `Arc` clone).
#[derive(Default)]
pub struct StateHandlerRegistry {
    list: hotswitch_plugin_api::sync::RwLock<Arc<Vec<Arc<GlobalHandler>>>>,
    next: std::sync::atomic::AtomicU64,
}

impl StateHandlerRegistry {
    pub fn snapshot(&self) -> Arc<Vec<Arc<GlobalHandler>>> {
        self.list.read().clone()
    }

    pub fn add(
        &self,
        table: hotswitch_plugin_api::StateHandlers,
        user_data: usize,
        module: Arc<crate::modules::LoadedModule>,
    ) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut w = self.list.write();
        let mut v: Vec<_> = w.iter().cloned().collect();
        v.push(Arc::new(GlobalHandler {
            id,
            table,
            user_data,
            module,
        }));
        *w = Arc::new(v);
        id
    }

    /// Removes handlers matching `pred`; how many went.
    pub fn remove_where(&self, pred: impl Fn(&GlobalHandler) -> bool) -> usize {
        let mut w = self.list.write();
        let before = w.len();
        let v: Vec<_> = w.iter().filter(|h| !pred(h)).cloned().collect();
        let removed = before - v.len();
        *w = Arc::new(v);
        removed
    }
}

/// Variable lookups for `${…}` expansion on a session.
pub struct ChannelVars<'a> {
    pub core: &'a Arc<Core>,
    pub session: &'a Arc<crate::session::Session>,
}

impl crate::expand::Vars for ChannelVars<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.session.ch().var_or_field(name)
    }
    fn global(&self, name: &str) -> Option<String> {
        self.core.global(name)
    }
    fn api(&self, cmd: &str, args: &str) -> Option<String> {
        self.core.execute_api(cmd, args, self.session.as_ref()).ok()
    }
}

/// Variable lookups for `${…}` expansion without a session (`eval`, `expand`).
pub struct GlobalVars<'a>(pub &'a Arc<Core>);

impl crate::expand::Vars for GlobalVars<'_> {
    fn var(&self, _name: &str) -> Option<String> {
        None
    }
    fn global(&self, name: &str) -> Option<String> {
        self.0.global(name)
    }
    fn api(&self, cmd: &str, args: &str) -> Option<String> {
        self.0.execute_api(cmd, args, SessionRef::NULL).ok()
    }
}

/// One running switch.
pub struct Core {
    pub(crate) hostname: String,
    pub(crate) started: Instant,
    pub config: Config,
    pub bus: EventBus,
    /// The interface registries (api commands, applications, endpoints).
    pub registry: Registry,
    pub modules: ModuleManager,
    pub(crate) sessions: crate::session::Sessions,
    pub(crate) executor: crate::executor::Executor,
    /// Moves the frames of bridged legs whose endpoints read without
    /// blocking, many legs per thread (`media_loop.rs`).
    pub(crate) media_loop: crate::media_loop::MediaLoop,
    pub(crate) dialplans: crate::dialplan::Dialplans,
    pub(crate) state_handlers: StateHandlerRegistry,
    globals: hotswitch_plugin_api::sync::RwLock<std::collections::HashMap<String, String>>,
    pub(crate) scheduler: crate::scheduler::Scheduler,
    /// `fsctl`'s switch-wide settings.
    pub(crate) controls: crate::fsctl::Controls,
    /// Phones registered with endpoints (`show registrations`).
    pub(crate) registrations: crate::registrations::Registrations,
    /// Event/log subscriptions modules opened, by id.
    pub(crate) module_subs: crate::services::ModuleSubscriptions,
    shutting_down: AtomicBool,
    shutdown: (Mutex<bool>, Condvar),
    console_lock: Mutex<()>,
    /// `fsctl pause` and `shutdown elegant|asap` (see [`crate::drain`]).
    pub(crate) drain: crate::drain::Drain,
}

impl Core {
    pub fn new(opts: CoreOptions) -> Result<Arc<Core>, String> {
        std::fs::create_dir_all(&opts.shadow_dir).map_err(|e| {
            format!(
                "cannot create the module shadow directory {}: {e}",
                opts.shadow_dir.display()
            )
        })?;
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let uuid = uuid::Uuid::new_v4().to_string();
        let core = Arc::new(Core {
            bus: EventBus::new(Identity {
                core_uuid: uuid.clone(),
                hostname: hostname.clone(),
                switchname: hostname.clone(),
                ipv4: "127.0.0.1".into(),
                ipv6: "::1".into(),
            }),
            hostname,
            started: Instant::now(),
            config: Config::with_globals(opts.conf_dir, opts.globals.clone()),
            registry: Registry::default(),
            modules: ModuleManager::new(opts.module_dirs, opts.shadow_dir),
            sessions: crate::session::Sessions::default(),
            executor: crate::executor::Executor::new(2, std::time::Duration::from_secs(10)),
            media_loop: crate::media_loop::MediaLoop::default(),
            dialplans: crate::dialplan::Dialplans::default(),
            state_handlers: StateHandlerRegistry::default(),
            globals: hotswitch_plugin_api::sync::RwLock::new(std::collections::HashMap::new()),
            scheduler: crate::scheduler::Scheduler::default(),
            controls: crate::fsctl::Controls::default(),
            registrations: crate::registrations::Registrations::default(),
            module_subs: Default::default(),
            shutting_down: AtomicBool::new(false),
            shutdown: (Mutex::new(false), Condvar::new()),
            console_lock: Mutex::new(()),
            drain: crate::drain::Drain::default(),
        });
        crate::commands::register(&core);
        crate::session_commands::register(&core);
        crate::fsctl::register(&core);
        for (k, v) in &opts.globals {
            core.set_global(k, v);
        }
        core.dialplans
            .add("inline", Arc::new(crate::dialplan::Inline));
        core.dialplans.add("XML", Arc::new(crate::dialplan::Xml));
        core.reload_xml()
            .map_err(|e| format!("configuration refused: {e}"))?;
        core.apply_switch_settings();
        crate::scheduler::start(&core);
        crate::containment::watchdog(&core);
        Ok(core)
    }

    /// A global variable (`$${name}`).
    pub fn global(&self, name: &str) -> Option<String> {
        self.globals.read().get(name).cloned()
    }

    /// Sets (or, with an empty value, removes) a global variable.
    pub fn set_global(&self, name: &str, value: &str) {
        let mut g = self.globals.write();
        if value.is_empty() {
            g.remove(name);
        } else {
            g.insert(name.to_string(), value.to_string());
        }
    }

    /// Every global variable, sorted.
    pub fn globals(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .globals
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort();
        v
    }

    /// Rereads the configuration (FreeSWITCH's `reloadxml`): on error the
    /// running configuration stays in force. Applies the globals and checks
    /// the dialplan's regular expressions and times.
    pub fn reload_xml(&self) -> Result<(), crate::xml::XmlError> {
        self.config.load()?;
        if let Some(doc) = self.config.document() {
            for (k, v) in &doc.globals {
                self.set_global(k, v);
            }
            if let Some(dp) = doc.section("dialplan") {
                for e in crate::dialplan_xml::check(dp) {
                    log::warn!("dialplan: {e}");
                }
            }
        }
        Ok(())
    }

    /// Reads `switch.conf` limits: max-sessions, sessions-per-second,
    /// worker-idle-timeout (seconds), event-heartbeat-interval (seconds),
    /// media-loops.
    fn apply_switch_settings(&self) {
        let settings = match self.config.switch_settings() {
            Ok(s) => s,
            Err(e) => {
                log::error!("switch.conf refused, keeping defaults: {e}");
                return;
            }
        };
        for (k, v) in settings {
            let n = v.trim().parse::<u64>();
            match (k.as_str(), n) {
                ("max-sessions", Ok(n)) => self.sessions.max_sessions.store(n, Ordering::Relaxed),
                // MiB a module's allocator may hold; 0: no limit. Applies
                // to modules loaded from now on.
                ("module-memory-limit", Ok(n)) => self.modules.memory_limit.store(
                    match n {
                        0 => usize::MAX,
                        n => usize::try_from(n.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
                    },
                    Ordering::Relaxed,
                ),
                ("sessions-per-second", Ok(n)) => self
                    .sessions
                    .sessions_per_second
                    .store(n, Ordering::Relaxed),
                ("worker-idle-timeout", Ok(n)) => self
                    .executor
                    .set_idle_timeout(std::time::Duration::from_secs(n.max(1))),
                ("event-heartbeat-interval", Ok(n)) => self
                    .scheduler
                    .heartbeat_secs
                    .store(n.max(1), Ordering::Relaxed),
                // Threads of the shared media loop; 0: eight per core.
                ("media-loops", Ok(n)) => self.media_loop.set_loops(n as usize),
                (
                    "max-sessions"
                    | "media-loops"
                    | "module-memory-limit"
                    | "sessions-per-second"
                    | "worker-idle-timeout"
                    | "event-heartbeat-interval",
                    Err(_),
                ) => {
                    log::error!("switch.conf: {k} must be a whole number, not '{v}'")
                }
                // Said, not silently dropped: nodes share registrations
                // through a profile's odbc-dsn; the core keeps no database.
                ("core-db-dsn", _) if !v.trim().is_empty() => log::error!(
                    "switch.conf: core-db-dsn is not supported (the core keeps no database); \
                     share registrations with odbc-dsn in the sofia profiles"
                ),
                _ => {}
            }
        }
    }

    /// Runs api command `cmd` with `args`.
    pub fn execute_api(
        self: &Arc<Self>,
        cmd: &str,
        args: &str,
        session: SessionRef,
    ) -> Result<String, ApiError> {
        let entry = self
            .registry
            .api(cmd)
            .ok_or_else(|| ApiError::NotFound(cmd.to_string()))?;
        match &entry.imp {
            ApiImpl::Host(f) => Ok(f(self, args)),
            ApiImpl::Module {
                module,
                func,
                user_data,
            } => {
                let _call = module.enter().map_err(ApiError::Unavailable)?;
                let (func, user_data) = (*func, *user_data);
                let mut text = String::new();
                let out_ptr = SendPtr(&mut text as *mut String);
                let label = format!("api {}", entry.name);
                let called = crate::containment::call_entry(module, &label, None, move || {
                    let out_ptr = out_ptr;
                    let mut out = OutStream {
                        ctx: out_ptr.0 as *mut std::ffi::c_void,
                        write: write_to_string,
                    };
                    // SAFETY: the module is entered (its library stays open)
                    // and `text` outlives this joined thread.
                    unsafe { func(user_data as *mut _, RStr::new(args), session, &mut out) }
                });
                let Some(st) = called else {
                    return Err(ApiError::Unavailable(module.unavailable()));
                };
                if st == Status::PANIC {
                    return Err(ApiError::Panicked {
                        module: module.name.clone(),
                        command: entry.name.clone(),
                        faulted: module.is_faulted(),
                    });
                }
                Ok(text)
            }
        }
    }

    /// Runs a command line: `name args…`.
    pub fn execute_line(self: &Arc<Self>, line: &str) -> String {
        let line = line.trim();
        let (cmd, args) = line
            .split_once(char::is_whitespace)
            .map(|(c, a)| (c, a.trim()))
            .unwrap_or((line, ""));
        match self.execute_api(cmd, args, SessionRef::NULL) {
            Ok(s) => s,
            Err(e) => e.to_string(),
        }
    }

    /// Sends a chat message through the module that serves `proto`.
    pub fn send_chat(&self, proto: &str, msg: *const ChatMessage) -> Status {
        let Some(entry) = self.registry.chat(proto) else {
            log::warn!("no chat interface for protocol '{proto}'");
            return Status::NOTFOUND;
        };
        let Ok(_call) = entry.module.enter() else {
            return Status::FALSE;
        };
        let (send, ud) = (entry.send, entry.user_data);
        let msg = SendPtr(msg);
        let label = format!("chat {}", entry.name);
        crate::containment::call_entry(&entry.module, &label, None, move || {
            let msg = msg;
            // SAFETY: the caller's message outlives this joined call.
            unsafe { send(ud as *mut _, msg.0) }
        })
        .unwrap_or(Status::FALSE)
    }

    /// Prints a line on the console (watch mode's notices), whole.
    pub fn console_notice(&self, line: &str) {
        log::info!("{line}");
        let _g = self.console_lock.lock();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Writes a block to the console without interleaving with others.
    pub fn console_write(&self, text: &str) {
        let _g = self.console_lock.lock();
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Asks the switch to stop (the main thread carries it out).
    pub fn request_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        let (m, cv) = &self.shutdown;
        *m.lock() = true;
        cv.notify_all();
    }

    /// Blocks until a shutdown is requested.
    pub fn wait_for_shutdown(&self) {
        let (m, cv) = &self.shutdown;
        let mut down = m.lock();
        while !*down {
            down = cv.wait(down);
        }
    }

    /// Stops everything: fires SHUTDOWN, unloads every module.
    pub fn shutdown(self: &Arc<Self>) {
        let e = self
            .bus
            .create(EventType::SHUTDOWN, None, origin!("shutdown"));
        self.bus.fire(e);
        self.modules.unload_all(self);
        let _ = std::fs::remove_dir_all(self.modules.shadow_dir());
    }
}
