//! HTTP front end: parse the request once into a typed [`Action`], authenticate it, run
//! its handler inside a store transaction, and encode the reply or the ECS error envelope.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use palisade_model::{AccessKey, Account, Direction};
use palisade_store::{ClientTokenRecord, Store, StoreError, StoreResult, Tx, WriteJob};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::auth::{self, NonceCache, SignedRequest};
use crate::encode;
use crate::error::{ApiError, RECOMMEND_BASE};
use crate::params::Params;
use crate::service::{self, Config, HResult, Reply};
use crate::{decision, enforcement, membership};

pub const API_VERSION: &str = "2014-05-26";
pub const MAX_BODY: usize = 1024 * 1024;
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

macro_rules! actions {
    ($($name:ident => $write:expr),* $(,)?) => {
        /// Every action this server answers; anything else is `InvalidAction.NotFound`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Action { $($name),* }
        impl Action {
            pub fn parse(s: &str) -> Option<Action> {
                match s { $(stringify!($name) => Some(Action::$name),)* _ => None }
            }
            pub fn name(&self) -> &'static str {
                match self { $(Action::$name => stringify!($name)),* }
            }
            /// Whether the action changes state (and so goes through the writer).
            pub fn is_write(&self) -> bool {
                match self { $(Action::$name => $write),* }
            }
            pub const ALL: &'static [Action] = &[$(Action::$name),*];
        }
    };
}

actions! {
    DescribeRegions => false,
    CreateVpc => true,
    DescribeVpcs => false,
    DeleteVpc => true,
    CreateSecurityGroup => true,
    DescribeSecurityGroups => false,
    DescribeSecurityGroupAttribute => false,
    ModifySecurityGroupAttribute => true,
    ModifySecurityGroupPolicy => true,
    DeleteSecurityGroup => true,
    DescribeSecurityGroupReferences => false,
    AuthorizeSecurityGroup => true,
    AuthorizeSecurityGroupEgress => true,
    RevokeSecurityGroup => true,
    RevokeSecurityGroupEgress => true,
    ModifySecurityGroupRule => true,
    ModifySecurityGroupEgressRule => true,
    RunInstances => true,
    DescribeInstances => false,
    DeleteInstance => true,
    CreateNetworkInterface => true,
    DescribeNetworkInterfaces => false,
    DeleteNetworkInterface => true,
    JoinSecurityGroup => true,
    LeaveSecurityGroup => true,
    CheckSecurityGroupAccess => false,
    DescribeEnforcementState => false,
    WaitForChange => false,
}

/// Runs one action's handler on a transaction.
fn dispatch(
    action: Action,
    cfg: &Config,
    tx: &mut dyn Tx,
    account: &Account,
    p: &Params,
) -> HResult {
    use Action::*;
    match action {
        DescribeRegions => service::describe_regions(cfg, p),
        CreateVpc => service::create_vpc(cfg, tx, account, p),
        DescribeVpcs => service::describe_vpcs(cfg, tx, account, p),
        DeleteVpc => service::delete_vpc(cfg, tx, account, p),
        CreateSecurityGroup => service::create_security_group(cfg, tx, account, p),
        DescribeSecurityGroups => service::describe_security_groups(cfg, tx, account, p),
        DescribeSecurityGroupAttribute => {
            service::describe_security_group_attribute(cfg, tx, account, p)
        }
        ModifySecurityGroupAttribute => {
            service::modify_security_group_attribute(cfg, tx, account, p)
        }
        ModifySecurityGroupPolicy => service::modify_security_group_policy(cfg, tx, account, p),
        DeleteSecurityGroup => service::delete_security_group(cfg, tx, account, p),
        DescribeSecurityGroupReferences => {
            service::describe_security_group_references(cfg, tx, account, p)
        }
        AuthorizeSecurityGroup => service::authorize(cfg, tx, account, p, Direction::Ingress),
        AuthorizeSecurityGroupEgress => service::authorize(cfg, tx, account, p, Direction::Egress),
        RevokeSecurityGroup => service::revoke(cfg, tx, account, p, Direction::Ingress),
        RevokeSecurityGroupEgress => service::revoke(cfg, tx, account, p, Direction::Egress),
        ModifySecurityGroupRule => service::modify_rule(cfg, tx, account, p, Direction::Ingress),
        ModifySecurityGroupEgressRule => {
            service::modify_rule(cfg, tx, account, p, Direction::Egress)
        }
        RunInstances => membership::run_instances(cfg, tx, account, p),
        DescribeInstances => membership::describe_instances(cfg, tx, account, p),
        DeleteInstance => membership::delete_instance(cfg, tx, account, p),
        CreateNetworkInterface => membership::create_network_interface(cfg, tx, account, p),
        DescribeNetworkInterfaces => membership::describe_network_interfaces(cfg, tx, account, p),
        DeleteNetworkInterface => membership::delete_network_interface(cfg, tx, account, p),
        JoinSecurityGroup => membership::join_security_group(cfg, tx, account, p),
        LeaveSecurityGroup => membership::leave_security_group(cfg, tx, account, p),
        CheckSecurityGroupAccess => decision::check_security_group_access(cfg, tx, account, p),
        DescribeEnforcementState => enforcement::describe_enforcement_state(cfg, tx, account, p),
        // Answered in `App::call` without a transaction: it waits.
        WaitForChange => Err(ApiError::InternalError),
    }
}

