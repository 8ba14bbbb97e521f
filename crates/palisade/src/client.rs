//! `palisade call <Action> --Param value ...`: a signed V1 request, reply printed as is.

use palisade_api::sign::{percent_encode, sign_v1_params};

#[derive(clap::Args)]
#[command(trailing_var_arg = true)]
pub struct CallArgs {
    /// Server URL.
    #[arg(
        long,
        env = "PALISADE_ENDPOINT",
        default_value = "http://127.0.0.1:8080"
    )]
    endpoint: String,
    #[arg(long, env = "PALISADE_ACCESS_KEY_ID")]
    access_key_id: Option<String>,
    #[arg(long, env = "PALISADE_ACCESS_KEY_SECRET")]
    access_key_secret: Option<String>,
    /// Read the key from a credentials file (as written on first start).
    #[arg(long, env = "PALISADE_CREDENTIALS")]
    credentials: Option<std::path::PathBuf>,
    #[arg(long, env = "PALISADE_REGION", default_value = "cn-hangzhou")]
    region: String,
    /// JSON or XML.
    #[arg(long, default_value = "JSON")]
    format: String,
    /// The action, then `--Name value` pairs (for `check`: extra pairs only, e.g. what-if).
    #[arg(allow_hyphen_values = true, num_args = 0..)]
    rest: Vec<String>,
}

fn credentials(args: &CallArgs) -> Result<(String, String), String> {
    palisade_agent::api::load_credentials(
        args.access_key_id.as_deref(),
        args.access_key_secret.as_deref(),
        args.credentials.as_deref(),
    )
}

/// `--Name value` and `--Name=value` pairs.
fn parse_pairs(rest: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let Some(name) = flag.strip_prefix("--") else {
            return Err(format!("expected --Name, got {flag}"));
        };
        let (name, value) = match name.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => match it.next() {
                Some(v) => (name.to_string(), v.clone()),
                None => return Err(format!("--{name} needs a value")),
            },
        };
        params.push((name, value));
    }
    Ok(params)
}

pub fn run(args: CallArgs) -> i32 {
    let Some((action, rest)) = args.rest.split_first() else {
        eprintln!("palisade call: name an action");
        return 2;
    };
    let params = match parse_pairs(rest) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("palisade call: {e}");
            return 2;
        }
    };
    match send(&args, action, params) {
        Ok((status, body)) => {
            if args.format.eq_ignore_ascii_case("json") {
                match serde_json::from_str::<serde_json::Value>(&body) {
                    Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or(body)),
                    Err(_) => println!("{body}"),
                }
            } else {
                println!("{body}");
            }
            if (200..300).contains(&status) {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("palisade call: {e}");
            2
        }
    }
}

/// Signs and sends one call; the HTTP status and body.
pub fn send(
    args: &CallArgs,
    action: &str,
    mut params: Vec<(String, String)>,
) -> Result<(u16, String), String> {
    let (ak, secret) = credentials(args)?;
    if !params.iter().any(|(k, _)| k == "RegionId") {
        params.push(("RegionId".into(), args.region.clone()));
    }
    let now = time::OffsetDateTime::now_utc();
    let ts = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    for (k, v) in [
        ("Action", action),
        ("Version", "2014-05-26"),
        ("Format", args.format.as_str()),
        ("AccessKeyId", ak.as_str()),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", &uuid::Uuid::new_v4().simple().to_string()),
        ("Timestamp", ts.as_str()),
    ] {
        params.push((k.to_string(), v.to_string()));
    }
    sign_v1_params("POST", &mut params, &secret);
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    let url = format!(
        "{}/?{}",
        args.endpoint.trim_end_matches('/'),
        query.join("&")
    );
    match ureq::post(&url).call() {
        Ok(r) => Ok((r.status(), r.into_string().unwrap_or_default())),
        Err(ureq::Error::Status(code, r)) => Ok((code, r.into_string().unwrap_or_default())),
        Err(e) => Err(e.to_string()),
    }
}

/// `palisade check`: can this packet reach (or leave) that interface, and which rule says so?
#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    call: CallArgs,
    /// The network interface (eni-...).
    #[arg(long, conflicts_with = "instance")]
    nic: Option<String>,
    /// Or an instance (i-...): its primary interface.
    #[arg(long)]
    instance: Option<String>,
    /// ingress or egress.
    #[arg(long, default_value = "ingress")]
    direction: String,
    /// tcp, udp, icmp, gre or a protocol number.
    #[arg(long, default_value = "tcp")]
    protocol: String,
    /// The remote address (source of ingress, destination of egress).
    #[arg(long)]
    peer: String,
    /// Destination port.
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[arg(long, default_value_t = 0)]
    source_port: u16,
    /// The interface's address the packet uses (default: its private address).
    #[arg(long)]
    local_ip: Option<String>,
    /// Judge the packet as a reply of an established connection.
    #[arg(long)]
    reply: bool,
}

pub fn check(args: CheckArgs) -> i32 {
    let mut params = match parse_pairs(&args.call.rest) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("palisade check: {e}");
            return 2;
        }
    };
    match (&args.nic, &args.instance) {
        (Some(n), _) => params.push(("NetworkInterfaceId".into(), n.clone())),
        (None, Some(i)) => params.push(("InstanceId".into(), i.clone())),
        (None, None) => {
            eprintln!("palisade check: give --nic or --instance");
            return 2;
        }
    }
    for (k, v) in [
        ("Direction", args.direction.clone()),
        ("IpProtocol", args.protocol.clone()),
        ("PeerIpAddress", args.peer.clone()),
        ("DestinationPort", args.port.to_string()),
        ("SourcePort", args.source_port.to_string()),
        ("Reply", args.reply.to_string()),
    ] {
        params.push((k.into(), v));
    }
    if let Some(ip) = &args.local_ip {
        params.push(("LocalIpAddress".into(), ip.clone()));
    }
    match send(&args.call, "CheckSecurityGroupAccess", params) {
        Ok((status, body)) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if status != 200 {
                eprintln!(
                    "palisade check: {} {}",
                    v["Code"].as_str().unwrap_or(""),
                    v["Message"].as_str().unwrap_or(&body)
                );
                return 2;
            }
            print!("{}", v["Explanation"].as_str().unwrap_or(""));
            0
        }
        Err(e) => {
            eprintln!("palisade check: {e}");
            2
        }
    }
}
