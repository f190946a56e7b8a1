//! SIP over TLS (RFC 3261 §26): a profile's `tls*` parameters as
//! FreeSWITCH names them, and the rustls configurations built from them —
//! the acceptor of the TLS listener (`tls-sip-port`) and the connector for
//! connections the switch opens. Certificates come from `tls-cert-dir`
//! under FreeSWITCH's file names: `agent.pem` (the switch's chain and key)
//! and `cafile.pem` (the authorities a peer's certificate must chain to
//! under `tls-verify-policy`). A [`TlsContext`] is rebuilt from the disk
//! by `sofia profile <name> tls-reload`: new handshakes use the new
//! certificates, open connections keep theirs.

use hotswitch_plugin_api::sync::RwLock;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme, SupportedProtocolVersion,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Where certificates are kept when the profile names no `tls-cert-dir`
/// (the default configuration's `$${certs_dir}`).
pub const DEFAULT_CERT_DIR: &str = "/tmp/hotswitch/certs";

/// A profile's TLS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// `tls`: listen for SIP over TLS.
    pub enabled: bool,
    /// `tls-only`: no UDP or TCP listener, only TLS.
    pub only: bool,
    /// `tls-sip-port` (5061).
    pub port: u16,
    /// `tls-cert-dir`: holds `agent.pem` and `cafile.pem`.
    pub cert_dir: PathBuf,
    /// `tls-version`: FreeSWITCH's comma list (`tlsv1.2,tlsv1.3`).
    pub version: String,
    /// `tls-ciphers`: an OpenSSL cipher list; the TLS 1.2 suites it names
    /// are the ones offered (OpenSSL's keywords such as `ALL` or `HIGH`
    /// keep rustls' own set; TLS 1.3 suites are not chosen by it, as in
    /// OpenSSL).
    pub ciphers: String,
    /// `tls-verify-policy` `in`/`all`: a connecting peer must present a
    /// certificate `cafile.pem` vouches for.
    pub verify_in: bool,
    /// `tls-verify-policy` `out`/`all`: the peer the switch connects to
    /// must present a certificate `cafile.pem` vouches for.
    pub verify_out: bool,
    /// `tls-verify-depth`: the longest chain (the peer's certificate and
    /// its intermediates) accepted.
    pub verify_depth: usize,
    /// `tls-verify-policy` `subjects_in`/`subjects_all`: a connecting
    /// peer's certificate must also name one of `verify_in_subjects`.
    pub verify_subjects_in: bool,
    /// `tls-verify-in-subjects`: `|`-separated names (`*` for any; a
    /// `sip:` URI compares by its host), as sofia-sip matches them against
    /// the certificate's subjectAltName URIs and DNS names and its CN.
    pub verify_in_subjects: Vec<String>,
    /// The file in `cert_dir` with our chain and key (`agent.pem`; wss
    /// reads `wss.pem`).
    pub agent_file: String,
}

impl Default for TlsSettings {
    fn default() -> TlsSettings {
        TlsSettings {
            enabled: false,
            only: false,
            port: 5061,
            cert_dir: PathBuf::from(DEFAULT_CERT_DIR),
            version: "tlsv1.2,tlsv1.3".into(),
            ciphers: "ALL:!ADH:!LOW:!EXP:!MD5:@STRENGTH".into(),
            verify_in: false,
            verify_out: false,
            verify_depth: 2,
            verify_subjects_in: false,
            verify_in_subjects: Vec::new(),
            agent_file: "agent.pem".into(),
        }
    }
}

