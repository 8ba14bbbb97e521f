//! Request signatures of the ECS RPC API: V1 (HMAC-SHA1 over the sorted parameters) and
//! V3 (ACS3-HMAC-SHA256 over a canonical request). Pure functions, shared by the server's
//! verifier and the built-in client, so both sides compute the same bytes.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// RFC 3986 percent-encoding as the ECS signers use it: unreserved characters stay,
/// everything else becomes `%XX` with upper-case hex over the UTF-8 bytes.
pub fn percent_encode(s: &str) -> String {
    // Parameter names and most values need no escaping: one copy instead of a byte loop.
    if s.bytes().all(is_unreserved) {
        return s.to_string();
    }
    let mut out = Vec::with_capacity(s.len() + 16);
    encode_into(&mut out, s.as_bytes());
    // Only ASCII was written.
    String::from_utf8(out).unwrap_or_default()
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

fn encode_into(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s {
        if is_unreserved(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

/// Sorted `k=v` pairs joined by `&`, both sides encoded; empty values are kept
/// because the classic SDK signs `SignatureType=`.
pub fn canonical_query<'a, I>(params: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut pairs: Vec<(String, String)> = params
        .into_iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    pairs.sort();
    let len = pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = String::with_capacity(len);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// The V1 string-to-sign; `params` must not contain `Signature`.
pub fn v1_string_to_sign<'a, I>(method: &str, params: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let canonical = canonical_query(params);
    let mut out = Vec::with_capacity(method.len() + 6 + canonical.len() * 5 / 4);
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(b"&%2F&");
    encode_into(&mut out, canonical.as_bytes());
    // A &str followed by ASCII: always valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// base64(HMAC-SHA1(secret + "&", string_to_sign)).
pub fn v1_signature(secret: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The V3 canonical request. `headers` are the signed headers in `SignedHeaders` order,
/// names lower-case, values as received (trimmed here).
pub fn v3_canonical_request<'a, I>(
    method: &str,
    path: &str,
    query: I,
    headers: &[(String, String)],
    payload_hash: &str,
) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut out = String::new();
    out.push_str(method);
    out.push('\n');
    out.push_str(if path.is_empty() { "/" } else { path });
    out.push('\n');
    out.push_str(&canonical_query(query));
    out.push('\n');
    for (k, v) in headers {
        out.push_str(k);
        out.push(':');
        out.push_str(v.trim());
        out.push('\n');
    }
    out.push('\n');
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    out.push_str(&names.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    out
}

pub fn v3_string_to_sign(canonical_request: &str) -> String {
    format!(
        "ACS3-HMAC-SHA256\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// hex(HMAC-SHA256(secret, string_to_sign)).
pub fn v3_signature(secret: &str, string_to_sign: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Signs a V1 request for a client: returns the parameters with `Signature` appended.
pub fn sign_v1_params(method: &str, params: &mut Vec<(String, String)>, secret: &str) {
    params.retain(|(k, _)| k != "Signature");
    let sts = v1_string_to_sign(method, params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    params.push(("Signature".to_string(), v1_signature(secret, &sts)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_v1_example() {
        let params = [
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ];
        let sts = v1_string_to_sign("GET", params);
        assert!(sts.contains("Timestamp%3D2016-02-23T12%253A46%253A24Z"));
        assert_eq!(
            v1_signature("testsecret", &sts),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn encoding_of_reserved_and_non_ascii() {
        assert_eq!(percent_encode("a*b~c+d/e ün"), "a%2Ab~c%2Bd%2Fe%20%C3%BCn");
    }
}