pub struct App {
    pub store: Arc<dyn Store>,
    pub cfg: Config,
    pub nonces: NonceCache,
    keys: Mutex<HashMap<String, (Instant, AccessKey, Account)>>,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    /// The newest committed revision this process knows of; long polls wait on it.
    revision: tokio::sync::watch::Sender<u64>,
}

/// How long a looked-up key is trusted before the store is asked again.
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Xml,
}

/// Parameters that belong to the protocol, not the action: left out of ClientToken fingerprints.
const COMMON_PARAMS: &[&str] = &[
    "Action",
    "Version",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "SignatureType",
    "Timestamp",
    "Format",
    "ClientToken",
];

fn fingerprint(action: Action, p: &Params) -> String {
    let mut pairs: Vec<(&str, &str)> = p
        .pairs()
        .iter()
        .filter(|(k, _)| !COMMON_PARAMS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.sort();
    let canon = crate::sign::canonical_query(pairs);
    crate::sign::sha256_hex(format!("{}?{}", action.name(), canon).as_bytes())
}

struct Job<F> {
    f: F,
    result: Option<HResult>,
    reply: Option<oneshot::Sender<HResult>>,
}

impl<F> WriteJob for Job<F>
where
    F: FnMut(&mut dyn Tx) -> HResult + Send,
{
    fn run(&mut self, tx: &mut dyn Tx) -> StoreResult<bool> {
        let r = (self.f)(tx);
        let keep = r.is_ok();
        self.result = Some(r);
        Ok(keep)
    }
    fn finish(mut self: Box<Self>, committed: Result<(), StoreError>) {
        let out = match committed {
            Ok(()) => self.result.take().unwrap_or(Err(ApiError::InternalError)),
            Err(_) => Err(ApiError::InternalError),
        };
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(out);
        }
    }
}

impl App {
    pub fn new(store: Arc<dyn Store>, cfg: Config) -> Arc<App> {
        Arc::new(App {
            store,
            cfg,
            nonces: NonceCache::default(),
            keys: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
            revision: tokio::sync::watch::channel(0).0,
        })
    }

