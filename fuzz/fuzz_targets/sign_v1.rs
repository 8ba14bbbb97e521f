//! The V1 string-to-sign: `METHOD\n` then an urlencoded parameter list. Whatever the
//! parameters, the canonical form is order-independent, fully escaped, and splits back
//! into exactly one sorted `name=value` per parameter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_api::params::Params;
use palisade_api::sign::{
    canonical_query, percent_encode, sign_v1_params, v1_signature, v1_string_to_sign,
};

/// Only RFC 3986 unreserved characters and `%XX` with upper-case hex.
fn fully_escaped(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') => i += 1,
            b'%' if i + 2 < b.len()
                && b[i + 1..=i + 2]
                    .iter()
                    .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h)) =>
            {
                i += 3
            }
            _ => return false,
        }
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let (method, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (String::from_utf8_lossy(&data[..i]).into_owned(), &data[i + 1..]),
        None => ("POST".to_string(), data),
    };
    let mut p = Params::new();
    let _ = p.extend_urlencoded(rest);
    let pairs: Vec<(&str, &str)> = p
        .pairs()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    let sts = v1_string_to_sign(&method, pairs.iter().copied());
    let prefix = format!("{method}&%2F&");
    assert!(sts.starts_with(&prefix));
    let tail = &sts[prefix.len()..];
    assert!(fully_escaped(tail), "{tail:?}");
    assert_eq!(sts, v1_string_to_sign(&method, pairs.iter().rev().copied()));

    let canon = canonical_query(pairs.iter().copied());
    assert_eq!(tail, percent_encode(&canon));
    if pairs.is_empty() {
        assert!(canon.is_empty());
    } else {
        let split: Vec<(&str, &str)> = canon
            .split('&')
            .map(|piece| piece.split_once('=').expect("every piece is name=value"))
            .collect();
        assert_eq!(split.len(), pairs.len());
        assert!(split.windows(2).all(|w| w[0] <= w[1]), "not sorted");
        for (k, v) in &split {
            assert!(fully_escaped(k) && fully_escaped(v));
        }
    }

    let sig = v1_signature("testsecret", &sts);
    assert_eq!(sig.len(), 28);
    // The client helper signs the same bytes, and re-signing replaces the signature.
    let mut owned: Vec<(String, String)> = p
        .pairs()
        .iter()
        .filter(|(k, _)| k != "Signature")
        .cloned()
        .collect();
    let unsigned = owned.len();
    sign_v1_params(&method, &mut owned, "testsecret");
    sign_v1_params(&method, &mut owned, "testsecret");
    assert_eq!(owned.len(), unsigned + 1);
    let without: Vec<(&str, &str)> = owned[..unsigned]
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        owned[unsigned].1,
        v1_signature("testsecret", &v1_string_to_sign(&method, without))
    );
});
