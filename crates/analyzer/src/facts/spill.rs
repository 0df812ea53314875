//! Message facts kept in a temporary file by share, so that one pass over a
//! window's fast fields serves every share (a Grace-style partitioned
//! aggregation: partition while reading, then merge one partition at a
//! time).
//!
//! - **Layout.** One anonymous temporary file (removed by the system when
//!   closed, even after a crash), appended to by the segments' folds as each
//!   segment ends. A write is a run of *pieces*: the entries of one segment,
//!   one [`part_of`](super::merge::part_of) part and one share, each
//!   [`ENTRY`] bytes, little-endian. Where each piece is stays in memory
//!   ([`Piece`]), not in the file.
//! - **Invariants.** A segment's piece holds each message key once. Reading
//!   a share gives its pieces by part, each part's pieces in segment order,
//!   so that merging them ([`merge_by_key`](super::merge::merge_by_key))
//!   gives the same states as merging the segments in memory would.
//! - **Lifecycle.** Created before the pass, written during it, read share
//!   by share after it, dropped (and with it the file) with the window's
//!   facts. A failed write is kept and reported once the pass is over.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use lasthop_collector::MessageKey;

use super::MessageState;
use super::merge::PARTS;

/// Bytes of one entry in the file: the key, then the state's fields.
const ENTRY: usize = 16 + 8 * 5 + 4 * 3 + 2;

/// Where one piece is in the file.
#[derive(Debug, Clone, Copy)]
struct Piece {
    share: u32,
    part: u16,
    /// The segment's position in the pass (pieces merge in this order).
    segment: u32,
    at: u64,
    entries: u32,
}

#[derive(Debug)]
struct SpillFile {
    file: File,
    end: u64,
    /// Each share's pieces, so that reading a share looks only at its own.
    pieces: Vec<Vec<Piece>>,
    /// The first write that failed.
    failed: Option<io::Error>,
}

/// The message entries of a window's segments, by share, in a temporary file.
#[derive(Debug)]
pub(super) struct Spill {
    of: u32,
    inner: Mutex<SpillFile>,
}

impl Spill {
    /// An empty spill for `of` shares, in directory `dir`.
    pub(super) fn new(of: u32, dir: &Path) -> io::Result<Spill> {
        Ok(Spill {
            of,
            inner: Mutex::new(SpillFile {
                file: tempfile::tempfile_in(dir)?,
                end: 0,
                pieces: vec![Vec::new(); of.max(1) as usize],
                failed: None,
            }),
        })
    }

    /// Appends the entries of one segment (`parts` split by
    /// [`part_of`](super::merge::part_of)), split by share, a part at a
    /// time (each part's entries are freed once written).
    pub(super) fn write(&self, segment: u32, parts: &mut [Vec<(MessageKey, MessageState)>]) {
        let of = self.of.max(1);
        let mut by_share: Vec<Vec<u8>> = vec![Vec::new(); of as usize];
        let mut bytes = Vec::new();
        for (part, entries) in parts.iter_mut().enumerate() {
            for (key, state) in std::mem::take(entries) {
                encode(key, &state, &mut by_share[share_of(key, of) as usize]);
            }
            let mut pieces = Vec::new();
            bytes.clear();
            for (share, piece) in by_share.iter_mut().enumerate() {
                if !piece.is_empty() {
                    pieces.push(Piece {
                        share: share as u32,
                        part: part as u16,
                        segment,
                        at: bytes.len() as u64,
                        entries: (piece.len() / ENTRY) as u32,
                    });
                    bytes.append(piece);
                }
            }
            if !self.append(&bytes, pieces) {
                return;
            }
        }
    }

    /// Appends `bytes`, which hold `pieces` (placed from 0); false once a
    /// write has failed.
    fn append(&self, bytes: &[u8], pieces: Vec<Piece>) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.failed.is_some() {
            return false;
        }
        if bytes.is_empty() {
            return true;
        }
        if let Err(e) = inner.file.write_all(bytes) {
            inner.failed = Some(e);
            return false;
        }
        let base = inner.end;
        inner.end += bytes.len() as u64;
        for piece in pieces {
            inner.pieces[piece.share as usize].push(Piece {
                at: base + piece.at,
                ..piece
            });
        }
        true
    }

    /// The first write that failed, if any (once).
    pub(super) fn failure(&self) -> Option<io::Error> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.failed.take()
    }

    /// The entries of share `index`, by part, each part given to `merge`
    /// as it is read (parts in parallel).
    pub(super) fn read<T: Send>(
        &self,
        index: u32,
        merge: impl Fn(Vec<Vec<(MessageKey, MessageState)>>) -> T + Sync,
    ) -> io::Result<Vec<T>> {
        use rayon::prelude::*;
        use std::os::unix::fs::FileExt;
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut by_part: Vec<Vec<Piece>> = vec![Vec::new(); PARTS];
        for piece in inner.pieces.get(index as usize).into_iter().flatten() {
            by_part[usize::from(piece.part)].push(*piece);
        }
        let file = &inner.file;
        by_part
            .into_par_iter()
            .map(|mut pieces| {
                pieces.sort_by_key(|p| p.segment);
                let mut bytes = Vec::new();
                let mut part = Vec::with_capacity(pieces.len());
                for piece in pieces {
                    bytes.resize(piece.entries as usize * ENTRY, 0);
                    file.read_exact_at(&mut bytes, piece.at)?;
                    part.push(bytes.chunks_exact(ENTRY).map(decode).collect());
                }
                Ok(merge(part))
            })
            .collect()
    }
}

