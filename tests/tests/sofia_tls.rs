//! SIP over TLS with a real phone: baresip registers to the default
//! configuration's internal profile over TLS (`tls-sip-port`, certificates
//! from `tls-cert-dir` under FreeSWITCH's names), calls 9196 and hears its
//! own tone back; under `tls-verify-policy` `in` a phone whose certificate
//! the switch's authorities do not vouch for is refused at the handshake,
//! and under `subjects_in` one whose names are not in
//! `tls-verify-in-subjects`;
//! and certificates replaced on disk are served to new handshakes after
//! `sofia profile internal tls-reload` while the phone's connection goes on.
//! With `rtp-secure-media` mandatory the phone's audio is SRTP (SDES keys
//! over the TLS signalling, baresip's `srtp` module).
//! The certificates are made by `openssl` for each test.

mod phones_common;
mod sofia_common;

use hotswitch_e2e::{free_port, TempDir};
use phones_common::{pump_for, share_with, DefaultConf, Phone, PhoneSetup, Transport, WAIT};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TONE: f64 = 697.0;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (Debian: apt install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An authority, and certificates it signs or that sign themselves.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: TempDir::new("tls-pki"),
        };
        openssl(
            pki.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=test ca",
            ],
        );
        pki
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `name.pem`: a certificate for 127.0.0.1 and its key, signed by the
    /// authority (or by itself when `trusted` is false).
    fn issue(&self, name: &str, trusted: bool) -> PathBuf {
        let d = self.path();
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let subj = format!("/CN={name}");
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &subj,
            ],
        );
        let ext = d.join(format!("{name}.ext"));
        std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        let ext = ext.display().to_string();
        if trusted {
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-out",
                    &crt,
                    "-extfile",
                    &ext,
                ],
            );
        } else {
            openssl(
                d,
                &[
                    "x509", "-req", "-in", &csr, "-signkey", &key, "-days", "2", "-out", &crt,
                    "-extfile", &ext,
                ],
            );
        }
        let pem = format!(
            "{}{}",
            std::fs::read_to_string(d.join(&crt)).unwrap(),
            std::fs::read_to_string(d.join(&key)).unwrap()
        );
        let out = d.join(format!("{name}.pem"));
        std::fs::write(&out, pem).unwrap();
        out
    }

    /// Writes `agent.pem` and `cafile.pem` into `certs`.
    fn install_switch(&self, certs: &Path, name: &str) {
        std::fs::create_dir_all(certs).unwrap();
        std::fs::copy(self.issue(name, true), certs.join("agent.pem")).unwrap();
        std::fs::copy(self.path().join("ca.pem"), certs.join("cafile.pem")).unwrap();
    }
}

/// The default configuration with TLS on at a free port, the switch's
/// certificates from `pki`, and `policy` as `tls-verify-policy`.
fn tls_conf(tag: &str, pki: &Pki, policy: &str) -> (DefaultConf, u16, PathBuf) {
    let conf = DefaultConf::new(tag);
    let tls_port = free_port();
    let certs = conf.dir.path().join("certs");
    pki.install_switch(&certs, "switch");
    conf.edit("vars.xml", |t| {
        t.replace("internal_ssl_enable=false", "internal_ssl_enable=true")
            .replace(
                "internal_tls_port=5061",
                &format!("internal_tls_port={tls_port}"),
            )
    });
    conf.edit("sip_profiles/internal.xml", |t| {
        t.replace(
            "name=\"tls-verify-policy\" value=\"none\"",
            &format!("name=\"tls-verify-policy\" value=\"{policy}\""),
        )
    });
    (conf, tls_port, certs)
}

fn tls_phone(user: &str, tls_port: u16, pki: &Pki, cert: Option<PathBuf>) -> Phone {
    tls_phone_with(user, tls_port, pki, cert, None)
}

fn tls_phone_with(
    user: &str,
    tls_port: u16,
    pki: &Pki,
    cert: Option<PathBuf>,
    mediaenc: Option<&str>,
) -> Phone {
    let setup = PhoneSetup {
        certificate: cert,
        cafile: Some(pki.path().join("ca.pem")),
        mediaenc: mediaenc.map(str::to_string),
        ..PhoneSetup::new(Transport::Tls, TONE)
    };
    Phone::start_with(user, &format!("127.0.0.1:{tls_port}"), &setup)
}

/// Calls 9196 over TLS and checks the phone hears its own tone; `during`
/// looks at the switch while the call is up.
fn echo_call(phone: &mut Phone, tls_port: u16) {
    echo_call_checking(phone, tls_port, |_| {})
}

