//! What the fault tests drive and break things with, besides the helpers every test uses.

pub mod load;
pub mod proxy;
