//! Tenants and signing keys as opening a stream or a session reads them, kept in memory for
//! a short while: a stream then opens with one database read (the log's position) instead
//! of three.
//!
//! Only what exists is kept — an unknown slug or `kid` always goes to the database — and a
//! change made through the operator API drops the tenant's entries at once: on this node
//! directly, on the others through the broker's notice (see `AppState::tenant_changed`).
//! An entry lives `TTL` at most, which bounds how long a node that missed a notice (its
//! Redis unreachable) can still take a revoked key or an old origin list for a new stream.
//! A read that raced with a change is not kept: every change moves a generation counter,
//! and a read only keeps its result if the counter has not moved since it began.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Store, StoreError};
use crate::domain::keys::SigningKey;
use crate::domain::tenant::Tenant;

/// The longest an entry is trusted without a change notice.
const TTL: Duration = Duration::from_secs(10);
/// Entries per kind; a full cache starts over.
const MAX_ENTRIES: usize = 10_000;

#[derive(Clone)]
pub struct Credentials {
    inner: Arc<Inner>,
}

/// What is kept of one kind, by its key.
type Kept<K, V> = Mutex<HashMap<K, Entry<V>>>;

struct Inner {
    store: Store,
    tenants: Kept<String, Tenant>,
    /// By tenant id and `kid`.
    keys: Kept<(i64, String), Arc<SigningKey>>,
    generation: AtomicU64,
}

struct Entry<T> {
    value: T,
    kept_at: Instant,
}

impl Credentials {
    pub fn new(store: Store) -> Credentials {
        Credentials {
            inner: Arc::new(Inner {
                store,
                tenants: Mutex::default(),
                keys: Mutex::default(),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// The tenant with this slug.
    pub async fn tenant(&self, slug: &str) -> Result<Option<Tenant>, StoreError> {
        let inner = &self.inner;
        if let Some(tenant) = fresh(&inner.tenants, slug) {
            return Ok(Some(tenant));
        }
        let generation = inner.generation.load(Ordering::Acquire);
        let tenant = inner.store.tenant(slug).await?;
        if let Some(tenant) = &tenant {
            self.keep(&inner.tenants, slug.to_owned(), tenant.clone(), generation);
        }
        Ok(tenant)
    }

    /// The tenant's live signing key `kid`.
    pub async fn signing_key(
        &self,
        tenant_id: i64,
        kid: &str,
    ) -> Result<Option<Arc<SigningKey>>, StoreError> {
        let inner = &self.inner;
        let key = (tenant_id, kid.to_owned());
        if let Some(signing_key) = fresh(&inner.keys, &key) {
            return Ok(Some(signing_key));
        }
        let generation = inner.generation.load(Ordering::Acquire);
        let signing_key = inner.store.signing_key(tenant_id, kid).await?.map(Arc::new);
        if let Some(signing_key) = &signing_key {
            self.keep(&inner.keys, key, signing_key.clone(), generation);
        }
        Ok(signing_key)
    }

    /// Drops everything kept about the tenant: it changed, its keys did, or it is gone.
    pub fn forget_tenant(&self, tenant_id: i64) {
        let inner = &self.inner;
        inner.generation.fetch_add(1, Ordering::AcqRel);
        lock(&inner.tenants).retain(|_, entry| entry.value.id != tenant_id);
        lock(&inner.keys).retain(|(tenant, _), _| *tenant != tenant_id);
    }

    fn keep<K: Hash + Eq, V>(&self, map: &Kept<K, V>, key: K, value: V, generation: u64) {
        let mut map = lock(map);
        // Checked under the lock that `forget_tenant` takes after moving the counter.
        if self.inner.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            key,
            Entry {
                value,
                kept_at: Instant::now(),
            },
        );
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The entry under `key`, if it is younger than `TTL`.
fn fresh<K, Q, V>(map: &Kept<K, V>, key: &Q) -> Option<V>
where
    K: Hash + Eq + std::borrow::Borrow<Q>,
    Q: Hash + Eq + ?Sized,
    V: Clone,
{
    let map = lock(map);
    let entry = map.get(key)?;
    (entry.kept_at.elapsed() < TTL).then(|| entry.value.clone())
}
