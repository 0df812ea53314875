//! Reading fast-field columns a chunk of documents at a time.
//!
//! Batch passes read a dozen columns for a chunk of consecutive documents
//! (up to [`CHUNK`]) and keep some of them. tantivy's `first_vals` looks each
//! document up on its own, which for an optional column (one with values on
//! some documents only) is a rank query per document per column. When most
//! of a chunk is kept, a [`Chunk`] reads each column's rows for the whole
//! range instead: two rank queries, one sequential walk turning rows into
//! documents, one bulk read of the values, then the kept documents are
//! picked. When few are kept (a share of a large window), it looks them up
//! one by one as before. Either way the values are exactly `first_vals`'.

use std::ops::Range;

use tantivy::columnar::{Column, ColumnIndex, RowId};
use tantivy::{DocId, SegmentReader};

use super::StoreError;

/// Documents read per chunk.
pub(super) const CHUNK: u32 = 8192;

/// A range of documents and those of them a pass keeps, with the buffers
/// its column reads reuse.
#[derive(Debug, Default)]
pub(super) struct Chunk {
    range: Range<DocId>,
    /// The kept documents: ascending, inside `range`.
    pub(super) docs: Vec<DocId>,
    rows: Vec<RowId>,
    values: Vec<u64>,
    /// For each document of the range, where its value is in `values`
    /// ([`NO_VALUE`] if it has none).
    at: Vec<u32>,
    firsts: Vec<Option<u64>>,
}

/// A document without a value, in [`Chunk::at`].
const NO_VALUE: u32 = u32::MAX;

impl Chunk {
    /// Starts the chunk `range` with the documents `keep` accepts.
    pub(super) fn start(&mut self, range: Range<DocId>, keep: impl FnMut(&DocId) -> bool) {
        self.docs.clear();
        self.docs.extend(range.clone().filter(keep));
        self.range = range;
    }

    /// Whether reading the whole range beats looking the kept documents up.
    fn dense(&self) -> bool {
        self.docs.len() * 4 >= self.range.len()
    }

    /// The first value of `column` for each kept document, in order.
    pub(super) fn numbers(&mut self, column: Option<&Column<u64>>, out: &mut Vec<Option<u64>>) {
        self.map(column, None, Some, out);
    }

    /// `map` of the first value of `column` for each kept document, in
    /// order, or `none` where it has no value.
    pub(super) fn map<T: Clone>(
        &mut self,
        column: Option<&Column<u64>>,
        none: T,
        map: impl Fn(u64) -> T,
        out: &mut Vec<T>,
    ) {
        out.clear();
        let Some(column) = column else {
            out.resize(self.docs.len(), none);
            return;
        };
        let whole = self.docs.len() == self.range.len();
        match &column.index {
            ColumnIndex::Empty { .. } => out.resize(self.docs.len(), none),
            ColumnIndex::Full if whole => {
                self.values.clear();
                self.values.resize(self.range.len(), 0);
                column
                    .values
                    .get_range(u64::from(self.range.start), &mut self.values);
                out.extend(self.values.iter().map(|&v| map(v)));
            }
            index @ ColumnIndex::Optional(_) if self.dense() => {
                let rows = index.docid_range_to_rowids(self.range.clone());
                self.values.clear();
                self.values.resize(rows.len(), 0);
                column
                    .values
                    .get_range(u64::from(rows.start), &mut self.values);
                self.rows.clear();
                self.rows.extend(rows);
                // Rows become the documents they belong to.
                index.select_batch_in_place(self.range.start, &mut self.rows);
                self.at.clear();
                self.at.resize(self.range.len(), NO_VALUE);
                for (value, &doc) in self.rows.iter().enumerate() {
                    if let Some(at) = self.at.get_mut((doc - self.range.start) as usize) {
                        *at = value as u32;
                    }
                }
                let start = self.range.start;
                out.extend(
                    self.docs
                        .iter()
                        .map(|&doc| match self.at[(doc - start) as usize] {
                            NO_VALUE => none.clone(),
                            value => map(self.values[value as usize]),
                        }),
                );
            }
            _ => {
                self.firsts.clear();
                self.firsts.resize(self.docs.len(), None);
                column.first_vals(&self.docs, &mut self.firsts);
                out.extend((self.firsts.iter()).map(|v| v.map_or_else(|| none.clone(), &map)));
            }
        }
    }
}

