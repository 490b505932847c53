//! Jobs written by an application's own SQL.
