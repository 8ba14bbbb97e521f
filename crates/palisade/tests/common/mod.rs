//! Test harness: starts the real `palisade` binary on a free loopback port with a fresh
//! data directory and talks signed HTTP to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use palisade_api::sign::{percent_encode, sign_v1_params};
use serde_json::Value;

pub const AK: &str = "testak";
pub const SECRET: &str = "testsecret";
pub const ACCOUNT_ID: &str = "1234567890123456";

pub struct Server {
    child: Option<Child>,
    pub endpoint: String,
    pub data_dir: PathBuf,
    _tmp: Option<TempDir>,
    args: Vec<String>,
    /// Set when the suite runs against PostgreSQL (`PALISADE_TEST_PG_URL`).
    pub database_url: Option<String>,
}

/// With `PALISADE_TEST_PG_URL` (an admin URL such as postgres://postgres@127.0.0.1:55432/postgres)
/// every server gets a fresh database there; otherwise SQLite in its data directory.
pub fn fresh_database() -> Option<String> {
    let admin = std::env::var("PALISADE_TEST_PG_URL")
        .ok()
        .filter(|s| !s.is_empty())?;
    let name = format!("pal_{}", uuid::Uuid::new_v4().simple());
    let out = Command::new("psql")
        .arg(&admin)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Some(format!("{base}/{name}"))
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir() -> TempDir {
    let p = std::env::temp_dir().join(format!("palisade-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&p).unwrap();
    TempDir(p)
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_palisade")
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(args, fresh_database())
    }

    /// A server on a given database (several servers can share one PostgreSQL database).
    pub fn start_with(args: &[&str], database_url: Option<String>) -> Server {
        let tmp = temp_dir();
        let dir = tmp.0.join("data");
        let mut s = Server {
            child: None,
            endpoint: String::new(),
            data_dir: dir,
            _tmp: Some(tmp),
            args: args.iter().map(|s| s.to_string()).collect(),
            database_url,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut child = Command::new(bin())
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .args(
                self.database_url
                    .iter()
                    .flat_map(|u| ["--database-url".to_string(), u.clone()]),
            )
            .env("PALISADE_ACCESS_KEY_ID", AK)
            .env("PALISADE_ACCESS_KEY_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start palisade");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("palisade listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        self.endpoint = url.to_string();
        self.child = Some(child);
    }

    /// SIGKILL, then start again on the same data directory.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn client(&self) -> Client {
        Client {
            endpoint: self.endpoint.clone(),
            ak: AK.into(),
            secret: SECRET.into(),
        }
    }

    pub fn add_account(&self, name: &str) -> Client {
        let out = Command::new(bin())
            .args(["account", "add", "--name", name, "--data-dir"])
            .arg(&self.data_dir)
            .args(
                self.database_url
                    .iter()
                    .flat_map(|u| ["--database-url".to_string(), u.clone()]),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        Client {
            endpoint: self.endpoint.clone(),
            ak: v["AccessKeyId"].as_str().unwrap().into(),
            secret: v["AccessKeySecret"].as_str().unwrap().into(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Clone)]
pub struct Client {
    pub endpoint: String,
    pub ak: String,
    pub secret: String,
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    pub fn code(&self) -> String {
        self.json()["Code"].as_str().unwrap_or("").to_string()
    }
}

pub fn timestamp(offset_secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl Client {
    /// The common V1 parameters, the way the classic SDK sends them.
    pub fn common(&self, action: &str, format: &str) -> Vec<(String, String)> {
        [
            ("Action", action),
            ("Version", "2014-05-26"),
            ("Format", format),
            ("AccessKeyId", &self.ak),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureType", ""),
            ("SignatureNonce", &uuid::Uuid::new_v4().simple().to_string()),
            ("Timestamp", &timestamp(0)),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    pub fn call(&self, action: &str, params: &[(&str, &str)]) -> Reply {
        self.call_fmt(action, "JSON", params)
    }

    pub fn call_fmt(&self, action: &str, format: &str, params: &[(&str, &str)]) -> Reply {
        let mut all = self.common(action, format);
        if !params.iter().any(|(k, _)| *k == "RegionId") {
            all.push(("RegionId".into(), "cn-hangzhou".into()));
        }
        all.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.send_signed("POST", all)
    }

    pub fn send_signed(&self, method: &str, mut all: Vec<(String, String)>) -> Reply {
        sign_v1_params(method, &mut all, &self.secret);
        self.send_raw(method, &encode_query(&all), None, &[])
    }

    pub fn send_raw(
        &self,
        method: &str,
        query: &str,
        body: Option<(&str, &[u8])>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = format!("{}/?{}", self.endpoint, query);
        let mut req = ureq::request(method, &url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let res = match body {
            Some((ct, b)) => req.set("content-type", ct).send_bytes(b),
            None => req.call(),
        };
        let resp = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport: {e}"),
        };
        Reply {
            status: resp.status(),
            content_type: resp.header("content-type").unwrap_or("").to_string(),
            text: resp.into_string().unwrap(),
        }
    }

    /// Calls and insists on success.
    pub fn ok(&self, action: &str, params: &[(&str, &str)]) -> Value {
        let r = self.call(action, params);
        assert_eq!(r.status, 200, "{action} {params:?}: {}", r.text);
        let v = r.json();
        assert!(v.get("Code").is_none(), "success with Code: {}", r.text);
        v
    }

    /// Calls and insists on the error code and status.
    pub fn err(&self, action: &str, params: &[(&str, &str)], code: &str, status: u16) -> Value {
        let r = self.call(action, params);
        assert_eq!(
            (r.status, r.code().as_str()),
            (status, code),
            "{action} {params:?}: {}",
            r.text
        );
        r.json()
    }

    pub fn create_vpc(&self) -> String {
        self.ok("CreateVpc", &[("CidrBlock", "192.168.0.0/16")])["VpcId"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn create_group(&self, extra: &[(&str, &str)]) -> String {
        self.ok("CreateSecurityGroup", extra)["SecurityGroupId"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn rules(&self, group: &str, extra: &[(&str, &str)]) -> Vec<Value> {
        let mut p = vec![("SecurityGroupId", group)];
        p.extend_from_slice(extra);
        self.ok("DescribeSecurityGroupAttribute", &p)["Permissions"]["Permission"]
            .as_array()
            .unwrap()
            .clone()
    }
}

pub fn encode_query(all: &[(String, String)]) -> String {
    all.iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// How many different `PortRange` values the described rules have.
pub fn distinct_port_ranges(rules: &[Value]) -> usize {
    let mut ports: Vec<&str> = rules
        .iter()
        .map(|r| r["PortRange"].as_str().unwrap())
        .collect();
    ports.sort();
    ports.dedup();
    ports.len()
}
