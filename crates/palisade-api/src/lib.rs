//! The ECS RPC protocol: parameters, signatures, actions, error envelope and encodings.

pub mod auth;
pub mod decision;
pub mod encode;
pub mod enforcement;
pub mod error;
pub mod membership;
pub mod params;
pub mod server;
pub mod service;
pub mod sign;

pub use error::ApiError;