/// The share of the spill a key is in: any split by key serves, so the
/// cheapest (a multiply, not a division) of bits [`part_of`](super::merge::part_of)
/// does not use alone.
fn share_of(key: MessageKey, of: u32) -> u32 {
    ((u128::from((key >> 58) as u64) * u128::from(of)) >> 64) as u32
}

/// Every field of the state is written: a field added to
/// [`MessageState`] must be added here and in [`decode`] (the round-trip
/// test compares whole states).
fn encode(key: MessageKey, m: &MessageState, out: &mut Vec<u8>) {
    let mut e = [0u8; ENTRY];
    e[..16].copy_from_slice(&key.to_le_bytes());
    for (at, n) in [16, 24, 32, 40, 48].into_iter().zip([
        m.first_send,
        m.store_end,
        m.ok,
        m.processed,
        m.queue,
    ]) {
        e[at..at + 8].copy_from_slice(&n.to_le_bytes());
    }
    for (at, n) in [56, 60, 64]
        .into_iter()
        .zip([m.topic, m.placement, m.spans])
    {
        e[at..at + 4].copy_from_slice(&n.to_le_bytes());
    }
    (e[68], e[69]) = (m.stores, m.flags);
    out.extend_from_slice(&e);
}

fn decode(b: &[u8]) -> (MessageKey, MessageState) {
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    let key = u128::from_le_bytes(b[..16].try_into().expect("16 bytes"));
    let state = MessageState {
        first_send: u64_at(16),
        store_end: u64_at(24),
        ok: u64_at(32),
        processed: u64_at(40),
        queue: u64_at(48),
        topic: u32_at(56),
        placement: u32_at(60),
        spans: u32_at(64),
        stores: b[68],
        flags: b[69],
    };
    (key, state)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Whatever segments write, in whatever order, reading every share
        /// gives back each entry once, in its share, its part, and its
        /// segment's order.
        #[test]
        fn every_entry_comes_back_in_its_share_part_and_segment_order(
            segments in proptest::collection::vec(
                proptest::collection::vec((proptest::prelude::any::<u128>(), 0u64..9, 0u8..255), 0..40),
                0..5,
            ),
            of in 1u32..5,
        ) {
            let spill = Spill::new(of, &std::env::temp_dir()).unwrap();
            // Every field different, so that a field written or read at
            // the wrong place shows.
            let state = |n: u64, flags: u8| MessageState {
                first_send: n,
                store_end: n << 8 | 1,
                ok: n << 16 | 2,
                processed: n << 24 | 3,
                queue: n << 32 | 8,
                topic: n as u32 + 4,
                placement: n as u32 + 5,
                spans: n as u32 + 6,
                stores: n as u8 + 7,
                flags,
            };
            // Segments end in any order: here the last first.
            for (segment, entries) in segments.iter().enumerate().rev() {
                let mut parts = vec![Vec::new(); PARTS];
                for &(key, n, flags) in entries {
                    parts[super::super::merge::part_of(key)].push((key, state(n, flags)));
                }
                spill.write(segment as u32, &mut parts);
            }
            proptest::prop_assert!(spill.failure().is_none());
            let mut seen = 0;
            for index in 0..of {
                for (part, pieces) in spill.read(index, |pieces| pieces).unwrap().into_iter().enumerate() {
                    let mut expected = Vec::new();
                    for entries in &segments {
                        let piece: Vec<_> = entries
                            .iter()
                            .filter(|(k, ..)| super::super::merge::part_of(*k) == part && share_of(*k, of) == index)
                            .map(|&(k, n, flags)| (k, state(n, flags)))
                            .collect();
                        if !piece.is_empty() {
                            expected.push(piece);
                        }
                    }
                    seen += pieces.iter().map(Vec::len).sum::<usize>();
                    proptest::prop_assert_eq!(pieces, expected);
                }
            }
            proptest::prop_assert_eq!(seen, segments.iter().map(Vec::len).sum::<usize>());
        }
    }
}
