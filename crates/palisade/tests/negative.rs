//! A generated negative suite: for every action, each required parameter left out, each
//! enumerated parameter given a wrong value, each number out of range or not a number,
//! each CIDR and port range malformed, strings far too long, broken percent-encoding and
//! invalid UTF-8 in the query and the form body, duplicated and far too many parameters.
//! Every answer must be a well-formed ECS error envelope with a 4xx status (and the
//! documented code where there is one), the server must keep answering, and nothing may
//! have been written.
//!
//! Requests go over a plain TCP socket, one per connection, so the exact bytes are ours
//! and a dropped connection is seen as such.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use palisade_api::sign::{percent_encode, v1_signature, v1_string_to_sign};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Raw HTTP

struct Raw {
    status: u16,
    content_type: String,
    body: String,
}

fn http(
    endpoint: &str,
    method: &str,
    target: &[u8],
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Raw, String> {
    let addr = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = Vec::with_capacity(target.len() + body.len() + 256);
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    req.extend_from_slice(addr.as_bytes());
    req.extend_from_slice(b"\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    req.extend_from_slice(body);
    // The server may answer and close before a large body is all sent: read regardless.
    let wrote = s.write_all(&req);
    let mut buf = Vec::new();
    let read = s.read_to_end(&mut buf);
    let parsed = parse_response(&buf);
    match (read, parsed) {
        (_, Some(r)) => Ok(r),
        (Err(e), None) => Err(format!(
            "read: {e} after {} bytes (write: {wrote:?})",
            buf.len()
        )),
        (Ok(_), None) => Err(format!(
            "connection closed after {} bytes: {:?}",
            buf.len(),
            String::from_utf8_lossy(&buf)
        )),
    }
}

/// A complete response (status line, headers, Content-Length body), or None.
fn parse_response(buf: &[u8]) -> Option<Raw> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut content_type = String::new();
    let mut length = 0usize;
    for l in lines {
        let (k, v) = l.split_once(':')?;
        match k.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = v.trim().to_string(),
            "content-length" => length = v.trim().parse().ok()?,
            _ => {}
        }
    }
    let body = buf.get(end + 4..end + 4 + length)?;
    Some(Raw {
        status,
        content_type,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

/// How the server reads an urlencoded string: `+` is a space, valid `%XX` escapes
/// decode, anything else stays literal, then invalid UTF-8 becomes U+FFFD.
fn lossy_decode(raw: &[u8]) -> Vec<(String, String)> {
    fn dec(s: &[u8]) -> String {
        let hex = |b: u8| (b as char).to_digit(16);
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < s.len() && hex(s[i + 1]).is_some() && hex(s[i + 2]).is_some() => {
                    out.push((hex(s[i + 1]).unwrap() * 16 + hex(s[i + 2]).unwrap()) as u8);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    raw.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|piece| match piece.iter().position(|b| *b == b'=') {
            Some(i) => (dec(&piece[..i]), dec(&piece[i + 1..])),
            None => (dec(piece), String::new()),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Cases

/// The answer a case must get: one of `codes` (a trailing `*` matches a prefix; none
/// listed = any code) with one of `statuses`.
#[derive(Clone, Debug)]
struct Expect {
    codes: Vec<&'static str>,
    statuses: Vec<u16>,
    /// Raw non-ASCII bytes in the request line, a URL past 64 KB: the HTTP parser may
    /// refuse the request itself with an empty 4xx before the application sees it.
    bare_ok: bool,
}

fn exp(codes: &[&'static str], statuses: &[u16]) -> Expect {
    Expect {
        codes: codes.to_vec(),
        statuses: statuses.to_vec(),
        bare_ok: false,
    }
}

fn e400(code: &'static str) -> Expect {
    exp(&[code], &[400])
}

fn missing() -> Expect {
    exp(&["MissingParameter*"], &[400, 403])
}

#[derive(Clone, Debug)]
enum Edit {
    /// Replaces the first value of the name, or appends the pair.
    Set(String, String),
    /// Removes every pair of the name.
    Remove(String),
    /// Inserts the pair before the first of that name (so it is the one looked up).
    Before(String, String),
}

fn set(k: impl Into<String>, v: impl Into<String>) -> Edit {
    Edit::Set(k.into(), v.into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sign {
    Valid,
    None,
    WrongSecret,
    /// Signed, then a business value changed.
    Tampered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channel {
    Query,
    /// Everything but `Format` in an urlencoded POST body.
    Form,
}

#[derive(Clone, Debug)]
struct Case {
    label: String,
    action: String,
    base: Vec<(String, String)>,
    edits: Vec<Edit>,
    sign: Sign,
    method: &'static str,
    path: &'static str,
    expect: Expect,
}

impl Case {
    fn new(label: impl Into<String>, spec: &Spec, edits: Vec<Edit>, expect: Expect) -> Case {
        Case {
            label: label.into(),
            action: spec.action.to_string(),
            base: spec.base.clone(),
            edits,
            sign: Sign::Valid,
            method: "POST",
            path: "/",
            expect,
        }
    }
}

fn apply(all: &mut Vec<(String, String)>, edits: &[Edit]) {
    for e in edits {
        match e {
            Edit::Set(k, v) => match all.iter_mut().find(|(pk, _)| pk == k) {
                Some(p) => p.1 = v.clone(),
                None => all.push((k.clone(), v.clone())),
            },
            Edit::Remove(k) => all.retain(|(pk, _)| pk != k),
            Edit::Before(k, v) => {
                let at = all.iter().position(|(pk, _)| pk == k).unwrap_or(all.len());
                all.insert(at, (k.clone(), v.clone()));
            }
        }
    }
}

/// One action with a valid base request (which every case spoils in one way) and what
/// its parameters accept.
#[derive(Clone)]
struct Spec {
    action: &'static str,
    base: Vec<(String, String)>,
    required: Vec<(String, Expect)>,
    enums: Vec<(String, Expect)>,
    /// (name, min, max, code when not a number, code when out of range)
    ints: Vec<(String, i64, i64, &'static str, &'static str)>,
    /// Parameters with their own lists of wrong values.
    values: Vec<(String, Vec<String>, Expect)>,
    cidrs: Vec<(String, &'static str)>,
    ports: Vec<String>,
    names: Vec<(String, &'static str)>,
    descriptions: Vec<(String, &'static str)>,
    rule_descriptions: Vec<String>,
    write: bool,
    extra: Vec<(String, Vec<Edit>, Expect)>,
}

fn spec(action: &'static str, base: &[(&str, &str)]) -> Spec {
    let mut all = vec![("RegionId".to_string(), "cn-hangzhou".to_string())];
    all.extend(base.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Spec {
        action,
        base: all,
        required: Vec::new(),
        enums: Vec::new(),
        ints: Vec::new(),
        values: Vec::new(),
        cidrs: Vec::new(),
        ports: Vec::new(),
        names: Vec::new(),
        descriptions: Vec::new(),
        rule_descriptions: Vec::new(),
        write: true,
        extra: Vec::new(),
    }
}

impl Spec {
    fn required(mut self, names: &[&str], e: Expect) -> Self {
        self.required
            .extend(names.iter().map(|n| (n.to_string(), e.clone())));
        self
    }
    fn region(self) -> Self {
        self.required(&["RegionId"], e400("MissingParameter"))
            .value(
                "RegionId",
                &["mars-north-1", "cn-hangzhou ", "CN-HANGZHOU", "*"],
                exp(&["InvalidRegionId.NotFound"], &[404]),
            )
    }
    fn enum_(mut self, name: &str, code: &'static str) -> Self {
        self.enums.push((name.to_string(), e400(code)));
        self
    }
    fn int(
        mut self,
        name: &str,
        min: i64,
        max: i64,
        malformed: &'static str,
        range: &'static str,
    ) -> Self {
        self.ints
            .push((name.to_string(), min, max, malformed, range));
        self
    }
    fn value(mut self, name: &str, bad: &[&str], e: Expect) -> Self {
        self.values.push((
            name.to_string(),
            bad.iter().map(|s| s.to_string()).collect(),
            e,
        ));
        self
    }
    fn cidr(mut self, name: &str, code: &'static str) -> Self {
        self.cidrs.push((name.to_string(), code));
        self
    }
    fn port(mut self, name: &str) -> Self {
        self.ports.push(name.to_string());
        self
    }
    fn name(mut self, name: &str, code: &'static str) -> Self {
        self.names.push((name.to_string(), code));
        self
    }
    fn description(mut self, name: &str, code: &'static str) -> Self {
        self.descriptions.push((name.to_string(), code));
        self
    }
    fn rule_description(mut self, name: &str) -> Self {
        self.rule_descriptions.push(name.to_string());
        self
    }
    fn read_only(mut self) -> Self {
        self.write = false;
        self
    }
    fn extra(mut self, label: &str, edits: Vec<Edit>, e: Expect) -> Self {
        self.extra.push((label.to_string(), edits, e));
        self
    }
}

const WRONG_ENUM: &[&str] = &[
    "bogus",
    "tcpudp",
    "a b",
    "\u{fffd}",
    "\u{2603}",
    "nul\u{0}l",
    "*",
    "%",
    "null",
    "[]",
    "-1",
];

const BAD_CIDRS: &[&str] = &[
    "10.0.0.256/8",
    "10.0.0.0/33",
    "1.2.3",
    "::1",
    " 10.0.0.0/8",
    "10.0.0.0/8 ",
    "0/0/0",
    "10.0.0.0/",
    "/8",
    "10.0.0.0/-1",
    "10.0.0.0/+8",
    "01.2.3.4/8",
    "a.b.c.d/8",
    "1.2.3.4.5/8",
    "10.0.0.0/8/8",
    "1.2.3.4/3x",
    "fe80::/64",
    "::ffff:10.0.0.1",
    "256.0.0.0/8",
    "0x0a.0.0.0/8",
    "10.0.0.0/100",
    "10.0.0.0/4294967304",
    "1.2.3.4\u{0}",
    "10.0.0.0\\8",
    "10,0,0,0/8",
    "\u{661}\u{660}.0.0.0/8",
    "10.0.0.0/\u{ff18}",
    "10.0.0.0 /8",
];

const BAD_PORTS: &[&str] = &[
    "22",
    "22/",
    "/22",
    "0/22",
    "65536/65536",
    "-2/-1",
    "a/b",
    "1e3/2e3",
    "22/21",
    "1/65536",
    " 22/22",
    "22/22 ",
    "22-22",
    "22/22/22",
    "0x16/0x16",
    "+22/+22",
    "\u{2212}1/\u{2212}1",
    "-1/22",
    "0/0",
    "99999/99999",
    "000022/000022",
    "/",
    "-/-",
    "--1/--1",
    "22/ 22",
    "4294967318/4294967318",
    "2.2/2.2",
];

const NOT_A_NUMBER: &[&str] = &[
    "abc", "1.5", "1e3", "0x10", "1 2", "--1", "\u{661}", "\u{221e}", "NaN", "5a", "\u{bd}",
];

fn big(n: usize) -> String {
    "a".repeat(n)
}

/// About 10 KB of UTF-8 in three-byte characters.
fn big_cjk() -> String {
    "\u{4e2d}".repeat(10 * 1024 / 3)
}

fn bad_names() -> Vec<String> {
    vec![
        big(10 * 1024),
        big_cjk(),
        "http://spam".into(),
        "1abc".into(),
        "a".into(),
        "a b".into(),
        "x".repeat(129),
        "ab/cd".into(),
        "ab\u{fffd}".into(),
    ]
}

fn bad_descriptions() -> Vec<String> {
    vec![
        big(10 * 1024),
        big_cjk(),
        "http://spam".into(),
        "https://spam".into(),
        "x".into(),
        "x".repeat(257),
    ]
}

fn bad_rule_descriptions() -> Vec<String> {
    vec![
        big(10 * 1024),
        big_cjk(),
        "http://spam".into(),
        "https://x".into(),
        "x".repeat(513),
    ]
}

/// Every case of one spec.
fn generate(s: &Spec) -> Vec<Case> {
    let mut out = Vec::new();
    let mut add = |label: String, edits: Vec<Edit>, e: Expect| {
        out.push(Case::new(label, s, edits, e));
    };
    for (p, e) in &s.required {
        add(
            format!("omit {p}"),
            vec![Edit::Remove(p.clone())],
            e.clone(),
        );
        add(format!("empty {p}"), vec![set(p, "")], e.clone());
        // Duplicated, the empty one first.
        if s.base.iter().any(|(k, _)| k == p) {
            let mut dup = e.clone();
            dup.codes.push("InvalidParameter");
            add(
                format!("duplicate {p}, empty first"),
                vec![Edit::Before(p.clone(), String::new())],
                dup,
            );
        }
    }
    for (p, e) in &s.enums {
        for v in WRONG_ENUM {
            add(format!("{p}={v:?}"), vec![set(p, *v)], e.clone());
        }
        let mut dup = e.clone();
        dup.codes.push("InvalidParameter");
        add(
            format!("duplicate {p}, wrong first"),
            vec![Edit::Before(p.clone(), "bogus".into())],
            dup,
        );
    }
    for (p, bad, e) in &s.values {
        for v in bad {
            add(format!("{p}={v:?}"), vec![set(p, v)], e.clone());
        }
    }
    for (p, min, max, malformed, range) in &s.ints {
        let mut out_of_range = vec![(min - 1).to_string(), (max + 1).to_string()];
        if *min > -1 {
            out_of_range.push("-1".into());
        }
        out_of_range.push(i64::MIN.to_string());
        if *max < i64::MAX {
            out_of_range.push(i64::MAX.to_string());
        }
        for v in out_of_range {
            add(format!("{p}={v}"), vec![set(p, &v)], e400(range));
        }
        // Beyond 64 bits: out of range, or not a number to a parser of 64-bit integers.
        add(
            format!("{p} overflows"),
            vec![set(p, "99999999999999999999999")],
            exp(&[range, malformed], &[400]),
        );
        for v in NOT_A_NUMBER {
            add(format!("{p}={v:?}"), vec![set(p, *v)], e400(malformed));
        }
    }
    for (p, code) in &s.cidrs {
        for v in BAD_CIDRS {
            add(format!("{p}={v:?}"), vec![set(p, *v)], e400(code));
        }
    }
    for p in &s.ports {
        for v in BAD_PORTS {
            add(
                format!("{p}={v:?}"),
                vec![set(p, *v)],
                e400("InvalidParam.PortRange"),
            );
        }
    }
    for (p, code) in &s.names {
        for v in bad_names() {
            add(
                format!("{p} = {} bytes", v.len()),
                vec![set(p, v)],
                e400(code),
            );
        }
    }
    for (p, code) in &s.descriptions {
        for v in bad_descriptions() {
            add(
                format!("{p} = {} bytes", v.len()),
                vec![set(p, v)],
                e400(code),
            );
        }
    }
    for p in &s.rule_descriptions {
        for v in bad_rule_descriptions() {
            add(
                format!("{p} = {} bytes", v.len()),
                vec![set(p, v)],
                e400("InvalidSecurityGroupDiscription.Malformed"),
            );
        }
    }
    // 20 KB in each parameter: past the per-value limit.
    for (p, _) in &s.base {
        add(
            format!("{p} = 20 KB"),
            vec![set(p, big(20 * 1024))],
            e400("InvalidParameter"),
        );
    }
    for (label, edits, e) in &s.extra {
        add(label.clone(), edits.clone(), e.clone());
    }
    // The protocol, per action.
    let proto: Vec<(&str, Vec<Edit>, Expect)> = vec![
        (
            "omit Action",
            vec![Edit::Remove("Action".into())],
            e400("MissingParameter"),
        ),
        (
            "empty Action",
            vec![set("Action", "")],
            e400("MissingParameter"),
        ),
        (
            "Action in lower case",
            vec![set("Action", s.action.to_ascii_lowercase())],
            exp(&["InvalidAction.NotFound"], &[404]),
        ),
        (
            "Action with a trailing space",
            vec![set("Action", format!("{} ", s.action))],
            exp(&["InvalidAction.NotFound"], &[404]),
        ),
        (
            "duplicate Action, unknown first",
            vec![Edit::Before("Action".into(), "LaunchRocket".into())],
            exp(&["InvalidAction.NotFound", "InvalidParameter"], &[400, 404]),
        ),
        (
            "omit Version",
            vec![Edit::Remove("Version".into())],
            e400("MissingParameter"),
        ),
        (
            "Version 2016-01-01",
            vec![set("Version", "2016-01-01")],
            e400("InvalidVersion"),
        ),
        (
            "Version 2014-05-26 ",
            vec![set("Version", "2014-05-26 ")],
            e400("InvalidVersion"),
        ),
        (
            "omit AccessKeyId",
            vec![Edit::Remove("AccessKeyId".into())],
            e400("MissingParameter"),
        ),
        (
            "unknown AccessKeyId",
            vec![set("AccessKeyId", "LTAInobody")],
            exp(&["InvalidAccessKeyId.NotFound"], &[404]),
        ),
        (
            "AccessKeyId with NUL",
            vec![set("AccessKeyId", "test\u{0}ak")],
            exp(&["InvalidAccessKeyId.NotFound"], &[404]),
        ),
        (
            "omit Timestamp",
            vec![Edit::Remove("Timestamp".into())],
            e400("MissingParameter"),
        ),
        (
            "Timestamp not a time",
            vec![set("Timestamp", "2024-13-45T99:00:00Z")],
            e400("InvalidTimeStamp.Format"),
        ),
        (
            "Timestamp without zone",
            vec![set("Timestamp", "2024-01-01T00:00:00")],
            e400("InvalidTimeStamp.Format"),
        ),
        (
            "Timestamp 20 min ago",
            vec![set("Timestamp", timestamp(-1200))],
            e400("InvalidTimeStamp.Expired"),
        ),
        (
            "Timestamp in 20 min",
            vec![set("Timestamp", timestamp(1200))],
            e400("InvalidTimeStamp.Expired"),
        ),
        (
            "Timestamp year 9999",
            vec![set("Timestamp", "9999-12-31T23:59:59Z")],
            e400("InvalidTimeStamp.Expired"),
        ),
        (
            "omit SignatureNonce",
            vec![Edit::Remove("SignatureNonce".into())],
            e400("MissingParameter"),
        ),
        (
            "Format yaml, no Timestamp",
            vec![set("Format", "yaml"), Edit::Remove("Timestamp".into())],
            e400("MissingParameter"),
        ),
        (
            "SignatureMethod HMAC-SHA256",
            vec![set("SignatureMethod", "HMAC-SHA256")],
            e400("InvalidSignatureMethod"),
        ),
    ];
    for (label, edits, e) in proto {
        out.push(Case::new(label, s, edits, e));
    }
    let mut c = Case::new("unsigned", s, vec![], e400("MissingParameter"));
    c.sign = Sign::None;
    out.push(c);
    let mut c = Case::new("wrong secret", s, vec![], e400("SignatureDoesNotMatch"));
    c.sign = Sign::WrongSecret;
    out.push(c);
    let mut c = Case::new(
        "tampered after signing",
        s,
        vec![],
        e400("SignatureDoesNotMatch"),
    );
    c.sign = Sign::Tampered;
    out.push(c);
    for m in ["PUT", "DELETE", "PATCH"] {
        let mut c = Case::new(
            format!("method {m}"),
            s,
            vec![],
            exp(&["UnsupportedHTTPMethod"], &[403]),
        );
        c.method = m;
        out.push(c);
    }
    let mut c = Case::new(
        "path /ecs",
        s,
        vec![],
        exp(&["InvalidAction.NotFound"], &[404]),
    );
    c.path = "/ecs";
    out.push(c);
    if s.required.iter().any(|(p, _)| p == "RegionId") {
        // Odd bytes in what the server stores or looks up, on a request that then fails.
        let region = exp(&["InvalidRegionId.NotFound"], &[404]);
        out.push(Case::new(
            "SignatureNonce with NUL",
            s,
            vec![
                set(
                    "SignatureNonce",
                    format!("n\u{0}{}", uuid::Uuid::new_v4().simple()),
                ),
                set("RegionId", "mars"),
            ],
            region.clone(),
        ));
        if s.write {
            out.push(Case::new(
                "ClientToken with NUL",
                s,
                vec![set("ClientToken", "t\u{0}k"), set("RegionId", "mars")],
                exp(
                    &["InvalidRegionId.NotFound", "InvalidClientToken.Malformed"],
                    &[400, 404],
                ),
            ));
        }
    }
    if s.write {
        for (label, token) in [
            ("ClientToken of 65 chars", "t".repeat(65)),
            ("ClientToken not ASCII", "t\u{e9}".into()),
        ] {
            out.push(Case::new(
                label,
                s,
                vec![set("ClientToken", token)],
                e400("InvalidClientToken.Malformed"),
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Running

struct Runner {
    client: Client,
    tried: usize,
    /// Requests refused by the HTTP parser with an empty 4xx (raw bytes in the request
    /// line, a URL past 64 KB).
    bare_4xx: usize,
    failures: Vec<String>,
}

/// The parameters as sent: common ones, then the case's, edited and signed.
fn build(r: &Runner, case: &Case) -> Vec<(String, String)> {
    let c = &r.client;
    let mut all = c.common(&case.action, "JSON");
    all.extend(case.base.iter().cloned());
    apply(&mut all, &case.edits);
    match case.sign {
        Sign::None => {}
        Sign::Valid | Sign::Tampered | Sign::WrongSecret => {
            let secret = if case.sign == Sign::WrongSecret {
                "wrong"
            } else {
                c.secret.as_str()
            };
            let sts = v1_string_to_sign(
                case.method,
                all.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            all.push(("Signature".into(), v1_signature(secret, &sts)));
            if case.sign == Sign::Tampered {
                if let Some(p) = all.iter_mut().find(|(k, _)| k == "RegionId") {
                    p.1 = "cn-beijing".into();
                }
            }
        }
    }
    all
}

/// The error envelope's `(Code, Message)`, or what is wrong with it. JSON, or XML when
/// the request asked for it.
fn envelope(resp: &Raw) -> Result<(String, String), String> {
    if !(400..500).contains(&resp.status) {
        return Err(format!("status {}", resp.status));
    }
    let fields: Vec<String> = if resp.content_type == "text/xml;charset=utf-8" {
        let re = regex::Regex::new(
            "^<\\?xml version=\"1.0\" encoding=\"UTF-8\"\\?><Error><RequestId>([^<]*)</RequestId><HostId>([^<]*)</HostId><Code>([^<]*)</Code><Message>([^<]*)</Message><Recommend>([^<]*)</Recommend></Error>$",
        )
        .unwrap();
        let caps = re.captures(&resp.body).ok_or("not an XML <Error>")?;
        let entity = regex::Regex::new("&(lt|gt|amp|quot|apos);").unwrap();
        let mut out = Vec::new();
        for i in 1..=5 {
            let text = &caps[i];
            if entity.replace_all(text, "").contains(['&', '>']) {
                return Err(format!("unescaped text {text:?}"));
            }
            out.push(
                text.replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&apos;", "'")
                    .replace("&amp;", "&"),
            );
        }
        out
    } else if resp.content_type == "application/json;charset=utf-8" {
        let v: Value = serde_json::from_str(&resp.body).map_err(|e| format!("not JSON: {e}"))?;
        let obj = v.as_object().ok_or("not an object")?;
        let mut out = Vec::new();
        for k in ["RequestId", "HostId", "Code", "Message", "Recommend"] {
            out.push(
                obj.get(k)
                    .and_then(Value::as_str)
                    .ok_or(format!("no {k}"))?
                    .to_string(),
            );
        }
        out
    } else {
        return Err(format!("content-type {:?}", resp.content_type));
    };
    if let Some(k) = fields.iter().position(String::is_empty) {
        return Err(format!("field {k} empty"));
    }
    let id = &fields[0];
    let uuid = id.len() == 36
        && id
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_uppercase());
    if !uuid {
        return Err(format!("RequestId {id:?}"));
    }
    if !fields[4].contains(&format!("q={}&", fields[2])) {
        return Err("Recommend does not name the code".into());
    }
    Ok((fields[2].clone(), fields[3].clone()))
}

fn code_matches(code: &str, e: &Expect) -> bool {
    e.codes.is_empty()
        || e.codes.iter().any(|c| match c.strip_suffix('*') {
            Some(prefix) => code.starts_with(prefix),
            None => code == *c,
        })
}

impl Runner {
    /// Sends raw bytes and checks the answer against `expect`.
    fn send(
        &mut self,
        label: &str,
        method: &str,
        target: &[u8],
        headers: &[(&str, &str)],
        body: &[u8],
        expect: &Expect,
    ) {
        self.tried += 1;
        let resp = match http(&self.client.endpoint, method, target, headers, body) {
            Ok(r) => r,
            Err(e) => {
                self.failures.push(format!("{label}: {e}"));
                return;
            }
        };
        if expect.bare_ok && (400..500).contains(&resp.status) && resp.body.is_empty() {
            self.bare_4xx += 1;
            return;
        }
        let (code, message) = match envelope(&resp) {
            Ok(x) => x,
            Err(p) => {
                self.failures.push(format!(
                    "{label}: not a 4xx error envelope ({p}): {} {}",
                    resp.status,
                    short(&resp.body)
                ));
                return;
            }
        };
        if !code_matches(&code, expect) || !expect.statuses.contains(&resp.status) {
            self.failures.push(format!(
                "{label}: got {} {code} ({}), expected {:?} {:?}",
                resp.status,
                short(&message),
                expect.statuses,
                expect.codes
            ));
        }
    }

    /// Sends a case in the query, or in a form body when asked or when too long for a URL.
    fn run(&mut self, case: &Case, form: bool) {
        let all = build(self, case);
        let query_len: usize = all.iter().map(|(k, v)| k.len() + 3 * v.len() + 2).sum();
        let channel = if form || query_len > 48 * 1024 {
            Channel::Form
        } else {
            Channel::Query
        };
        let label = format!("{} {} [{channel:?}]", case.action, case.label);
        match channel {
            Channel::Query => {
                let target = format!("{}?{}", case.path, encode_query(&all));
                self.send(
                    &label,
                    case.method,
                    target.as_bytes(),
                    &[],
                    b"",
                    &case.expect,
                );
            }
            Channel::Form => {
                let format = all
                    .iter()
                    .find(|(k, _)| k == "Format")
                    .map(|(_, v)| percent_encode(v))
                    .unwrap_or_default();
                let rest: Vec<(String, String)> =
                    all.iter().filter(|(k, _)| k != "Format").cloned().collect();
                let target = format!("{}?Format={format}", case.path);
                self.send(
                    &label,
                    case.method,
                    target.as_bytes(),
                    &[("Content-Type", "application/x-www-form-urlencoded")],
                    encode_query(&rest).as_bytes(),
                    &case.expect,
                );
            }
        }
    }

    /// Raw urlencoded pairs (bytes as given, possibly broken) after the common parameters,
    /// signed over what the server will decode (`lossy`) or over something else.
    fn run_broken(
        &mut self,
        label: &str,
        action: &str,
        raw: &[u8],
        lossy_signed: bool,
        channel: Channel,
        expect: &Expect,
    ) {
        let c = &self.client;
        let mut common = c.common(action, "JSON");
        common.retain(|(k, _)| k != "Format");
        let mut bytes = encode_query(&common).into_bytes();
        bytes.push(b'&');
        bytes.extend_from_slice(raw);
        let mut seen = vec![("Format".to_string(), "JSON".to_string())];
        seen.extend(lossy_decode(&bytes));
        if !lossy_signed {
            seen.push(("Tampered".into(), "x".into()));
        }
        if !seen.iter().any(|(k, _)| k == "Signature") {
            let sts = v1_string_to_sign("POST", seen.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            bytes.extend_from_slice(b"&Signature=");
            bytes.extend_from_slice(percent_encode(&v1_signature(&c.secret, &sts)).as_bytes());
        }
        let label = format!(
            "{action} {label} [{channel:?}, {}]",
            if lossy_signed {
                "signed as decoded"
            } else {
                "signed otherwise"
            }
        );
        match channel {
            Channel::Query => {
                let mut target = b"/?Format=JSON&".to_vec();
                target.extend_from_slice(&bytes);
                self.send(&label, "POST", &target, &[], b"", expect);
            }
            Channel::Form => self.send(
                &label,
                "POST",
                b"/?Format=JSON",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                &bytes,
                expect,
            ),
        }
    }
}

fn short(s: &str) -> String {
    match s.char_indices().nth(200) {
        None => s.to_string(),
        Some((at, _)) => format!("{}...", &s[..at]),
    }
}

// ---------------------------------------------------------------------------------------
// The suite

struct Fixture {
    vpc: String,
    vpc_empty: String,
    /// Classic, with ingress (CIDR and group) and egress rules.
    g: String,
    /// Classic, referenced by `g`'s rules.
    p: String,
    /// In `vpc`, with one ingress rule.
    v: String,
    r1: String,
    e1: String,
}

fn fixture(c: &Client) -> Fixture {
    let vpc = c.create_vpc();
    let vpc_empty = c.ok("CreateVpc", &[("CidrBlock", "10.0.0.0/16")])["VpcId"]
        .as_str()
        .unwrap()
        .to_string();
    let g = c.create_group(&[
        ("SecurityGroupName", "neg-classic"),
        ("Description", "negative suite"),
    ]);
    let p = c.create_group(&[("SecurityGroupName", "neg-peer")]);
    let v = c.create_group(&[("VpcId", &vpc), ("SecurityGroupName", "neg-vpc")]);
    let ok = |action: &str, params: &[(&str, &str)]| {
        c.ok(action, params);
    };
    ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "tcp"),
            ("PortRange", "22/22"),
            ("SourceCidrIp", "10.0.0.0/8"),
            ("Description", "ssh"),
        ],
    );
    ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "tcp"),
            ("PortRange", "80/80"),
            ("NicType", "intranet"),
            ("SourceGroupId", &p),
        ],
    );
    ok(
        "AuthorizeSecurityGroupEgress",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "tcp"),
            ("PortRange", "443/443"),
            ("DestCidrIp", "0.0.0.0/0"),
        ],
    );
    ok(
        "AuthorizeSecurityGroupEgress",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "tcp"),
            ("PortRange", "8080/8080"),
            ("NicType", "intranet"),
            ("DestGroupId", &p),
        ],
    );
    ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &v),
            ("IpProtocol", "udp"),
            ("PortRange", "53/53"),
            ("SourceCidrIp", "10.1.0.0/16"),
        ],
    );
    let id_of = |dir: &str, port: &str| {
        c.rules(&g, &[("Direction", dir)])
            .iter()
            .find(|r| r["PortRange"] == port)
            .map(|r| r["SecurityGroupRuleId"].as_str().unwrap().to_string())
            .unwrap()
    };
    let r1 = id_of("ingress", "22/22");
    let e1 = id_of("egress", "443/443");
    Fixture {
        vpc,
        vpc_empty,
        g,
        p,
        v,
        r1,
        e1,
    }
}

/// The rule parameters of one direction, under `prefix` (`""` or `Permissions.N.`).
fn rule_checks(mut s: Spec, egress: bool, prefix: &str, peer_is_group: bool) -> Spec {
    let f = |n: &str| format!("{prefix}{n}");
    let (peer_cidr, local_cidr) = if egress {
        ("DestCidrIp", "SourceCidrIp")
    } else {
        ("SourceCidrIp", "DestCidrIp")
    };
    let code = |n: &str| {
        if n == "SourceCidrIp" {
            "InvalidSourceCidrIp.Malformed"
        } else {
            "InvalidDestCidrIp.Malformed"
        }
    };
    s = s
        .required(&[&f("IpProtocol")], missing())
        .required(
            &[&f("PortRange")],
            exp(&["MissingParameter*", "InvalidPortRange.Malformed"], &[400]),
        )
        .enum_(&f("IpProtocol"), "InvalidIpProtocol.Malformed")
        .enum_(&f("Policy"), "InvalidPolicy.Malformed")
        .enum_(&f("NicType"), "InvalidNicType.ValueNotSupported")
        .int(
            &f("Priority"),
            1,
            100,
            "InvalidPriority.Malformed",
            "InvalidPriority.ValueNotSupported",
        )
        .port(&f("PortRange"))
        .rule_description(&f("Description"));
    if s.base.iter().any(|(k, _)| *k == f("SourcePortRange")) {
        s = s.port(&f("SourcePortRange"));
    }
    if s.base.iter().any(|(k, _)| *k == f(local_cidr)) {
        s = s.cidr(&f(local_cidr), code(local_cidr));
    }
    if peer_is_group {
        let (group, owner, owner_code) = if egress {
            (
                "DestGroupId",
                "DestGroupOwnerId",
                "InvalidDestGroupOwnerId.Malformed",
            )
        } else {
            (
                "SourceGroupId",
                "SourceGroupOwnerId",
                "InvalidSourceGroupOwnerId.Malformed",
            )
        };
        s = s.required(&[&f(group)], missing()).value(
            &f(owner),
            &["abc", "-1", "1.5", "18446744073709551616", "0x10", "1e3"],
            e400(owner_code),
        );
    } else {
        s = s
            .required(&[&f(peer_cidr)], missing())
            .cidr(&f(peer_cidr), code(peer_cidr));
    }
    s
}

fn specs(x: &Fixture) -> Vec<Spec> {
    let acct = ACCOUNT_ID;
    let (g, p, v) = (x.g.as_str(), x.p.as_str(), x.v.as_str());
    let not_found = |c: &'static str| exp(&[c], &[404]);
    let mut out = vec![
        spec("DescribeRegions", &[]).read_only(),
        spec(
            "CreateVpc",
            &[
                ("CidrBlock", "10.20.0.0/16"),
                ("VpcName", "negvpc"),
                ("Description", "neg vpc"),
            ],
        )
        .region()
        .cidr("CidrBlock", "InvalidCidrBlock.Malformed")
        .value(
            "CidrBlock",
            &["8.8.8.0/24", "10.0.0.0/7", "10.0.0.0/29", "10.0.0.1/16"],
            e400("InvalidCidrBlock.Malformed"),
        )
        .name("VpcName", "InvalidVpcName.Malformed")
        .description("Description", "InvalidDescription.Malformed"),
        spec("DescribeVpcs", &[("PageNumber", "1"), ("PageSize", "10")])
            .read_only()
            .region()
            .int(
                "PageNumber",
                1,
                i32::MAX as i64,
                "InvalidPageNumber.Malformed",
                "InvalidPageNumber.Malformed",
            )
            .int(
                "PageSize",
                1,
                50,
                "InvalidPageSize.Malformed",
                "InvalidPageSize.Malformed",
            ),
        spec("DeleteVpc", &[("VpcId", &x.vpc_empty)])
            .region()
            .required(&["VpcId"], e400("MissingParameter"))
            .value(
                "VpcId",
                &["vpc-nope", "vpc-", " ", "vpc-\u{0}", "vpc-'; --"],
                not_found("InvalidVpcId.NotFound"),
            )
            .extra(
                "VpcId with groups",
                vec![set("VpcId", &x.vpc)],
                exp(&["DependencyViolation"], &[403]),
            ),
        spec(
            "CreateSecurityGroup",
            &[
                ("SecurityGroupName", "neg-new"),
                ("Description", "neg new group"),
                ("SecurityGroupType", "normal"),
                ("VpcId", &x.vpc),
            ],
        )
        .region()
        .enum_("SecurityGroupType", "InvalidSecurityGroupType.Malformed")
        .name("SecurityGroupName", "InvalidSecurityGroupName.Malformed")
        .description("Description", "InvalidDescription.Malformed")
        .value(
            "VpcId",
            &["vpc-nope", "vpc-", "vpc-\u{0}"],
            not_found("InvalidVpcId.NotFound"),
        ),
        spec(
            "DescribeSecurityGroups",
            &[
                ("PageNumber", "1"),
                ("PageSize", "10"),
                ("SecurityGroupType", "normal"),
                ("NetworkType", "classic"),
                ("SecurityGroupIds", &format!("[\"{g}\"]")),
            ],
        )
        .read_only()
        .region()
        .enum_("SecurityGroupType", "InvalidSecurityGroupType.Malformed")
        .enum_("NetworkType", "InvalidNetworkType.Malformed")
        .int(
            "PageNumber",
            1,
            i32::MAX as i64,
            "InvalidPageNumber.Malformed",
            "InvalidPageNumber.Malformed",
        )
        .int(
            "PageSize",
            1,
            50,
            "InvalidPageSize.Malformed",
            "InvalidPageSize.Malformed",
        )
        .value(
            "SecurityGroupIds",
            &[
                "sg-a,sg-b",
                "[1,2]",
                "{}",
                "[",
                "[\"sg-a\"",
                "\"sg-a\"",
                "[[\"sg-a\"]]",
                "[null]",
                &format!("[{}]", vec!["\"sg-x\""; 101].join(",")),
            ],
            e400("InvalidSecurityGroupIds.Malformed"),
        ),
        spec(
            "DescribeSecurityGroups",
            &[("MaxResults", "10"), ("NextToken", "pl00000000")],
        )
        .read_only()
        .int(
            "MaxResults",
            1,
            100,
            "InvalidParameter.MaxResults",
            "InvalidParameter.MaxResults",
        )
        .value(
            "NextToken",
            &[
                "garbage",
                "pl",
                "plzzzzzzzz",
                "pl000000000",
                "PL00000000",
                "pl-0000001",
                "pl 0000001",
            ],
            e400("InvalidNextToken.Malformed"),
        ),
        spec(
            "DescribeSecurityGroupAttribute",
            &[
                ("SecurityGroupId", g),
                ("Direction", "all"),
                ("NicType", "internet"),
            ],
        )
        .read_only()
        .region()
        .required(&["SecurityGroupId"], e400("MissingParameter"))
        .enum_("Direction", "InvalidDirection.Malformed")
        .enum_("NicType", "InvalidNicType.ValueNotSupported")
        .value(
            "SecurityGroupId",
            &[
                "sg-nope",
                "sg-",
                " ",
                "../../etc/passwd",
                "sg-%",
                "sg-\u{0}",
                "sg-'; --",
            ],
            not_found("InvalidSecurityGroupId.NotFound"),
        ),
        spec(
            "DescribeSecurityGroupAttribute",
            &[
                ("SecurityGroupId", g),
                ("MaxResults", "10"),
                ("NextToken", "pl00000000"),
            ],
        )
        .read_only()
        .int(
            "MaxResults",
            10,
            1000,
            "InvalidParameter.MaxResults",
            "InvalidParameter.MaxResults",
        )
        .value(
            "NextToken",
            &["garbage", "pl", "plzzzzzzzz", "pl000000000"],
            e400("InvalidNextToken.Malformed"),
        ),
        spec(
            "ModifySecurityGroupAttribute",
            &[
                ("SecurityGroupId", g),
                ("SecurityGroupName", "neg-renamed"),
                ("Description", "neg renamed"),
            ],
        )
        .region()
        .required(&["SecurityGroupId"], e400("MissingParameter"))
        .name("SecurityGroupName", "InvalidSecurityGroupName.Malformed")
        .description("Description", "InvalidDescription.Malformed")
        .value(
            "SecurityGroupId",
            &["sg-nope"],
            not_found("InvalidSecurityGroupId.NotFound"),
        ),
        spec(
            "ModifySecurityGroupPolicy",
            &[("SecurityGroupId", g), ("InnerAccessPolicy", "Drop")],
        )
        .region()
        .required(
            &["SecurityGroupId", "InnerAccessPolicy"],
            e400("MissingParameter"),
        )
        .enum_("InnerAccessPolicy", "InvalidPolicy.Malformed")
        .value(
            "SecurityGroupId",
            &["sg-nope"],
            not_found("InvalidSecurityGroupId.NotFound"),
        ),
        spec("DeleteSecurityGroup", &[("SecurityGroupId", v)])
            .region()
            .required(&["SecurityGroupId"], e400("MissingParameter"))
            .value(
                "SecurityGroupId",
                &["sg-nope", "sg-"],
                not_found("InvalidSecurityGroupId.NotFound"),
            )
            .extra(
                "referenced group",
                vec![set("SecurityGroupId", p)],
                exp(&["DependencyViolation"], &[403]),
            ),
        spec(
            "DescribeSecurityGroupReferences",
            &[("SecurityGroupId.1", p)],
        )
        .read_only()
        .region()
        .required(&["SecurityGroupId.1"], e400("MissingParameter"))
        .value(
            "SecurityGroupId.1",
            &["sg-nope", "sg-\u{0}"],
            not_found("InvalidSecurityGroupId.NotFound"),
        )
        .extra(
            "SecurityGroupId.0",
            vec![
                Edit::Remove("SecurityGroupId.1".into()),
                set("SecurityGroupId.0", p),
            ],
            e400("InvalidParameter"),
        )
        .extra(
            "SecurityGroupId.x",
            vec![set("SecurityGroupId.x", p)],
            e400("InvalidParameter"),
        )
        .extra(
            "SecurityGroupId.1001",
            vec![set("SecurityGroupId.1001", p)],
            e400("InvalidParameter"),
        )
        .extra(
            "SecurityGroupId.-1",
            vec![set("SecurityGroupId.-1", p)],
            e400("InvalidParameter"),
        )
        .extra(
            "11 ids",
            (2..=11)
                .map(|n| set(format!("SecurityGroupId.{n}"), p))
                .collect(),
            e400("InvalidSecurityGroupId.Malformed"),
        ),
    ];

    // Authorize, flat, CIDR peer.
    let ingress_cidr = spec(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", g),
            ("IpProtocol", "tcp"),
            ("PortRange", "1000/1000"),
            ("SourcePortRange", "1024/65535"),
            ("SourceCidrIp", "10.9.0.0/16"),
            ("DestCidrIp", "192.168.1.0/24"),
            ("Policy", "accept"),
            ("Priority", "5"),
            ("NicType", "internet"),
            ("Description", "neg rule"),
        ],
    )
    .region()
    .required(&["SecurityGroupId"], e400("MissingParameter"))
    .value(
        "SecurityGroupId",
        &["sg-nope"],
        not_found("InvalidSecurityGroupId.NotFound"),
    )
    .extra(
        "tcp with -1/-1",
        vec![set("PortRange", "-1/-1")],
        e400("OperationDenied"),
    )
    .extra(
        "icmp with 22/22",
        vec![
            set("IpProtocol", "icmp"),
            set("SourcePortRange", ""),
            set("PortRange", "22/22"),
        ],
        e400("OperationDenied"),
    )
    .extra(
        "flat and Permissions mixed",
        vec![set("Permissions.1.IpProtocol", "tcp")],
        e400("InvalidParam.Permissions"),
    );
    out.push(rule_checks(ingress_cidr, false, "", false));

    // Authorize, flat, group peer.
    let ingress_group = spec(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", g),
            ("IpProtocol", "tcp"),
            ("PortRange", "1001/1001"),
            ("SourceGroupId", p),
            ("SourceGroupOwnerId", acct),
            ("NicType", "intranet"),
            ("Policy", "drop"),
            ("Priority", "7"),
        ],
    )
    .extra(
        "group peer on internet",
        vec![set("NicType", "internet")],
        exp(&["InvalidSourceGroupId.Mismatch"], &[403]),
    )
    .extra(
        "group peer is itself",
        vec![set("SourceGroupId", g)],
        exp(&["InvalidParamter.Conflict"], &[403]),
    )
    .extra(
        "group peer unknown",
        vec![set("SourceGroupId", "sg-nope")],
        exp(&["InvalidSourceGroupId.NotFound"], &[404]),
    )
    .extra(
        "group peer with NUL",
        vec![set("SourceGroupId", "sg-\u{0}")],
        exp(&["InvalidSourceGroupId.NotFound"], &[404]),
    )
    .extra(
        "group peer owner account with NUL",
        vec![
            Edit::Remove("SourceGroupOwnerId".into()),
            set("SourceGroupOwnerAccount", "a\u{0}b"),
        ],
        e400("InvalidSourceGroup.NotFound"),
    )
    .extra(
        "group peer of another network type",
        vec![set("SourceGroupId", v)],
        exp(&["InvalidNetworkType.Mismatch"], &[403]),
    )
    .extra(
        "group peer owner unknown id",
        vec![set("SourceGroupOwnerId", "999")],
        e400("InvalidSourceGroup.NotFound"),
    )
    .extra(
        "group peer owner unknown account",
        vec![
            Edit::Remove("SourceGroupOwnerId".into()),
            set("SourceGroupOwnerAccount", "nobody@example.com"),
        ],
        e400("InvalidSourceGroup.NotFound"),
    );
    out.push(rule_checks(ingress_group, false, "", true));

    let egress_cidr = spec(
        "AuthorizeSecurityGroupEgress",
        &[
            ("SecurityGroupId", g),
            ("IpProtocol", "udp"),
            ("PortRange", "2000/2000"),
            ("DestCidrIp", "10.8.0.0/16"),
            ("SourceCidrIp", "192.168.2.0/24"),
            ("Policy", "drop"),
            ("Priority", "9"),
            ("NicType", "internet"),
            ("Description", "neg egress"),
        ],
    )
    .region()
    .required(&["SecurityGroupId"], e400("MissingParameter"));
    out.push(rule_checks(egress_cidr, true, "", false));

    let egress_group = spec(
        "AuthorizeSecurityGroupEgress",
        &[
            ("SecurityGroupId", g),
            ("IpProtocol", "tcp"),
            ("PortRange", "2001/2001"),
            ("DestGroupId", p),
            ("DestGroupOwnerId", acct),
            ("NicType", "intranet"),
        ],
    )
    .extra(
        "group peer unknown",
        vec![set("DestGroupId", "sg-nope")],
        exp(&["InvalidDestGroupId.NotFound"], &[404]),
    );
    out.push(rule_checks(egress_group, true, "", true));

    // Permissions lists on the VPC group: the second rule spoils the batch.
    for (action, egress) in [
        ("AuthorizeSecurityGroup", false),
        ("AuthorizeSecurityGroupEgress", true),
    ] {
        let (peer, local) = if egress {
            ("DestCidrIp", "SourceCidrIp")
        } else {
            ("SourceCidrIp", "DestCidrIp")
        };
        let mut base: Vec<(String, String)> = vec![("SecurityGroupId".into(), v.into())];
        for (k, val) in [
            ("Permissions.1.IpProtocol", "tcp"),
            ("Permissions.1.PortRange", "3000/3000"),
            (&format!("Permissions.1.{peer}"), "10.7.0.0/16"),
            ("Permissions.2.IpProtocol", "icmp"),
            ("Permissions.2.PortRange", "-1/-1"),
            (&format!("Permissions.2.{peer}"), "10.6.0.0/16"),
            (&format!("Permissions.2.{local}"), "192.168.0.0/24"),
            ("Permissions.2.Policy", "drop"),
            ("Permissions.2.Priority", "3"),
            ("Permissions.2.NicType", "intranet"),
            ("Permissions.2.Description", "neg list"),
        ] {
            base.push((k.to_string(), val.to_string()));
        }
        let refs: Vec<(&str, &str)> = base.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let list = spec(action, &refs)
            .region()
            .required(&["SecurityGroupId"], e400("MissingParameter"))
            .extra(
                "Permissions.0",
                vec![set(format!("Permissions.0.{peer}"), "10.5.0.0/16")],
                e400("InvalidParameter"),
            )
            .extra(
                "Permissions.101",
                vec![
                    set("Permissions.101.IpProtocol", "tcp"),
                    set("Permissions.101.PortRange", "3101/3101"),
                    set(format!("Permissions.101.{peer}"), "10.5.0.0/16"),
                ],
                exp(&["InvalidParameter", "InvalidParam.Permissions"], &[400]),
            )
            .extra(
                "only Permissions.101",
                vec![
                    Edit::Remove("Permissions.1.IpProtocol".into()),
                    Edit::Remove("Permissions.1.PortRange".into()),
                    Edit::Remove(format!("Permissions.1.{peer}")),
                    set("Permissions.101.IpProtocol", "tcp"),
                    set("Permissions.101.PortRange", "3101/3101"),
                    set(format!("Permissions.101.{peer}"), "10.5.0.0/16"),
                ],
                exp(&["InvalidParameter", "InvalidParam.Permissions"], &[400]),
            )
            .extra(
                "Permissions.x",
                vec![set("Permissions.x.IpProtocol", "tcp")],
                e400("InvalidParameter"),
            )
            .extra(
                "Permissions.4294967296",
                vec![set("Permissions.4294967296.IpProtocol", "tcp")],
                e400("InvalidParameter"),
            )
            .extra(
                "Permissions.-1",
                vec![set("Permissions.-1.IpProtocol", "tcp")],
                e400("InvalidParameter"),
            )
            .extra(
                "Permissions.1 without a field",
                vec![set("Permissions.1", "tcp")],
                e400("InvalidParameter"),
            )
            .extra(
                "markup in a parameter name",
                vec![
                    set("Format", "XML"),
                    set("Permissions.<a&b>\"'\u{1}.IpProtocol", "tcp"),
                ],
                e400("InvalidParameter"),
            )
            .extra(
                "markup in a parameter name, JSON",
                vec![set("Permissions.<a&b>\"'\u{1}.IpProtocol", "tcp")],
                e400("InvalidParameter"),
            )
            .extra(
                "Permissions..IpProtocol",
                vec![set("Permissions..IpProtocol", "tcp")],
                e400("InvalidParameter"),
            )
            .extra(
                "the same rule twice",
                vec![
                    set("Permissions.3.IpProtocol", "TCP"),
                    set("Permissions.3.PortRange", "3000/3000"),
                    set(format!("Permissions.3.{peer}"), "10.7.0.0/16"),
                ],
                e400("InvalidParam.DuplicatePermissions"),
            )
            .extra(
                "internet on a VPC group",
                vec![set("Permissions.2.NicType", "internet")],
                exp(&["InvalidNicType.Mismatch"], &[400, 403]),
            )
            .extra(
                "1200 parameters: 400 rules",
                (3..=402)
                    .flat_map(|n| {
                        [
                            set(format!("Permissions.{n}.IpProtocol"), "tcp"),
                            set(format!("Permissions.{n}.PortRange"), format!("{n}/{n}")),
                            set(format!("Permissions.{n}.{peer}"), "10.4.0.0/16"),
                        ]
                    })
                    .collect(),
                e400("InvalidParam.Permissions"),
            );
        out.push(rule_checks(list, egress, "Permissions.2.", false));
    }

    // Revoke by fields (the stored rules), by id, and by a Permissions list.
    let revoke_ingress = spec(
        "RevokeSecurityGroup",
        &[
            ("SecurityGroupId", g),
            ("IpProtocol", "tcp"),
            ("PortRange", "22/22"),
            ("SourceCidrIp", "10.0.0.0/8"),
            ("Policy", "accept"),
            ("NicType", "internet"),
            ("Priority", "1"),
            ("Description", "ssh"),
        ],
    )
    .region()
    .required(&["SecurityGroupId"], e400("MissingParameter"))
    .value(
        "SecurityGroupId",
        &["sg-nope"],
        not_found("InvalidSecurityGroupId.NotFound"),
    )
    .extra(
        "no such rule",
        vec![set("PortRange", "23/23")],
        e400("InvalidSecurityGroupRule.RuleNotExist"),
    );
    out.push(rule_checks(revoke_ingress, false, "", false));
    let revoke_egress = spec(
        "RevokeSecurityGroupEgress",
        &[
            ("SecurityGroupId", g),
            ("IpProtocol", "tcp"),
            ("PortRange", "443/443"),
            ("DestCidrIp", "0.0.0.0/0"),
            ("NicType", "internet"),
            ("Policy", "accept"),
        ],
    )
    .region()
    .required(&["SecurityGroupId"], e400("MissingParameter"));
    out.push(rule_checks(revoke_egress, true, "", false));
    let revoke_list = spec(
        "RevokeSecurityGroup",
        &[
            ("SecurityGroupId", g),
            ("Permissions.1.IpProtocol", "tcp"),
            ("Permissions.1.PortRange", "22/22"),
            ("Permissions.1.SourceCidrIp", "10.0.0.0/8"),
            ("Permissions.1.NicType", "internet"),
            ("Permissions.1.Policy", "accept"),
            ("Permissions.1.Priority", "1"),
        ],
    )
    .extra(
        "Permissions.0",
        vec![set("Permissions.0.IpProtocol", "tcp")],
        e400("InvalidParameter"),
    )
    .extra(
        "Permissions.x",
        vec![set("Permissions.x.IpProtocol", "tcp")],
        e400("InvalidParameter"),
    )
    .extra(
        "Permissions.101",
        vec![
            set("Permissions.101.IpProtocol", "tcp"),
            set("Permissions.101.PortRange", "80/80"),
            set("Permissions.101.SourceCidrIp", "10.0.0.0/8"),
        ],
        exp(
            &[
                "InvalidParameter",
                "InvalidParam.Permissions",
                "InvalidSecurityGroupRule.RuleNotExist",
            ],
            &[400],
        ),
    )
    .extra(
        "one present, one absent",
        vec![
            set("Permissions.2.IpProtocol", "tcp"),
            set("Permissions.2.PortRange", "24/24"),
            set("Permissions.2.SourceCidrIp", "10.0.0.0/8"),
        ],
        e400("InvalidSecurityGroupRule.RuleNotExist"),
    );
    out.push(rule_checks(revoke_list, false, "Permissions.1.", false));
    out.push(
        spec(
            "RevokeSecurityGroup",
            &[("SecurityGroupId", g), ("SecurityGroupRuleId.1", &x.r1)],
        )
        .region()
        .required(&["SecurityGroupId"], e400("MissingParameter"))
        .value(
            "SecurityGroupRuleId.1",
            &["sgr-nope", &x.e1],
            not_found("InvalidSecurityGroupRuleId.NotFound"),
        )
        .extra(
            "SecurityGroupRuleId.0",
            vec![set("SecurityGroupRuleId.0", &x.r1)],
            e400("InvalidParameter"),
        )
        .extra(
            "SecurityGroupRuleId.x",
            vec![set("SecurityGroupRuleId.x", &x.r1)],
            e400("InvalidParameter"),
        )
        .extra(
            "the same id twice",
            vec![set("SecurityGroupRuleId.2", &x.r1)],
            e400("InvalidParam.SecurityGroupRuleIdRepeated"),
        )
        .extra(
            "ids and fields",
            vec![set("IpProtocol", "tcp")],
            e400("InvalidParam.Permissions"),
        )
        .extra(
            "ids and Permissions",
            vec![set("Permissions.1.IpProtocol", "tcp")],
            e400("InvalidParam.Permissions"),
        )
        .extra(
            "1000 ids",
            (2..=1000)
                .map(|n| set(format!("SecurityGroupRuleId.{n}"), format!("sgr-{n}")))
                .collect(),
            e400("InvalidParam.Permissions"),
        ),
    );
    out.push(
        spec(
            "RevokeSecurityGroupEgress",
            &[("SecurityGroupId", g), ("SecurityGroupRuleId.1", &x.e1)],
        )
        .region()
        .value(
            "SecurityGroupRuleId.1",
            &["sgr-nope", &x.r1],
            not_found("InvalidSecurityGroupRuleId.NotFound"),
        ),
    );

    // Modify, legacy (located by fields) and by id.
    let modify_legacy = spec(
        "ModifySecurityGroupRule",
        &[
            ("SecurityGroupId", g),
            ("IpProtocol", "tcp"),
            ("PortRange", "22/22"),
            ("SourceCidrIp", "10.0.0.0/8"),
            ("NicType", "internet"),
            ("Policy", "accept"),
            ("Priority", "4"),
            ("Description", "neg modified"),
        ],
    )
    .region()
    .required(&["SecurityGroupId"], e400("MissingParameter"))
    .extra(
        "no such rule",
        vec![set("PortRange", "23/23")],
        exp(&["SecurityGroupRule.NotFound"], &[404]),
    );
    out.push(rule_checks(modify_legacy, false, "", false));
    let modify_legacy_egress = spec(
        "ModifySecurityGroupEgressRule",
        &[
            ("SecurityGroupId", g),
            ("IpProtocol", "tcp"),
            ("PortRange", "443/443"),
            ("DestCidrIp", "0.0.0.0/0"),
            ("Priority", "4"),
            ("Description", "neg modified"),
        ],
    )
    .region()
    .required(&["SecurityGroupId"], e400("MissingParameter"));
    out.push(rule_checks(modify_legacy_egress, true, "", false));
    for (action, id, other, peer, group_peer) in [
        (
            "ModifySecurityGroupRule",
            &x.r1,
            &x.e1,
            "SourceCidrIp",
            "SourceGroupId",
        ),
        (
            "ModifySecurityGroupEgressRule",
            &x.e1,
            &x.r1,
            "DestCidrIp",
            "DestGroupId",
        ),
    ] {
        let peer_code = if peer == "SourceCidrIp" {
            "InvalidSourceCidrIp.Malformed"
        } else {
            "InvalidDestCidrIp.Malformed"
        };
        out.push(
            spec(
                action,
                &[
                    ("SecurityGroupId", g),
                    ("SecurityGroupRuleId", id),
                    ("Policy", "accept"),
                    ("Priority", "4"),
                    ("PortRange", "22/23"),
                    (peer, "10.0.0.0/16"),
                    ("Description", "neg modified"),
                ],
            )
            .region()
            .required(&["SecurityGroupId"], e400("MissingParameter"))
            .enum_("IpProtocol", "InvalidIpProtocol.Malformed")
            .enum_("Policy", "InvalidPolicy.Malformed")
            .value(
                "NicType",
                WRONG_ENUM,
                exp(
                    &[
                        "InvalidNicType.ValueNotSupported",
                        "InvalidOperation.ModifyNicType",
                    ],
                    &[400],
                ),
            )
            .int(
                "Priority",
                1,
                100,
                "InvalidPriority.Malformed",
                "InvalidPriority.ValueNotSupported",
            )
            .port("PortRange")
            .cidr(peer, peer_code)
            .rule_description("Description")
            .value(
                "SecurityGroupRuleId",
                &["sgr-nope", other],
                not_found("InvalidSecurityGroupRuleId.NotFound"),
            )
            .extra(
                "NicType changed",
                vec![set("NicType", "intranet")],
                e400("InvalidOperation.ModifyNicType"),
            )
            .extra(
                "peer type changed",
                vec![Edit::Remove(peer.into()), set(group_peer, p)],
                e400("InvalidOperation.ModifySgRuleEntityType"),
            ),
        );
    }
    out
}

/// Broken percent-encoding and invalid UTF-8, in the query and in a form body.
fn broken_cases(r: &mut Runner, x: &Fixture) {
    let g = x.g.as_bytes();
    let cat = |parts: &[&[u8]]| parts.concat();
    // (action, raw pairs, expected when signed over what the server decodes)
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "CreateSecurityGroup",
            b"RegionId=cn-hangzhou&SecurityGroupName=%ZZ".to_vec(),
            e400("InvalidSecurityGroupName.Malformed"),
        ),
        (
            "CreateSecurityGroup",
            b"RegionId=cn-hangzhou&SecurityGroupName=%C3%28".to_vec(),
            e400("InvalidSecurityGroupName.Malformed"),
        ),
        (
            "CreateSecurityGroup",
            b"RegionId=cn-hangzhou&SecurityGroupName=abc%".to_vec(),
            e400("InvalidSecurityGroupName.Malformed"),
        ),
        (
            "CreateSecurityGroup",
            b"RegionId=cn-hangzhou&SecurityGroupName=ab\xff\xfe".to_vec(),
            e400("InvalidSecurityGroupName.Malformed"),
        ),
        (
            "CreateSecurityGroup",
            b"RegionId=cn-hangzhou&SecurityGroupName=ab%00cd".to_vec(),
            e400("InvalidSecurityGroupName.Malformed"),
        ),
        (
            "CreateVpc",
            b"RegionId=cn-hangzhou&VpcName=%E4%B8".to_vec(),
            e400("InvalidVpcName.Malformed"),
        ),
        (
            "CreateVpc",
            b"RegionId=cn-hangzhou&CidrBlock=10.0.0.0%2F%ZZ".to_vec(),
            e400("InvalidCidrBlock.Malformed"),
        ),
        (
            "AuthorizeSecurityGroup",
            cat(&[
                b"RegionId=cn-hangzhou&SecurityGroupId=",
                g,
                b"&IpProtocol=%C3%28&PortRange=22/22&SourceCidrIp=10.0.0.0/8",
            ]),
            e400("InvalidIpProtocol.Malformed"),
        ),
        (
            "AuthorizeSecurityGroup",
            cat(&[
                b"RegionId=cn-hangzhou&SecurityGroupId=",
                g,
                b"&IpProtocol=tcp&PortRange=22%2F%ZZ&SourceCidrIp=10.0.0.0/8",
            ]),
            e400("InvalidParam.PortRange"),
        ),
        (
            "AuthorizeSecurityGroup",
            cat(&[
                b"RegionId=cn-hangzhou&SecurityGroupId=",
                g,
                b"&IpProtocol=tcp&PortRange=%&SourceCidrIp=10.0.0.0/8",
            ]),
            e400("InvalidParam.PortRange"),
        ),
        (
            "AuthorizeSecurityGroup",
            cat(&[
                b"RegionId=cn-hangzhou&SecurityGroupId=",
                g,
                b"&IpProtocol=tcp&PortRange=22/22&SourceCidrIp=10.0.0.0%2F%FF",
            ]),
            e400("InvalidSourceCidrIp.Malformed"),
        ),
        (
            "AuthorizeSecurityGroup",
            cat(&[
                b"RegionId=cn-hangzhou&SecurityGroupId=",
                g,
                b"&IpProtocol=tcp&PortRange=22/22&SourceCidrIp=\xff10.0.0.0/8",
            ]),
            e400("InvalidSourceCidrIp.Malformed"),
        ),
        (
            "AuthorizeSecurityGroup",
            cat(&[
                b"RegionId=cn-hangzhou&SecurityGroupId=",
                g,
                b"&Permissions.%ZZ.IpProtocol=tcp",
            ]),
            e400("InvalidParameter"),
        ),
        (
            "AuthorizeSecurityGroup",
            cat(&[
                b"RegionId=cn-hangzhou&SecurityGroupId=",
                g,
                b"&Permissions.\xff.IpProtocol=tcp",
            ]),
            e400("InvalidParameter"),
        ),
        (
            "DescribeSecurityGroupAttribute",
            b"RegionId=cn-hangzhou&SecurityGroupId=%ZZ".to_vec(),
            exp(&["InvalidSecurityGroupId.NotFound"], &[404]),
        ),
        (
            "DescribeSecurityGroupAttribute",
            b"RegionId=cn-hangzhou&SecurityGroupId=sg-%C3".to_vec(),
            exp(&["InvalidSecurityGroupId.NotFound"], &[404]),
        ),
        (
            "ModifySecurityGroupPolicy",
            cat(&[
                b"RegionId=cn-hangzhou&SecurityGroupId=",
                g,
                b"&InnerAccessPolicy=%&%=&&=%",
            ]),
            e400("InvalidPolicy.Malformed"),
        ),
        (
            "DescribeSecurityGroups",
            b"RegionId=cn-hangzhou&PageSize=1%ZZ".to_vec(),
            e400("InvalidPageSize.Malformed"),
        ),
        (
            "DescribeSecurityGroups",
            b"RegionId=%ZZ".to_vec(),
            exp(&["InvalidRegionId.NotFound"], &[404]),
        ),
    ];
    for (action, raw, e) in &cases {
        let raw_bytes = raw.iter().any(|b| *b >= 0x80);
        for channel in [Channel::Query, Channel::Form] {
            let bare = raw_bytes && channel == Channel::Query;
            let mut e = e.clone();
            e.bare_ok = bare;
            r.run_broken("broken encoding", action, raw, true, channel, &e);
            let mut e = e400("SignatureDoesNotMatch");
            e.bare_ok = bare;
            r.run_broken("broken encoding", action, raw, false, channel, &e);
        }
    }
    // Broken common parameters: refused before (or at) the signature.
    let early: Vec<(&[u8], Expect)> = vec![
        (
            b"Action=%ZZ",
            exp(&["InvalidAction.NotFound", "InvalidParameter"], &[400, 404]),
        ),
        (
            b"Version=%C3%28",
            exp(&["InvalidVersion", "InvalidParameter"], &[400]),
        ),
        (b"Signature=%ZZ", e400("SignatureDoesNotMatch")),
        (b"Signature=%", e400("SignatureDoesNotMatch")),
        (
            b"AccessKeyId=%FF",
            exp(
                &["InvalidAccessKeyId.NotFound", "InvalidParameter"],
                &[400, 404],
            ),
        ),
        (
            b"Timestamp=%ZZ",
            exp(&["InvalidTimeStamp.Format", "InvalidParameter"], &[400]),
        ),
        (b"SignatureNonce=%", e400("SignatureDoesNotMatch")),
    ];
    for (raw, e) in &early {
        let name = std::str::from_utf8(raw).unwrap().split('=').next().unwrap();
        for channel in [Channel::Query, Channel::Form] {
            // The broken pair comes first, so it is the one looked up.
            let c = &r.client;
            let mut common = c.common("DescribeRegions", "JSON");
            common.retain(|(k, _)| k != "Format" && k != name);
            let mut bytes = raw.to_vec();
            bytes.push(b'&');
            bytes.extend_from_slice(encode_query(&common).as_bytes());
            if name != "Signature" {
                bytes.extend_from_slice(b"&Signature=c2lnbmF0dXJl");
            }
            let label = format!("DescribeRegions broken {name} [{channel:?}]");
            match channel {
                Channel::Query => {
                    let mut target = b"/?Format=JSON&".to_vec();
                    target.extend_from_slice(&bytes);
                    r.send(&label, "POST", &target, &[], b"", e);
                }
                Channel::Form => r.send(
                    &label,
                    "POST",
                    b"/?Format=JSON",
                    &[("Content-Type", "application/x-www-form-urlencoded")],
                    &bytes,
                    e,
                ),
            }
        }
    }
    // A body of binary garbage declared as a form.
    let mut garbage: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    garbage.extend_from_slice(b"%%%=\xff=\xfe&&&%C3");
    r.send(
        "binary form body",
        "POST",
        b"/?Format=JSON",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &garbage,
        &exp(&[], &[400, 403, 404]),
    );
}

/// Parameter counts around the limits, in the query and in a form body.
fn many_params_cases(r: &mut Runner) {
    let c = r.client.clone();
    for (n, expect) in [
        (2500, e400("InvalidParameter.RequestTooLarge")),
        // Under the limit but spoiled: the handler still sees all of them.
        (1500, e400("InvalidPageSize.Malformed")),
    ] {
        for channel in [Channel::Query, Channel::Form] {
            let mut all = c.common("DescribeSecurityGroups", "JSON");
            all.push(("RegionId".into(), "cn-hangzhou".into()));
            all.push(("PageSize".into(), "0".into()));
            for i in 1..=n {
                all.push((format!("Tag.{i}.Key"), "k".into()));
            }
            palisade_api::sign::sign_v1_params("POST", &mut all, &c.secret);
            let label = format!("DescribeSecurityGroups with {n} parameters [{channel:?}]");
            match channel {
                Channel::Query => {
                    let target = format!("/?{}", encode_query(&all));
                    r.send(&label, "POST", target.as_bytes(), &[], b"", &expect);
                }
                Channel::Form => {
                    let rest: Vec<(String, String)> =
                        all.iter().filter(|(k, _)| k != "Format").cloned().collect();
                    let body = encode_query(&rest);
                    r.send(
                        &label,
                        "POST",
                        b"/?Format=JSON",
                        &[("Content-Type", "application/x-www-form-urlencoded")],
                        body.as_bytes(),
                        &expect,
                    );
                }
            }
        }
    }
    // Query and body together past the limit.
    let mut all = c.common("DescribeRegions", "JSON");
    for i in 1..=1200 {
        all.push((format!("Q{i}"), "q".into()));
    }
    let query = encode_query(&all);
    let body: Vec<(String, String)> = (1..=1200).map(|i| (format!("B{i}"), "b".into())).collect();
    r.send(
        "DescribeRegions with 1200 query and 1200 body parameters",
        "POST",
        format!("/?{query}").as_bytes(),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        encode_query(&body).as_bytes(),
        &e400("InvalidParameter.RequestTooLarge"),
    );
}

/// V3 (ACS3-HMAC-SHA256) requests that are incomplete or wrong.
fn v3_cases(r: &mut Runner) {
    let now = timestamp(0);
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    type V3Case<'a> = (&'a str, Vec<(&'a str, String)>, Expect);
    let cases: Vec<V3Case> = vec![
        (
            "scheme unknown",
            vec![("Authorization", "Bearer abc".into())],
            e400("IncompleteSignature"),
        ),
        (
            "no signature",
            vec![("Authorization", "ACS3-HMAC-SHA256 Credential=testak".into())],
            e400("IncompleteSignature"),
        ),
        (
            "no date",
            vec![(
                "Authorization",
                "ACS3-HMAC-SHA256 Credential=testak,SignedHeaders=host,Signature=00".into(),
            )],
            e400("MissingParameter"),
        ),
        (
            "bad date",
            vec![
                (
                    "Authorization",
                    "ACS3-HMAC-SHA256 Credential=testak,SignedHeaders=host,Signature=00".into(),
                ),
                ("x-acs-date", "yesterday".into()),
            ],
            e400("InvalidTimeStamp.Format"),
        ),
        (
            "no nonce",
            vec![
                (
                    "Authorization",
                    "ACS3-HMAC-SHA256 Credential=testak,SignedHeaders=host,Signature=00".into(),
                ),
                ("x-acs-date", now.clone()),
            ],
            e400("MissingParameter"),
        ),
        (
            "wrong signature",
            vec![
                (
                    "Authorization",
                    "ACS3-HMAC-SHA256 Credential=testak,SignedHeaders=host;x-acs-date,Signature=00"
                        .into(),
                ),
                ("x-acs-date", now.clone()),
                ("x-acs-signature-nonce", nonce.clone()),
            ],
            e400("SignatureDoesNotMatch"),
        ),
        (
            "signed header missing",
            vec![
                (
                    "Authorization",
                    "ACS3-HMAC-SHA256 Credential=testak,SignedHeaders=x-acs-nothing,Signature=00"
                        .into(),
                ),
                ("x-acs-date", now.clone()),
                ("x-acs-signature-nonce", nonce.clone()),
            ],
            e400("IncompleteSignature"),
        ),
        (
            "unknown key",
            vec![
                (
                    "Authorization",
                    "ACS3-HMAC-SHA256 Credential=nobody,SignedHeaders=host,Signature=00".into(),
                ),
                ("x-acs-date", now.clone()),
                ("x-acs-signature-nonce", nonce.clone()),
            ],
            exp(&["InvalidAccessKeyId.NotFound"], &[404]),
        ),
    ];
    for (label, headers, e) in cases {
        let mut h: Vec<(&str, &str)> = vec![
            ("x-acs-action", "DescribeRegions"),
            ("x-acs-version", "2014-05-26"),
        ];
        h.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
        r.send(
            &format!("V3 {label}"),
            "POST",
            b"/?RegionId=cn-hangzhou&Format=JSON",
            &h,
            b"",
            &e,
        );
    }
}

/// What must not change: every group with its rules, and the VPCs.
fn snapshot(c: &Client) -> Value {
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("RequestId");
        v
    };
    let groups = strip(c.ok("DescribeSecurityGroups", &[("PageSize", "50")]));
    let mut attrs = Vec::new();
    for g in groups["SecurityGroups"]["SecurityGroup"]
        .as_array()
        .unwrap()
    {
        let id = g["SecurityGroupId"].as_str().unwrap();
        for nic in ["internet", "intranet"] {
            attrs.push(strip(c.ok(
                "DescribeSecurityGroupAttribute",
                &[("SecurityGroupId", id), ("NicType", nic)],
            )));
        }
    }
    let vpcs = strip(c.ok("DescribeVpcs", &[("PageSize", "50")]));
    serde_json::json!({ "groups": groups, "attributes": attrs, "vpcs": vpcs })
}

#[test]
fn every_malformed_request_gets_a_4xx_envelope_and_changes_nothing() {
    let s = Server::start(&["--rate-limit", "0"]);
    let c = s.client();
    let x = fixture(&c);
    let before = snapshot(&c);
    let mut r = Runner {
        client: c.clone(),
        tried: 0,
        bare_4xx: 0,
        failures: Vec::new(),
    };
    let mut n = 0usize;
    for spec in specs(&x) {
        for mut case in generate(&spec) {
            n += 1;
            // Every seventh in XML, every third in a form body.
            if n.is_multiple_of(7) {
                case.edits.push(set("Format", "XML"));
            }
            r.run(&case, n.is_multiple_of(3));
        }
    }
    broken_cases(&mut r, &x);
    many_params_cases(&mut r);
    v3_cases(&mut r);
    // A nonce used twice.
    let mut p = c.common("DescribeRegions", "JSON");
    palisade_api::sign::sign_v1_params("POST", &mut p, &c.secret);
    let target = format!("/?{}", encode_query(&p));
    let first = http(&c.endpoint, "POST", target.as_bytes(), &[], b"").unwrap();
    assert_eq!(first.status, 200, "{}", first.body);
    r.send(
        "nonce used twice",
        "POST",
        target.as_bytes(),
        &[],
        b"",
        &e400("SignatureNonceUsed"),
    );

    // A body past 1 MB, and a URL past 64 KB.
    let mut p = c.common("DescribeRegions", "JSON");
    p.push(("Pad".into(), big(1536 * 1024)));
    r.send(
        "DescribeRegions with a 1.5 MB form body",
        "POST",
        b"/?Format=JSON",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        encode_query(&p).as_bytes(),
        &e400("InvalidParameter.RequestTooLarge"),
    );
    let mut e = e400("InvalidParameter");
    e.statuses.push(414);
    e.bare_ok = true;
    r.send(
        "DescribeRegions with a 70 KB URL",
        "POST",
        format!("/?Format=JSON&Pad={}", big(70 * 1024)).as_bytes(),
        &[],
        b"",
        &e,
    );

    // Still serving, and nothing was written.
    c.ok("DescribeRegions", &[]);
    let after = snapshot(&c);
    println!(
        "negative: {} inputs tried, {} failed; {} refused by the HTTP parser with an empty 4xx (raw bytes in the request line, URL past 64 KB)",
        r.tried,
        r.failures.len(),
        r.bare_4xx
    );
    for f in &r.failures {
        println!("negative: FAIL {f}");
    }
    assert!(
        r.failures.is_empty(),
        "{} of {} inputs were answered wrongly:\n{}",
        r.failures.len(),
        r.tried,
        r.failures.join("\n")
    );
    assert_eq!(
        before, after,
        "the failed requests changed the stored state"
    );
}
