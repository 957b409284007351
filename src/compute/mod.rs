//! Multi-key commands across slots computed by the proxy: the pure parts first.

pub mod double;
pub mod hll;
pub mod lcs;
