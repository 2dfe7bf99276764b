//! Which row groups of a Parquet file may hold a given trace id, read from the `trace_id` bloom
//! filters one 32-byte block at a time.
//!
//! A lookup by trace id otherwise reads every row group's whole filter (tens of KB each: over
//! 49 M spans, 124 MB per lookup) to test one value. A split-block bloom filter (the Parquet
//! format's) answers a value from the single block its hash selects, so this reads that block
//! only: a `pread` of 32 bytes per row group and id. The filters' places in a file are read once
//! and kept per file (files never change once written).
//!
//! The test is the format's own: xxHash64 (seed 0) of the value's bytes; the upper 32 bits pick
//! the block, the lower 32 bits set one bit in each of the block's eight words. A row group
//! whose filter cannot be read this way is kept (scanned), never dropped.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datafusion::parquet::file::metadata::ParquetMetaDataReader;
use twox_hash::XxHash64;

/// The bloom filter block's word salts (Parquet format, BloomFilter.md).
const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];
const BLOCK_BYTES: u64 = 32;
/// Up to this many ids, each is tested with a read of its block; more (a page of search
/// results) read each row group's bitset once.
const BLOCK_READS_UP_TO: usize = 4;

/// Where one row group's filter bitset lies in its file.
#[derive(Debug, Clone, Copy)]
struct Bitset {
    offset: u64,
    blocks: u64,
}

/// A file's row groups: `None` where there is no usable filter (always scanned).
#[derive(Debug)]
struct FileFilters(Vec<Option<Bitset>>);

/// The filters' places per file, for one column.
#[derive(Debug)]
pub struct BloomProbe {
    column: &'static str,
    files: Mutex<HashMap<PathBuf, Arc<FileFilters>>>,
}

/// The row groups of one file that may hold one of the ids.
#[derive(Debug, PartialEq, Eq)]
pub struct Candidates {
    pub row_groups: usize,
    /// Ascending.
    pub scan: Vec<usize>,
}

impl BloomProbe {
    pub fn new(column: &'static str) -> Self {
        Self {
            column,
            files: Mutex::new(HashMap::new()),
        }
    }

    /// The row groups of `path` whose filter admits one of `ids`, or `None` when the file's
    /// layout cannot be read (the caller scans it whole).
    pub fn candidates(&self, path: &Path, ids: &[&[u8]]) -> Option<Candidates> {
        let filters = self.filters(path)?;
        let file = File::open(path).ok()?;
        let hashes: Vec<u64> = ids.iter().map(|id| XxHash64::oneshot(0, id)).collect();
        let scan = filters
            .0
            .iter()
            .enumerate()
            .filter(|(_, bitset)| match bitset {
                Some(bitset) if hashes.len() <= BLOCK_READS_UP_TO => {
                    hashes.iter().any(|h| may_hold(&file, bitset, *h))
                }
                Some(bitset) => any_held(&file, bitset, &hashes),
                None => true,
            })
            .map(|(i, _)| i)
            .collect();
        Some(Candidates {
            row_groups: filters.0.len(),
            scan,
        })
    }

    /// Forgets files that are no longer in `live` (merged or expired).
    pub fn retain(&self, live: &[&Path]) {
        if let Ok(mut files) = self.files.lock()
            && files.len() > live.len()
        {
            let live: std::collections::HashSet<&Path> = live.iter().copied().collect();
            files.retain(|p, _| live.contains(p.as_path()));
        }
    }

    fn filters(&self, path: &Path) -> Option<Arc<FileFilters>> {
        if let Some(known) = self.files.lock().ok()?.get(path) {
            return Some(Arc::clone(known));
        }
        let read = Arc::new(read_filters(path, self.column)?);
        self.files
            .lock()
            .ok()?
            .insert(path.to_path_buf(), Arc::clone(&read));
        Some(read)
    }
}

/// Whether the block `hash` selects has every bit of `hash` set. A read error admits the row
/// group.
fn may_hold(file: &File, bitset: &Bitset, hash: u64) -> bool {
    let mut bytes = [0u8; BLOCK_BYTES as usize];
    if file
        .read_exact_at(
            &mut bytes,
            bitset.offset + block_of(bitset, hash) * BLOCK_BYTES,
        )
        .is_err()
    {
        return true;
    }
    block_holds(&bytes, hash)
}

/// [`may_hold`] for many ids at once: one read of the whole bitset.
fn any_held(file: &File, bitset: &Bitset, hashes: &[u64]) -> bool {
    let mut bytes = vec![0u8; (bitset.blocks * BLOCK_BYTES) as usize];
    if file.read_exact_at(&mut bytes, bitset.offset).is_err() {
        return true;
    }
    hashes.iter().any(|h| {
        let start = (block_of(bitset, *h) * BLOCK_BYTES) as usize;
        block_holds(&bytes[start..start + BLOCK_BYTES as usize], *h)
    })
}

fn block_of(bitset: &Bitset, hash: u64) -> u64 {
    ((hash >> 32) * bitset.blocks) >> 32
}

fn block_holds(bytes: &[u8], hash: u64) -> bool {
    let key = hash as u32;
    SALT.iter().enumerate().all(|(i, salt)| {
        let word = u32::from_le_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ]);
        word & (1 << (key.wrapping_mul(*salt) >> 27)) != 0
    })
}