/// A number fast field of a segment, if any document has it.
pub(super) fn numbers(
    segment: &SegmentReader,
    name: &str,
) -> Result<Option<Column<u64>>, StoreError> {
    Ok(segment.fast_fields().column_opt::<u64>(name)?)
}

/// A string fast field with its dictionary mapped once: to numbers in
/// [`Names`], to hops, or to message keys.
pub(super) struct Mapped<T> {
    pub(super) ords: Option<Column<u64>>,
    pub(super) values: Vec<T>,
}

impl<T: Clone> Mapped<T> {
    pub(super) fn open(
        segment: &SegmentReader,
        field: &str,
        mut map: impl FnMut(&[u8]) -> T,
    ) -> Result<Mapped<T>, StoreError> {
        let Some(column) = segment.fast_fields().str(field)? else {
            return Ok(Mapped {
                ords: None,
                values: Vec::new(),
            });
        };
        let mut values = Vec::with_capacity(column.num_terms());
        let mut stream = column.dictionary().stream()?;
        while stream.advance() {
            values.push(map(stream.key()));
        }
        Ok(Mapped {
            ords: Some(column.ords().clone()),
            values,
        })
    }

    /// A string fast field whose terms map to `values` (one per term, in
    /// dictionary order), without reading the dictionary.
    pub(super) fn known(
        segment: &SegmentReader,
        field: &str,
        values: Vec<T>,
    ) -> Result<Mapped<T>, StoreError> {
        Ok(Mapped {
            ords: segment.fast_fields().str(field)?.map(|c| c.ords().clone()),
            values,
        })
    }

    /// Every term of a string fast field mapped to `value`, without reading
    /// the dictionary.
    pub(super) fn constant(
        segment: &SegmentReader,
        field: &str,
        value: T,
    ) -> Result<Mapped<T>, StoreError> {
        Ok(match segment.fast_fields().str(field)? {
            Some(column) => Mapped {
                values: vec![value; column.num_terms()],
                ords: Some(column.ords().clone()),
            },
            None => Mapped {
                ords: None,
                values: Vec::new(),
            },
        })
    }

    /// Whether every document has a value and no value is `value`: then no
    /// document maps to it.
    pub(super) fn never(&self, value: &T) -> bool
    where
        T: PartialEq,
    {
        let every_doc = (self.ords.as_ref())
            .is_some_and(|c| matches!(c.index, tantivy::columnar::ColumnIndex::Full));
        every_doc && !self.values.contains(value)
    }

    /// The mapped first value of a document.
    pub(super) fn first(&self, doc: DocId) -> Option<T> {
        let ord = self.ords.as_ref()?.first(doc)?;
        self.values.get(ord as usize).cloned()
    }

    /// The mapped values of a document (a multi-valued field).
    pub(super) fn all(&self, doc: DocId) -> Vec<T> {
        let Some(ords) = &self.ords else {
            return Vec::new();
        };
        (ords.values_for_doc(doc))
            .filter_map(|ord| self.values.get(ord as usize).cloned())
            .collect()
    }

