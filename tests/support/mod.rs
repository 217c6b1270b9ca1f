//! What tests read pages with, and what the fault tests drive and break things with.

pub mod cluster;
pub mod html;
pub mod load;
pub mod proxy;
pub mod server;
