//! Column limits through real DataFusion sessions: hidden columns, masks,
//! bypass attempts and the errors that name the grant.

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Int32Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Fields};
use arrow::util::pretty::pretty_format_batches;
use weir_auth::{ActionSet, PathKind};

use super::*;

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

#[tokio::test]
async fn select_star_shows_only_permitted_columns_and_fields() {
    let ctx = session(&analysts()).await;
    let batches = run(&ctx, "SELECT * FROM customers ORDER BY id")
        .await
        .unwrap();
    let schema = batches[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "name", "email", "contact", "age"]);
    let contact = batches[0].column(3).as_struct();
    assert_eq!(contact.fields().len(), 1);
    assert_eq!(contact.fields()[0].name(), "phone");
    assert!(contact.is_valid(0) && contact.is_null(1) && contact.is_valid(2));
    let out = text(&batches);
    for secret in SECRETS.iter().chain(&["ann@x.io", "bob@x.io"]) {
        assert!(!out.contains(secret), "{secret} in\n{out}");
    }
}

#[tokio::test]
async fn a_denied_column_fails_naming_the_column_and_the_grant() {
    let access = analysts();
    let ctx = session(&access).await;
    for sql in [
        "SELECT ssn FROM customers",
        "SELECT customers.ssn FROM customers",
        "SELECT c.ssn FROM customers c",
    ] {
        let err = run(&ctx, sql).await.unwrap_err();
        let d = denied(&err, &access).unwrap_or_else(|| panic!("{sql}: {err}"));
        assert_eq!(
            (d.dataset.as_str(), d.column.as_str(), d.grants.as_slice()),
            (
                "customers",
                "ssn",
                ["customers-analysts".to_owned()].as_slice()
            ),
            "{sql}"
        );
        assert_eq!(
            d.to_string(),
            "column `ssn` of dataset `customers` is not readable by this stage: grant `customers-analysts` limits its columns (deny: ssn)"
        );
    }
}

#[tokio::test]
async fn a_typo_stays_datafusions_error() {
    let access = analysts();
    let ctx = session(&access).await;
    let err = run(&ctx, "SELECT sssn FROM customers").await.unwrap_err();
    assert_eq!(denied(&err, &access), None);
    let err = run(&ctx, "SELECT contact['mail'] FROM customers")
        .await
        .unwrap_err();
    assert_eq!(denied(&err, &access), None, "{err}");
}

#[tokio::test]
async fn bypass_attempts_fail_or_never_reveal_hidden_values() {
    let access = analysts();
    let ctx = session(&access).await;
    let attempts = [
        ("SELECT * FROM (SELECT * FROM customers) t", None),
        ("SELECT ssn FROM (SELECT * FROM customers) t", Some("ssn")),
        ("SELECT (SELECT max(ssn) FROM customers) AS s", Some("ssn")),
        (
            "SELECT id FROM customers WHERE ssn = '111-11-1111'",
            Some("ssn"),
        ),
        ("WITH c AS (SELECT * FROM customers) SELECT * FROM c", None),
        (
            "WITH c AS (SELECT * FROM customers) SELECT ssn FROM c",
            Some("ssn"),
        ),
        (
            "SELECT * FROM customers c JOIN orders o ON c.id = o.customer_id",
            None,
        ),
        (
            "SELECT o.card FROM customers c JOIN orders o ON c.id = o.customer_id",
            Some("card"),
        ),
        (
            "SELECT c.ssn, o.total FROM customers c JOIN orders o ON c.id = o.customer_id",
            Some("ssn"),
        ),
        (
            "SELECT contact['email'] FROM customers",
            Some("contact.email"),
        ),
        ("SELECT contact.email FROM customers", Some("contact.email")),
        (
            "SELECT get_field(contact, 'email') FROM customers",
            Some("contact.email"),
        ),
        ("SELECT contact FROM customers", None),
        ("SELECT unnest(contact) FROM customers", None),
        (
            "SELECT struct(contact) AS s, named_struct('c', contact) AS n FROM customers",
            None,
        ),
        ("SELECT array_agg(contact) AS a FROM customers", None),
        ("SELECT email, md5(email) AS m FROM customers", None),
        ("SELECT weir_restrict(email) FROM customers", None),
    ];
    for (sql, hidden_column) in attempts {
        match run(&ctx, sql).await {
            Ok(batches) => {
                assert!(hidden_column.is_none(), "{sql} ran");
                let out = text(&batches);
                for secret in SECRETS.iter().chain(&["ann@x.io", "4111-card"]) {
                    assert!(!out.contains(secret), "{sql}: {secret} in\n{out}");
                }
            }
            Err(err) => {
                let d = denied(&err, &access);
                assert_eq!(
                    d.as_ref().map(|d| d.column.as_str()),
                    hidden_column,
                    "{sql}: {err}"
                );
                for secret in SECRETS {
                    assert!(!err.to_string().contains(secret), "{sql}: {err}");
                }
            }
        }
    }
}

