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
    /// The action, then `--Name value` pairs.
    #[arg(allow_hyphen_values = true, num_args = 1..)]
    rest: Vec<String>,
}

fn credentials(args: &CallArgs) -> Result<(String, String), String> {
    if let (Some(id), Some(secret)) = (&args.access_key_id, &args.access_key_secret) {
        return Ok((id.clone(), secret.clone()));
    }
    let path = args
        .credentials
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("palisade-data/default-credentials"));
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "no key: set PALISADE_ACCESS_KEY_ID and PALISADE_ACCESS_KEY_SECRET, or --credentials ({}: {e})",
            path.display()
        )
    })?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    match (field("AccessKeyId"), field("AccessKeySecret")) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(format!(
            "{} lacks AccessKeyId/AccessKeySecret",
            path.display()
        )),
    }
}

pub fn run(args: CallArgs) -> i32 {
    let Some((action, rest)) = args.rest.split_first() else {
        eprintln!("palisade call: name an action");
        return 2;
    };
    let (ak, secret) = match credentials(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("palisade call: {e}");
            return 2;
        }
    };
    let mut params: Vec<(String, String)> = Vec::new();
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let Some(name) = flag.strip_prefix("--") else {
            eprintln!("palisade call: expected --Name, got {flag}");
            return 2;
        };
        let (name, value) = match name.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => match it.next() {
                Some(v) => (name.to_string(), v.clone()),
                None => {
                    eprintln!("palisade call: --{name} needs a value");
                    return 2;
                }
            },
        };
        params.push((name, value));
    }
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
        ("Action", action.as_str()),
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
    let resp = ureq::post(&url).call();
    let (status, body) = match resp {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => {
            eprintln!("palisade call: {e}");
            return 1;
        }
    };
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