    /// Runs a write handler in the writer's transaction; the reply comes after the commit.
    async fn write(&self, f: impl FnMut(&mut dyn Tx) -> HResult + Send + 'static) -> HResult {
        let (tx, rx) = oneshot::channel();
        self.store.submit(Box::new(Job {
            f,
            result: None,
            reply: Some(tx),
        }));
        rx.await.unwrap_or(Err(ApiError::InternalError))
    }

    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        mut f: impl FnMut(&mut dyn Tx) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        // Reads are short SQLite lookups: running them in place costs less than handing
        // them to another thread and back (measured: the hand-off dominated describe).
        let mut out = None;
        self.store.read(&mut |tx| {
            out = Some(f(tx));
            Ok(())
        })?;
        out.unwrap_or(Err(ApiError::InternalError))
    }

    async fn authenticate(self: &Arc<Self>, req: &SignedRequest<'_>) -> Result<Account, ApiError> {
        let creds = auth::extract(req, time::OffsetDateTime::now_utc())?;
        let ak = creds.access_key_id().replace('\0', "\u{FFFD}");
        let cached = lock(&self.keys)
            .get(&ak)
            .filter(|(at, _, _)| at.elapsed() < KEY_CACHE_TTL)
            .map(|(_, k, a)| (k.clone(), a.clone()));
        let (key, account) = match cached {
            Some(found) => found,
            None => {
                let lookup = ak.clone();
                let found = self
                    .read(move |tx| Ok(tx.account_by_access_key(&lookup)?))
                    .await?
                    .ok_or(ApiError::InvalidAccessKeyIdNotFound)?;
                let mut keys = lock(&self.keys);
                if keys.len() > 10_000 {
                    keys.clear();
                }
                keys.insert(ak, (Instant::now(), found.0.clone(), found.1.clone()));
                found
            }
        };
        let nonce = auth::verify_signature(req, &creds, &key)?;
        // Servers sharing a database check nonces there; a lone server keeps them in memory.
        let shared = self.store.use_nonce(
            &key.id,
            &nonce.replace('\0', "\u{FFFD}"),
            2 * auth::TIMESTAMP_WINDOW.as_secs(),
        )?;
        let fresh = shared.unwrap_or_else(|| self.nonces.check_and_insert(&key.id, nonce));
        if !fresh {
            return Err(ApiError::SignatureNonceUsed);
        }
        self.throttle(&key.id)?;
        Ok(account)
    }

    /// A token bucket per AccessKey: `rate_limit` requests a second, bursts of twice that.
    fn throttle(&self, key_id: &str) -> Result<(), ApiError> {
        let rate = self.cfg.rate_limit as f64;
        if rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        let (tokens, last) = buckets
            .entry(key_id.to_string())
            .or_insert((2.0 * rate, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(2.0 * rate);
        *last = now;
        if *tokens < 1.0 {
            return Err(ApiError::Throttling);
        }
        *tokens -= 1.0;
        Ok(())
    }

    /// Everything after HTTP decoding: the action, the caller, the handler.
    async fn call(self: &Arc<Self>, action: Action, req: &SignedRequest<'_>) -> HResult {
        let account = self.authenticate(req).await?;
        let mut params = req.params.clone();
        params.replace_nul();
        let app = self.clone();
        if action == Action::WaitForChange {
            crate::service::region(&self.cfg, &params)?;
            return self.wait_for_change(&params).await;
        }
        if !action.is_write() {
            return self
                .read(move |tx| dispatch(action, &app.cfg, tx, &account, &params))
                .await;
        }
        let token = params.opt("ClientToken").map(str::to_string);
        if let Some(t) = &token {
            if t.len() > 64 || !t.is_ascii() {
                return Err(ApiError::InvalidClientToken);
            }
        }
        let bumped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = bumped.clone();
        let result = self
            .write(move |tx| {
                let reply = app.write_once(action, tx, &account, &params, token.as_deref())?;
                seen.store(tx.bump_revision()?, std::sync::atomic::Ordering::Relaxed);
                Ok(reply)
            })
            .await;
        if result.is_ok() {
            // Committed: wake the long polls.
            let rev = bumped.load(std::sync::atomic::Ordering::Relaxed);
            self.revision.send_if_modified(|cur| {
                let newer = rev > *cur;
                if newer {
                    *cur = rev;
                }
                newer
            });
        }
        result
    }

    /// One write action, with `ClientToken` idempotency.
    fn write_once(
        &self,
        action: Action,
        tx: &mut dyn Tx,
        account: &Account,
        params: &Params,
        token: Option<&str>,
    ) -> HResult {
        tx.lock_account(account.id)?;
        let Some(token) = token else {
            return dispatch(action, &self.cfg, tx, account, params);
        };
        // Same token, same request: the first answer again, nothing changed.
        let fp = fingerprint(action, params);
        if let Some(rec) = tx.client_token(account.id, token)? {
            if rec.fingerprint != fp {
                return Err(ApiError::IdempotentParameterMismatch);
            }
            return match serde_json::from_str::<Value>(&rec.response) {
                Ok(Value::Object(m)) => Ok(m),
                _ => Err(ApiError::InternalError),
            };
        }
        let reply = dispatch(action, &self.cfg, tx, account, params)?;
        tx.put_client_token(
            account.id,
            token,
            &ClientTokenRecord {
                fingerprint: fp,
                response: Value::Object(reply.clone()).to_string(),
            },
        )?;
        Ok(reply)
    }

    /// `WaitForChange`: answers as soon as the revision passes `Revision`, or after
    /// `WaitSeconds`. Re-reads the store every 250 ms so changes committed by another
    /// server on the same database are seen too.
    async fn wait_for_change(self: &Arc<Self>, params: &Params) -> HResult {
        let since = params
            .opt_int(
                "Revision",
                0,
                i64::MAX,
                ApiError::InvalidParameter("Revision".into()),
            )?
            .unwrap_or(0) as u64;
        let wait = params
            .opt_int(
                "WaitSeconds",
                0,
                30,
                ApiError::InvalidParameter("WaitSeconds".into()),
            )?
            .unwrap_or(25) as u64;
        let deadline = Instant::now() + Duration::from_secs(wait);
        let mut rx = self.revision.subscribe();
        loop {
            let current = self.read(|tx| Ok(tx.revision()?)).await?;
            self.revision.send_if_modified(|cur| {
                let newer = current > *cur;
                if newer {
                    *cur = current;
                }
                newer
            });
            let now = Instant::now();
            if current > since || now >= deadline {
                let mut reply = Reply::new();
                reply.insert("Revision".into(), json!(current));
                return Ok(reply);
            }
            let slice = (deadline - now).min(Duration::from_millis(250));
            let _ = tokio::time::timeout(slice, rx.changed()).await;
        }
    }

    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let request_id = uuid::Uuid::new_v4().to_string().to_ascii_uppercase();
        let method = req.method().as_str().to_string();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let header = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        let mut query = Params::new();
        let query_ok = query.extend_urlencoded(req.uri().query().unwrap_or("").as_bytes());
        // Before the body is read: the format asked for shapes even early errors.
        let format = match query.get("Format").map(|f| f.to_ascii_lowercase()) {
            Some(f) if f == "json" => Format::Json,
            Some(f) if f == "xml" => Format::Xml,
            _ if header("accept").is_some_and(|a| a.contains("json")) => Format::Json,
            _ => Format::Xml,
        };
        let is_form = header("content-type").is_some_and(|c| {
            c.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        let path_ok = req.uri().path() == "/" || req.uri().path().is_empty();
        let method_ok = method == "GET" || method == "POST";
        // A client that stops sending its body does not hold the connection forever.
        let collected = tokio::time::timeout(
            BODY_TIMEOUT,
            Limited::new(req.into_body(), MAX_BODY).collect(),
        )
        .await;
        let body = match collected {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(_)) => {
                return self.error_response(format, &request_id, ApiError::RequestTooLarge);
            }
            Err(_) => {
                return self.error_response(format, &request_id, ApiError::RequestTimeout);
            }
        };
        let mut params = query.clone();
        let mut parsed = query_ok;
        if parsed.is_ok() && is_form {
            parsed = params.extend_urlencoded(&body);
        }
        // The body's Format, for form-only clients (pop-core POST).
        let format = match params.get("Format").map(|f| f.to_ascii_lowercase()) {
            Some(f) if f == "json" => Format::Json,
            Some(f) if f == "xml" => Format::Xml,
            _ => format,
        };
        let outcome = async {
            parsed?;
            if !method_ok {
                return Err(ApiError::UnsupportedHttpMethod);
            }
            if !path_ok {
                return Err(ApiError::InvalidActionNotFound);
            }
            let action_name = params
                .opt("Action")
                .or_else(|| header("x-acs-action"))
                .ok_or_else(|| ApiError::MissingParameter("Action".into()))?
                .to_string();
            let version = params
                .opt("Version")
                .or_else(|| header("x-acs-version"))
                .ok_or_else(|| ApiError::MissingParameter("Version".into()))?;
            let action = Action::parse(&action_name).ok_or(ApiError::InvalidActionNotFound)?;
            if version != API_VERSION {
                return Err(ApiError::InvalidVersion);
            }
            let signed = SignedRequest {
                method: &method,
                params: &params,
                query: &query,
                headers: &headers,
                body: &body,
            };
            let reply = self.call(action, &signed).await?;
            Ok((action, reply))
        }
        .await;
        match outcome {
            Ok((action, reply)) => success_response(format, &request_id, action, reply),
            Err(e) => self.error_response(format, &request_id, e),
        }
    }

    fn error_response(
        &self,
        format: Format,
        request_id: &str,
        e: ApiError,
    ) -> Response<Full<Bytes>> {
        let code = e.code();
        let body = json!({
            "RequestId": request_id,
            "HostId": self.cfg.host_id,
            "Code": code,
            "Message": e.message(),
            "Recommend": format!("{RECOMMEND_BASE}{code}&product=Ecs&requestId={request_id}"),
        });
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        build(format, status, request_id, "Error", &body)
    }
}

/// A poisoned lock only means another request panicked mid-update of a cache; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn success_response(
    format: Format,
    request_id: &str,
    action: Action,
    reply: Reply,
) -> Response<Full<Bytes>> {
    let mut body = Map::with_capacity(reply.len() + 1);
    body.insert("RequestId".into(), Value::String(request_id.to_string()));
    for (k, v) in reply {
        body.insert(k, v);
    }
    let root = format!("{}Response", action.name());
    build(
        format,
        StatusCode::OK,
        request_id,
        &root,
        &Value::Object(body),
    )
}

fn build(
    format: Format,
    status: StatusCode,
    request_id: &str,
    xml_root: &str,
    body: &Value,
) -> Response<Full<Bytes>> {
    let (ct, text) = match format {
        Format::Json => ("application/json;charset=utf-8", encode::to_json(body)),
        Format::Xml => ("text/xml;charset=utf-8", encode::to_xml(xml_root, body)),
    };
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert("content-type", hyper::header::HeaderValue::from_static(ct));
    if let Ok(v) = hyper::header::HeaderValue::from_str(request_id) {
        h.insert("x-acs-request-id", v);
    }
    resp
}

/// Serves until the process ends. `on_ready` gets the bound address.
pub async fn serve(app: Arc<App>, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _peer): (_, SocketAddr) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .keep_alive(true)
                .max_buf_size(256 * 1024)
                .header_read_timeout(std::time::Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
