//! The broker epoch: a number that grows at every start of a store, so spans
//! from before and after a restart (or a failover) are never confused.

use std::path::Path;

use super::StoreError;
use super::backend::Backend;

/// Reads the last epoch (0 when there is none), writes and syncs the next, and returns it.
pub fn advance(backend: &dyn Backend, path: &Path, at_least: u64) -> Result<u64, StoreError> {
    let last = match backend.read(path)? {
        Some(bytes) => String::from_utf8_lossy(&bytes)
            .trim()
            .parse::<u64>()
            .map_err(|e| StoreError::BadFile {
                path: path.to_owned(),
                reason: e.to_string(),
            })?,
        None => 0,
    };
    let next = last.max(at_least) + 1;
    backend.write_atomic(path, next.to_string().as_bytes())?;
    Ok(next)
}
