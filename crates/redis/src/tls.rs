//! The rustls client configuration of a `rediss://` endpoint: Mozilla's roots and the
//! endpoint's own, an optional client identity, and a verifier that remembers why it refused a
//! server certificate (the client reports a failed handshake only as an I/O error).

use std::sync::{Arc, Mutex};

use fred::types::config::{TlsConfig, TlsConnector};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::endpoint::RedisEndpoint;
use crate::error::{Cause, ConnectError};

/// Where the verifier leaves its last refusal.
pub(crate) type Refusal = Arc<Mutex<Option<rustls::Error>>>;

fn invalid(reason: String, source: Option<Cause>) -> ConnectError {
    ConnectError::InvalidTls { reason, source }
}

/// The TLS settings of `endpoint` for the client, and where a refused certificate is recorded.
pub(crate) fn config(endpoint: &RedisEndpoint) -> Result<(TlsConfig, Refusal), ConnectError> {
    // The ring provider named explicitly: rustls's process default is ambiguous when another
    // crate of the program enables aws-lc-rs as well.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = roots(endpoint)?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| invalid(format!("root certificates: {e}"), Some(Cause::new(e))))?;
    let refusal = Refusal::default();
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("protocol versions: {e}"), Some(Cause::new(e))))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Recording {
            inner: verifier,
            refusal: refusal.clone(),
        }));
    let config = match &endpoint.identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let chain = CertificateDer::pem_slice_iter(chain)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    invalid(
                        format!("client certificate chain: {e}"),
                        Some(Cause::new(e)),
                    )
                })?;
            if chain.is_empty() {
                return Err(invalid(
                    "client certificate chain: no CERTIFICATE block in the PEM".to_owned(),
                    None,
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| invalid(format!("client private key: {e}"), Some(Cause::new(e))))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid(format!("client identity: {e}"), Some(Cause::new(e))))?
        }
    };
    Ok((TlsConnector::from(config).into(), refusal))
}

/// Mozilla's roots (unless turned off) and the endpoint's own.
fn roots(endpoint: &RedisEndpoint) -> Result<RootCertStore, ConnectError> {
    let mut roots = RootCertStore::empty();
    if endpoint.default_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for (index, pem) in endpoint.roots.iter().enumerate() {
        let name = format!("root certificate {}", index + 1);
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("{name}: {e}"), Some(Cause::new(e))))?;
        if certs.is_empty() {
            return Err(invalid(
                format!("{name}: no CERTIFICATE block in the PEM"),
                None,
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| invalid(format!("{name}: {e}"), Some(Cause::new(e))))?;
        }
    }
    if roots.is_empty() {
        return Err(invalid(
            "no root certificate to trust: tls_default_roots(false) and no tls_root_pem".to_owned(),
            None,
        ));
    }
    Ok(roots)
}

/// The WebPKI verifier, recording why it refused a certificate.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    refusal: Refusal,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .inspect_err(|e| {
                if let Ok(mut refusal) = self.refusal.lock() {
                    *refusal = Some(e.clone());
                }
            })
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
