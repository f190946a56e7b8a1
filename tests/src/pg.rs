//! A private PostgreSQL server for one test: `initdb` into a temporary
//! directory, `postgres` listening on 127.0.0.1 only, on a free port, with
//! no Unix socket; a role and a database named `hotswitch`. Stopped and
//! removed when dropped.
//!
//! The server binaries come from the directory `HOTSWITCH_TEST_PG` names
//! (Debian: `/usr/lib/postgresql/<version>/bin`, which `.ci/run` sets).
//! Without it [`PgServer::start`] returns `None` after printing why, and the
//! test that asked returns early: a developer without PostgreSQL still runs
//! the rest of the suite. Each test gets its own server so that one can stop
//! and restart its database (the outage tests) without touching another's.
//!
//! PostgreSQL refuses to run as root: as root, the server's commands run as
//! the `postgres` user (`runuser`), in a directory that user may write.

use crate::{free_port, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The variable naming the PostgreSQL binaries' directory.
pub const ENV: &str = "HOTSWITCH_TEST_PG";

/// One running PostgreSQL server.
pub struct PgServer {
    bin: PathBuf,
    dir: TempDir,
    /// The TCP port it listens on (127.0.0.1).
    pub port: u16,
}

fn running_as_root() -> bool {
    extern "C" {
        fn geteuid() -> u32;
    }
    // SAFETY: geteuid takes nothing and cannot fail.
    unsafe { geteuid() == 0 }
}

impl PgServer {
    /// Starts a fresh server, or says why the test is skipped and returns
    /// `None` when `HOTSWITCH_TEST_PG` is unset.
    pub fn start(test: &str) -> Option<PgServer> {
        let Some(bin) = std::env::var_os(ENV).filter(|v| !v.is_empty()) else {
            eprintln!(
                "SKIPPED {test}: set {ENV} to PostgreSQL's bin directory \
                 (e.g. /usr/lib/postgresql/15/bin; .ci/run sets it)"
            );
            return None;
        };
        let bin = PathBuf::from(bin);
        assert!(
            bin.join("initdb").is_file(),
            "{ENV}={} has no initdb",
            bin.display()
        );
        let dir = TempDir::new("pg");
        if running_as_root() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
                .expect("open the server's directory to the postgres user");
        }
        let s = PgServer {
            bin,
            dir,
            port: free_port(),
        };
        let data = s.data();
        let out = s.server_cmd(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "hotswitch",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb: {}", text(&out));
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = ''\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n",
            s.port
        );
        let mut text_conf = std::fs::read_to_string(data.join("postgresql.conf"))
            .expect("initdb wrote postgresql.conf");
        text_conf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), text_conf).expect("write postgresql.conf");
        s.start_server();
        let out = s.psql_on("postgres", "CREATE DATABASE hotswitch");
        assert!(out.status.success(), "createdb: {}", text(&out));
        Some(s)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn server_cmd(&self, tool: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(tool);
        let mut c = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        c.args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()))
    }

    /// (Re)starts the server and waits until it accepts connections.
    pub fn start_server(&self) {
        let data = self.data();
        let log = self.dir.path().join("server.log");
        let out = self.server_cmd(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            text(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.psql_on("postgres", "SELECT 1").status.success() {
            assert!(Instant::now() < deadline, "PostgreSQL did not accept");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown: connections are cut).
    pub fn stop_server(&self) {
        let data = self.data();
        let out = self.server_cmd(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
        assert!(out.status.success(), "pg_ctl stop: {}", text(&out));
    }

    /// Freezes the server (`SIGSTOP` to the postmaster and every backend)
    /// or thaws it (`SIGCONT`): a database that hangs rather than refuses —
    /// connections open, queries never answered.
    pub fn freeze_server(&self, frozen: bool) {
        let pidfile = self.data().join("postmaster.pid");
        let main: u32 = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no pid in {}", pidfile.display()));
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let kill = |pids: &[String]| {
            // A backend that ended meanwhile is no error.
            let _ = Command::new("kill")
                .arg(signal)
                .args(pids)
                .stderr(std::process::Stdio::null())
                .status();
        };
        // The postmaster first: once it is stopped it forks no backend
        // the list below would miss.
        kill(&[main.to_string()]);
        let children = std::fs::read_to_string(format!("/proc/{main}/task/{main}/children"))
            .unwrap_or_default();
        let pids: Vec<String> = children.split_whitespace().map(str::to_string).collect();
        if !pids.is_empty() {
            kill(&pids);
        }
    }

    /// A libpq keyword/value connection string for the `hotswitch` database.
    pub fn conninfo(&self) -> String {
        format!(
            "hostaddr=127.0.0.1 port={} dbname=hotswitch user=hotswitch",
            self.port
        )
    }

    /// The same as a `postgresql://` URL.
    pub fn url(&self) -> String {
        format!("postgresql://hotswitch@127.0.0.1:{}/hotswitch", self.port)
    }

    fn psql_on(&self, db: &str, sql: &str) -> Output {
        Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", "hotswitch", "-d", db])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .output()
            .expect("run psql")
    }

    /// Runs `sql` in the `hotswitch` database; its output, rows one a line
    /// and columns `|`-separated. Fails the test on an error.
    pub fn psql(&self, sql: &str) -> String {
        let out = self.psql_on("hotswitch", sql);
        assert!(out.status.success(), "psql {sql}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs `sql` in the `hotswitch` database in the background (a slow
    /// transaction holding locks, say); the test waits for the child.
    pub fn psql_background(&self, sql: &str) -> std::process::Child {
        Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", "hotswitch", "-d", "hotswitch"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("run psql")
    }

    /// The server's directory (its log is `server.log` there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.server_cmd(
            "pg_ctl",
            &["-D", data.to_str().unwrap_or(""), "-m", "immediate", "stop"],
        );
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
