//! The RTMPS listener's certificate: a PEM certificate chain and key, as a kubernetes.io/tls
//! Secret mounts them (`tls.crt`, `tls.key`). cert-manager renews the Secret and the kubelet
//! swaps the files (through the `..data` symlink); [`TlsFiles::watch`] notices the new bytes and
//! puts the new pair in use for the next handshake, without a restart. A pair that does not
//! load (half-written, key and certificate that do not match) is logged and counted, and the
//! last good pair stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// How often the certificate files are compared with what is in use.
pub const TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// PEM files bigger than this are not certificates for one host.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// A certificate and key followed on disk.
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Vec<u8>, Arc<ServerConfig>)>,
}

fn read_pem(path: &Path) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_PEM_BYTES {
        return Err(Error::Tls(format!(
            "{}: {len} bytes is not a certificate or key",
            path.display()
        )));
    }
    std::fs::read(path).map_err(io)
}

/// A server config (ring provider, TLS 1.2 and 1.3) from PEM bytes.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("certificate: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls("certificate: no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| Error::Tls(format!("private key: {e}")))?;
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| Error::Tls(format!("certificate and key: {e}")))?;
    Ok(Arc::new(config))
}

impl TlsFiles {
    /// Load the pair now; a pair that does not load is a start-up error naming the file.
    pub fn load(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Arc<Self>> {
        let (cert, key) = (cert.into(), key.into());
        let (bytes, config) = Self::read(&cert, &key)?;
        Ok(Arc::new(TlsFiles {
            cert,
            key,
            current: RwLock::new((bytes, config)),
        }))
    }

    fn read(cert: &Path, key: &Path) -> Result<(Vec<u8>, Arc<ServerConfig>)> {
        let cert_pem = read_pem(cert)?;
        let key_pem = read_pem(key)?;
        let config = server_config(&cert_pem, &key_pem)?;
        let mut both = cert_pem;
        both.extend(key_pem);
        Ok((both, config))
    }

    /// The acceptor for the next handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        TlsAcceptor::from(current.1.clone())
    }

    /// Look at the files again: a changed, good pair goes in use (`Ok(true)`); a changed, bad
    /// pair is an error and the last good pair stays.
    pub fn reload(&self) -> Result<bool> {
        let cert_pem = read_pem(&self.cert)?;
        let key_pem = read_pem(&self.key)?;
        let mut both = cert_pem.clone();
        both.extend_from_slice(&key_pem);
        {
            let current = self.current.read().unwrap_or_else(|p| p.into_inner());
            if current.0 == both {
                return Ok(false);
            }
        }
        let config = server_config(&cert_pem, &key_pem)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (both, config);
        Ok(true)
    }

    /// Reload every `interval` until `stop`, counting loads and refusals. A bad pair is logged
    /// once until the files change again.
    pub async fn watch(
        self: Arc<Self>,
        metrics: Metrics,
        interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut failing: Option<String> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            match self.reload() {
                Ok(true) => {
                    failing = None;
                    metrics.tls_reloads.inc();
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                }
                Ok(false) => failing = None,
                Err(e) => {
                    let message = e.to_string();
                    if failing.as_deref() != Some(&message) {
                        metrics.tls_reload_errors.inc();
                        tracing::warn!(cert = %self.cert.display(), error = %message, "TLS certificate refused; the last good one stays in use");
                        failing = Some(message);
                    }
                }
            }
        }
    }
}

/// A self-signed certificate for local use (`roomcast dev`): where it is and its SHA-256
/// fingerprint, which a streamer compares with what their client shows.
#[derive(Clone, Debug)]
pub struct SelfSigned {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// SHA-256 of the DER certificate, as colon-separated upper-case hex (what browsers and
    /// `openssl x509 -fingerprint -sha256` print).
    pub fingerprint: String,
}

/// The self-signed certificate in `dir` (`tls.crt`, `tls.key`), made on first use for
/// `localhost` and `127.0.0.1` and kept afterwards, so a client that pinned it keeps trusting
/// it across runs.
pub fn ensure_self_signed(dir: &Path) -> Result<SelfSigned> {
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    if !cert.exists() || !key.exists() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let made = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .map_err(|e| Error::Tls(format!("generating a certificate: {e}")))?;
        std::fs::write(&key, made.signing_key.serialize_pem()).map_err(io(&key))?;
        std::fs::write(&cert, made.cert.pem()).map_err(io(&cert))?;
    }
    let pem = read_pem(&cert)?;
    // Refuse a pair that does not load now, not at the first handshake.
    server_config(&pem, &read_pem(&key)?)?;
    let der = CertificateDer::pem_slice_iter(&pem)
        .next()
        .and_then(|c| c.ok())
        .ok_or_else(|| Error::Tls(format!("{}: no certificate", cert.display())))?;
    Ok(SelfSigned {
        cert,
        key,
        fingerprint: fingerprint(&der),
    })
}

/// SHA-256 fingerprint of a DER certificate, `AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("self-signed");
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    #[test]
    fn a_changed_pair_is_put_in_use_and_a_bad_one_is_refused_keeping_the_last() {
        let dir = tempfile::tempdir().expect("dir");
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (c1, k1) = pair("one.example");
        std::fs::write(&cert, &c1).expect("cert");
        std::fs::write(&key, &k1).expect("key");
        let files = TlsFiles::load(&cert, &key).expect("load");
        assert!(
            !files.reload().expect("unchanged"),
            "same bytes: nothing to do"
        );
        let (c2, k2) = pair("two.example");
        std::fs::write(&cert, &c2).expect("cert");
        // Half-rotated: the new certificate with the old key does not load.
        let err = files.reload().expect_err("mismatched pair").to_string();
        assert!(err.contains("certificate and key"), "{err}");
        std::fs::write(&key, &k2).expect("key");
        assert!(files.reload().expect("rotated"), "new pair in use");
        std::fs::write(&cert, b"-----BEGIN CERTIFICATE-----\ngarbage\n").expect("cert");
        assert!(files.reload().is_err(), "garbage refused");
        std::fs::write(&key, b"").expect("key");
        assert!(files.reload().is_err(), "empty key refused");
        assert!(
            TlsFiles::load(&cert, &key).is_err(),
            "a bad pair at start is an error"
        );
    }

    #[test]
    fn the_self_signed_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let first = ensure_self_signed(dir.path()).expect("made");
        let again = ensure_self_signed(dir.path()).expect("kept");
        assert_eq!(first.fingerprint, again.fingerprint);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1, "{}", first.fingerprint);
        TlsFiles::load(&first.cert, &first.key).expect("usable");
    }
}
