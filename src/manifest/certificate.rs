//! `[load_balancer] tls_certificate`: the PEM file (certificate chain and
//! its private key) checked when the manifest is opened — it parses, holds a
//! key, the key belongs to the first certificate, and it has not expired —
//! so a bad file is a manifest error at `tls_certificate`'s file:line:col
//! and nothing is changed.
//!
//! Parsed with RustCrypto's `x509-cert` (and `pkcs8`/`sec1` for the key, all
//! on `der`, which the SSH stack already builds): the key is matched to the
//! certificate by its public half, which RSA (PKCS#1 or PKCS#8) and EC keys
//! (SEC1 or PKCS#8, as OpenSSL writes them) carry, so no signature code is
//! needed. Other key types are refused with a clear error.
//!
//! The file's bytes never reach a message: errors name the file and the
//! problem only.

use std::ops::Range;
use std::path::{Path, PathBuf};

use der::{Decode, Encode, Reader, SliceReader, asn1::UintRef};
use x509_cert::Certificate as X509;

use super::diagnostic::Diagnostic;

/// A certificate expiring within this many days is warned about (plan, status).
pub const WARN_DAYS: i64 = 14;

/// What the load balancer serves, from a PEM file that passed [`parse`].
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Where the file is (the manifest's directory joined with the path written).
    pub path: PathBuf,
    /// sha256 of the file: the `tls` input of `lb.config`, so a renewed
    /// certificate is planned as an update of the load balancer only.
    pub digest: String,
    pub not_after: jiff::Timestamp,
    /// The first certificate's subject (e.g. `CN=example.com`).
    pub subject: String,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("path", &self.path)
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Whole days left at `now` (negative once expired).
    pub fn days_left(&self, now: jiff::Timestamp) -> i64 {
        (self.not_after.as_second() - now.as_second()).div_euclid(86_400)
    }

    /// A warning when the certificate expires within [`WARN_DAYS`] of `now`.
    pub fn warning(&self, now: jiff::Timestamp) -> Option<String> {
        let days = self.days_left(now);
        (days < WARN_DAYS).then(|| {
            format!(
                "the TLS certificate {} ({}) expires in {days} day(s), at {}: renew it and apply",
                self.path.display(),
                self.subject,
                self.not_after
            )
        })
    }
}

/// Why a PEM file cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertProblem {
    #[error("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    #[error("the certificate does not parse: {0}")]
    BadCertificate(String),
    #[error("holds no private key (-----BEGIN PRIVATE KEY-----, RSA or EC PRIVATE KEY)")]
    NoKey,
    #[error("holds {0} private keys; keep only the certificate's")]
    TwoKeys(usize),
    #[error("the private key does not parse: {0}")]
    BadKey(String),
    #[error("the private key is of a type appgrid cannot check ({0}); use an RSA or ECDSA key")]
    UnsupportedKey(String),
    #[error("the private key does not belong to the first certificate ({subject})")]
    Mismatch { subject: String },
    #[error("the certificate ({subject}) expired at {not_after}")]
    Expired { subject: String, not_after: String },
    #[error("the certificate ({subject}) is not valid before {not_before}")]
    NotYetValid { subject: String, not_before: String },
}

impl CertProblem {
    fn help(&self) -> &'static str {
        match self {
            CertProblem::NoKey | CertProblem::TwoKeys(_) | CertProblem::Mismatch { .. } => {
                "the file holds the certificate chain (leaf first) and the leaf's private key, e.g. `cat fullchain.pem privkey.pem > fullchain-and-key.pem`"
            }
            CertProblem::Expired { .. } | CertProblem::NotYetValid { .. } => {
                "renew the certificate and point `tls_certificate` at the new file"
            }
            _ => {
                "point `tls_certificate` at a PEM file: the certificate chain (leaf first) and its private key"
            }
        }
    }
}

/// One `-----BEGIN LABEL-----` block, decoded.
struct Block {
    label: String,
    der: Vec<u8>,
}