#[tokio::test]
async fn the_mask_function_cannot_be_called_by_name() {
    let ctx = session(&analysts()).await;
    let err = run(&ctx, "SELECT weir_restrict(email) FROM customers")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("weir_restrict"), "{err}");
    assert!(
        !ctx.state()
            .scalar_functions()
            .contains_key(project::FUNCTION)
    );
}

#[tokio::test]
async fn explain_shows_neither_hidden_values_nor_the_key() {
    let ctx = session(&analysts()).await;
    let key_hex = "5a".repeat(32);
    let key_bytes = format!("{:?}", KEY.to_vec());
    let key_hex_derived = "5a5a5a5a";
    for sql in [
        "EXPLAIN SELECT * FROM customers",
        "EXPLAIN VERBOSE SELECT email, contact FROM customers WHERE id > 1",
    ] {
        let out = text(&run(&ctx, sql).await.unwrap());
        for needle in SECRETS
            .iter()
            .chain(&["ann@x.io", key_hex.as_str(), key_hex_derived])
        {
            assert!(!out.contains(needle), "{sql}: {needle}");
        }
        assert!(
            out.contains(project::FUNCTION),
            "{sql}: the masking is visible\n{out}"
        );
    }
    let df = ctx.table("customers").await.unwrap();
    let debug = format!(
        "{:?} {}",
        df.logical_plan(),
        df.logical_plan().display_indent()
    );
    assert!(
        !debug.contains(&key_hex) && !debug.contains(&key_bytes[1..40]),
        "{debug}"
    );
    assert!(!debug.contains("90, 90, 90"), "{debug}");
}

#[tokio::test]
async fn masks_are_checked_value_by_value() {
    let access = ColumnAccess::from_rule(Some(rule(
        None,
        &["ssn"],
        &[
            ("email", Mask::Hash),
            ("name", Mask::Redact),
            ("age", Mask::Null),
            ("contact.phone", Mask::Hash),
            ("id", Mask::Hash),
        ],
        "masked",
    )));
    let ctx = session(&access).await;
    let batches = run(&ctx, "SELECT * FROM customers ORDER BY name")
        .await
        .unwrap();
    let b = &batches[0];
    let col = |name: &str| b.column_by_name(name).unwrap().clone();
    let email = col("email");
    let email = email.as_string::<i32>();
    assert_eq!(email.value(0), mac_hex(&KEY, b"ann@x.io"));
    assert_eq!(email.value(1), mac_hex(&KEY, b"bob@x.io"));
    assert!(email.is_null(2));
    let id = col("id");
    assert_eq!(id.as_string::<i32>().value(0), mac_hex(&KEY, b"1"));
    let name = col("name");
    let name = name.as_string::<i32>();
    assert!((0..3).all(|i| name.value(i) == REDACTED));
    let age = col("age");
    assert_eq!(age.data_type(), &DataType::Int32);
    assert_eq!(age.null_count(), 3);
    let contact = col("contact");
    let contact = contact.as_struct();
    assert!(contact.is_null(1));
    assert_eq!(
        contact
            .column_by_name("email")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "ann@c.io"
    );
    let phone = contact.column_by_name("phone").unwrap();
    let phone = phone.as_string::<i32>();
    assert_eq!(phone.value(0), mac_hex(&KEY, b"555-1"));
    assert!(phone.is_null(2));
    // Equal values hash equally, so a join on the masked column works.
    let joined = run(
        &ctx,
        "SELECT count(*) AS n FROM customers a JOIN customers b ON a.email = b.email",
    )
    .await
    .unwrap();
    assert_eq!(
        joined[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        2
    );
}

#[tokio::test]
async fn allow_list_exclusion_and_deny_list_both_hide() {
    let allow = ColumnAccess::from_rule(Some(rule(
        Some(&["id", "name", "contact.phone", "nope"]),
        &[],
        &[],
        "narrow",
    )));
    let ctx = session(&allow).await;
    let batches = run(&ctx, "SELECT * FROM customers").await.unwrap();
    let schema = batches[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "name", "contact"]);
    let err = run(&ctx, "SELECT ssn FROM customers").await.unwrap_err();
    let d = denied(&err, &allow).unwrap();
    assert!(
        d.to_string()
            .ends_with("grant `narrow` limits its columns (allow: id, name, contact.phone, nope)"),
        "{d}"
    );
    let err = run(&ctx, "SELECT contact['email'] FROM customers")
        .await
        .unwrap_err();
    assert_eq!(denied(&err, &allow).unwrap().column, "contact.email");

    let deny = ColumnAccess::from_rule(Some(rule(None, &["SSN"], &[], "no-ssn")));
    let ctx = session(&deny).await;
    let out = text(&run(&ctx, "SELECT * FROM customers").await.unwrap());
    assert!(!out.contains("111-11-1111") && out.contains("ann@c.io"));
    let err = run(&ctx, "SELECT ssn FROM customers").await.unwrap_err();
    assert!(
        denied(&err, &deny)
            .unwrap()
            .to_string()
            .ends_with("(deny: SSN)")
    );
}