impl TlsSettings {
    /// Takes one profile parameter; `Ok(false)` when it is not a TLS one.
    pub fn param(&mut self, name: &str, value: &str) -> Result<bool, String> {
        let bad = || format!("{name} {value:?} is not valid");
        match name {
            "tls" => self.enabled = crate::config::bool_param(value),
            "tls-only" => self.only = crate::config::bool_param(value),
            "tls-sip-port" => self.port = value.parse().map_err(|_| bad())?,
            "tls-cert-dir" if !value.is_empty() => self.cert_dir = PathBuf::from(value),
            "tls-version" if !value.is_empty() => {
                versions(value)?;
                self.version = value.to_string()
            }
            "tls-ciphers" if !value.is_empty() => self.ciphers = value.to_string(),
            "tls-verify-policy" => {
                self.verify_in = false;
                self.verify_out = false;
                self.verify_subjects_in = false;
                for p in value.split('|').map(str::trim) {
                    match p {
                        "none" | "" => {}
                        "in" => self.verify_in = true,
                        "subjects_in" => {
                            self.verify_in = true;
                            self.verify_subjects_in = true;
                        }
                        "out" | "subjects_out" => self.verify_out = true,
                        "all" => {
                            self.verify_in = true;
                            self.verify_out = true;
                        }
                        "subjects_all" => {
                            self.verify_in = true;
                            self.verify_out = true;
                            self.verify_subjects_in = true;
                        }
                        _ => return Err(bad()),
                    }
                }
            }
            "tls-verify-in-subjects" => {
                self.verify_in_subjects = value
                    .split('|')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "tls-verify-depth" => {
                self.verify_depth = value.parse().ok().filter(|d| *d > 0).ok_or_else(bad)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn agent(&self) -> PathBuf {
        self.cert_dir.join(&self.agent_file)
    }

    /// The settings of the wss listener: FreeSWITCH's `wss.pem` in the
    /// same directory (`agent.pem` when there is none), no client
    /// certificates asked (browsers have none).
    pub fn for_wss(&self) -> TlsSettings {
        let wss = self.cert_dir.join("wss.pem").exists();
        TlsSettings {
            agent_file: if wss { "wss.pem" } else { "agent.pem" }.into(),
            verify_in: false,
            ..self.clone()
        }
    }

    fn cafile(&self) -> PathBuf {
        self.cert_dir.join("cafile.pem")
    }
}

/// The protocol versions of a `tls-version` list. rustls has no TLS 1.0
/// or 1.1 (nor SSL): those names are skipped with a warning; a list with
/// nothing else is refused.
fn versions(list: &str) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let mut out = Vec::new();
    for v in list.split(',').map(|v| v.trim().to_ascii_lowercase()) {
        match v.as_str() {
            "tlsv1.2" => out.push(&rustls::version::TLS12),
            "tlsv1.3" => out.push(&rustls::version::TLS13),
            "tlsv1" | "tlsv1.0" | "tlsv1.1" | "sslv23" | "sslv3" => {
                log::warn!("tls-version {v}: not offered (only TLS 1.2 and 1.3 are)")
            }
            _ => return Err(format!("tls-version {v:?} is not a TLS version")),
        }
    }
    if out.is_empty() {
        return Err(format!(
            "tls-version {list:?} names no version offered (tlsv1.2, tlsv1.3)"
        ));
    }
    Ok(out)
}

/// OpenSSL's names of the TLS 1.2 suites rustls has, with rustls' own.
const OPENSSL_SUITES: [(&str, rustls::CipherSuite); 6] = [
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// The crypto provider with the suites `tls-ciphers` allows.
fn provider(ciphers: &str) -> CryptoProvider {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    let named: Vec<rustls::CipherSuite> = ciphers
        .split([':', ',', ' '])
        .filter_map(|t| {
            OPENSSL_SUITES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(t))
        })
        .map(|(_, s)| *s)
        .collect();
    if !named.is_empty() {
        p.cipher_suites
            .retain(|s| s.version() == &rustls::version::TLS13 || named.contains(&s.suite()));
    }
    p
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("{}: no private key ({e})", path.display()))
}

fn roots(settings: &TlsSettings) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(&settings.cafile())? {
        roots
            .add(c)
            .map_err(|e| format!("{}: {e}", settings.cafile().display()))?;
    }
    Ok(roots)
}

/// Refuses chains longer than `tls-verify-depth`, then asks webpki, then
/// (under `subjects_in`) looks for a `tls-verify-in-subjects` name.
#[derive(Debug)]
struct DepthLimited {
    inner: Arc<dyn ClientCertVerifier>,
    depth: usize,
    /// The names one of which the certificate must carry; `None`: any.
    subjects: Option<Vec<String>>,
}

/// The names a certificate carries, as sofia-sip collects them: its
/// subjectAltName URIs and DNS names, then its subject's CN.
pub fn certificate_subjects(der: &[u8]) -> Result<Vec<String>, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("certificate: {e}"))?;
    let mut out = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::URI(u) => out.push(u.to_string()),
                GeneralName::DNSName(d) => out.push(d.to_string()),
                _ => {}
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(v) = cn.as_str() {
            out.push(v.to_string());
        }
    }
    Ok(out)
}

/// sofia-sip's subject search: `*` matches any, a `sip:`/`sips:` URI on
/// either side compares by what follows the scheme, case-insensitively.
pub fn subject_matches(wanted: &str, have: &[String]) -> bool {
    if wanted == "*" {
        return true;
    }
    fn bare(s: &str) -> &str {
        let lower = s.get(..5).map(str::to_ascii_lowercase).unwrap_or_default();
        if lower.starts_with("sips:") {
            &s[5..]
        } else if lower.starts_with("sip:") {
            &s[4..]
        } else {
            s
        }
    }
    have.iter()
        .any(|h| bare(h).eq_ignore_ascii_case(bare(wanted)))
}

impl ClientCertVerifier for DepthLimited {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if intermediates.len() + 1 > self.depth {
            return Err(rustls::Error::General(format!(
                "a chain of {} certificates is longer than tls-verify-depth {}",
                intermediates.len() + 1,
                self.depth
            )));
        }
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if let Some(wanted) = &self.subjects {
            let have = certificate_subjects(end_entity).map_err(rustls::Error::General)?;
            if !wanted.iter().any(|w| subject_matches(w, &have)) {
                return Err(rustls::Error::General(format!(
                    "Peer Subject Mismatch: the certificate names {have:?}, none of tls-verify-in-subjects"
                )));
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `tls-verify-policy` without `out`: the server the switch connects to
/// is not checked (FreeSWITCH's `none`), though its handshake signatures
/// still are.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn server_config(s: &TlsSettings) -> Result<ServerConfig, String> {
    let provider = Arc::new(provider(&s.ciphers));
    let certs = read_certs(&s.agent())?;
    let key = read_key(&s.agent())?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(&s.version)?)
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = if s.verify_in {
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(s)?), provider)
            .build()
            .map_err(|e| format!("tls-verify-policy: {e}"))?;
        // No names listed: sofia-sip lets any verified peer in.
        let subjects = (s.verify_subjects_in && !s.verify_in_subjects.is_empty())
            .then(|| s.verify_in_subjects.clone());
        builder.with_client_cert_verifier(Arc::new(DepthLimited {
            inner,
            depth: s.verify_depth,
            subjects,
        }))
    } else {
        builder.with_no_client_auth()
    };
    builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", s.agent().display()))
}