fn blocks(pem: &[u8]) -> Result<Vec<Block>, CertProblem> {
    let text = std::str::from_utf8(pem)
        .map_err(|_| CertProblem::BadCertificate("the file is not PEM text".into()))?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let label_end = after[11..]
            .find("-----")
            .ok_or_else(|| CertProblem::BadCertificate("a BEGIN line is not closed".into()))?;
        let label = &after[11..11 + label_end];
        let end_line = format!("-----END {label}-----");
        let end = after.find(&end_line).ok_or_else(|| {
            CertProblem::BadCertificate(format!("no END line for the {label} block"))
        })?;
        let block = &after[..end + end_line.len()];
        let (got, der) = der::pem::decode_vec(block.as_bytes()).map_err(|e| {
            let what = format!("the {label} block is not valid PEM ({e})");
            if label.contains("PRIVATE KEY") {
                CertProblem::BadKey(what)
            } else {
                CertProblem::BadCertificate(what)
            }
        })?;
        out.push(Block {
            label: got.to_string(),
            der,
        });
        rest = &after[end + end_line.len()..];
    }
    Ok(out)
}

const RSA: &str = "1.2.840.113549.1.1.1";
const EC: &str = "1.2.840.10045.2.1";

/// The public key a private key carries, comparable with a certificate's
/// subjectPublicKey bits: RSA as the DER of (modulus, exponent), EC as the point.
fn public_of(block: &Block) -> Result<Vec<u8>, CertProblem> {
    let bad = |e: der::Error| CertProblem::BadKey(e.to_string());
    match block.label.as_str() {
        "RSA PRIVATE KEY" => rsa_public(&block.der),
        "EC PRIVATE KEY" => ec_public(&block.der),
        "PRIVATE KEY" => {
            let info = pkcs8::PrivateKeyInfoRef::from_der(&block.der).map_err(bad)?;
            let inner = info.private_key.as_bytes();
            match info.algorithm.oid.to_string().as_str() {
                RSA => rsa_public(inner),
                EC => ec_public(inner),
                other => Err(CertProblem::UnsupportedKey(format!("algorithm {other}"))),
            }
        }
        "ENCRYPTED PRIVATE KEY" => Err(CertProblem::UnsupportedKey(
            "an encrypted key: HAProxy cannot ask for its passphrase".into(),
        )),
        other => Err(CertProblem::UnsupportedKey(other.to_string())),
    }
}

/// PKCS#1 RSAPrivateKey → RSAPublicKey DER (modulus, publicExponent).
fn rsa_public(der_bytes: &[u8]) -> Result<Vec<u8>, CertProblem> {
    let bad = |e: der::Error| CertProblem::BadKey(e.to_string());
    let mut reader = SliceReader::new(der_bytes).map_err(bad)?;
    let (n, e) = reader
        .sequence(|r| {
            let _version = UintRef::decode(r)?;
            let n = UintRef::decode(r)?;
            let e = UintRef::decode(r)?;
            // The private parts: read past, never kept.
            let rest = r.remaining_len();
            r.read_slice(rest)?;
            Ok((n, e))
        })
        .map_err(bad)?;
    let mut out = Vec::new();
    let len = (n.encoded_len().map_err(bad)? + e.encoded_len().map_err(bad)?).map_err(bad)?;
    der::Header::new(der::Tag::Sequence, len)
        .encode_to_vec(&mut out)
        .map_err(bad)?;
    n.encode_to_vec(&mut out).map_err(bad)?;
    e.encode_to_vec(&mut out).map_err(bad)?;
    Ok(out)
}

/// SEC1 ECPrivateKey → its public point (OpenSSL always writes it).
fn ec_public(der_bytes: &[u8]) -> Result<Vec<u8>, CertProblem> {
    let key =
        sec1::EcPrivateKey::from_der(der_bytes).map_err(|e| CertProblem::BadKey(e.to_string()))?;
    key.public_key.map(<[u8]>::to_vec).ok_or_else(|| {
        CertProblem::BadKey(
            "the EC key does not carry its public point; write it with `openssl ec`".into(),
        )
    })
}

fn timestamp(t: &x509_cert::time::Time) -> jiff::Timestamp {
    let secs = t.to_unix_duration().as_secs();
    jiff::Timestamp::from_second(i64::try_from(secs).unwrap_or(i64::MAX))
        .unwrap_or(jiff::Timestamp::MAX)
}