#[test]
fn missing_key_nothing_left_and_unrestricted() {
    let ctx = SessionContext::new();
    let df = || ctx.read_batch(customers()).unwrap();
    let hashed = ColumnAccess::from_rule(Some(rule(None, &[], &[("email", Mask::Hash)], "g")));
    assert!(matches!(
        restrict(df(), &hashed, None, "customers"),
        Err(ColumnError::MissingMaskKey { .. })
    ));
    let redacted = ColumnAccess::from_rule(Some(rule(None, &[], &[("email", Mask::Redact)], "g")));
    assert!(restrict(df(), &redacted, None, "customers").is_ok());
    let none = ColumnAccess::from_rule(Some(rule(Some(&["absent"]), &[], &[], "g")));
    let err = restrict(df(), &none, None, "customers").unwrap_err();
    assert_eq!(
        err.to_string(),
        "dataset `customers`: the column limits of grant `g` leave no readable column"
    );
    let open = ColumnAccess::unrestricted();
    assert!(open.is_unrestricted());
    assert_eq!(
        restrict(df(), &open, None, "customers")
            .unwrap()
            .schema()
            .fields()
            .len(),
        6
    );
}

#[test]
fn entries_combine_like_grants() {
    let entry = |columns| ScopeEntry {
        store: "lake".into(),
        path: ScopePath::parse("raw/customers").unwrap(),
        kind: PathKind::Prefix,
        actions: ActionSet::empty().with(Action::Read),
        columns,
    };
    let a = entry(Some(rule(
        Some(&["id", "email"]),
        &[],
        &[("email", Mask::Hash)],
        "a",
    )));
    let b = entry(Some(rule(None, &[], &[("email", Mask::Null)], "b")));
    let open = entry(None);
    let access = ColumnAccess::from_entries(&[&a, &b, &open]);
    let combined = access.rule().unwrap();
    assert_eq!(combined.mask.get("email"), Some(&Mask::Null));
    assert_eq!(access.grants(), ["a", "b"]);
    assert!(!access.needs_key());
    assert!(ColumnAccess::from_entries(&[&open]).is_unrestricted());
    let c = entry(Some(rule(Some(&["ssn"]), &[], &[], "c")));
    let nothing = ColumnAccess::from_entries(&[&a, &c]);
    let ctx = SessionContext::new();
    let err = restrict(
        ctx.read_batch(customers()).unwrap(),
        &nothing,
        None,
        "customers",
    )
    .unwrap_err();
    assert!(matches!(err, ColumnError::NoColumnLeft { ref grants, .. } if grants == &["a", "c"]));
}

#[tokio::test]
async fn fields_of_structs_inside_lists_are_hidden_and_masked() {
    let item = Field::new("item", DataType::Struct(contact_fields()), true);
    let values = StructArray::try_new(
        contact_fields(),
        vec![
            Arc::new(StringArray::from(vec!["ann@c.io", "old@c.io", "cy@c.io"])),
            Arc::new(StringArray::from(vec!["1", "2", "3"])),
        ],
        None,
    )
    .unwrap();
    let list = ListArray::try_new(
        Arc::new(item.clone()),
        arrow::buffer::OffsetBuffer::from_lengths([2, 0, 1]),
        Arc::new(values),
        Some(NullBuffer::from(vec![true, false, true])),
    )
    .unwrap();
    let schema = Schema::new(vec![Field::new(
        "history",
        DataType::List(Arc::new(item)),
        true,
    )]);
    let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(list)]).unwrap();
    let access = ColumnAccess::from_rule(Some(rule(
        None,
        &["history.email"],
        &[("history.phone", Mask::Redact)],
        "g",
    )));
    let ctx = SessionContext::new();
    register_restricted(
        &ctx,
        "h",
        ctx.read_batch(batch.clone()).unwrap(),
        &access,
        None,
    )
    .unwrap();
    let out = text(&run(&ctx, "SELECT * FROM h").await.unwrap());
    assert!(!out.contains("@c.io") && out.contains(REDACTED), "{out}");
    let err = run(&ctx, "SELECT history[1]['email'] FROM h")
        .await
        .unwrap_err();
    let d = explain_denied(&err, &[("h", &access, batch.schema_ref())]).unwrap();
    assert_eq!(d.column, "history.email");
}

