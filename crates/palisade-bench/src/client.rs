//! A minimal ECS RPC client in the shape of the classic SDK: `POST /?<params>` with an empty
//! body, V1 (HMAC-SHA1) signature, `Format=JSON`, a fresh `SignatureNonce` and `Timestamp`
//! on every request, persistent HTTP/1.1 connections.

use crate::http::{Connection, Reply};
use palisade_api::sign::{percent_encode, sign_v1_params};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::workload::mix64;

pub const API_VERSION: &str = "2014-05-26";

/// A failed call, with what is needed to report it exactly.
#[derive(Debug, Clone)]
pub struct CallError {
    /// Key for the per-phase error counts: the `Code` of an API error, `HTTP <status>` when
    /// an error reply has no code, `Transport(<kind>)`, or `BadReply`.
    pub code: String,
    pub action: String,
    /// The request as sent: `POST /?<query>`.
    pub request: String,
    /// HTTP status, 0 for transport errors.
    pub status: u16,
    /// The reply body, or the transport error text.
    pub reply: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed: {} (HTTP {})\n  request: {}\n  reply:   {}",
            self.action, self.code, self.status, self.request, self.reply
        )
    }
}

/// One client (one persistent connection); the benchmark gives each worker thread its own.
pub struct EcsClient {
    /// `host:port` of the endpoint.
    addr: String,
    timeout: Duration,
    conn: Mutex<Option<Connection>>,
    access_key_id: String,
    access_key_secret: String,
    region: String,
}

impl EcsClient {
    pub fn new(
        endpoint: &str,
        access_key_id: &str,
        access_key_secret: &str,
        region: &str,
        timeout: Duration,
    ) -> Self {
        let addr = endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        EcsClient {
            addr,
            timeout,
            conn: Mutex::new(None),
            access_key_id: access_key_id.to_string(),
            access_key_secret: access_key_secret.to_string(),
            region: region.to_string(),
        }
    }

