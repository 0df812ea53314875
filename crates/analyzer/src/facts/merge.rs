//! Merging the segments' message states into one entry per message.
//!
//! Each segment folds its spans into states split by the top bits of their
//! keys ([`part_of`]); a message whose spans sit in several segments has a
//! state in each. Merging keeps every entry where its segment put it and
//! folds the later ones into the first, part by part in parallel.

use rayon::prelude::*;

use super::{MERGED, MessageKey, MessageState};

/// Parts a window's messages are merged in (by the top bits of their keys).
pub(super) const PARTS: usize = 64;

/// The part of a message: the top bits of its key.
pub(super) fn part_of(key: MessageKey) -> usize {
    (key >> (128 - PARTS.trailing_zeros())) as usize
}

/// The messages of every segment, already split by [`part_of`], merged by
/// key, parts in parallel. Most messages sit in one segment, so entries stay
/// where the segments put them: within a part, a message seen in an earlier
/// piece is merged into that entry and dropped ([`merge_part`]). Returns the
/// pieces, one entry per message across all of them.
pub(super) fn merge_by_key(
    segments: Vec<Vec<Vec<(MessageKey, MessageState)>>>,
) -> Vec<Vec<(MessageKey, MessageState)>> {
    let mut by_part: Vec<Vec<Vec<(MessageKey, MessageState)>>> = vec![Vec::new(); PARTS];
    for parts in segments {
        for (p, messages) in parts.into_iter().enumerate() {
            if !messages.is_empty() {
                by_part[p].push(messages);
            }
        }
    }
    by_part
        .par_iter_mut()
        .for_each_init(Vec::new, |table, pieces| merge_part(pieces, table));
    by_part.into_iter().flatten().collect()
}

/// The pieces of one part (in segment order), merged by key as
/// [`merge_by_key`] does.
pub(super) fn merge_pieces(
    mut pieces: Vec<Vec<(MessageKey, MessageState)>>,
) -> Vec<Vec<(MessageKey, MessageState)>> {
    merge_part(&mut pieces, &mut Vec::new());
    pieces
}

/// Merges the pieces of one part (each one entry per key) so that each key
/// has one entry, in the first piece that has it. `table` is scratch: an
/// open-addressing table sized to fit in cache (keys are uniform hashes, so
/// their low bits place them; an entry is 32 more bits of the key, to skip
/// most false matches, and where the entry is).
fn merge_part(pieces: &mut [Vec<(MessageKey, MessageState)>], table: &mut Vec<u64>) {
    if pieces.len() <= 1 {
        return;
    }
    let starts: Vec<usize> = pieces
        .iter()
        .scan(0, |at, p| {
            let start = *at;
            *at += p.len();
            Some(start)
        })
        .collect();
    let total = starts.last().copied().unwrap_or(0) + pieces.last().map_or(0, Vec::len);
    let size = (total * 2).next_power_of_two().max(16);
    table.clear();
    table.resize(size, 0);
    let mask = size - 1;
    let mut merged = false;
    for p in 0..pieces.len() {
        let (earlier, rest) = pieces.split_at_mut(p);
        let piece = &mut rest[0];
        for (position, (key, state)) in piece.iter_mut().enumerate() {
            let tag = (*key >> 64) as u32;
            let mut slot = (*key as usize) & mask;
            loop {
                let entry = table[slot];
                if entry == 0 {
                    // Where the entry is, plus one (0 is an empty slot).
                    let at = (starts[p] + position + 1) as u64;
                    table[slot] = u64::from(tag) << 32 | at;
                    break;
                }
                if (entry >> 32) as u32 == tag {
                    let at = (entry as u32 - 1) as usize;
                    // Pieces hold unique keys: a match is in an earlier piece.
                    let q = starts.partition_point(|&s| s <= at) - 1;
                    if let Some(seen) = earlier.get_mut(q).and_then(|e| e.get_mut(at - starts[q]))
                        && seen.0 == *key
                    {
                        seen.1.merge(state);
                        state.flags |= MERGED;
                        merged = true;
                        break;
                    }
                }
                slot = (slot + 1) & mask;
            }
        }
    }
    if merged {
        for piece in pieces {
            piece.retain(|(_, m)| m.flags & MERGED == 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(spans: u32, send: u64) -> MessageState {
        MessageState {
            spans,
            first_send: send,
            ..MessageState::default()
        }
    }

    proptest::proptest! {
        /// Pieces with keys in common (a message whose spans sit in several
        /// segments) merge into one entry per key, each the merge of all of
        /// its pieces' states in order, whatever the keys' bits; nothing else
        /// changes.
        #[test]
        fn merging_a_part_leaves_one_entry_per_key(
            pieces in proptest::collection::vec(
                proptest::collection::btree_map(0u32..400, (1u32..5, 0u64..1000), 0..120),
                0..6,
            ),
            spread in proptest::prelude::any::<u128>(),
        ) {
            // Keys share their low bits (one table slot) or differ only in
            // their tags, as well as being far apart.
            let key = |k: u32| match k % 3 {
                0 => u128::from(k) << 96 | (spread & 0xffff),
                1 => u128::from(k) << 64,
                _ => u128::from(k).wrapping_mul(spread | 1),
            };
            let mut expected: std::collections::BTreeMap<MessageKey, MessageState> = Default::default();
            let mut input = Vec::new();
            for piece in &pieces {
                let mut entries = Vec::new();
                for (&k, &(spans, send)) in piece {
                    let s = state(spans, send);
                    entries.push((key(k), s));
                    expected.entry(key(k)).and_modify(|m| m.merge(&s)).or_insert(s);
                }
                input.push(entries);
            }
            let mut table = vec![7; 3];
            merge_part(&mut input, &mut table);
            let got: Vec<(MessageKey, MessageState)> = input.into_iter().flatten().collect();
            let mut sorted = got.clone();
            sorted.sort_by_key(|(k, _)| *k);
            proptest::prop_assert_eq!(sorted, expected.into_iter().collect::<Vec<_>>());
        }
    }
}
