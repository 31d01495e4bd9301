//! What a node has counted of its own open streams for the deployment's stream caps
//! (`streams`): each stream's fields, and the count per field. The Redis link writes it
//! anew into the node's hash now and then (`redis`), and while Redis does not answer the
//! node checks its caps against it alone.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// What this node has counted: its open streams by id, and the counts per field.
#[derive(Default)]
pub struct StreamMirror {
    inner: Mutex<Mirror>,
}

#[derive(Default)]
struct Mirror {
    streams: HashMap<u64, [String; 2]>,
    counts: HashMap<String, u64>,
}

impl StreamMirror {
    pub fn add(&self, id: u64, fields: [String; 2]) {
        let mut mirror = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        for field in &fields {
            *mirror.counts.entry(field.clone()).or_insert(0) += 1;
        }
        mirror.streams.insert(id, fields);
    }

    pub fn remove(&self, id: u64) -> Option<[String; 2]> {
        let mut mirror = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let fields = mirror.streams.remove(&id)?;
        for field in &fields {
            if let Some(count) = mirror.counts.get_mut(field) {
                *count -= 1;
                if *count == 0 {
                    mirror.counts.remove(field);
                }
            }
        }
        Some(fields)
    }

    pub fn count(&self, field: &str) -> u64 {
        let mirror = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        mirror.counts.get(field).copied().unwrap_or(0)
    }

    /// Every field and its count, to write as this node's hash.
    pub fn counts(&self) -> Vec<(String, u64)> {
        let mirror = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        mirror.counts.iter().map(|(f, c)| (f.clone(), *c)).collect()
    }
}
