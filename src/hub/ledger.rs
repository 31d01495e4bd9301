//! The contract for counting a tenant's streams beyond this node: with several nodes a
//! tenant's stream caps are the deployment's, so a stream takes its place in a count all
//! nodes share before it opens (`limits::streams` keeps it in Redis). A single node needs
//! none: its own slots are the whole count.

use std::future::Future;
use std::pin::Pin;

use super::{HubError, StreamCaps};

pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait StreamLedger: Send + Sync {
    /// Counts stream `id` of `user` of `tenant_id`, unless the tenant or the user holds as
    /// many streams as `caps` allow across the deployment.
    fn reserve<'a>(
        &'a self,
        id: u64,
        tenant_id: i64,
        user: &'a str,
        caps: StreamCaps,
    ) -> Pending<'a, Result<(), HubError>>;

    /// Stream `id` has ended.
    fn release(&self, id: u64);

    /// The tenant's open streams across the deployment, where they can be counted now.
    fn open_streams(&self, tenant_id: i64) -> Pending<'_, Option<u64>>;

    /// The open streams of each of `users` on the other live nodes (this node's own are
    /// the caller's to add), where they can be counted now.
    fn user_streams_elsewhere<'a>(
        &'a self,
        tenant_id: i64,
        users: &'a [String],
    ) -> Pending<'a, Option<Vec<u64>>>;
}
