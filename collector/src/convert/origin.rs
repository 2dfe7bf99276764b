//! Where a record came from — its resource (with the service identity) and its instrumentation
//! scope — and the columns every table stores for it.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder, UInt32Builder};
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::attributes::{AttributeColumns, AttributeRef, AttributeSizes, EncodedAttributes};
use crate::schema::attributes::{stored_bound, stored_bound_of};
use crate::schema::spans::UNKNOWN_SERVICE;

/// Bytes of attributes stored with every record that carries them (an upper bound).
pub fn attributes_bytes(attributes: &[KeyValue]) -> usize {
    attributes
        .iter()
        .map(|kv| stored_bound(&kv.key, kv.value.as_ref()))
        .sum()
}

/// Like [`attributes_bytes`], for attributes of any source.
pub fn attribute_refs_bytes<A: AttributeRef>(attributes: &[A]) -> usize {
    attributes
        .iter()
        .map(|kv| stored_bound_of(kv.key(), kv.value()))
        .sum()
}

/// Bytes of a resource that every record under it stores again (an upper bound): its
/// attributes, the service fields taken from them into columns of their own, and its schema URL.
pub fn resource_bytes(resource: Option<&Resource>, schema_url: &str) -> usize {
    resource_attributes_bytes(resource.map_or(&[][..], |r| &r.attributes[..]), schema_url)
}

/// [`resource_bytes`] of a resource given by its attributes.
pub fn resource_attributes_bytes<A: AttributeRef>(attributes: &[A], schema_url: &str) -> usize {
    let service: usize = attributes
        .iter()
        .filter(|kv| kv.key().starts_with("service."))
        .filter_map(|kv| kv.value().as_str())
        .map(str::len)
        .sum();
    attribute_refs_bytes(attributes) + service + schema_url.len() + 64
}

/// Like [`resource_bytes`], for an instrumentation scope (name, version, attributes).
pub fn scope_bytes(scope: Option<&InstrumentationScope>, schema_url: &str) -> usize {
    scope.map_or(0, |s| {
        s.name.len() + s.version.len() + attributes_bytes(&s.attributes)
    }) + schema_url.len()
        + 32
}

/// [`scope_bytes`] of a scope given by its parts.
pub fn scope_parts_bytes<A: AttributeRef>(
    name: &str,
    version: &str,
    attributes: &[A],
    schema_url: &str,
) -> usize {
    name.len() + version.len() + attribute_refs_bytes(attributes) + schema_url.len() + 32
}

/// The resource and scope shared by the records of one scope block.
pub struct Origin<'a, A = KeyValue> {
    pub service_name: &'a str,
    pub service_namespace: Option<&'a str>,
    pub service_version: Option<&'a str>,
    pub service_instance_id: Option<&'a str>,
    pub resource_attributes: &'a [A],
    /// `resource_attributes` encoded once for every record of the block.
    pub resource_encoded: EncodedAttributes<'a>,
    pub resource_dropped: u32,
    pub resource_schema_url: &'a str,
    pub scope_name: &'a str,
    pub scope_version: &'a str,
    pub scope_attributes: &'a [A],
    pub scope_encoded: EncodedAttributes<'a>,
    pub scope_dropped: u32,
    pub scope_schema_url: &'a str,
}

impl<'a> Origin<'a> {
    pub fn new(
        resource: Option<&'a Resource>,
        resource_schema_url: &'a str,
        scope: Option<&'a InstrumentationScope>,
        scope_schema_url: &'a str,
    ) -> Self {
        Origin::from_parts(
            OriginResource {
                attributes: resource.map_or(&[][..], |r| &r.attributes[..]),
                dropped: resource.map_or(0, |r| r.dropped_attributes_count),
                schema_url: resource_schema_url,
            },
            OriginScope {
                name: scope.map_or("", |s| &s.name),
                version: scope.map_or("", |s| &s.version),
                attributes: scope.map_or(&[][..], |s| &s.attributes[..]),
                dropped: scope.map_or(0, |s| s.dropped_attributes_count),
                schema_url: scope_schema_url,
            },
        )
    }
}

/// A resource as [`Origin::from_parts`] takes it.
pub struct OriginResource<'a, A> {
    pub attributes: &'a [A],
    pub dropped: u32,
    pub schema_url: &'a str,
}

/// An instrumentation scope as [`Origin::from_parts`] takes it.
pub struct OriginScope<'a, A> {
    pub name: &'a str,
    pub version: &'a str,
    pub attributes: &'a [A],
    pub dropped: u32,
    pub schema_url: &'a str,
}

