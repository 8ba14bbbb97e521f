//! Parameter decoding: an urlencoded query or form body, then the list accessors the
//! handlers use. No input panics; what was accepted re-encodes to itself; the lists
//! account for every key they claim.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_api::params::{Params, MAX_PARAMS, MAX_PARAM_LEN};
use palisade_api::service::permission_input;
use palisade_api::sign::percent_encode;
use palisade_api::ApiError;
use palisade_model::Direction;

fuzz_target!(|data: &[u8]| {
    let mut p = Params::new();
    let _ = p.extend_urlencoded(data);
    assert!(p.pairs().len() <= MAX_PARAMS);
    for (k, v) in p.pairs() {
        assert!(k.len() <= 256 && v.len() <= MAX_PARAM_LEN, "{k:?}");
    }

    // What was decoded, encoded the way the signers do it, decodes to the same pairs.
    let again = p
        .pairs()
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut q = Params::new();
    q.extend_urlencoded(again.as_bytes())
        .expect("accepted pairs re-encode to an accepted request");
    assert_eq!(p.pairs(), q.pairs());

    let claimed = |prefix: &str| {
        p.pairs()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .count()
    };
    match p.struct_list("Permissions") {
        Ok(list) => {
            assert!(list.len() <= 1000);
            assert!(list.iter().all(|item| !item.pairs().is_empty()));
            let fields: usize = list.iter().map(|item| item.pairs().len()).sum();
            assert_eq!(fields, claimed("Permissions."));
            for item in &list {
                for (field, _) in item.pairs() {
                    assert!(p
                        .pairs()
                        .iter()
                        .any(|(k, _)| k.starts_with("Permissions.") && k.ends_with(&format!(".{field}"))));
                }
                let _ = permission_input(item, Direction::Ingress);
                let _ = permission_input(item, Direction::Egress);
            }
        }
        // Only a malformed `Permissions.*` key is refused.
        Err(e) => {
            assert_eq!(e.code(), "InvalidParameter");
            assert!(claimed("Permissions.") > 0);
        }
    }
    for name in ["SecurityGroupRuleId", "SecurityGroupId"] {
        let prefix = format!("{name}.");
        match p.repeated(name) {
            Ok(values) => {
                assert!(values.len() <= claimed(&prefix).min(1000));
                for v in &values {
                    assert!(p
                        .pairs()
                        .iter()
                        .any(|(k, pv)| k.starts_with(&prefix) && pv == v));
                }
            }
            Err(e) => {
                assert_eq!(e.code(), "InvalidParameter");
                assert!(claimed(&prefix) > 0);
            }
        }
    }
    if let Ok(Some(ids)) =
        p.json_string_list("SecurityGroupIds", ApiError::InvalidSecurityGroupIdsMalformed)
    {
        assert!(ids.len() <= MAX_PARAM_LEN);
    }
    for name in ["PageSize", "PageNumber", "MaxResults", "Priority"] {
        if let Ok(Some(n)) = p.opt_int(name, 1, 100, ApiError::InvalidPageSize) {
            assert!((1..=100).contains(&n));
        }
    }
});