/// Check a PEM file's bytes at `now`; the parts of a [`Certificate`] but its path.
pub fn parse(pem: &[u8], now: jiff::Timestamp) -> Result<(String, jiff::Timestamp), CertProblem> {
    let blocks = blocks(pem)?;
    let leaf = blocks
        .iter()
        .find(|b| b.label == "CERTIFICATE")
        .ok_or(CertProblem::NoCertificate)?;
    for b in blocks.iter().filter(|b| b.label == "CERTIFICATE") {
        X509::from_der(&b.der).map_err(|e| CertProblem::BadCertificate(e.to_string()))?;
    }
    let cert = X509::from_der(&leaf.der).map_err(|e| CertProblem::BadCertificate(e.to_string()))?;
    let tbs = cert.tbs_certificate();
    let subject = tbs.subject().to_string();
    let keys: Vec<&Block> = blocks
        .iter()
        .filter(|b| b.label.ends_with("PRIVATE KEY"))
        .collect();
    let key = match keys.as_slice() {
        [] => return Err(CertProblem::NoKey),
        [one] => *one,
        many => return Err(CertProblem::TwoKeys(many.len())),
    };
    let public = public_of(key)?;
    let spki = tbs.subject_public_key_info();
    if spki.subject_public_key.raw_bytes() != public.as_slice() {
        return Err(CertProblem::Mismatch { subject });
    }
    let validity = tbs.validity();
    let (not_before, not_after) = (
        timestamp(&validity.not_before),
        timestamp(&validity.not_after),
    );
    if not_after <= now {
        return Err(CertProblem::Expired {
            subject,
            not_after: not_after.to_string(),
        });
    }
    if not_before > now {
        return Err(CertProblem::NotYetValid {
            subject,
            not_before: not_before.to_string(),
        });
    }
    Ok((subject, not_after))
}

