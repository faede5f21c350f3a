//! Change-detection sources of one deployed mapping, each in its own file: the initial load
//! (and scheduled full re-sync), polling on the change timestamp, reconciliation in both
//! directions (beside polling), and webhook hints. All read M3 in [`window`]s through the
//! `reader`, on documented `EXPORTMI` ground only; the `worker` runs them and writes what
//! they find, with the cursor, in one store transaction.

pub mod event;
pub(crate) mod initial_load;
pub(crate) mod poll;
pub(crate) mod reader;
pub(crate) mod reconcile;
pub mod splitter;
pub(crate) mod webhook;
pub mod window;
pub(crate) mod worker;