#[tokio::test]
async fn explain_is_refused_since_parquet_statistics_show_masked_values() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.parquet");
    let file = file.to_str().unwrap();
    let ctx = SessionContext::new();
    ctx.read_batch(customers())
        .unwrap()
        .write_parquet(
            file,
            datafusion::dataframe::DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await
        .unwrap();
    let df = ctx
        .read_parquet(file, datafusion::prelude::ParquetReadOptions::default())
        .await
        .unwrap();
    let key = MaskKey::from_bytes(KEY);
    register_restricted(&ctx, "customers", df, &analysts(), Some(&key)).unwrap();
    // What EXPLAIN would print: the raw minimum of the masked column.
    let explain = ctx
        .sql("EXPLAIN VERBOSE SELECT * FROM customers")
        .await
        .unwrap();
    let shown = text(&explain.clone().collect().await.unwrap());
    assert!(
        shown.contains("ann@x.io"),
        "statistics are shown: adjust this test"
    );
    assert!(matches!(
        refuse_explain(explain.logical_plan()),
        Err(ColumnError::Explain)
    ));
    let analyze = ctx
        .sql("EXPLAIN ANALYZE SELECT * FROM customers")
        .await
        .unwrap();
    assert!(refuse_explain(analyze.logical_plan()).is_err());
    // Queries themselves never answer from those statistics.
    let query = ctx
        .sql("SELECT min(email) AS lo, max(email) AS hi, count(*) AS n FROM customers")
        .await
        .unwrap();
    assert!(refuse_explain(query.logical_plan()).is_ok());
    let out = text(&query.collect().await.unwrap());
    assert!(!out.contains("@x.io"), "{out}");
    assert!(out.contains(&mac_hex(&KEY, b"ann@x.io")), "{out}");
}

#[test]
fn for_dataset_uses_every_readable_entry_covering_or_inside_the_path() {
    let entry = |path: &str, actions: &[Action], columns| ScopeEntry {
        store: "lake".into(),
        path: ScopePath::parse(path).unwrap(),
        kind: PathKind::Prefix,
        actions: actions.iter().copied().collect(),
        columns,
    };
    let scope = Scope::new(vec![
        entry("raw", &[Action::Read], None),
        entry(
            "raw/customers",
            &[Action::Read],
            Some(rule(None, &["ssn"], &[], "inner")),
        ),
        entry(
            "raw/orders",
            &[Action::Read],
            Some(rule(None, &["card"], &[], "orders")),
        ),
        entry(
            "out/x",
            &[Action::Write],
            Some(rule(None, &["id"], &[], "write-only")),
        ),
    ])
    .unwrap();
    // Reading `raw` reads `raw/customers` and `raw/orders` too.
    let outer = ColumnAccess::for_dataset(&scope, "lake", "raw").unwrap();
    assert_eq!(outer.rule().unwrap().deny, ["card", "ssn"]);
    let customers = ColumnAccess::for_dataset(&scope, "lake", "raw/customers").unwrap();
    assert_eq!(customers.rule().unwrap().deny, ["ssn"]);
    assert_eq!(customers.grants(), ["inner"]);
    let other = ColumnAccess::for_dataset(&scope, "lake", "raw/events").unwrap();
    assert!(other.is_unrestricted());
    for (store, path) in [
        ("lake", "out/x"),
        ("lake", "elsewhere"),
        ("sea", "raw"),
        ("lake", "../raw"),
    ] {
        assert!(
            matches!(
                ColumnAccess::for_dataset(&scope, store, path),
                Err(ColumnError::NotInScope { .. })
            ),
            "{store}:{path}"
        );
    }
}

#[test]
fn shows_in_clear_only_what_is_readable_and_unmasked() {
    let access = ColumnAccess::from_rule(Some(rule(
        None,
        &["ssn", "contact.email"],
        &[("email", Mask::Hash), ("profile", Mask::Redact)],
        "g",
    )));
    for (column, clear) in [
        ("id", true),
        ("ssn", false),
        ("email", false),
        ("contact", false),
        ("contact.phone", true),
        ("contact.email", false),
        ("profile", false),
        ("profile.x", false),
    ] {
        assert_eq!(access.shows_in_clear(column), clear, "{column}");
    }
    assert!(access.has_masks() && access.needs_key());
    assert!(ColumnAccess::unrestricted().shows_in_clear("anything"));
}