/// Read and check `tls_certificate` (relative to the manifest at `manifest`,
/// whose text is `text`); a problem is a diagnostic at the value's span.
pub fn check(
    manifest: &Path,
    text: &str,
    certificate: &str,
    span: Range<usize>,
    now: jiff::Timestamp,
) -> Result<Certificate, Box<Diagnostic>> {
    let base = manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let path = base.join(certificate);
    let error = |message: String, help: &str| {
        Box::new(Diagnostic::error(manifest, text, span.clone(), message).with_help(help))
    };
    let pem = std::fs::read(&path).map_err(|e| {
        error(
            format!("cannot read the TLS certificate {}: {e}", path.display()),
            "`tls_certificate` is a path relative to the manifest",
        )
    })?;
    let (subject, not_after) = parse(&pem, now).map_err(|p| {
        error(
            format!("the TLS certificate {}: {p}", path.display()),
            p.help(),
        )
    })?;
    Ok(Certificate {
        digest: crate::hash::sha256_hex(&pem),
        path,
        not_after,
        subject,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_CRT: &str = include_str!("testdata/rsa.crt");
    const RSA_PKCS8: &str = include_str!("testdata/rsa.pkcs8.key");
    const RSA_PKCS1: &str = include_str!("testdata/rsa.pkcs1.key");
    const EC_CRT: &str = include_str!("testdata/ec.crt");
    const EC_PKCS8: &str = include_str!("testdata/ec.pkcs8.key");
    const EC_SEC1: &str = include_str!("testdata/ec.sec1.key");
    const ED_KEY: &str = include_str!("testdata/ed.key");

    /// Within the test certificates' validity (2026-12-02 to 2036-11-29).
    fn now() -> jiff::Timestamp {
        "2027-06-01T00:00:00Z".parse().unwrap()
    }

    fn pem(parts: &[&str]) -> Vec<u8> {
        parts.concat().into_bytes()
    }

    #[test]
    fn rsa_and_ec_keys_in_each_encoding_match_their_certificate() {
        for (crt, key, cn) in [
            (RSA_CRT, RSA_PKCS8, "CN=rsa.test"),
            (RSA_CRT, RSA_PKCS1, "CN=rsa.test"),
            (EC_CRT, EC_PKCS8, "CN=ec.test"),
            (EC_CRT, EC_SEC1, "CN=ec.test"),
            // Key first, chain after: order does not matter for the key.
            (EC_SEC1, EC_CRT, "CN=ec.test"),
        ] {
            let (subject, not_after) = parse(&pem(&[crt, key]), now()).unwrap();
            assert_eq!(subject, cn);
            assert_eq!(not_after.to_string(), {
                let s = if cn.contains("rsa") { RSA_CRT } else { EC_CRT };
                let c = X509::from_der(&der::pem::decode_vec(s.as_bytes()).unwrap().1).unwrap();
                timestamp(&c.tbs_certificate().validity().not_after).to_string()
            });
        }
    }

    #[test]
    fn each_bad_file_is_its_own_problem() {
        type Is = fn(&CertProblem) -> bool;
        let cases: Vec<(Vec<u8>, Is)> = vec![
            (b"hello".to_vec(), |p| *p == CertProblem::NoCertificate),
            (pem(&[RSA_PKCS8]), |p| *p == CertProblem::NoCertificate),
            (pem(&[RSA_CRT]), |p| *p == CertProblem::NoKey),
            (pem(&[RSA_CRT, RSA_PKCS1, RSA_PKCS8]), |p| {
                *p == CertProblem::TwoKeys(2)
            }),
            (
                pem(&[RSA_CRT, EC_SEC1]),
                |p| matches!(p, CertProblem::Mismatch { subject } if subject == "CN=rsa.test"),
            ),
            (pem(&[EC_CRT, RSA_PKCS8]), |p| {
                matches!(p, CertProblem::Mismatch { .. })
            }),
            (pem(&[EC_CRT, ED_KEY]), |p| {
                matches!(p, CertProblem::UnsupportedKey(_))
            }),
            (
                pem(&[
                    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                    EC_SEC1,
                ]),
                |p| matches!(p, CertProblem::BadCertificate(_)),
            ),
            (
                pem(&[
                    EC_CRT,
                    "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
                ]),
                |p| matches!(p, CertProblem::BadKey(_)),
            ),
            (pem(&[&EC_CRT[..EC_CRT.len() - 10]]), |p| {
                matches!(p, CertProblem::BadCertificate(_))
            }),
        ];
        for (i, (bytes, is)) in cases.iter().enumerate() {
            let p = parse(bytes, now()).unwrap_err();
            assert!(is(&p), "case {i}: {p:?}");
            // No problem repeats the file's bytes.
            let shown = p.to_string();
            for line in String::from_utf8_lossy(bytes)
                .lines()
                .filter(|l| l.len() > 20)
            {
                assert!(!shown.contains(line), "case {i}: {shown}");
            }
        }
    }

    #[test]
    fn validity_is_checked_against_the_time_given() {
        let file = pem(&[EC_CRT, EC_SEC1]);
        let after: jiff::Timestamp = "2037-01-01T00:00:00Z".parse().unwrap();
        assert!(matches!(
            parse(&file, after),
            Err(CertProblem::Expired { .. })
        ));
        let before: jiff::Timestamp = "2020-01-01T00:00:00Z".parse().unwrap();
        assert!(matches!(
            parse(&file, before),
            Err(CertProblem::NotYetValid { .. })
        ));
    }

    #[test]
    fn a_problem_is_a_diagnostic_at_the_value_and_the_warning_comes_at_14_days() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tls.pem"), pem(&[EC_CRT])).unwrap();
        let manifest = dir.path().join("appgrid.toml");
        let text = "[load_balancer]\ntls_certificate = \"tls.pem\"\n";
        let start = text.find("\"tls.pem\"").unwrap();
        let d = check(&manifest, text, "tls.pem", start..start + 9, now()).unwrap_err();
        assert_eq!((d.line, d.column), (2, 19));
        assert!(d.message.contains("holds no private key"), "{}", d.message);
        std::fs::write(dir.path().join("tls.pem"), pem(&[EC_CRT, EC_SEC1])).unwrap();
        let c = check(&manifest, text, "tls.pem", start..start + 9, now()).unwrap();
        assert_eq!(c.digest, crate::hash::sha256_hex(&pem(&[EC_CRT, EC_SEC1])));
        assert_eq!(c.warning(now()), None);
        let near = c.not_after - jiff::SignedDuration::from_hours(24 * 13);
        let w = c.warning(near).unwrap();
        assert!(w.contains("expires in 13 day(s)"), "{w}");
        assert!(!format!("{c:?}").contains("BEGIN"));
    }
}
