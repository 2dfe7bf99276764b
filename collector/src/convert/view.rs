//! What every signal's request view shares: its resources and scope blocks, borrowed from a
//! decoded message or straight from the request's protobuf bytes ([`super::protobuf`]). Lists
//! are ranges into per-request arrays, so a request costs a handful of allocations however many
//! records it holds.

use std::ops::Range;

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::attributes::Attr;
use super::origin::{
    Origin, OriginResource, OriginScope, resource_attributes_bytes, scope_parts_bytes,
};
use crate::schema::attributes::ValueRef;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct ResourceView<'a> {
    /// Into [`Origins::attributes`].
    pub attributes: Range<usize>,
    pub dropped: u32,
    pub schema_url: &'a str,
}

/// One scope block: its scope, its resource and its records.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BlockView<'a> {
    /// Into [`Origins::resources`].
    pub resource: usize,
    pub scope_name: &'a str,
    pub scope_version: &'a str,
    /// Into [`Origins::attributes`].
    pub scope_attributes: Range<usize>,
    pub scope_dropped: u32,
    pub schema_url: &'a str,
    /// Into the signal's records.
    pub records: Range<usize>,
}

/// The resources and scope blocks of a request, in the request's order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Origins<'a> {
    pub resources: Vec<ResourceView<'a>>,
    pub blocks: Vec<BlockView<'a>>,
    /// The attributes of every resource and scope.
    pub attributes: Vec<Attr<'a>>,
}

/// Appends `attributes` to `to`, returning their range.
pub fn push_attributes<'a>(to: &mut Vec<Attr<'a>>, attributes: &'a [KeyValue]) -> Range<usize> {
    let start = to.len();
    to.extend(attributes.iter().map(|kv| Attr {
        key: &kv.key,
        value: ValueRef::from(kv.value.as_ref()),
    }));
    start..to.len()
}

impl<'a> Origins<'a> {
    /// Adds a decoded resource; returns its index.
    pub fn push_resource(&mut self, resource: Option<&'a Resource>, schema_url: &'a str) -> usize {
        let attributes = push_attributes(
            &mut self.attributes,
            resource.map_or(&[][..], |r| &r.attributes[..]),
        );
        self.resources.push(ResourceView {
            attributes,
            dropped: resource.map_or(0, |r| r.dropped_attributes_count),
            schema_url,
        });
        self.resources.len() - 1
    }

    /// Adds a decoded scope block of `resource` holding `records`.
    pub fn push_block(
        &mut self,
        resource: usize,
        scope: Option<&'a InstrumentationScope>,
        schema_url: &'a str,
        records: Range<usize>,
    ) {
        let scope_attributes = push_attributes(
            &mut self.attributes,
            scope.map_or(&[][..], |s| &s.attributes[..]),
        );
        self.blocks.push(BlockView {
            resource,
            scope_name: scope.map_or("", |s| &s.name),
            scope_version: scope.map_or("", |s| &s.version),
            scope_attributes,
            scope_dropped: scope.map_or(0, |s| s.dropped_attributes_count),
            schema_url,
            records,
        });
    }

    /// A block's resource and scope attributes.
    pub fn attribute_counts(&self, block: &BlockView<'_>) -> (usize, usize) {
        let resource = &self.resources[block.resource];
        (resource.attributes.len(), block.scope_attributes.len())
    }

    /// A block's origin, its attribute sets encoded once for all its records.
    pub fn origin(&self, block: &BlockView<'a>) -> Origin<'_, Attr<'a>> {
        let resource = &self.resources[block.resource];
        Origin::from_parts(
            OriginResource {
                attributes: &self.attributes[resource.attributes.clone()],
                dropped: resource.dropped,
                schema_url: resource.schema_url,
            },
            OriginScope {
                name: block.scope_name,
                version: block.scope_version,
                attributes: &self.attributes[block.scope_attributes.clone()],
                dropped: block.scope_dropped,
                schema_url: block.schema_url,
            },
        )
    }

    /// Bytes each record of `block` stores again for its resource and scope (an upper bound).
    pub fn origin_bytes(&self, block: &BlockView<'_>) -> usize {
        let resource = &self.resources[block.resource];
        resource_attributes_bytes(
            &self.attributes[resource.attributes.clone()],
            resource.schema_url,
        ) + scope_parts_bytes(
            block.scope_name,
            block.scope_version,
            &self.attributes[block.scope_attributes.clone()],
            block.schema_url,
        )
    }

    /// Bytes the request's records repeat between them (an upper bound): each record stores its
    /// resource and scope; a block without records counts as one, as its origin is still
    /// encoded.
    pub fn repeated_bytes(&self) -> usize {
        self.blocks.iter().fold(0usize, |total, block| {
            total.saturating_add(
                self.origin_bytes(block)
                    .saturating_mul(block.records.len().max(1)),
            )
        })
    }
}
