//! Request parameters: the URL query and a form body merged, `+` decoded as a space,
//! with typed accessors that turn absence or bad values into ECS errors.

use crate::error::ApiError;

/// Upper bounds that keep a hostile request cheap to refuse.
pub const MAX_PARAMS: usize = 2000;
pub const MAX_PARAM_LEN: usize = 16 * 1024;

#[derive(Debug, Default, Clone)]
pub struct Params {
    /// In arrival order, query first; duplicates are kept for signing (the first wins on lookup).
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `application/x-www-form-urlencoded` pairs; malformed escapes decode lossily
    /// (the signature check then refuses a tampered request).
    pub fn extend_urlencoded(&mut self, raw: &[u8]) -> Result<(), ApiError> {
        for (k, v) in form_urlencoded::parse(raw) {
            if self.pairs.len() >= MAX_PARAMS {
                return Err(ApiError::RequestTooLarge);
            }
            if k.len() > 256 || v.len() > MAX_PARAM_LEN {
                return Err(ApiError::InvalidParameter(truncate(&k, 64)));
            }
            self.pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(())
    }

    /// Replaces NUL characters (after the signature was checked over the original bytes):
    /// no identifier contains one, and some databases cannot even store one.
    pub fn replace_nul(&mut self) {
        for (k, v) in self.pairs.iter_mut() {
            if k.contains('\0') {
                *k = k.replace('\0', "\u{FFFD}");
            }
            if v.contains('\0') {
                *v = v.replace('\0', "\u{FFFD}");
            }
        }
    }

    pub fn push(&mut self, k: &str, v: &str) {
        self.pairs.push((k.to_string(), v.to_string()));
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value if present and not empty: the SDKs send unset optional fields as empty.
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    pub fn opt_string(&self, name: &str) -> Option<String> {
        self.opt(name).map(str::to_string)
    }

    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.opt(name)
            .ok_or_else(|| ApiError::MissingParameter(name.to_string()))
    }

    /// An optional integer within bounds; `err` for anything else.
    pub fn opt_int(
        &self,
        name: &str,
        min: i64,
        max: i64,
        err: ApiError,
    ) -> Result<Option<i64>, ApiError> {
        match self.opt(name) {
            None => Ok(None),
            Some(s) => match s.trim().parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(err),
            },
        }
    }

    /// `Name.1`, `Name.2`, ... in index order (indices need not be contiguous).
    pub fn repeated(&self, name: &str) -> Result<Vec<String>, ApiError> {
        let prefix = format!("{name}.");
        let mut items: Vec<(u32, String)> = Vec::new();
        for (k, v) in &self.pairs {
            if let Some(rest) = k.strip_prefix(&prefix) {
                let n: u32 = rest
                    .parse()
                    .map_err(|_| ApiError::InvalidParameter(k.clone()))?;
                if n == 0 || n > 1000 {
                    return Err(ApiError::InvalidParameter(k.clone()));
                }
                // The first occurrence of an index wins (as for single parameters); an
                // empty one means the item is absent.
                if !items.iter().any(|(i, _)| *i == n) {
                    items.push((n, v.clone()));
                }
            }
        }
        items.sort_by_key(|(n, _)| *n);
        Ok(items
            .into_iter()
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty())
            .collect())
    }

    /// The struct list `Name.N.Field`: for each index N (sorted), its fields.
    pub fn struct_list(&self, name: &str) -> Result<Vec<Params>, ApiError> {
        self.struct_list_max(name, 1000, None)
    }

    /// As [`Params::struct_list`], with indices limited to `1..=max`; a larger one is
    /// `over` (or `InvalidParameter` naming it).
    pub fn struct_list_max(
        &self,
        name: &str,
        max: u32,
        over: Option<ApiError>,
    ) -> Result<Vec<Params>, ApiError> {
        let prefix = format!("{name}.");
        let mut items: Vec<(u32, Params)> = Vec::new();
        for (k, v) in &self.pairs {
            if let Some(rest) = k.strip_prefix(&prefix) {
                let (idx, field) = rest
                    .split_once('.')
                    .ok_or_else(|| ApiError::InvalidParameter(truncate(k, 64)))?;
                let n: u32 = idx
                    .parse()
                    .map_err(|_| ApiError::InvalidParameter(truncate(k, 64)))?;
                if n > max && n <= 1000 {
                    if let Some(e) = &over {
                        return Err(e.clone());
                    }
                }
                if n == 0 || n > max {
                    return Err(ApiError::InvalidParameter(truncate(k, 64)));
                }
                let slot = match items.iter_mut().position(|(i, _)| *i == n) {
                    Some(p) => p,
                    None => {
                        items.push((n, Params::new()));
                        items.len() - 1
                    }
                };
                items[slot].1.push(field, v);
            }
        }
        items.sort_by_key(|(n, _)| *n);
        Ok(items.into_iter().map(|(_, p)| p).collect())
    }

    /// A "JSON array in a string" parameter such as `SecurityGroupIds=["sg-a","sg-b"]`.
    pub fn json_string_list(
        &self,
        name: &str,
        err: ApiError,
    ) -> Result<Option<Vec<String>>, ApiError> {
        let Some(raw) = self.opt(name) else {
            return Ok(None);
        };
        let v: serde_json::Value = serde_json::from_str(raw).map_err(|_| err.clone())?;
        let arr = v.as_array().ok_or_else(|| err.clone())?;
        arr.iter()
            .map(|x| x.as_str().map(str::to_string).ok_or_else(|| err.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_is_space_and_lists() {
        let mut p = Params::new();
        p.extend_urlencoded(b"Description=a+b%2Bc&Permissions.2.IpProtocol=udp&Permissions.1.IpProtocol=tcp&SecurityGroupRuleId.1=sgr-x&Empty=")
            .unwrap();
        assert_eq!(p.get("Description"), Some("a b+c"));
        assert_eq!(p.get("Empty"), Some(""));
        assert_eq!(p.opt("Empty"), None);
        let perms = p.struct_list("Permissions").unwrap();
        assert_eq!(perms.len(), 2);
        assert_eq!(perms[0].get("IpProtocol"), Some("tcp"));
        assert_eq!(p.repeated("SecurityGroupRuleId").unwrap(), vec!["sgr-x"]);
    }

    #[test]
    fn bad_list_index_is_an_error() {
        let mut p = Params::new();
        p.extend_urlencoded(b"Permissions.x.IpProtocol=tcp")
            .unwrap();
        assert!(p.struct_list("Permissions").is_err());
    }
}
