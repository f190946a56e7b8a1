//! `hotswitch`: start the switch on a configuration directory, load the
//! modules it lists, and serve the console until shutdown.

use hotswitch_core::core::{Core, CoreOptions};
use hotswitch_core::dirs::{absolute, Dirs, KINDS};
use hotswitch_core::event::EventType;
use hotswitch_core::modules::ModuleManager;
use hotswitch_core::origin;

mod console;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "usage: hotswitch [options]
  -conf <dir>        configuration directory (default: <base>/conf if there is one, else ./conf,
                     else <binary>/../../conf)
  -mod <dir>         a module directory searched before the defaults (switch.conf module-dir,
                     else the binary's directory); repeatable
  -base <dir>        base directory of the installation (default: the prefix of <prefix>/bin/hotswitch,
                     else the binary's directory); the directories below default to <base>/<name>
  -log <dir>         log files, CDRs under <dir>/cdr-csv ($${log_dir}; default <base>/log)
  -db <dir>          databases, SIP registrations ($${db_dir}; default <base>/db)
  -run <dir>         run directory, private copies of loaded modules ($${run_dir}; default <base>/run)
  -temp <dir>        temporary files ($${temp_dir}; default <base>/tmp)
  -certs <dir>       TLS certificates ($${certs_dir}; default <base>/certs)
  -recordings <dir>  recordings ($${recordings_dir}; default <base>/recordings)
  -storage <dir>     storage ($${storage_dir}; default <base>/storage)
  -sounds <dir>      sound files ($${sounds_dir}; default <base>/sounds)
  -watch             reload a module when its file changes on disk (also switch.conf watch-modules)
  -nc                no console: run until SIGTERM/SIGINT or 'shutdown'
  -loglevel <lvl>    error|warning|info|debug|trace (default info; RUST_LOG overrides)
  -version           print the version and exit
  -help              this text";

struct Args {
    conf: Option<PathBuf>,
    mods: Vec<PathBuf>,
    base: Option<PathBuf>,
    /// `-log`, `-db`, … as (kind, directory).
    dirs: Vec<(String, PathBuf)>,
    watch: bool,
    no_console: bool,
    loglevel: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        conf: None,
        mods: Vec::new(),
        base: None,
        dirs: Vec::new(),
        watch: false,
        no_console: false,
        loglevel: "info".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.trim_start_matches('-') {
            "conf" => a.conf = Some(value(&arg)?.into()),
            "mod" => a.mods.push(absolute(value(&arg)?.into())),
            "base" => a.base = Some(absolute(value(&arg)?.into())),
            k if KINDS.iter().any(|(kind, _)| *kind == k) => {
                let dir = absolute(value(&arg)?.into());
                a.dirs.push((k.to_string(), dir));
            }
            "watch" => a.watch = true,
            "nc" => a.no_console = true,
            "loglevel" => a.loglevel = value(&arg)?,
            "version" => {
                println!("hotswitch {}", hotswitch_core::commands::VERSION);
                std::process::exit(0);
            }
            "help" | "h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown option {arg}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn init_logging(level: &str) -> Result<(), String> {
    let wanted = console::parse_level(level).ok_or_else(|| format!("unknown log level {level}"))?;
    let mut b = env_logger::Builder::new();
    b.format(|buf, r| {
        let (color, reset) = if hotswitch_core::logtap::colorize() {
            (hotswitch_core::logtap::color_of(r.level()), "\x1b[0m")
        } else {
            ("", "")
        };
        writeln!(
            buf,
            "{color}{} [{}] {}: {}{reset}",
            chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.6f"),
            r.level(),
            r.target(),
            r.args()
        )
    });
    let from_env = std::env::var("RUST_LOG").ok();
    match &from_env {
        Some(spec) => {
            b.parse_filters(spec);
        }
        None => {
            // Keep the backend open to every level so that `/log` can raise
            // the level at run time; the effective level is log's max level.
            b.filter_level(log::LevelFilter::Trace);
        }
    }
    let logger = b.build();
    let max = logger.filter();
    log::set_boxed_logger(Box::new(hotswitch_core::logtap::HostLogger::new(logger)))
        .map_err(|e| e.to_string())?;
    hotswitch_core::logtap::set_console_level(if from_env.is_some() { max } else { wanted });
    Ok(())
}

fn exe_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

fn default_conf_dir() -> PathBuf {
    let here = PathBuf::from("conf");
    if here.join("autoload_configs").is_dir() {
        return here;
    }
    // Running from a cargo build tree: target/<profile>/hotswitch.
    let tree = exe_dir().join("../../conf");
    if tree.join("autoload_configs").is_dir() {
        return tree;
    }
    here
}

/// Removes shadow directories left by switches that are no longer running.
fn clean_stale_shadow_dirs(run: &Path) {
    let Ok(entries) = std::fs::read_dir(run) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("hotswitch-shadow-") else {
            continue;
        };
        let alive = Path::new("/proc").join(pid).exists();
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn main() -> ExitCode {
    hotswitch_core::arenas::limit();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_logging(&args.loglevel) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let base = args
        .base
        .clone()
        .unwrap_or_else(|| Dirs::default_base(&exe_dir()));
    let dirs = Dirs::new(base, &args.dirs);
    if let Err(e) = dirs.create() {
        log::error!("{e}");
        return ExitCode::from(1);
    }
    let conf_dir = args.conf.clone().unwrap_or_else(|| {
        let under_base = dirs.base.join("conf");
        if under_base.join("autoload_configs").is_dir() {
            under_base
        } else {
            default_conf_dir()
        }
    });
    if !conf_dir.join("autoload_configs").is_dir() {
        log::error!(
            "{} is not a configuration directory (no autoload_configs/); give one with -conf",
            conf_dir.display()
        );
        return ExitCode::from(2);
    }
    // The globals FreeSWITCH's core sets before it reads the configuration.
    let mut globals = dirs.globals();
    globals.push(("conf_dir".into(), conf_dir.display().to_string()));
    globals.push(("mod_dir".into(), exe_dir().display().to_string()));
    let config = hotswitch_core::config::Config::with_globals(&conf_dir, globals.clone());
    if let Err(e) = config.load() {
        log::error!("configuration refused: {e}");
        return ExitCode::from(1);
    }
    // -mod directories first, then the defaults: an author's module is
    // added to a working switch.
    let mut module_dirs = args.mods.clone();
    match config.module_dirs() {
        Ok(d) if !d.is_empty() => module_dirs.extend(d),
        Ok(_) => module_dirs.push(exe_dir()),
        Err(e) => {
            log::error!("switch.conf refused: {e}");
            return ExitCode::from(1);
        }
    }
    let run = dirs.get("run").to_path_buf();
    clean_stale_shadow_dirs(&run);
    let shadow_dir = run.join(format!("hotswitch-shadow-{}", std::process::id()));
    let core = match Core::new(CoreOptions {
        conf_dir: conf_dir.clone(),
        module_dirs,
        shadow_dir,
        globals,
    }) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(1);
        }
    };
    log::info!(
        "hotswitch {} starting: conf {}, modules from {}",
        hotswitch_core::commands::VERSION,
        conf_dir.display(),
        core.modules
            .dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let to_load = match core.config.modules_to_load() {
        Ok(l) => l,
        Err(e) => {
            log::error!("modules.conf refused: {e}");
            return ExitCode::from(1);
        }
    };
    let mut not_loaded = Vec::new();
    for m in to_load {
        if let Err(e) = core.modules.load(&core, &m.name) {
            if m.critical {
                log::error!("critical module {} failed to load: {e}; stopping", m.name);
                core.shutdown();
                return ExitCode::from(1);
            }
            log::error!("{} failed to load: {e}", m.name);
            not_loaded.push(m.name);
        }
    }
    let startup = core.bus.create(EventType::STARTUP, None, origin!("main"));
    core.bus.fire(startup);

    let watch = args.watch || core.config.watch_modules().unwrap_or(false);
    if watch {
        ModuleManager::spawn_watcher(&core, Duration::from_millis(250));
        log::info!("watch mode: modules are reloaded when their files change");
    }

    match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) {
        Ok(mut signals) => {
            let c = Arc::downgrade(&core);
            let _ = std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || {
                    if let Some(sig) = signals.forever().next() {
                        log::info!("signal {sig}: shutting down");
                        if let Some(c) = c.upgrade() {
                            c.request_shutdown();
                        }
                    }
                });
        }
        Err(e) => log::warn!("cannot handle signals: {e}"),
    }

    log::info!(
        "hotswitch is ready; base {}, logs in {}",
        dirs.base.display(),
        dirs.get("log").display()
    );
    if !not_loaded.is_empty() {
        log::warn!(
            "not loaded: {} (the reasons are above)",
            not_loaded.join(", ")
        );
    }
    if !args.no_console {
        let c = core.clone();
        let _ = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || console::run(c));
    }
    core.wait_for_shutdown();
    log::info!("shutting down");
    core.shutdown();
    log::info!("bye");
    ExitCode::SUCCESS
}