fn client_config(s: &TlsSettings) -> Result<ClientConfig, String> {
    let provider = Arc::new(provider(&s.ciphers));
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(&s.version)?)
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = if s.verify_out {
        builder.with_root_certificates(roots(s)?)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
    };
    // The switch shows its own certificate to peers that ask for one.
    builder
        .with_client_auth_cert(read_certs(&s.agent())?, read_key(&s.agent())?)
        .map_err(|e| format!("{}: {e}", s.agent().display()))
}

/// A profile's TLS acceptor and connector, replaced whole on reload.
pub struct TlsContext {
    settings: TlsSettings,
    current: RwLock<(TlsAcceptor, TlsConnector)>,
}

impl TlsContext {
    /// Reads the certificates of `settings`.
    pub fn load(settings: &TlsSettings) -> Result<TlsContext, String> {
        Ok(TlsContext {
            settings: settings.clone(),
            current: RwLock::new(Self::build(settings)?),
        })
    }

    fn build(s: &TlsSettings) -> Result<(TlsAcceptor, TlsConnector), String> {
        Ok((
            TlsAcceptor::from(Arc::new(server_config(s)?)),
            TlsConnector::from(Arc::new(client_config(s)?)),
        ))
    }

    /// Reads the certificates again; on an error the old ones stay.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = Self::build(&self.settings)?;
        *self.current.write() = fresh;
        Ok(())
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.current.read().0.clone()
    }

    pub fn connector(&self) -> TlsConnector {
        self.current.read().1.clone()
    }

    /// Where the certificates are read from.
    pub fn cert_dir(&self) -> &Path {
        &self.settings.cert_dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_as_sofia_sip_matches_them() {
        let have = vec!["sip:Phone.Example".to_string(), "alice".to_string()];
        assert!(subject_matches("*", &[]));
        assert!(subject_matches("phone.example", &have));
        assert!(subject_matches("sip:phone.example", &have));
        assert!(subject_matches("ALICE", &have));
        assert!(!subject_matches("bob", &have));
        let mut s = TlsSettings::default();
        s.param("tls-verify-in-subjects", "sip:a.example | b ")
            .unwrap();
        assert_eq!(s.verify_in_subjects, vec!["sip:a.example", "b"]);
        s.param("tls-verify-policy", "subjects_in").unwrap();
        assert!(s.verify_in && s.verify_subjects_in && !s.verify_out);
        s.param("tls-verify-policy", "all").unwrap();
        assert!(!s.verify_subjects_in);
    }

    #[test]
    fn the_verify_policy_sets_which_side_is_checked() {
        let mut s = TlsSettings::default();
        assert!(s.param("tls-verify-policy", "in").unwrap());
        assert!((s.verify_in, s.verify_out) == (true, false));
        s.param("tls-verify-policy", "subjects_out|in").unwrap();
        assert!((s.verify_in, s.verify_out) == (true, true));
        s.param("tls-verify-policy", "none").unwrap();
        assert!((s.verify_in, s.verify_out) == (false, false));
        assert!(s.param("tls-verify-policy", "sometimes").is_err());
        assert!(!s.param("sip-port", "5060").unwrap());
    }

    #[test]
    fn tls_versions_rustls_lacks_are_skipped_and_a_list_of_only_those_refused() {
        assert_eq!(versions("tlsv1,tlsv1.1,tlsv1.2").unwrap().len(), 1);
        assert_eq!(versions("tlsv1.2,tlsv1.3").unwrap().len(), 2);
        assert!(versions("tlsv1").is_err());
        assert!(versions("tlsv9").is_err());
    }

    #[test]
    fn openssl_cipher_names_choose_the_tls12_suites_and_keywords_keep_all() {
        let all = provider("ALL:!ADH:!LOW:!EXP:!MD5:@STRENGTH");
        assert_eq!(
            all.cipher_suites.len(),
            rustls::crypto::aws_lc_rs::default_provider()
                .cipher_suites
                .len()
        );
        let one = provider("ECDHE-RSA-AES128-GCM-SHA256");
        let tls12: Vec<_> = one
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
            .map(|s| s.suite())
            .collect();
        assert_eq!(
            tls12,
            vec![rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
        );
        assert!(one
            .cipher_suites
            .iter()
            .any(|s| s.version() == &rustls::version::TLS13));
    }
}