fn echo_call_checking(phone: &mut Phone, tls_port: u16, during: impl FnOnce(&mut Phone)) {
    let t0 = Instant::now();
    phone.cmd(
        "dial",
        &format!("sip:9196@127.0.0.1:{tls_port};transport=tls"),
    );
    phone.wait_event("CALL_ESTABLISHED", t0, &mut []);
    during(phone);
    pump_for(&mut [&mut *phone], Duration::from_secs(3));
    phone.cmd("hangup", "");
    phone.wait_event("CALL_CLOSED", t0, &mut []);
    let heard = phone.heard();
    assert!(
        share_with(&heard, TONE) > 0.3,
        "the phone heard its tone back in {:.0}% of {} samples",
        share_with(&heard, TONE) * 100.0,
        heard.len()
    );
}

/// The SHA-256 fingerprint of the certificate a new handshake sees.
fn served_fingerprint(port: u16) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} </dev/null 2>/dev/null \
             | openssl x509 -noout -fingerprint -sha256"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_phone_registers_over_tls_calls_9196_and_hears_its_tone_back() {
    let pki = Pki::new();
    let (conf, tls_port, _) = tls_conf("tls-echo", &pki, "none");
    let mut sw = conf.start();
    let mut phone = tls_phone("1000", tls_port, &pki, None);
    phone.wait_registered(&mut sw, "127.0.0.1");
    let reg = sw.cmd("sofia status profile internal reg");
    assert!(reg.contains("Registered(TLS)"), "{reg}");
    let contact = sw.cmd("sofia_contact 1000@127.0.0.1");
    assert!(contact.contains("transport=tls"), "{contact}");
    echo_call(&mut phone, tls_port);
}

#[test]
fn under_verify_policy_in_a_phone_with_an_untrusted_certificate_is_refused() {
    let pki = Pki::new();
    let (conf, tls_port, _) = tls_conf("tls-verify", &pki, "in");
    let mut sw = conf.start();
    let stranger = pki.issue("stranger", false);
    let mut refused = tls_phone("1001", tls_port, &pki, Some(stranger));
    let deadline = Instant::now() + WAIT;
    while !sw.log().contains("handshake failed") {
        assert!(
            Instant::now() < deadline,
            "no refused handshake in the log:\n{}",
            sw.log()
        );
        refused.pump();
        std::thread::sleep(Duration::from_millis(50));
    }
    let c = sw.cmd("sofia_contact 1001@127.0.0.1");
    assert!(c.contains("error/user_not_registered"), "{c}");
    // A phone whose certificate the authority signed registers and talks.
    let known = pki.issue("known", true);
    let mut phone = tls_phone("1000", tls_port, &pki, Some(known));
    phone.wait_registered(&mut sw, "127.0.0.1");
    echo_call(&mut phone, tls_port);
    let c = sw.cmd("sofia_contact 1001@127.0.0.1");
    assert!(c.contains("error/user_not_registered"), "{c}");
}

#[test]
fn under_subjects_in_only_a_trusted_certificate_naming_a_listed_subject_gets_in() {
    let pki = Pki::new();
    let (conf, tls_port, _) = tls_conf("tls-subjects", &pki, "subjects_in");
    conf.edit("sip_profiles/internal.xml", |t| {
        t.replace(
            "<param name=\"tls-verify-depth\" value=\"2\"/>",
            "<param name=\"tls-verify-depth\" value=\"2\"/>\n    \
             <param name=\"tls-verify-in-subjects\" value=\"sip:pbx.example|known\"/>",
        )
    });
    let mut sw = conf.start();
    // Signed by the authority, but its names (CN=intruder, localhost) are
    // not listed.
    let intruder = pki.issue("intruder", true);
    let mut refused = tls_phone("1001", tls_port, &pki, Some(intruder));
    let deadline = Instant::now() + WAIT;
    while !sw.log().contains("Peer Subject Mismatch") {
        assert!(
            Instant::now() < deadline,
            "no subject mismatch in the log:\n{}",
            sw.log()
        );
        refused.pump();
        std::thread::sleep(Duration::from_millis(50));
    }
    let c = sw.cmd("sofia_contact 1001@127.0.0.1");
    assert!(c.contains("error/user_not_registered"), "{c}");
    // CN=known is listed: it registers and talks.
    let known = pki.issue("known", true);
    let mut phone = tls_phone("1000", tls_port, &pki, Some(known));
    phone.wait_registered(&mut sw, "127.0.0.1");
    echo_call(&mut phone, tls_port);
}