impl<'a, A: AttributeRef> Origin<'a, A> {
    pub fn from_parts(resource: OriginResource<'a, A>, scope: OriginScope<'a, A>) -> Self {
        let attrs = resource.attributes;
        let get = |key: &str| attrs.iter().find(|kv| kv.key() == key)?.value().as_str();
        Self {
            service_name: get("service.name").unwrap_or(UNKNOWN_SERVICE),
            service_namespace: get("service.namespace"),
            service_version: get("service.version"),
            service_instance_id: get("service.instance.id"),
            resource_attributes: attrs,
            resource_encoded: EncodedAttributes::new(attrs),
            resource_dropped: resource.dropped,
            resource_schema_url: resource.schema_url,
            scope_name: scope.name,
            scope_version: scope.version,
            scope_attributes: scope.attributes,
            scope_encoded: EncodedAttributes::new(scope.attributes),
            scope_dropped: scope.dropped,
            scope_schema_url: scope.schema_url,
        }
    }
}

/// The finished origin columns, each placed by the table's own column order.
pub struct OriginArrays {
    pub service_name: ArrayRef,
    pub service_namespace: ArrayRef,
    pub service_version: ArrayRef,
    pub service_instance_id: ArrayRef,
    pub resource_attributes: ArrayRef,
    pub resource_attribute_types: ArrayRef,
    pub resource_dropped: ArrayRef,
    pub resource_schema_url: ArrayRef,
    pub scope_name: ArrayRef,
    pub scope_version: ArrayRef,
    pub scope_attributes: ArrayRef,
    pub scope_attribute_types: ArrayRef,
    pub scope_dropped: ArrayRef,
    pub scope_schema_url: ArrayRef,
}

/// Builders of the origin columns, one row per record.
pub struct OriginColumns {
    /// The rows allocated for.
    rows: usize,
    service_name: StringBuilder,
    service_namespace: StringBuilder,
    service_version: StringBuilder,
    service_instance_id: StringBuilder,
    resource_attributes: AttributeColumns,
    resource_dropped: UInt32Builder,
    resource_schema_url: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attributes: AttributeColumns,
    scope_dropped: UInt32Builder,
    scope_schema_url: StringBuilder,
}

impl OriginColumns {
    pub fn with_capacity(rows: usize) -> Self {
        Self::with_sizes(rows, AttributeSizes::default(), AttributeSizes::default())
    }

    /// Sized for `blocks`: each block's row count and origin.
    pub fn for_blocks<'a, A: 'a>(
        blocks: impl IntoIterator<Item = (usize, &'a Origin<'a, A>)>,
    ) -> Self {
        let (mut rows, mut resource, mut scope) =
            (0, AttributeSizes::default(), AttributeSizes::default());
        for (n, origin) in blocks {
            rows += n;
            resource.add(n, &origin.resource_encoded);
            scope.add(n, &origin.scope_encoded);
        }
        Self::with_sizes(rows, resource, scope)
    }

    fn with_sizes(rows: usize, resource: AttributeSizes, scope: AttributeSizes) -> Self {
        let s = || StringBuilder::with_capacity(rows, rows * 8);
        Self {
            rows,
            service_name: s(),
            service_namespace: s(),
            service_version: s(),
            service_instance_id: s(),
            resource_attributes: AttributeColumns::with_sizes(rows, resource),
            resource_dropped: UInt32Builder::with_capacity(rows),
            resource_schema_url: s(),
            scope_name: s(),
            scope_version: s(),
            scope_attributes: AttributeColumns::with_sizes(rows, scope),
            scope_dropped: UInt32Builder::with_capacity(rows),
            scope_schema_url: s(),
        }
    }

    /// The rows allocated for.
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn append<A>(&mut self, o: &Origin<'_, A>) {
        self.service_name.append_value(o.service_name);
        self.service_namespace.append_option(o.service_namespace);
        self.service_version.append_option(o.service_version);
        self.service_instance_id
            .append_option(o.service_instance_id);
        self.resource_attributes.append_encoded(&o.resource_encoded);
        self.resource_dropped.append_value(o.resource_dropped);
        self.resource_schema_url.append_value(o.resource_schema_url);
        self.scope_name.append_value(o.scope_name);
        self.scope_version.append_value(o.scope_version);
        self.scope_attributes.append_encoded(&o.scope_encoded);
        self.scope_dropped.append_value(o.scope_dropped);
        self.scope_schema_url.append_value(o.scope_schema_url);
    }

    pub fn finish(mut self) -> OriginArrays {
        let (resource_attributes, resource_attribute_types) = self.resource_attributes.finish();
        let (scope_attributes, scope_attribute_types) = self.scope_attributes.finish();
        OriginArrays {
            service_name: Arc::new(self.service_name.finish()),
            service_namespace: Arc::new(self.service_namespace.finish()),
            service_version: Arc::new(self.service_version.finish()),
            service_instance_id: Arc::new(self.service_instance_id.finish()),
            resource_attributes,
            resource_attribute_types,
            resource_dropped: Arc::new(self.resource_dropped.finish()),
            resource_schema_url: Arc::new(self.resource_schema_url.finish()),
            scope_name: Arc::new(self.scope_name.finish()),
            scope_version: Arc::new(self.scope_version.finish()),
            scope_attributes,
            scope_attribute_types,
            scope_dropped: Arc::new(self.scope_dropped.finish()),
            scope_schema_url: Arc::new(self.scope_schema_url.finish()),
        }
    }
}
