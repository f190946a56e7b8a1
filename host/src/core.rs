//! The core: what one running switch is — its identity, configuration,
//! event bus, interface registries and modules — and how a command line
//! turns into an api call.

use crate::config::Config;
use crate::event::{EventBus, EventType, Identity};
use crate::interfaces::{ApiImpl, Registry};
use crate::modules::{contained, ModuleManager, Unavailable};
use crate::origin;
use crate::services::write_to_string;
use hotswitch_plugin_api::{ChatMessage, OutStream, RStr, SessionRef, Status};
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Instant, SystemTime};

/// How the core is set up.
#[derive(Clone, Debug)]
pub struct CoreOptions {
    pub conf_dir: PathBuf,
    pub module_dirs: Vec<PathBuf>,
    /// Where shadow copies of modules live (private to this process).
    pub shadow_dir: PathBuf,
}

/// Why an api call failed; `Display` is the reply text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    NotFound(String),
    Unavailable(Unavailable),
    Panicked { module: String, command: String },
    Internal(String),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::NotFound(c) => writeln!(f, "-ERR {c} Command not found!"),
            ApiError::Unavailable(u) => writeln!(f, "-ERR [{u}]"),
            ApiError::Panicked { module, command } => writeln!(
                f,
                "-ERR [module {module} panicked in '{command}'; it is marked faulted]"
            ),
            ApiError::Internal(e) => writeln!(f, "-ERR [{e}]"),
        }
    }
}

/// A raw pointer that the caller promises is valid for the call it crosses
/// a thread for.
struct SendPtr<T>(*const T);
unsafe impl<T> Send for SendPtr<T> {}

/// One running switch.
pub struct Core {
    pub uuid: String,
    pub hostname: String,
    pub started: Instant,
    pub started_wall: SystemTime,
    pub config: Config,
    pub bus: EventBus,
    pub registry: Registry,
    pub modules: ModuleManager,
    shutting_down: AtomicBool,
    shutdown: (Mutex<bool>, Condvar),
    console_lock: Mutex<()>,
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
            uuid,
            hostname,
            started: Instant::now(),
            started_wall: SystemTime::now(),
            config: Config::new(opts.conf_dir),
            registry: Registry::default(),
            modules: ModuleManager::new(opts.module_dirs, opts.shadow_dir),
            shutting_down: AtomicBool::new(false),
            shutdown: (Mutex::new(false), Condvar::new()),
            console_lock: Mutex::new(()),
        });
        crate::commands::register(&core);
        Ok(core)
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
                let st = contained(&module.name, move || {
                    let out_ptr = out_ptr;
                    let mut out = OutStream {
                        ctx: out_ptr.0 as *mut std::ffi::c_void,
                        write: write_to_string,
                    };
                    // SAFETY: the module is entered (its library stays open)
                    // and `text` outlives this joined thread.
                    unsafe { func(user_data as *mut _, RStr::new(args), session, &mut out) }
                })
                .map_err(ApiError::Internal)?;
                if st == Status::PANIC {
                    module.fault(&format!("panicked in api '{}'", entry.name));
                    return Err(ApiError::Panicked {
                        module: module.name.clone(),
                        command: entry.name.clone(),
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
        let st = contained(&entry.module.name, move || {
            let msg = msg;
            // SAFETY: the caller's message outlives this joined call.
            unsafe { send(ud as *mut _, msg.0) }
        })
        .unwrap_or(Status::GENERR);
        if st == Status::PANIC {
            entry
                .module
                .fault(&format!("panicked in chat '{}'", entry.name));
        }
        st
    }

    /// Prints a line on the console (watch mode's notices), whole.
    pub fn console_notice(&self, line: &str) {
        log::info!("{line}");
        let _g = self.console_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Writes a block to the console without interleaving with others.
    pub fn console_write(&self, text: &str) {
        let _g = self.console_lock.lock().unwrap_or_else(|p| p.into_inner());
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
        *m.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }

    /// Blocks until a shutdown is requested.
    pub fn wait_for_shutdown(&self) {
        let (m, cv) = &self.shutdown;
        let mut down = m.lock().unwrap_or_else(|p| p.into_inner());
        while !*down {
            down = cv.wait(down).unwrap_or_else(|p| p.into_inner());
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
