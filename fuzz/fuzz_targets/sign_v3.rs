//! The V3 canonical request. Input: `METHOD\nPATH\nQUERY\n`, then `name:value` header
//! lines, an empty line, and the payload hash. The canonical request has its fixed
//! layout whatever the bytes, and does not depend on the query's order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_api::params::Params;
use palisade_api::sign::{
    canonical_query, sha256_hex, v3_canonical_request, v3_signature, v3_string_to_sign,
};

fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or("");
    let path = lines.next().unwrap_or("");
    let query_raw = lines.next().unwrap_or("");
    let mut headers: Vec<(String, String)> = Vec::new();
    for l in lines.by_ref() {
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap_or((l, ""));
        headers.push((k.to_ascii_lowercase(), v.to_string()));
    }
    let payload = lines.collect::<Vec<_>>().join("\n");
    let mut q = Params::new();
    let _ = q.extend_urlencoded(query_raw.as_bytes());
    let pairs: Vec<(&str, &str)> = q
        .pairs()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    let cr = v3_canonical_request(method, path, pairs.iter().copied(), &headers, &payload);
    let head = format!(
        "{method}\n{}\n{}\n",
        if path.is_empty() { "/" } else { path },
        canonical_query(pairs.iter().copied())
    );
    assert!(cr.starts_with(&head));
    let mut at = head.len();
    for (k, v) in &headers {
        let line = format!("{k}:{}\n", v.trim());
        assert_eq!(cr.get(at..at + line.len()), Some(line.as_str()));
        at += line.len();
    }
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(&cr[at..], format!("\n{}\n{payload}", names.join(";")));
    assert_eq!(
        cr,
        v3_canonical_request(method, path, pairs.iter().rev().copied(), &headers, &payload)
    );

    let sts = v3_string_to_sign(&cr);
    let digest = sts
        .strip_prefix("ACS3-HMAC-SHA256\n")
        .expect("string to sign starts with the algorithm");
    assert!(lower_hex(digest, 64));
    assert_eq!(digest, sha256_hex(cr.as_bytes()));
    assert!(lower_hex(&v3_signature("testsecret", &sts), 64));
});
