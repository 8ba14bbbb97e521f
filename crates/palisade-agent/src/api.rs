//! The signed ECS RPC client the agent (and its tests) use: V1 signature, POST to `/`,
//! `Format=JSON`, one call per request.

use std::time::Duration;

use palisade_api::sign::{percent_encode, sign_v1_params};
use serde_json::Value;

/// Where the server is and who we are.
#[derive(Clone, Debug)]
pub struct ApiClient {
    pub endpoint: String,
    pub access_key_id: String,
    pub access_key_secret: String,
    pub region: String,
    agent: ureq::Agent,
}

/// A failed call: transport trouble, or an error reply of the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The server could not be reached or the reply was not readable.
    Transport(String),
    /// The API answered with an error (HTTP status, `Code`, `Message`).
    Api {
        status: u16,
        code: String,
        message: String,
    },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport(e) => write!(f, "transport: {e}"),
            CallError::Api {
                status,
                code,
                message,
            } => write!(f, "{status} {code}: {message}"),
        }
    }
}

impl std::error::Error for CallError {}

/// The AccessKey pair for a client command: both given (flags or environment), or read
/// from the `AccessKeyId=`/`AccessKeySecret=` lines of a credentials file (the one the
/// server writes on first start, by default `palisade-data/default-credentials`).
pub fn load_credentials(
    access_key_id: Option<&str>,
    access_key_secret: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<(String, String), String> {
    if let (Some(id), Some(secret)) = (access_key_id, access_key_secret) {
        return Ok((id.to_string(), secret.to_string()));
    }
    let path = file.unwrap_or(std::path::Path::new("palisade-data/default-credentials"));
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "no key: set PALISADE_ACCESS_KEY_ID and PALISADE_ACCESS_KEY_SECRET, or --credentials ({}: {e})",
            path.display()
        )
    })?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(|s| s.trim().to_string())
    };
    match (field("AccessKeyId"), field("AccessKeySecret")) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(format!(
            "{} lacks AccessKeyId/AccessKeySecret",
            path.display()
        )),
    }
}

impl ApiClient {
    pub fn new(endpoint: &str, access_key_id: &str, access_key_secret: &str, region: &str) -> Self {
        ApiClient {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            access_key_id: access_key_id.to_string(),
            access_key_secret: access_key_secret.to_string(),
            region: region.to_string(),
            // Long polls last up to 30 s; leave room for the reply.
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout(Duration::from_secs(45))
                .build(),
        }
    }

    /// One signed call; the JSON reply of a success.
    pub fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<Value, CallError> {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.call_owned(action, owned)
    }

    pub fn call_owned(
        &self,
        action: &str,
        mut params: Vec<(String, String)>,
    ) -> Result<Value, CallError> {
        if !params.iter().any(|(k, _)| k == "RegionId") {
            params.push(("RegionId".into(), self.region.clone()));
        }
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let ts = palisade_api::service::now_iso();
        for (k, v) in [
            ("Action", action),
            ("Version", "2014-05-26"),
            ("Format", "JSON"),
            ("AccessKeyId", self.access_key_id.as_str()),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", nonce.as_str()),
            ("Timestamp", ts.as_str()),
        ] {
            params.push((k.to_string(), v.to_string()));
        }
        sign_v1_params("POST", &mut params, &self.access_key_secret);
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        let url = format!("{}/?{}", self.endpoint, query.join("&"));
        let (status, body) = match self.agent.post(&url).call() {
            Ok(r) => (r.status(), r.into_string()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string()),
            Err(e) => return Err(CallError::Transport(e.to_string())),
        };
        let body = body.map_err(|e| CallError::Transport(e.to_string()))?;
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| CallError::Transport(format!("reply is not JSON ({e}): {body}")))?;
        if (200..300).contains(&status) && v.get("Code").is_none() {
            Ok(v)
        } else {
            Err(CallError::Api {
                status,
                code: v["Code"].as_str().unwrap_or("").to_string(),
                message: v["Message"].as_str().unwrap_or(&body).to_string(),
            })
        }
    }

    /// `WaitForChange`: the server's revision once it passes `since`, or after
    /// `wait_seconds` (then equal to `since`).
    pub fn wait_for_change(&self, since: u64, wait_seconds: u32) -> Result<u64, CallError> {
        let v = self.call(
            "WaitForChange",
            &[
                ("Revision", &since.to_string()),
                ("WaitSeconds", &wait_seconds.to_string()),
            ],
        )?;
        v["Revision"]
            .as_u64()
            .ok_or_else(|| CallError::Transport(format!("WaitForChange without Revision: {v}")))
    }

    /// The server's current revision (a long poll that does not wait).
    pub fn revision(&self) -> Result<u64, CallError> {
        self.wait_for_change(0, 0)
    }
}
