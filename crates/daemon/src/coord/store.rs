//! The coordination store: the lease and the instances' published views, kept in
//! the secondary region's config table beside the config item. `DynamoCoordStore`
//! (`dynamo.rs`) is the real one; `failover-testkit` holds one with DynamoDB's
//! documented semantics for tests and the simulation.

use async_trait::async_trait;
use failover_core::lease::LeaseRecord;
pub use failover_core::liveness::PeerView;

/// Why a coordination call did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoordError {
    /// A conditional write found the lease other than expected: someone else holds
    /// it, or took it first.
    #[error("the lease is not as expected")]
    Refused,
    /// The call failed; a write may or may not have been applied.
    #[error("{0}")]
    Unavailable(String),
}

/// The lease and the views, as the coordination task reads and writes them.
#[async_trait]
pub trait CoordStore: Send + Sync {
    /// The lease and the views of `instances`, in one strongly consistent read.
    async fn read(
        &self,
        instances: &[String],
    ) -> Result<(Option<LeaseRecord>, Vec<(String, PeerView)>), CoordError>;

    /// Takes the lease: the item must not exist (`expected` None) or still be exactly
    /// `expected`. Returns the new fencing token (the old one + 1).
    async fn acquire(&self, me: &str, expected: Option<&LeaseRecord>) -> Result<u64, CoordError>;

    /// Renews our lease (owner `me`, `token`); refused once someone else holds it.
    /// Returns the new renewal count.
    async fn renew(&self, me: &str, token: u64) -> Result<u64, CoordError>;

    /// Publishes this instance's view.
    async fn publish(&self, me: &str, view: &PeerView) -> Result<(), CoordError>;

    /// Gives the lease up (owner `me`, `token`) at a clean shutdown, so a successor
    /// need not wait it out. The token stays: fencing tokens only ever grow.
    async fn release(&self, me: &str, token: u64) -> Result<(), CoordError>;
}
