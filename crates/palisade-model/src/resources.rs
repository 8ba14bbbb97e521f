//! Accounts, keys, VPCs and security groups.

use std::fmt;

/// A tenant. Every resource belongs to exactly one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The numeric owner id (Alibaba "UID"), e.g. 1234567890123456.
    pub id: u64,
    /// The login name, e.g. `test@aliyun.com`; what `SourceGroupOwnerAccount` names.
    pub name: String,
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
    pub account_id: u64,
    pub enabled: bool,
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vpc {
    pub id: String,
    pub account_id: u64,
    pub region_id: String,
    pub cidr_block: String,
    pub name: String,
    pub description: String,
    pub created_at: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecurityGroupType {
    /// A basic group.
    Normal,
    /// An advanced group: no inner access, no group references, accept-only.
    Enterprise,
}

impl SecurityGroupType {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "normal" => Some(Self::Normal),
            "enterprise" => Some(Self::Enterprise),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Enterprise => "enterprise",
        }
    }
}

/// Classic or VPC, decided by whether the group was created with a `VpcId`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkType {
    Classic,
    Vpc,
}

impl NetworkType {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "classic" => Some(Self::Classic),
            "vpc" => Some(Self::Vpc),
            _ => None,
        }
    }
}

/// `InnerAccessPolicy`: whether members of one group reach each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InnerAccessPolicy {
    Accept,
    Drop,
}

impl InnerAccessPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "accept" => Some(Self::Accept),
            "drop" => Some(Self::Drop),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Accept => "Accept",
            Self::Drop => "Drop",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    pub account_id: u64,
    pub region_id: String,
    /// `None` for a classic group.
    pub vpc_id: Option<String>,
    pub name: String,
    pub description: String,
    pub group_type: SecurityGroupType,
    pub inner_access_policy: InnerAccessPolicy,
    pub created_at: String,
}

impl SecurityGroup {
    pub fn network_type(&self) -> NetworkType {
        if self.vpc_id.is_some() {
            NetworkType::Vpc
        } else {
            NetworkType::Classic
        }
    }
}

/// Why a name or description was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    Malformed,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed")
    }
}

/// Group and VPC names: 2-128 characters, starting with a letter (any script), then
/// letters, digits, `:`, `_`, `.`, `-`; never starting with `http://` or `https://`.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let count = name.chars().count();
    if !(2..=128).contains(&count) || name.starts_with("http://") || name.starts_with("https://") {
        return Err(NameError::Malformed);
    }
    let mut chars = name.chars();
    let first = chars.next().ok_or(NameError::Malformed)?;
    if !first.is_alphabetic() {
        return Err(NameError::Malformed);
    }
    if chars.all(|c| c.is_alphanumeric() || matches!(c, ':' | '_' | '.' | '-')) {
        Ok(())
    } else {
        Err(NameError::Malformed)
    }
}

/// Group and VPC descriptions: 2-256 characters, not starting with `http(s)://`.
pub fn validate_description(d: &str) -> Result<(), NameError> {
    let count = d.chars().count();
    if !(2..=256).contains(&count) || d.starts_with("http://") || d.starts_with("https://") {
        return Err(NameError::Malformed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("web-tier_1:a.b").is_ok());
        assert!(validate_name("中文组").is_ok());
        assert!(validate_name("1abc").is_err());
        assert!(validate_name("a").is_err());
        assert!(validate_name("http://x").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_description("client test: a*b~c+d/e ünï").is_ok());
        assert!(validate_description("x").is_err());
    }
}

/// An elastic network interface: the unit that security groups attach to. An instance
/// has one primary interface; its memberships are the instance's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInterface {
    pub id: String,
    pub account_id: u64,
    pub region_id: String,
    pub vpc_id: Option<String>,
    pub vswitch_id: String,
    /// Set for an instance's primary interface.
    pub instance_id: Option<String>,
    pub name: String,
    pub private_ip: String,
    pub public_ip: Option<String>,
    pub created_at: String,
}

impl NetworkInterface {
    pub fn is_primary(&self) -> bool {
        self.instance_id.is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub account_id: u64,
    pub region_id: String,
    pub name: String,
    pub created_at: String,
}

/// At most this many groups per instance or interface.
pub const MAX_GROUPS_PER_NIC: usize = 5;
