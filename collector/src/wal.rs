//! The write-ahead log: every accepted request is appended here, and fsynced, before it is
//! acknowledged. Records are replayed on start until a committed Parquet flush covers them.
//!
//! # Files
//! `wal/<first seq, 20 digits>.wal` segments, each starting with the 8-byte magic `LSWAL001`,
//! then records:
//!
//! ```text
//! u32 LE  payload length
//! u32 LE  CRC-32C of (seq, signal, payload)
//! u64 LE  sequence number (strictly increasing across segments)
//! u8      signal (1 = traces, 2 = logs, 3 = metrics)
//! [len]   payload: the accepted part of the request as OTLP protobuf
//! ```
//!
//! `wal/checkpoint` holds the highest sequence number whose data is in committed Parquet files;
//! segments wholly at or below it are deleted.
//!
//! # Durability
//! A batch of concurrent appends is written, then `fdatasync`ed once (group commit), and only then
//! are the callers told it is durable. A torn record at the end of a segment (a crash mid-write)
//! fails its length or CRC check and ends the replay of that segment; it was never acknowledged.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"LSWAL001";
const HEADER_LEN: usize = 4 + 4 + 8 + 1;
/// Records longer than this are treated as corruption when replaying.
const MAX_RECORD: usize = 1 << 30;

/// Which OTLP signal a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Signal {
    Traces = 1,
    Logs = 2,
    Metrics = 3,
}

impl Signal {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Signal::Traces),
            2 => Some(Signal::Logs),
            3 => Some(Signal::Metrics),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("write-ahead log checkpoint {path} is not a number: {text:?}")]
    BadCheckpoint { path: PathBuf, text: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One record read back from the log.
#[derive(Debug)]
pub struct Record {
    pub seq: u64,
    pub signal: Signal,
    pub payload: Vec<u8>,
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.wal")
}

fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint")
}