#[test]
fn certificates_replaced_on_disk_are_served_after_tls_reload_and_the_phone_goes_on() {
    let pki = Pki::new();
    let (conf, tls_port, certs) = tls_conf("tls-reload", &pki, "none");
    let mut sw = conf.start();
    let mut phone = tls_phone("1000", tls_port, &pki, None);
    phone.wait_registered(&mut sw, "127.0.0.1");
    let before = served_fingerprint(tls_port);
    assert!(before.contains("Fingerprint"), "{before:?}");
    std::fs::copy(pki.issue("renewed", true), certs.join("agent.pem")).unwrap();
    // Not before the command.
    assert_eq!(served_fingerprint(tls_port), before);
    let r = sw.cmd("sofia profile internal tls-reload");
    assert!(r.starts_with("+OK"), "{r}");
    let after = served_fingerprint(tls_port);
    assert!(
        after.contains("Fingerprint") && after != before,
        "{before} / {after}"
    );
    // The phone's connection was not dropped: no new TLS connection
    // needed for its call.
    echo_call(&mut phone, tls_port);
    assert!(
        !sw.log().contains("closing"),
        "a connection was closed:\n{}",
        sw.log()
    );
    // A broken file leaves the old certificates in use.
    std::fs::write(certs.join("agent.pem"), "not a certificate").unwrap();
    let r = sw.cmd("sofia profile internal tls-reload");
    assert!(r.starts_with("-ERR"), "{r}");
    assert_eq!(served_fingerprint(tls_port), after);
}

#[test]
fn a_phone_calling_over_tls_with_srtp_hears_its_tone_back() {
    let pki = Pki::new();
    let (conf, tls_port, _) = tls_conf("tls-srtp", &pki, "none");
    // SRTP only: a call without keys would be refused 488.
    conf.edit("sip_profiles/internal.xml", |t| {
        t.replace(
            "<param name=\"tls-verify-depth\" value=\"2\"/>",
            "<param name=\"tls-verify-depth\" value=\"2\"/>\n    \
             <param name=\"rtp-secure-media\" value=\"mandatory\"/>",
        )
    });
    let mut sw = conf.start();
    let mut phone = tls_phone_with("1000", tls_port, &pki, None, Some("srtp-mand"));
    phone.wait_registered(&mut sw, "127.0.0.1");
    let mut suite = String::new();
    echo_call_checking(&mut phone, tls_port, |_| {
        let uuid = sofia_common::only_channel(&mut sw);
        suite = sofia_common::getvar(&mut sw, &uuid, "rtp_has_crypto");
    });
    assert!(suite.starts_with("AES_CM_128_HMAC_SHA1"), "{suite:?}");
    assert!(!sw.log().contains("failed its check"), "{}", sw.log());
}

#[test]
fn a_stalled_or_garbage_tls_handshake_is_closed_with_a_log_line_and_the_phone_goes_on() {
    let pki = Pki::new();
    let (conf, tls_port, _) = tls_conf("tls-stall", &pki, "none");
    conf.edit("sip_profiles/internal.xml", |t| {
        t.replace(
            "<param name=\"tls-verify-depth\" value=\"2\"/>",
            "<param name=\"tls-verify-depth\" value=\"2\"/>\n    \
             <param name=\"tcp-message-timeout\" value=\"1500\"/>",
        )
    });
    let mut sw = conf.start();
    let mut phone = tls_phone("1000", tls_port, &pki, None);
    phone.wait_registered(&mut sw, "127.0.0.1");
    let wait_log = |sw: &hotswitch_e2e::Switch, needle: &str| {
        let deadline = Instant::now() + WAIT;
        while !sw.log().contains(needle) {
            assert!(Instant::now() < deadline, "no {needle:?}:\n{}", sw.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // Connected, and silent: closed at tcp-message-timeout.
    let _silent = std::net::TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    // Not TLS at all.
    let mut garbage = std::net::TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    std::io::Write::write_all(&mut garbage, b"REGISTER sip:x SIP/2.0\r\n\r\n").unwrap();
    // Meanwhile (the stalled handshake still pending) the phone's call over
    // its own connection completes, undisturbed.
    echo_call(&mut phone, tls_port);
    wait_log(&sw, "handshake failed");
    wait_log(&sw, "handshake not complete after 1500 ms");
}
