//! The ECS security-group domain: groups, permissions (rules), their parsing and
//! validation, quotas and identity. No I/O: the API and storage layers build on it.

pub mod ids;
pub mod net;
pub mod permission;
pub mod resources;

pub use net::{Cidr4, PortRange};
pub use permission::*;
pub use resources::*;