    /// One request on the persistent connection (opened on first use, and again after
    /// the server closed it).
    fn post(&self, action: &str, query: &str) -> std::io::Result<Reply> {
        let request = format!(
            "POST /?{query} HTTP/1.1\r\nHost: {}\r\nUser-Agent: palisade-bench/{}\r\n\
             x-acs-action: {action}\r\nx-acs-version: {API_VERSION}\r\nContent-Length: 0\r\n\r\n",
            self.addr,
            env!("CARGO_PKG_VERSION")
        );
        let mut slot = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(Connection::connect(&self.addr, self.timeout)?);
        }
        let conn = slot.as_mut().expect("connected above");
        match conn.round_trip(request.as_bytes()) {
            Ok((reply, keep_alive)) => {
                if !keep_alive {
                    *slot = None;
                }
                Ok(reply)
            }
            Err(e) => {
                *slot = None;
                Err(e)
            }
        }
    }

    /// The signed query string of a call (without the leading `?`).
    pub fn signed_query(&self, action: &str, params: &[(&str, String)]) -> String {
        let mut all: Vec<(String, String)> = Vec::with_capacity(params.len() + 11);
        for (k, v) in params {
            all.push((k.to_string(), v.clone()));
        }
        all.push(("Version".into(), API_VERSION.into()));
        all.push(("Action".into(), action.into()));
        all.push(("Format".into(), "JSON".into()));
        if !params.iter().any(|(k, _)| *k == "RegionId") {
            all.push(("RegionId".into(), self.region.clone()));
        }
        all.push(("Timestamp".into(), utc_timestamp(SystemTime::now())));
        all.push(("SignatureMethod".into(), "HMAC-SHA1".into()));
        all.push(("SignatureType".into(), String::new()));
        all.push(("SignatureVersion".into(), "1.0".into()));
        all.push(("SignatureNonce".into(), nonce()));
        all.push(("AccessKeyId".into(), self.access_key_id.clone()));
        sign_v1_params("POST", &mut all, &self.access_key_secret);
        let mut q = String::with_capacity(512);
        for (n, (k, v)) in all.iter().enumerate() {
            if n > 0 {
                q.push('&');
            }
            q.push_str(&percent_encode(k));
            q.push('=');
            q.push_str(&percent_encode(v));
        }
        q
    }

    /// Calls `action`; a 2xx reply must be a JSON object.
    pub fn call(&self, action: &str, params: &[(&str, String)]) -> Result<Value, CallError> {
        self.call_as::<serde_json::Map<String, Value>>(action, params)
            .map(|(m, _)| Value::Object(m))
    }

    /// Calls `action` and decodes a 2xx reply as `T` (only the fields the caller needs,
    /// so the timed phases do not pay for a full JSON tree). Returns the body too.
    pub fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        action: &str,
        params: &[(&str, String)],
    ) -> Result<(T, String), CallError> {
        let query = self.signed_query(action, params);
        let err = |code: String, status: u16, reply: String| CallError {
            code,
            action: action.to_string(),
            request: format!("POST /?{query}"),
            status,
            reply,
        };
        let reply = self
            .post(action, &query)
            .map_err(|e| err(format!("Transport({:?})", e.kind()), 0, e.to_string()))?;
        let (status, body) = (reply.status, reply.body);
        if (200..300).contains(&status) {
            match serde_json::from_str::<T>(&body) {
                Ok(v) => Ok((v, body)),
                Err(_) => Err(err("BadReply".into(), status, body)),
            }
        } else {
            let code = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| {
                    v.get("Code")
                        .or_else(|| v.get("code"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_else(|| format!("HTTP {status}"));
            Err(err(code, status, body))
        }
    }
}

/// `YYYY-MM-DDThh:mm:ssZ` (UTC, whole seconds), as the SDKs send `Timestamp`.
pub fn utc_timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_utc(secs)
}

pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A 32-hex-digit nonce, unique within the process (the low half is a bijection of a counter)
/// and, through the start-time key, across runs.
pub fn nonce() -> String {
    static KEY: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let key = *KEY.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        mix64(nanos ^ (u64::from(std::process::id()) << 32))
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:016x}{:016x}",
        mix64(key ^ 0xA076_1D64_78BD_642F ^ n.rotate_left(32)),
        mix64(key ^ n)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_api::sign::{v1_signature, v1_string_to_sign};
    use std::collections::HashSet;

    #[test]
    fn timestamps() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_utc(1_456_231_584), "2016-02-23T12:46:24Z");
        assert_eq!(format_utc(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn nonces_are_unique_hex() {
        let set: HashSet<String> = (0..10_000).map(|_| nonce()).collect();
        assert_eq!(set.len(), 10_000);
        assert!(set.iter().all(|n| n[..16] != n[16..]));
        assert!(set
            .iter()
            .all(|n| n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit())));
    }

    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut k = 0;
        while k < b.len() {
            if b[k] == b'%' {
                out.push(u8::from_str_radix(&s[k + 1..k + 3], 16).unwrap());
                k += 3;
            } else {
                out.push(b[k]);
                k += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    /// Re-verifies the signature of a built query the way a server would.
    #[test]
    fn signed_query_verifies() {
        let c = EcsClient::new(
            "http://127.0.0.1:1/",
            "testak",
            "testsecret",
            "cn-hangzhou",
            Duration::from_secs(1),
        );
        let q = c.signed_query(
            "AuthorizeSecurityGroup",
            &[
                ("SecurityGroupId", "sg-1".into()),
                ("PortRange", "-1/-1".into()),
                ("SourceCidrIp", "10.0.2.0/24".into()),
                ("Description", "a b*c~ü".into()),
            ],
        );
        let pairs: Vec<(String, String)> = q
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (decode(k), decode(v))
            })
            .collect();
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("SignatureType").as_deref(), Some(""));
        assert_eq!(get("Format").as_deref(), Some("JSON"));
        assert_eq!(get("RegionId").as_deref(), Some("cn-hangzhou"));
        assert_eq!(get("Version").as_deref(), Some(API_VERSION));
        assert_eq!(get("Description").as_deref(), Some("a b*c~ü"));
        assert!(q.contains("Description=a%20b%2Ac~%C3%BC"));
        let sig = get("Signature").unwrap();
        let sts = v1_string_to_sign(
            "POST",
            pairs
                .iter()
                .filter(|(k, _)| k != "Signature")
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        assert_eq!(v1_signature("testsecret", &sts), sig);
        assert_ne!(v1_signature("wrong", &sts), sig);
    }
}
