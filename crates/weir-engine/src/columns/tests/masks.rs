//! Masks value by value: hashes, redaction and nulls, on flat columns,
//! struct fields and fields of structs inside lists.

use super::*;

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
