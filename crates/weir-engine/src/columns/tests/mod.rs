//! Column limits through real DataFusion sessions: hidden columns, masks,
//! bypass attempts and the errors that name the grant. Shared fixtures here,
//! tests by concept in the submodules.

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Int32Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Fields};
use arrow::util::pretty::pretty_format_batches;
use weir_auth::{ActionSet, PathKind};

use super::*;

mod access;
mod masks;
mod queries;

const KEY: [u8; 32] = [0x5a; 32];
const SECRETS: &[&str] = &[
    "111-11-1111",
    "222-22-2222",
    "333-33-3333",
    "ann@c.io",
    "cy@c.io",
];

fn contact_fields() -> Fields {
    Fields::from(vec![
        Field::new("email", DataType::Utf8, true),
        Field::new("phone", DataType::Utf8, true),
    ])
}

/// id, name, email, ssn, contact { email, phone } (row 2 null), age.
fn customers() -> RecordBatch {
    let contact = StructArray::try_new(
        contact_fields(),
        vec![
            Arc::new(StringArray::from(vec![
                Some("ann@c.io"),
                Some("x"),
                Some("cy@c.io"),
            ])),
            Arc::new(StringArray::from(vec![Some("555-1"), Some("y"), None])),
        ],
        Some(NullBuffer::from(vec![true, false, true])),
    )
    .unwrap();
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("email", DataType::Utf8, true),
        Field::new("ssn", DataType::Utf8, false),
        Field::new("contact", DataType::Struct(contact_fields()), true),
        Field::new("age", DataType::Int32, true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec!["Ann", "Bob", "Cy"])),
            Arc::new(StringArray::from(vec![
                Some("ann@x.io"),
                Some("bob@x.io"),
                None,
            ])),
            Arc::new(StringArray::from(vec![
                "111-11-1111",
                "222-22-2222",
                "333-33-3333",
            ])),
            Arc::new(contact),
            Arc::new(Int32Array::from(vec![Some(30), Some(40), None])),
        ],
    )
    .unwrap()
}

fn orders() -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new("card", DataType::Utf8, false),
        Field::new("total", DataType::Int64, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 3])),
            Arc::new(StringArray::from(vec!["4111-card", "5500-card"])),
            Arc::new(Int64Array::from(vec![10, 30])),
        ],
    )
    .unwrap()
}

fn rule(allow: Option<&[&str]>, deny: &[&str], masks: &[(&str, Mask)], grant: &str) -> ColumnRule {
    ColumnRule {
        allow: allow.map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
        deny: deny.iter().map(|s| (*s).to_owned()).collect(),
        mask: masks.iter().map(|(c, m)| ((*c).to_owned(), *m)).collect(),
        grants: vec![grant.to_owned()],
    }
}

fn analysts() -> ColumnAccess {
    ColumnAccess::from_rule(Some(rule(
        None,
        &["ssn", "contact.email"],
        &[("email", Mask::Hash)],
        "customers-analysts",
    )))
}

async fn session(customers_access: &ColumnAccess) -> SessionContext {
    let ctx = SessionContext::new();
    let key = MaskKey::from_bytes(KEY);
    let df = ctx.read_batch(customers()).unwrap();
    register_restricted(&ctx, "customers", df, customers_access, Some(&key)).unwrap();
    let orders_access = ColumnAccess::from_rule(Some(rule(None, &["card"], &[], "orders-read")));
    let df = ctx.read_batch(orders()).unwrap();
    register_restricted(&ctx, "orders", df, &orders_access, Some(&key)).unwrap();
    ctx
}

async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, DataFusionError> {
    ctx.sql(sql).await?.collect().await
}

fn text(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

fn denied(err: &DataFusionError, access: &ColumnAccess) -> Option<ColumnDenied> {
    let (c, o) = (customers(), orders());
    let orders_access = ColumnAccess::from_rule(Some(rule(None, &["card"], &[], "orders-read")));
    explain_denied(
        err,
        &[
            ("customers", access, c.schema_ref()),
            ("orders", &orders_access, o.schema_ref()),
        ],
    )
}

/// HMAC-SHA256 computed here, independently of the reader.
fn mac_hex(key: &[u8], value: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(value);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
