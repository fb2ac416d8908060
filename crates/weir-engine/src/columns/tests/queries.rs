//! SQL through restricted sessions: what `SELECT`, bypass attempts and
//! `EXPLAIN` can and cannot see, and the errors that name the grant.

use super::*;

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
