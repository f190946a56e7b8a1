//! wss: the certificate of a profile's secure listeners and the TLS
//! acceptor built from it. The certificate comes from `secure-combined`
//! (one PEM with the chain and the key, FreeSWITCH's `wss.pem`) or
//! `secure-cert` + `secure-key`; when the configured file does not exist,
//! a self-signed certificate for the listeners' addresses and `localhost`
//! is generated and written there (mode 0600), so it stays the same across
//! restarts and a client can be told to trust it once.

use crate::config::Profile;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Where the certificate is kept when the profile names no file.
pub const DEFAULT_COMBINED: &str = "/tmp/hotswitch/certs/wss.pem";

/// The acceptor of `profile`'s secure listeners.
pub fn acceptor(profile: &Profile) -> Result<TlsAcceptor, String> {
    let (certs, key) = match (&profile.secure_cert, &profile.secure_key) {
        (Some(cert), Some(key)) => (read_certs(Path::new(cert))?, read_key(Path::new(key))?),
        _ => {
            let path = PathBuf::from(
                profile
                    .secure_combined
                    .as_deref()
                    .unwrap_or(DEFAULT_COMBINED),
            );
            if !path.exists() {
                generate(&path, profile)?;
            }
            (read_certs(&path)?, read_key(&path)?)
        }
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
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

/// Writes a self-signed certificate and its key to `path`.
fn generate(path: &Path, profile: &Profile) -> Result<(), String> {
    let mut names = vec!["localhost".to_string()];
    for a in &profile.secure_binds {
        let ip = a.ip().to_string();
        if !names.contains(&ip) {
            names.push(ip);
        }
    }
    let cert = rcgen::generate_simple_self_signed(names.clone())
        .map_err(|e| format!("generating a certificate: {e}"))?;
    let pem = format!("{}{}", cert.cert.pem(), cert.signing_key.serialize_pem());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    write_private(path, pem.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    log::warn!(
        "profile {}: no certificate at {}: generated a self-signed one for {}",
        profile.name,
        path.display(),
        names.join(", ")
    );
    Ok(())
}

/// Creates `path` readable by its owner only (it holds a private key).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(dir: &Path) -> Profile {
        let xml = format!(
            r#"<configuration><profiles><profile name="p">
  <param name="bind-local" value="127.0.0.1:8082" secure="true"/>
  <param name="secure-combined" value="{}/wss.pem"/>
</profile></profiles></configuration>"#,
            dir.display()
        );
        crate::config::Config::from_xml(&xml)
            .unwrap()
            .profiles
            .remove(0)
    }

    #[test]
    fn a_missing_certificate_is_generated_once_and_then_reused() {
        let dir = std::env::temp_dir().join(format!("verto-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = profile(&dir);
        acceptor(&p).expect("generated");
        let path = dir.join("wss.pem");
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(first.contains("BEGIN CERTIFICATE") && first.contains("PRIVATE KEY"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        acceptor(&p).expect("reused");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_without_a_key_is_refused_with_its_path() {
        let dir = std::env::temp_dir().join(format!("verto-tls-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wss.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = acceptor(&profile(&dir)).err().expect("refused");
        assert!(e.contains("wss.pem"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