#[tokio::test]
async fn a_mask_covers_flat_columns_and_fields_whose_names_it_covers() {
    // A CSV header may hold dots: `contact.email` is then one flat
    // column, which a mask on `contact` covers as deny and allow do.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.csv");
    std::fs::write(
        &file,
        "id,contact.email,CONTACT.phone,contacts\n1,ann@c.io,555-1,keep\n",
    )
    .unwrap();
    let ctx = SessionContext::new();
    let csv = || async {
        ctx.read_csv(
            file.to_str().unwrap(),
            datafusion::prelude::CsvReadOptions::new(),
        )
        .await
        .unwrap()
    };
    let key = MaskKey::from_bytes(KEY);
    for (mask, email, phone) in [
        (Mask::Null, None, None),
        (
            Mask::Redact,
            Some(REDACTED.to_owned()),
            Some(REDACTED.to_owned()),
        ),
        (
            Mask::Hash,
            Some(mac_hex(&KEY, b"ann@c.io")),
            Some(mac_hex(&KEY, b"555-1")),
        ),
    ] {
        let access = ColumnAccess::from_rule(Some(rule(None, &[], &[("Contact", mask)], "g")));
        let batches = restrict(csv().await, &access, Some(&key), "c")
            .unwrap()
            .collect()
            .await
            .unwrap();
        let b = &batches[0];
        let value = |name: &str| {
            let column = b.column_by_name(name).unwrap();
            let column = arrow::compute::cast(column, &DataType::Utf8).unwrap();
            let column = column.as_string::<i32>();
            column.is_valid(0).then(|| column.value(0).to_owned())
        };
        assert_eq!(value("contact.email"), email, "{mask}");
        assert_eq!(value("CONTACT.phone"), phone, "{mask}");
        assert_eq!(value("contacts").as_deref(), Some("keep"), "{mask}");
        assert_eq!(value("id").as_deref(), Some("1"), "{mask}");
        for (column, clear) in [
            ("contact.email", false),
            ("CONTACT.phone", false),
            ("contacts", true),
            ("id", true),
        ] {
            assert_eq!(access.shows_in_clear(column), clear, "{column}");
        }
    }

    // A struct field whose own name holds a dot: `info.home` covers
    // `info` -> `home.phone`, and only that field.
    let info = Fields::from(vec![
        Field::new("home.phone", DataType::Utf8, true),
        Field::new("city", DataType::Utf8, true),
    ]);
    let array = StructArray::try_new(
        info.clone(),
        vec![
            Arc::new(StringArray::from(vec!["555-1"])),
            Arc::new(StringArray::from(vec!["Oslo"])),
        ],
        None,
    )
    .unwrap();
    let schema = Schema::new(vec![Field::new("info", DataType::Struct(info), true)]);
    let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(array)]).unwrap();
    let access =
        ColumnAccess::from_rule(Some(rule(None, &[], &[("info.home", Mask::Redact)], "g")));
    let batches = restrict(ctx.read_batch(batch).unwrap(), &access, None, "i")
        .unwrap()
        .collect()
        .await
        .unwrap();
    let info = batches[0].column(0).as_struct();
    let field = |name: &str| {
        info.column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .value(0)
            .to_owned()
    };
    assert_eq!(field("home.phone"), REDACTED);
    assert_eq!(field("city"), "Oslo");
    assert!(!access.shows_in_clear("info.home.phone"));
    assert!(access.shows_in_clear("info.city"));

    // A masked struct is masked whole, once: the mask over it is not
    // applied to its fields first, so its hash stays that of its text.
    let access = ColumnAccess::from_rule(Some(rule(None, &[], &[("contact", Mask::Hash)], "g")));
    let batches = restrict(
        ctx.read_batch(customers()).unwrap(),
        &access,
        Some(&key),
        "c",
    )
    .unwrap()
    .collect()
    .await
    .unwrap();
    let clear = customers().column_by_name("contact").unwrap().clone();
    let clear = arrow::util::display::ArrayFormatter::try_new(
        clear.as_ref(),
        &arrow::util::display::FormatOptions::default(),
    )
    .unwrap()
    .value(0)
    .to_string();
    let contact = batches[0].column_by_name("contact").unwrap();
    assert_eq!(
        contact.as_string::<i32>().value(0),
        mac_hex(&KEY, clear.as_bytes())
    );
}
