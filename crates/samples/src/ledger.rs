//! A service's own record of what it did: one line per order, appended and
//! synced. Ground truth that does not depend on tracing.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Ledger {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl Ledger {
    pub fn create(path: &Path) -> std::io::Result<Ledger> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Ledger {
            path: path.to_owned(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// The ledger file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records an order and syncs it.
    pub fn record(&self, order: &str) {
        let mut f = self.file.lock().expect("ledger lock");
        let _ = writeln!(f, "{order}");
        let _ = f.sync_data();
    }

    /// Every order recorded, from the file.
    pub fn orders(&self) -> BTreeSet<String> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}
