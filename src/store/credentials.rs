//! Tenants, signing keys and API keys as opening a stream, a session or a publish reads
//! them, kept in memory for a short while: a stream then opens with one database read (the
//! log's position) instead of three, and a publish refused by its tenant's rate limit
//! costs no database read at all.
//!
//! Only what exists is kept — an unknown slug, `kid` or API key always goes to the
//! database — and a change made through the operator API drops the tenant's entries at
//! once: on this node directly, on the others through the broker's notice (see
//! `AppState::tenant_changed`). While a node cannot hear those notices (its Redis
//! subscription is down) it keeps nothing and reads the database each time, and it drops
//! everything when it hears them again, so a revoked key or an old origin list is never
//! taken from memory after the change. An entry lives `TTL` at most all the same, for a
//! change made outside the servers (the CLI). A read that raced with a change is not kept:
//! every change moves a generation counter, and a read only keeps its result if the
//! counter has not moved since it began.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Store, StoreError};
use crate::domain::keys::{SigningKey, hash_api_key};
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
    /// Live API keys' tenants, by the key's hash.
    api_keys: Kept<String, Tenant>,
    generation: AtomicU64,
    /// Whether every change reaches this node now (see the module's note).
    hearing: AtomicBool,
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
                api_keys: Mutex::default(),
                generation: AtomicU64::new(0),
                hearing: AtomicBool::new(true),
            }),
        }
    }

    /// The tenant with this slug.
    pub async fn tenant(&self, slug: &str) -> Result<Option<Tenant>, StoreError> {
        let inner = &self.inner;
        if let Some(tenant) = self.fresh(&inner.tenants, slug) {
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
        if let Some(signing_key) = self.fresh(&inner.keys, &key) {
            return Ok(Some(signing_key));
        }
        let generation = inner.generation.load(Ordering::Acquire);
        let signing_key = inner.store.signing_key(tenant_id, kid).await?.map(Arc::new);
        if let Some(signing_key) = &signing_key {
            self.keep(&inner.keys, key, signing_key.clone(), generation);
        }
        Ok(signing_key)
    }

    /// The tenant whose live API key this is.
    pub async fn api_key_tenant(&self, key: &str) -> Result<Option<Tenant>, StoreError> {
        let inner = &self.inner;
        let hash = hash_api_key(key);
        if let Some(tenant) = self.fresh(&inner.api_keys, &hash) {
            return Ok(Some(tenant));
        }
        let generation = inner.generation.load(Ordering::Acquire);
        let tenant = inner.store.api_key_tenant(&hash).await?;
        if let Some(tenant) = &tenant {
            self.keep(&inner.api_keys, hash, tenant.clone(), generation);
        }
        Ok(tenant)
    }

    /// Drops everything kept about the tenant: it changed, its keys did, or it is gone.
    pub fn forget_tenant(&self, tenant_id: i64) {
        let inner = &self.inner;
        inner.generation.fetch_add(1, Ordering::AcqRel);
        lock(&inner.tenants).retain(|_, entry| entry.value.id != tenant_id);
        lock(&inner.keys).retain(|(tenant, _), _| *tenant != tenant_id);
        lock(&inner.api_keys).retain(|_, entry| entry.value.id != tenant_id);
    }

    /// Whether this node hears every change now: a node that runs with others hears them
    /// only while it is subscribed to their notices. Hearing them again drops everything
    /// kept, since some may have been missed.
    pub fn hearing_changes(&self, hearing: bool) {
        let inner = &self.inner;
        inner.hearing.store(hearing, Ordering::Release);
        inner.generation.fetch_add(1, Ordering::AcqRel);
        lock(&inner.tenants).clear();
        lock(&inner.keys).clear();
        lock(&inner.api_keys).clear();
    }

    /// The entry under `key`, if changes are heard and it is younger than `TTL`.
    fn fresh<K, Q, V>(&self, map: &Kept<K, V>, key: &Q) -> Option<V>
    where
        K: Hash + Eq + std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        if !self.inner.hearing.load(Ordering::Acquire) {
            return None;
        }
        let map = lock(map);
        let entry = map.get(key)?;
        (entry.kept_at.elapsed() < TTL).then(|| entry.value.clone())
    }

    fn keep<K: Hash + Eq, V>(&self, map: &Kept<K, V>, key: K, value: V, generation: u64) {
        let mut map = lock(map);
        // Checked under the lock that `forget_tenant` takes after moving the counter.
        if self.inner.generation.load(Ordering::Acquire) != generation
            || !self.inner.hearing.load(Ordering::Acquire)
        {
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
