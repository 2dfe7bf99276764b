//! Keeps each lake file's page index in the session's file-metadata cache.
//!
//! DataFusion 55's Parquet opener asks for a file's footer without the page index, and then,
//! when a filter can prune pages (a time range, a trace id), reads and decodes the page index
//! itself, on every query, without caching it: the cached footer never gains it. Over 50 M spans
//! in 8 files (1,550 row groups) that decoding was a quarter of the CPU of a lookup by trace id
//! (perf, `docs/benchmarks.md`). The reader built here asks for the footer *with* the page index,
//! so the cache loads it once per file and every later query finds it there; the opener then
//! sees it is loaded and skips its own read.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::common::Result;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetFileReaderFactory,
};
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::object_store::ObjectStore;
use datafusion::object_store::path::Path;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt;
use futures::future::BoxFuture;

/// Creates readers whose metadata always includes the page index, cached per file.
#[derive(Debug)]
pub struct PageIndexedReaderFactory {
    inner: CachedParquetFileReaderFactory,
}

impl PageIndexedReaderFactory {
    pub fn new(store: Arc<dyn ObjectStore>, cache: Arc<FileMetadataCache>) -> Self {
        Self {
            inner: CachedParquetFileReaderFactory::new(store, cache),
        }
    }
}

impl ParquetFileReaderFactory for PageIndexedReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let inner = self
            .inner
            .create_reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(Box::new(PageIndexedReader { inner }))
    }
}

struct PageIndexedReader {
    inner: Box<dyn AsyncFileReader + Send>,
}

impl AsyncFileReader for PageIndexedReader {
    fn get_bytes(
        &mut self,
        range: Range<u64>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Vec<Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, datafusion::parquet::errors::Result<Arc<ParquetMetaData>>> {
        // `Optional`: a file written without a page index is still read, from its footer alone.
        let options = options
            .cloned()
            .unwrap_or_default()
            .with_page_index_policy(PageIndexPolicy::Optional);
        async move { self.inner.get_metadata(Some(&options)).await }.boxed()
    }
}

/// Drops the cached metadata of files that are no longer in the lake (merged into larger files,
/// or removed by retention), so that stale entries do not hold the cache's memory until they
/// age out; returns the bytes the cache still holds.
pub fn forget_removed(cache: &FileMetadataCache, live: &HashSet<Path>) -> usize {
    let mut held = 0;
    for (path, entry) in cache.list_entries() {
        if live.contains(&path) {
            held += entry.size_bytes;
        } else {
            cache.remove(&path);
        }
    }
    held
}