/// The highest sequence number already in committed Parquet files (0 when none).
pub fn read_checkpoint(dir: &Path) -> Result<u64, WalError> {
    let path = checkpoint_path(dir);
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| WalError::BadCheckpoint {
            path: path.clone(),
            text,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// Writes `seq` as the checkpoint, atomically (temp file, fsync, rename, fsync directory).
fn write_checkpoint(dir: &Path, seq: u64) -> Result<(), WalError> {
    let path = checkpoint_path(dir);
    let tmp = dir.join("checkpoint.tmp");
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(format!("{seq}\n").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)
}

/// Makes a rename or create in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Segment files in sequence order, with their first sequence number.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

fn crc(seq: u64, signal: u8, payload: &[u8]) -> u32 {
    let c = crc32c::crc32c(&seq.to_le_bytes());
    let c = crc32c::crc32c_append(c, &[signal]);
    crc32c::crc32c_append(c, payload)
}

/// Reads every intact record of one segment; stops at the first torn or corrupt one.
fn read_segment(path: &Path, mut each: impl FnMut(Record)) -> Result<(), WalError> {
    let file = File::open(path).map_err(io_err(path))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    if r.read_exact(&mut magic).is_err() || &magic != MAGIC {
        tracing::warn!(path = %path.display(), "write-ahead log segment without a valid header; skipped");
        return Ok(());
    }
    let mut header = [0u8; HEADER_LEN];
    loop {
        match r.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(io_err(path)(e)),
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let want_crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let mut seq_bytes = [0u8; 8];
        seq_bytes.copy_from_slice(&header[8..16]);
        let seq = u64::from_le_bytes(seq_bytes);
        let signal_byte = header[16];
        if len > MAX_RECORD {
            tracing::warn!(path = %path.display(), seq, "write-ahead log record too long; rest of segment skipped");
            return Ok(());
        }
        let mut payload = vec![0u8; len];
        if r.read_exact(&mut payload).is_err() || crc(seq, signal_byte, &payload) != want_crc {
            tracing::warn!(path = %path.display(), seq, "torn write-ahead log record at the end of a segment; ignored (it was never acknowledged)");
            return Ok(());
        }
        match Signal::from_byte(signal_byte) {
            Some(signal) => each(Record {
                seq,
                signal,
                payload,
            }),
            None => {
                tracing::warn!(path = %path.display(), seq, signal_byte, "record of an unknown signal; skipped")
            }
        }
    }
}

/// Reads every intact record with a sequence number above the checkpoint, in order. Returns the
/// highest sequence number seen (or the checkpoint when the log is empty).
pub fn replay(dir: &Path, mut each: impl FnMut(Record)) -> Result<u64, WalError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let checkpoint = read_checkpoint(dir)?;
    let mut last = checkpoint;
    for (_, path) in segments(dir)? {
        read_segment(&path, |record| {
            if record.seq > last {
                last = record.seq;
                each(record);
            }
        })?;
    }
    Ok(last)
}

/// The appending side of the log. Owned by one thread (see [`crate::ingest`]).
pub struct WalWriter {
    dir: PathBuf,
    segment_bytes: u64,
    active: Option<Segment>,
    next_seq: u64,
}

struct Segment {
    first_seq: u64,
    last_seq: Option<u64>,
    path: PathBuf,
    out: BufWriter<File>,
    bytes: u64,
}

impl WalWriter {
    /// Opens the log for appending after `last_seq` (as returned by [`replay`]). Appends always go
    /// to a new segment, so a torn tail of an old one is never followed by good records.
    pub fn open(dir: &Path, last_seq: u64, segment_bytes: u64) -> Result<Self, WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        Ok(Self {
            dir: dir.to_owned(),
            segment_bytes,
            active: None,
            next_seq: last_seq + 1,
        })
    }

    fn segment(&mut self) -> Result<&mut Segment, WalError> {
        if self.active.is_none() {
            let path = self.dir.join(segment_name(self.next_seq));
            let file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            out.write_all(MAGIC).map_err(io_err(&path))?;
            sync_dir(&self.dir)?;
            self.active = Some(Segment {
                first_seq: self.next_seq,
                last_seq: None,
                path,
                out,
                bytes: MAGIC.len() as u64,
            });
        }
        // Just set above when it was empty.
        self.active.as_mut().ok_or_else(|| WalError::Io {
            path: self.dir.clone(),
            source: io::Error::other("no active segment"),
        })
    }

    /// Buffers one record and returns its sequence number. Not durable until [`Self::sync`].
    pub fn append(&mut self, signal: Signal, payload: &[u8]) -> Result<u64, WalError> {
        let seq = self.next_seq;
        let len = u32::try_from(payload.len()).map_err(|_| WalError::Io {
            path: self.dir.clone(),
            source: io::Error::other("record larger than 4 GiB"),
        })?;
        let segment = self.segment()?;
        let mut header = [0u8; HEADER_LEN];
        header[0..4].copy_from_slice(&len.to_le_bytes());
        header[4..8].copy_from_slice(&crc(seq, signal as u8, payload).to_le_bytes());
        header[8..16].copy_from_slice(&seq.to_le_bytes());
        header[16] = signal as u8;
        let path = segment.path.clone();
        let result = segment
            .out
            .write_all(&header)
            .and_then(|_| segment.out.write_all(payload));
        if let Err(e) = result {
            // The segment may now end in a partial record: never append after it.
            self.active = None;
            return Err(io_err(&path)(e));
        }
        segment.bytes += (HEADER_LEN + payload.len()) as u64;
        segment.last_seq = Some(seq);
        self.next_seq += 1;
        Ok(seq)
    }

    /// Flushes and fdatasyncs everything appended so far.
    pub fn sync(&mut self) -> Result<(), WalError> {
        let Some(segment) = self.active.as_mut() else {
            return Ok(());
        };
        let result = segment
            .out
            .flush()
            .and_then(|_| segment.out.get_ref().sync_data());
        if let Err(e) = result {
            let path = segment.path.clone();
            self.active = None;
            return Err(io_err(&path)(e));
        }
        if segment.bytes >= self.segment_bytes {
            self.active = None;
        }
        Ok(())
    }

    /// Records that everything up to `seq` is in committed Parquet files, and deletes the segments
    /// that only hold such records.
    pub fn checkpoint(&mut self, seq: u64) -> Result<(), WalError> {
        write_checkpoint(&self.dir, seq)?;
        if let Some(active) = &self.active
            && active.last_seq.is_some_and(|last| last <= seq)
        {
            self.active = None;
        }
        let all = segments(&self.dir)?;
        let active_first = self.active.as_ref().map(|s| s.first_seq);
        for (i, (first, path)) in all.iter().enumerate() {
            if Some(*first) == active_first {
                continue;
            }
            // A segment holds [first, next segment's first); with no next one, up to next_seq.
            let end = all.get(i + 1).map_or(self.next_seq, |(next, _)| *next);
            if end <= seq + 1 {
                fs::remove_file(path).map_err(io_err(path))?;
                tracing::debug!(path = %path.display(), "write-ahead log segment removed after flush");
            }
        }
        Ok(())
    }

    /// Bytes of all segment files on disk.
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.dir)
    }
}