fn read_filters(path: &Path, column: &str) -> Option<FileFilters> {
    let file = File::open(path).ok()?;
    let metadata = ParquetMetaDataReader::new().parse_and_finish(&file).ok()?;
    let schema = metadata.file_metadata().schema_descr();
    let index = (0..schema.num_columns()).find(|i| schema.column(*i).path().string() == column)?;
    let filters = metadata
        .row_groups()
        .iter()
        .map(|rg| {
            let chunk = rg.column(index);
            let offset = u64::try_from(chunk.bloom_filter_offset()?).ok()?;
            let length = u64::try_from(chunk.bloom_filter_length()?).ok()?;
            bitset_of(&file, offset, length)
        })
        .collect();
    Some(FileFilters(filters))
}

/// A filter is a Thrift header then the bitset. The header's first field is the bitset's size
/// (`1: required i32 num_bytes`, compact protocol: field byte 0x15, zigzag varint), so the bitset
/// is the last `num_bytes` of the filter's `length` bytes.
fn bitset_of(file: &File, offset: u64, length: u64) -> Option<Bitset> {
    let mut header = [0u8; 6];
    file.read_exact_at(&mut header, offset).ok()?;
    if header[0] != 0x15 {
        return None;
    }
    let mut value: u64 = 0;
    for (i, byte) in header[1..].iter().enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let num_bytes = (value >> 1) ^ (value & 1).wrapping_neg();
            // (The format caps a bitset at 128 MiB.)
            let fits = (BLOCK_BYTES..=128 << 20).contains(&num_bytes)
                && num_bytes.is_multiple_of(BLOCK_BYTES)
                && num_bytes < length
                && length - num_bytes <= 64;
            return fits.then_some(Bitset {
                offset: offset + length - num_bytes,
                blocks: num_bytes / BLOCK_BYTES,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, BinaryArray, Int64Array, RecordBatch};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::file::properties::WriterProperties;
    use datafusion::parquet::schema::types::ColumnPath;

    /// Row group `g` holds ids `g * 1000 .. g * 1000 + 1000` (as 16 big-endian bytes).
    fn write(path: &Path, groups: u64, bloom: bool) {
        let ids: Vec<Vec<u8>> = (0..groups * 1000).map(id).collect();
        let batch = RecordBatch::try_from_iter([
            (
                "trace_id",
                Arc::new(BinaryArray::from_iter_values(ids.iter())) as ArrayRef,
            ),
            (
                "n",
                Arc::new(Int64Array::from_iter_values(0..groups as i64 * 1000)) as ArrayRef,
            ),
        ])
        .unwrap();
        let column = ColumnPath::from("trace_id");
        let mut props = WriterProperties::builder().set_max_row_group_row_count(Some(1000));
        if bloom {
            // (Setting a filter's size or rate turns the filter on.)
            props = props
                .set_column_bloom_filter_fpp(column.clone(), 0.01)
                .set_column_bloom_filter_max_ndv(column, 1000);
        }
        let props = props.build();
        let mut writer =
            ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    fn id(v: u64) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[8..].copy_from_slice(&v.to_be_bytes());
        b
    }

    #[test]
    fn every_stored_id_is_found_in_its_row_group_and_few_others_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        write(&path, 20, true);
        let probe = BloomProbe::new("trace_id");
        for v in (0..20_000).step_by(7) {
            let found = probe.candidates(&path, &[&id(v)]).unwrap();
            assert_eq!(found.row_groups, 20);
            assert!(found.scan.contains(&(v as usize / 1000)), "id {v}");
        }
        // Absent ids: the filters were asked for 1 % false positives per row group.
        let mut admitted = 0;
        for v in 100_000..102_000 {
            admitted += probe.candidates(&path, &[&id(v)]).unwrap().scan.len();
        }
        assert!(
            admitted < 2_000 * 20 / 25,
            "{admitted} of 40000 probes admitted"
        );
        // Two ids at once: the row groups of either; and many (the whole bitset read once).
        let both = probe.candidates(&path, &[&id(1_500), &id(17_000)]).unwrap();
        assert!(both.scan.contains(&1) && both.scan.contains(&17));
        assert!(both.scan.len() < 6, "{:?}", both.scan);
        let many: Vec<Vec<u8>> = [2_000, 2_001, 9_999, 12_345, 19_999, 150_000]
            .into_iter()
            .map(id)
            .collect();
        let many: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
        let found = probe.candidates(&path, &many).unwrap();
        for g in [2, 9, 12, 19] {
            assert!(found.scan.contains(&g), "{:?}", found.scan);
        }
        assert!(found.scan.len() < 8, "{:?}", found.scan);
    }

    #[test]
    fn a_file_without_filters_is_scanned_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        write(&path, 3, false);
        let probe = BloomProbe::new("trace_id");
        let found = probe.candidates(&path, &[&id(5)]).unwrap();
        assert_eq!(found.scan, vec![0, 1, 2]);
        assert_eq!(
            probe.candidates(&dir.path().join("gone.parquet"), &[&id(5)]),
            None
        );
    }
}
