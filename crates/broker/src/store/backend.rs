//! All disk I/O of the broker's store goes through [`Backend`].
//!
//! ## Contract
//! - [`StoreFile::append`] makes the bytes visible to [`StoreFile::read_at`]
//!   at once (as the page cache does) but not durable.
//! - [`StoreFile::sync`] makes every byte appended so far durable. After a
//!   power loss a file holds at least what was synced, and maybe more.
//! - [`Backend::write_atomic`] replaces a small file durably: after a crash the
//!   old or the new content is there, never a mix.
//!
//! [`FileBackend`] writes real files and `fdatasync`s them. [`PowerLossBackend`]
//! writes real files too, but keeps every unsynced byte in process memory
//! only, so that `kill -9` loses the unsynced tail exactly as a power cut loses
//! the page cache (a killed process alone would not: the kernel keeps it).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A file of the store: appended in order, read anywhere.
pub trait StoreFile: Send + Sync + std::fmt::Debug {
    /// Bytes appended so far, synced or not.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Reads up to `buf.len()` bytes at `offset`; fewer at the end of the file.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Makes everything appended durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes, durably.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// Opens files and manages directories for the store.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Opens `path` for appending and reading, creating it if missing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn StoreFile>>;
    /// Files directly in `dir`, sorted by name; empty if `dir` does not exist.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Replaces `path` with `data`, atomically and durably.
    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// The whole content of a small file, `None` if it does not exist.
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>>;
}

/// Real files, real `fdatasync`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileBackend;

/// Real files whose unsynced tail lives only in this process's memory.
#[derive(Debug, Default, Clone, Copy)]
pub struct PowerLossBackend;

fn open_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
}

fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

impl FileBackend {
    fn list_dir(dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        match fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry?;
                    if entry.file_type()?.is_file() {
                        out.push(entry.path());
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        out.sort();
        Ok(out)
    }
}

macro_rules! common_backend_ops {
    () => {
        fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
            FileBackend::list_dir(dir)
        }
        fn remove(&self, path: &Path) -> io::Result<()> {
            fs::remove_file(path)?;
            sync_parent(path)
        }
        fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
            fs::create_dir_all(dir)
        }
        fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
            let tmp = path.with_extension("tmp");
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            sync_parent(path)
        }
        fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
            match fs::read(path) {
                Ok(data) => Ok(Some(data)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        }
    };
}

impl Backend for FileBackend {
    fn open(&self, path: &Path) -> io::Result<Box<dyn StoreFile>> {
        let file = open_file(path)?;
        let len = file.metadata()?.len();
        Ok(Box::new(RealFile { file, len }))
    }
    common_backend_ops!();
}

impl Backend for PowerLossBackend {
    fn open(&self, path: &Path) -> io::Result<Box<dyn StoreFile>> {
        let file = open_file(path)?;
        let durable = file.metadata()?.len();
        Ok(Box::new(VolatileTailFile {
            file,
            durable,
            tail: Vec::new(),
        }))
    }
    common_backend_ops!();
}

#[derive(Debug)]
struct RealFile {
    file: File,
    len: u64,
}

impl StoreFile for RealFile {
    fn len(&self) -> u64 {
        self.len
    }
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.len += data.len() as u64;
        Ok(())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        read_fully_at(&self.file, offset, buf, self.len)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_all()?;
        self.len = len;
        Ok(())
    }
}

/// Synced bytes in the file; the rest only in `tail`.
#[derive(Debug)]
struct VolatileTailFile {
    file: File,
    durable: u64,
    tail: Vec<u8>,
}

impl StoreFile for VolatileTailFile {
    fn len(&self) -> u64 {
        self.durable + self.tail.len() as u64
    }
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.tail.extend_from_slice(data);
        Ok(())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0;
        if offset < self.durable {
            done = read_fully_at(&self.file, offset, buf, self.durable)?;
        }
        let at = offset + done as u64;
        if done < buf.len() && at >= self.durable {
            let from = (at - self.durable) as usize;
            if from < self.tail.len() {
                let n = (buf.len() - done).min(self.tail.len() - from);
                buf[done..done + n].copy_from_slice(&self.tail[from..from + n]);
                done += n;
            }
        }
        Ok(done)
    }
    fn sync(&mut self) -> io::Result<()> {
        if !self.tail.is_empty() {
            self.file.write_all(&self.tail)?;
            self.file.sync_data()?;
            self.durable += self.tail.len() as u64;
            self.tail.clear();
        }
        Ok(())
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        if len >= self.durable {
            self.tail.truncate((len - self.durable) as usize);
        } else {
            self.tail.clear();
            self.file.set_len(len)?;
            self.file.sync_all()?;
            self.durable = len;
        }
        Ok(())
    }
}

/// `pread` until `buf` is full or `limit` is reached.
fn read_fully_at(file: &File, offset: u64, buf: &mut [u8], limit: u64) -> io::Result<usize> {
    let want = (limit.saturating_sub(offset) as usize).min(buf.len());
    let mut done = 0;
    while done < want {
        match file.read_at(&mut buf[done..want], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(backend: &dyn Backend, path: &Path) -> Vec<u8> {
        let mut f = backend.open(path).unwrap();
        f.append(b"synced|").unwrap();
        f.sync().unwrap();
        f.append(b"volatile").unwrap();
        let mut buf = vec![0; 15];
        assert_eq!(f.read_at(0, &mut buf).unwrap(), 15);
        assert_eq!(
            &buf, b"synced|volatile",
            "unsynced bytes are readable at once"
        );
        let mut buf = vec![0; 10];
        assert_eq!(
            f.read_at(4, &mut buf).unwrap(),
            10,
            "a read across the synced boundary"
        );
        assert_eq!(&buf, b"ed|volatil");
        drop(f); // the process dies without syncing again
        fs::read(path).unwrap()
    }

    #[test]
    fn file_backend_keeps_what_the_kernel_was_given() {
        let dir = tempfile::tempdir().unwrap();
        let on_disk = exercise(&FileBackend, &dir.path().join("a"));
        assert_eq!(on_disk, b"synced|volatile");
    }

    #[test]
    fn power_loss_backend_loses_the_unsynced_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        assert_eq!(exercise(&PowerLossBackend, &path), b"synced|");
        let f = PowerLossBackend.open(&path).unwrap();
        assert_eq!(f.len(), 7);
    }

    #[test]
    fn truncate_below_and_above_the_synced_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = PowerLossBackend.open(&dir.path().join("a")).unwrap();
        f.append(b"0123456789").unwrap();
        f.sync().unwrap();
        f.append(b"abc").unwrap();
        f.truncate(11).unwrap();
        assert_eq!(f.len(), 11);
        f.truncate(4).unwrap();
        assert_eq!(f.len(), 4);
        let mut buf = vec![0; 8];
        assert_eq!(f.read_at(0, &mut buf).unwrap(), 4);
    }

    #[test]
    fn write_atomic_replaces_and_read_tells_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offsets.json");
        assert_eq!(FileBackend.read(&path).unwrap(), None);
        FileBackend.write_atomic(&path, b"one").unwrap();
        FileBackend.write_atomic(&path, b"two").unwrap();
        assert_eq!(
            FileBackend.read(&path).unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(FileBackend.list(dir.path()).unwrap(), vec![path]);
    }
}
