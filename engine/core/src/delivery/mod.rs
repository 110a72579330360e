//! Delivery: draining committed deliveries to their destinations, at least once.
//!
//! One [`DeliveryWorker`] per channel destination claims the oldest due deliveries from the store
//! (a lease, so a second node or a restarted one never sends the same delivery concurrently),
//! calls [`Destination::send`](crate::connector::Destination::send), and records each attempt
//! through the group-committing writer. Failures retry with exponential backoff and jitter
//! ([`backoff`]) until the attempt limit, then the delivery is `errored` and stays visible.
//! Order is FIFO per destination: a delivery waiting for its retry holds back the ones behind it.

pub mod backoff;
mod scripts;
mod worker;

pub use scripts::{DestinationScripts, Prepared, ResponseDecision};
pub use worker::{DeliveryWorker, WorkerSettings};
