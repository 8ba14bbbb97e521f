//! Authentication of every call: V1 (`Signature` parameter, HMAC-SHA1) or V3
//! (`Authorization: ACS3-HMAC-SHA256 ...`), the ±15 minute timestamp window, and
//! nonce replay protection inside that window.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use palisade_model::{AccessKey, Account};
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::params::Params;
use crate::sign;

pub const TIMESTAMP_WINDOW: Duration = Duration::from_secs(15 * 60);

/// What the HTTP layer hands to authentication.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// Query and form parameters merged (V1 signs all of them).
    pub params: &'a Params,
    /// Only the URL query (V3 signs the query, not a form body).
    pub query: &'a Params,
    /// Header names lower-case, values as received.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl SignedRequest<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Remembers nonces for the length of the timestamp window.
#[derive(Default)]
pub struct NonceCache {
    inner: Mutex<NonceInner>,
}

#[derive(Default)]
struct NonceInner {
    seen: HashMap<(String, String), Instant>,
    order: VecDeque<(Instant, (String, String))>,
}

impl NonceCache {
    /// Records the nonce; false if it was already used inside the window.
    pub fn check_and_insert(&self, access_key_id: &str, nonce: &str) -> bool {
        let now = Instant::now();
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        while let Some((t, _)) = g.order.front() {
            if now.duration_since(*t) < 2 * TIMESTAMP_WINDOW {
                break;
            }
            if let Some((t, key)) = g.order.pop_front() {
                if g.seen.get(&key) == Some(&t) {
                    g.seen.remove(&key);
                }
            }
        }
        let key = (access_key_id.to_string(), nonce.to_string());
        if g.seen.contains_key(&key) {
            return false;
        }
        g.seen.insert(key.clone(), now);
        g.order.push_back((now, key));
        true
    }
}

fn parse_timestamp(s: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| ApiError::InvalidTimeStampFormat)
}

fn check_window(ts: OffsetDateTime, now: OffsetDateTime) -> Result<(), ApiError> {
    let skew = (now - ts).abs();
    if skew > time::Duration::seconds(TIMESTAMP_WINDOW.as_secs() as i64) {
        return Err(ApiError::InvalidTimeStampExpired);
    }
    Ok(())
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Which scheme the request used, with the parts needed after the key lookup.
pub enum Credentials {
    V1 {
        access_key_id: String,
        signature: String,
        nonce: String,
    },
    V3 {
        access_key_id: String,
        signed_headers: Vec<String>,
        signature: String,
        nonce: String,
    },
}

impl Credentials {
    pub fn access_key_id(&self) -> &str {
        match self {
            Credentials::V1 { access_key_id, .. } | Credentials::V3 { access_key_id, .. } => {
                access_key_id
            }
        }
    }
}

/// Reads the credentials and checks the timestamp; no key lookup yet.
pub fn extract(req: &SignedRequest, now: OffsetDateTime) -> Result<Credentials, ApiError> {
    if let Some(auth) = req.header("authorization") {
        let rest = auth.strip_prefix("ACS3-HMAC-SHA256 ").ok_or_else(|| {
            ApiError::IncompleteSignature("Unsupported Authorization scheme.".into())
        })?;
        let mut cred = None;
        let mut signed = None;
        let mut sig = None;
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                cred = Some(v.to_string());
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed = Some(v.to_string());
            } else if let Some(v) = part.strip_prefix("Signature=") {
                sig = Some(v.to_string());
            }
        }
        let (Some(access_key_id), Some(signed), Some(signature)) = (cred, signed, sig) else {
            return Err(ApiError::IncompleteSignature(
                "Authorization lacks Credential, SignedHeaders or Signature.".into(),
            ));
        };
        let date = req
            .header("x-acs-date")
            .ok_or_else(|| ApiError::MissingParameter("x-acs-date".into()))?;
        check_window(parse_timestamp(date)?, now)?;
        let nonce = req
            .header("x-acs-signature-nonce")
            .ok_or_else(|| ApiError::MissingParameter("x-acs-signature-nonce".into()))?
            .to_string();
        let signed_headers: Vec<String> =
            signed.split(';').map(|s| s.to_ascii_lowercase()).collect();
        return Ok(Credentials::V3 {
            access_key_id,
            signed_headers,
            signature,
            nonce,
        });
    }
    let p = req.params;
    let signature = p.required("Signature")?.to_string();
    let access_key_id = p.required("AccessKeyId")?.to_string();
    if let Some(m) = p.opt("SignatureMethod") {
        if m != "HMAC-SHA1" {
            return Err(ApiError::UnsupportedSignatureMethod);
        }
    }
    let ts = p.required("Timestamp")?;
    check_window(parse_timestamp(ts)?, now)?;
    let nonce = p.required("SignatureNonce")?.to_string();
    Ok(Credentials::V1 {
        access_key_id,
        signature,
        nonce,
    })
}

/// Verifies the signature with the stored key and records the nonce in `nonces`.
pub fn verify(
    req: &SignedRequest,
    creds: &Credentials,
    key: &AccessKey,
    account: &Account,
    nonces: &NonceCache,
) -> Result<(), ApiError> {
    let _ = account;
    let nonce = verify_signature(req, creds, key)?;
    if !nonces.check_and_insert(&key.id, nonce) {
        return Err(ApiError::SignatureNonceUsed);
    }
    Ok(())
}

/// Verifies the signature with the stored key; the nonce to record on success.
pub fn verify_signature<'c>(
    req: &SignedRequest,
    creds: &'c Credentials,
    key: &AccessKey,
) -> Result<&'c str, ApiError> {
    if !key.enabled {
        return Err(ApiError::AccessKeyDisabled);
    }
    let nonce = match creds {
        Credentials::V1 {
            signature, nonce, ..
        } => {
            let sts = sign::v1_string_to_sign(
                req.method,
                req.params
                    .pairs()
                    .iter()
                    .filter(|(k, _)| k != "Signature")
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            let expected = sign::v1_signature(&key.secret, &sts);
            if !ct_eq(&expected, signature) {
                return Err(ApiError::SignatureDoesNotMatch {
                    string_to_sign: sts,
                });
            }
            nonce
        }
        Credentials::V3 {
            signed_headers,
            signature,
            nonce,
            ..
        } => {
            let mut headers = Vec::with_capacity(signed_headers.len());
            for name in signed_headers {
                let v = req.header(name).ok_or_else(|| {
                    ApiError::IncompleteSignature(format!("Signed header {name} is missing."))
                })?;
                headers.push((name.clone(), v.to_string()));
            }
            let payload_hash = sign::sha256_hex(req.body);
            let canonical = sign::v3_canonical_request(
                req.method,
                "/",
                req.query
                    .pairs()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
                &headers,
                &payload_hash,
            );
            let sts = sign::v3_string_to_sign(&canonical);
            let expected = sign::v3_signature(&key.secret, &sts);
            if !ct_eq(&expected, signature) {
                return Err(ApiError::SignatureDoesNotMatch {
                    string_to_sign: sts,
                });
            }
            nonce
        }
    };
    Ok(nonce)
}