/// Bytes of all segment files of the log in `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    segments(dir)
        .map(|all| {
            all.iter()
                .filter_map(|(_, p)| fs::metadata(p).ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(dir: &Path) -> (u64, Vec<(u64, Vec<u8>)>) {
        let mut got = Vec::new();
        let last = replay(dir, |r| got.push((r.seq, r.payload))).unwrap();
        (last, got)
    }

    #[test]
    fn appended_records_replay_in_order_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::open(dir.path(), 0, 1 << 20).unwrap();
        assert_eq!(w.append(Signal::Traces, b"one").unwrap(), 1);
        assert_eq!(w.append(Signal::Traces, b"two").unwrap(), 2);
        w.sync().unwrap();
        drop(w);
        let (last, got) = collect(dir.path());
        assert_eq!(last, 2);
        assert_eq!(got, vec![(1, b"one".to_vec()), (2, b"two".to_vec())]);

        // Appending after a reopen continues the sequence in a new segment.
        let mut w = WalWriter::open(dir.path(), last, 1 << 20).unwrap();
        assert_eq!(w.append(Signal::Traces, b"three").unwrap(), 3);
        w.sync().unwrap();
        assert_eq!(collect(dir.path()).1.len(), 3);
    }

    #[test]
    fn a_torn_tail_is_ignored_and_earlier_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::open(dir.path(), 0, 1 << 20).unwrap();
        w.append(Signal::Traces, b"kept").unwrap();
        w.append(Signal::Traces, b"torn record payload").unwrap();
        w.sync().unwrap();
        let path = w.active.as_ref().unwrap().path.clone();
        drop(w);
        let len = fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 5).unwrap();
        let (last, got) = collect(dir.path());
        assert_eq!(last, 1);
        assert_eq!(got, vec![(1, b"kept".to_vec())]);
    }

    #[test]
    fn a_flipped_bit_fails_the_crc() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::open(dir.path(), 0, 1 << 20).unwrap();
        w.append(Signal::Traces, b"payload").unwrap();
        w.sync().unwrap();
        let path = w.active.as_ref().unwrap().path.clone();
        drop(w);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(collect(dir.path()).1.is_empty());
    }

    #[test]
    fn checkpoint_hides_flushed_records_and_removes_their_segments() {
        let dir = tempfile::tempdir().unwrap();
        // Tiny segments: every sync starts a new one.
        let mut w = WalWriter::open(dir.path(), 0, 1).unwrap();
        for payload in [b"a", b"b", b"c"] {
            w.append(Signal::Traces, payload).unwrap();
            w.sync().unwrap();
        }
        assert_eq!(segments(dir.path()).unwrap().len(), 3);
        w.checkpoint(2).unwrap();
        assert_eq!(segments(dir.path()).unwrap().len(), 1);
        let (last, got) = collect(dir.path());
        assert_eq!(last, 3);
        assert_eq!(got, vec![(3, b"c".to_vec())]);
        w.checkpoint(3).unwrap();
        assert!(segments(dir.path()).unwrap().is_empty());
        // The sequence continues after everything was checkpointed.
        assert_eq!(w.append(Signal::Traces, b"d").unwrap(), 4);
    }
}
