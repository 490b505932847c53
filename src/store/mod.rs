//! Every SQL statement cronq runs lives below this module.

pub mod data;
