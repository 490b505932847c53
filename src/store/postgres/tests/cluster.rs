//! What only several nodes on one database show.
