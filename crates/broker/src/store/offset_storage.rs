//! Consumer groups' committed offsets, per topic and queue.
//!
//! Kept in memory and persisted with an atomic, durable file replace
//! (`consumerOffset.json`). Persisting is periodic, as in RocketMQ, so a
//! broker that loses power may come back with offsets slightly behind:
//! messages are then delivered again (duplicates), never skipped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::backend::Backend;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct OffsetFile {
    /// `group` -> `topic@queue` -> next offset to consume.
    offsets: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Committed offsets of every consumer group.
#[derive(Debug)]
pub struct OffsetStorage {
    path: PathBuf,
    backend: Arc<dyn Backend>,
    table: OffsetFile,
    dirty: bool,
}

fn queue_key(topic: &str, queue_id: u32) -> String {
    format!("{topic}@{queue_id}")
}

impl OffsetStorage {
    pub fn open(backend: Arc<dyn Backend>, path: PathBuf) -> Result<OffsetStorage, StoreError> {
        let table = match backend.read(&path)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::BadFile {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            None => OffsetFile::default(),
        };
        Ok(OffsetStorage {
            path,
            backend,
            table,
            dirty: false,
        })
    }

    /// Records `next` as the group's next offset; never moves an offset backwards
    /// unless `allow_rewind` (an operator reset).
    pub fn commit(
        &mut self,
        group: &str,
        topic: &str,
        queue_id: u32,
        next: u64,
        allow_rewind: bool,
    ) {
        let slot = self
            .table
            .offsets
            .entry(group.to_owned())
            .or_default()
            .entry(queue_key(topic, queue_id))
            .or_insert(0);
        if next > *slot || allow_rewind {
            *slot = next;
            self.dirty = true;
        }
    }

    pub fn get(&self, group: &str, topic: &str, queue_id: u32) -> Option<u64> {
        self.table
            .offsets
            .get(group)?
            .get(&queue_key(topic, queue_id))
            .copied()
    }

    /// Every (group, topic, queue id, offset).
    pub fn all(&self) -> Vec<(String, String, u32, u64)> {
        let mut out = Vec::new();
        for (group, queues) in &self.table.offsets {
            for (key, offset) in queues {
                if let Some((topic, q)) = key.rsplit_once('@')
                    && let Ok(q) = q.parse()
                {
                    out.push((group.clone(), topic.to_owned(), q, *offset));
                }
            }
        }
        out
    }

    /// Writes the table if it changed since the last persist.
    pub fn persist(&mut self) -> Result<(), StoreError> {
        if self.dirty {
            let bytes = serde_json::to_vec_pretty(&self.table).expect("offsets serialize");
            self.backend.write_atomic(&self.path, &bytes)?;
            self.dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::backend::FileBackend;

    #[test]
    fn offsets_persist_and_never_go_backwards_by_accident() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("consumerOffset.json");
        let mut s = OffsetStorage::open(Arc::new(FileBackend), path.clone()).unwrap();
        s.commit("red-packet", "order_paid", 1, 10, false);
        s.commit("red-packet", "order_paid", 1, 7, false);
        assert_eq!(s.get("red-packet", "order_paid", 1), Some(10));
        s.persist().unwrap();
        let s = OffsetStorage::open(Arc::new(FileBackend), path).unwrap();
        assert_eq!(
            s.all(),
            vec![("red-packet".into(), "order_paid".into(), 1, 10)]
        );
    }
}