    /// The mapped first value of each of the chunk's documents, or `none`.
    pub(super) fn read(&self, chunk: &mut Chunk, none: T, out: &mut Vec<T>) {
        let value =
            |ord: u64| (self.values.get(ord as usize).cloned()).unwrap_or_else(|| none.clone());
        chunk.map(self.ords.as_ref(), none.clone(), value, out);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tantivy::schema::{FAST, SchemaBuilder};
    use tantivy::{Index, TantivyDocument};

    use super::*;

    /// A one-segment index's u64 fast field holding `values` (`None`: no
    /// value), with a second value on the first document that has one when
    /// `multi`.
    fn column(values: &[Option<u64>], multi: bool) -> Column<u64> {
        let mut schema = SchemaBuilder::new();
        let field = schema.add_u64_field("n", FAST);
        let index = Index::create_in_ram(schema.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        let mut second = multi;
        for value in values {
            let mut doc = TantivyDocument::new();
            if let Some(v) = value {
                doc.add_u64(field, *v);
                if std::mem::take(&mut second) {
                    doc.add_u64(field, v + 1);
                }
            }
            writer.add_document(doc).unwrap();
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let segment = &searcher.segment_readers()[0];
        segment.fast_fields().u64("n").unwrap()
    }

    /// Reads `range` keeping the documents `keep` accepts, both ways.
    fn both_ways(
        column: &Column<u64>,
        range: Range<DocId>,
        keep: impl FnMut(&DocId) -> bool,
    ) -> (Vec<Option<u64>>, Vec<Option<u64>>) {
        let mut chunk = Chunk::default();
        chunk.start(range, keep);
        let mut expected = vec![None; chunk.docs.len()];
        column.first_vals(&chunk.docs, &mut expected);
        let mut got = vec![Some(7)];
        chunk.numbers(Some(column), &mut got);
        (got, expected)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the column's shape (full, optional with sparse or dense
        /// blocks, multi-valued) and whichever documents a chunk keeps, the
        /// values are `first_vals`'.
        #[test]
        fn a_chunk_reads_what_first_vals_reads(
            n in 1usize..12_000,
            density in prop::sample::select(vec![0.0, 0.02, 0.5, 0.97, 1.0]),
            seed in any::<u64>(),
            multi in prop::bool::weighted(0.15),
            start in 0usize..12_000,
            len in 0usize..=CHUNK as usize,
            kept in prop::sample::select(vec![0.0, 0.1, 0.3, 0.9, 1.0]),
        ) {
            // A cheap deterministic stream of fractions from the seed.
            let mut state = seed | 1;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f64 / (1u64 << 53) as f64
            };
            let values: Vec<Option<u64>> = (0..n)
                .map(|i| (next() < density).then_some(i as u64 * 3))
                .collect();
            let keep: Vec<bool> = (0..n).map(|_| next() < kept).collect();
            let column = column(&values, multi);
            let start = start.min(n);
            let end = (start + len).min(n);
            let (got, expected) = both_ways(&column, start as u32..end as u32, |&d| keep[d as usize]);
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn chunks_across_optional_index_blocks_read_what_first_vals_reads() {
        // Blocks of 65,536 documents: one sparse, one dense, one empty.
        let values: Vec<Option<u64>> = (0..3 * 65_536u64)
            .map(|i| match i / 65_536 {
                0 => (i % 97 == 0).then_some(i),
                1 => (i % 7 != 0).then_some(i),
                _ => None,
            })
            .collect();
        let column = column(&values, false);
        for start in [0u32, 60_000, 65_000, 127_000, 130_000, 196_000] {
            let range = start..(start + CHUNK).min(values.len() as u32);
            for keep_every in [1, 2, 9] {
                let (got, expected) = both_ways(&column, range.clone(), |&d| d % keep_every == 0);
                assert_eq!(got, expected, "from {start}, every {keep_every}");
                assert!(got.iter().any(Option::is_some) || start >= 131_072);
            }
        }
    }

    #[test]
    fn a_missing_column_reads_as_no_values() {
        let mut chunk = Chunk::default();
        chunk.start(0..10, |&d| d % 2 == 0);
        let mut got = vec![Some(1)];
        chunk.numbers(None, &mut got);
        assert_eq!(got, vec![None; 5]);
    }
}
