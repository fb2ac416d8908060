//! The [`WorkQueue`](weir_queue::WorkQueue) properties: delivery, ownership,
//! redelivery, dead letters, limits.

use super::*;

/// Payloads come back byte-exact (empty, binary, 64 KiB), with the ids
/// `enqueue`/`enqueue_many` returned, in enqueue order, delivery count 1.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn delivers_payloads_byte_exact_in_order(h: &dyn Harness) {
    let q = open_one(h, config(30_000)).await;
    let mut payloads = vec![
        Bytes::new(),
        Bytes::from_static(b"\0"),
        Bytes::from((0..=255u8).collect::<Vec<_>>()),
        Bytes::from("héllo \r\n wörld"),
        Bytes::from((0..65_536u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()),
    ];
    payloads.extend((0..20).map(|i| Bytes::from(format!("task-{i}"))));
    let mut ids = Vec::new();
    for p in &payloads[..10] {
        ids.push(q.enqueue(p.clone()).await.unwrap());
    }
    ids.extend(q.enqueue_many(payloads[10..].to_vec()).await.unwrap());
    assert!(q.enqueue_many(Vec::new()).await.unwrap().is_empty());
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids follow enqueue order"
    );
    assert_eq!(depth(q.as_ref()).await, (25, 0, 0));

    assert!(recv(q.as_ref(), "c", 0).await.is_empty(), "max 0");
    let mut got = recv(q.as_ref(), "c", 3).await;
    assert_eq!(got.len(), 3, "at most max, as many as ready");
    got.extend(recv(q.as_ref(), "c", 1000).await);
    assert_eq!(got.iter().map(|d| d.id).collect::<Vec<_>>(), ids);
    assert_eq!(
        got.iter().map(|d| d.payload.clone()).collect::<Vec<_>>(),
        payloads
    );
    assert!(got.iter().all(|d| d.deliveries == 1));
    let again: TaskId = ids[0].to_string().parse().unwrap();
    assert_eq!(again, ids[0], "ids round-trip through text");
    q.ack_many(&ids).await.unwrap();
    assert_eq!(depth(q.as_ref()).await, (0, 0, 0));
    q.delete().await.unwrap();
}

/// Two handles, one consumer each, compete for 1000 tasks: every task is
/// delivered exactly once, with its own payload.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn each_task_goes_to_exactly_one_consumer(h: &dyn Harness) {
    const N: usize = 1000;
    let handles = h.open(config(30_000), 2).await;
    let mut expected = BTreeMap::new();
    for batch in 0..N / 100 {
        let payloads: Vec<Bytes> = (0..100)
            .map(|i| Bytes::from(format!("task-{}", batch * 100 + i)))
            .collect();
        let ids = handles[batch % 2]
            .enqueue_many(payloads.clone())
            .await
            .unwrap();
        expected.extend(ids.into_iter().zip(payloads));
    }
    let done = AtomicUsize::new(0);
    let start = h.now();
    let consumers = handles.iter().enumerate().map(|(n, q)| {
        let done = &done;
        async move {
            let name = format!("consumer-{n}");
            let mut seen = Vec::new();
            while done.load(Ordering::SeqCst) < N {
                assert!(h.now() - start < Duration::from_secs(60), "stalled");
                let got = q
                    .receive(&name, 16, Duration::from_millis(50))
                    .await
                    .unwrap();
                let ids: Vec<TaskId> = got.iter().map(|d| d.id).collect();
                if seen.len() % 2 == 0 {
                    q.ack_many(&ids).await.unwrap();
                } else {
                    for id in &ids {
                        q.ack(id).await.unwrap();
                    }
                }
                done.fetch_add(got.len(), Ordering::SeqCst);
                seen.extend(got);
            }
            seen
        }
    });
    let seen: Vec<Delivery> = join_all(consumers).await.into_iter().flatten().collect();
    assert_eq!(seen.len(), N, "no task delivered twice");
    let unique: BTreeSet<TaskId> = seen.iter().map(|d| d.id).collect();
    assert_eq!(unique.len(), N, "no task delivered twice");
    for d in &seen {
        assert_eq!(Some(&d.payload), expected.get(&d.id), "payload of {}", d.id);
        assert_eq!(d.deliveries, 1);
    }
    assert_eq!(depth(handles[0].as_ref()).await, (0, 0, 0));
    handles[0].delete().await.unwrap();
}

/// An acked task is never delivered again, even after the visibility
/// timeout; `ack` is idempotent.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn acked_task_is_never_redelivered(h: &dyn Harness) {
    let vt = Duration::from_millis(200);
    let q = open_one(h, config(200)).await;
    let done = q.enqueue(Bytes::from_static(b"done")).await.unwrap();
    let dropped = q.enqueue(Bytes::from_static(b"dropped")).await.unwrap();
    assert_eq!(recv(q.as_ref(), "a", 10).await.len(), 2);
    q.ack(&done).await.unwrap();
    q.ack(&done).await.unwrap();
    q.ack_many(&[done, done]).await.unwrap();
    h.sleep(vt * 2 + Duration::from_millis(100)).await;
    let got = recv(q.as_ref(), "b", 10).await;
    assert_eq!(
        got.iter().map(|d| (d.id, d.deliveries)).collect::<Vec<_>>(),
        vec![(dropped, 2)],
        "only the unacked task comes back"
    );
    q.ack(&dropped).await.unwrap();
    h.sleep(vt * 2 + Duration::from_millis(100)).await;
    assert!(recv(q.as_ref(), "c", 10).await.is_empty());
    assert_eq!(depth(q.as_ref()).await, (0, 0, 0));
    q.delete().await.unwrap();
}

/// A task whose consumer died is redelivered to another consumer after
/// the visibility timeout and not before, with `deliveries == 2`; the dead
/// consumer can no longer extend it.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn redelivers_after_visibility_timeout(h: &dyn Harness) {
    let vt = Duration::from_millis(400);
    let handles = h.open(config(400), 2).await;
    let (a, b) = (handles[0].as_ref(), handles[1].as_ref());
    let id = a.enqueue(Bytes::from_static(b"crashy")).await.unwrap();
    let start = h.now();
    let first = recv(a, "a", 1).await;
    assert_eq!((first[0].id, first[0].deliveries), (id, 1));
    assert!(recv(b, "b", 10).await.is_empty(), "held by a");
    h.sleep(vt / 2).await;
    if h.now() - start < vt - Duration::from_millis(100) {
        assert!(recv(b, "b", 10).await.is_empty(), "redelivered too early");
    }
    h.sleep((start + vt + Duration::from_millis(150)).saturating_sub(h.now()))
        .await;
    let again = recv(b, "b", 10).await;
    assert_eq!(again.len(), 1, "redelivered after the visibility timeout");
    assert_eq!(
        (again[0].id, again[0].deliveries, again[0].payload.as_ref()),
        (id, 2, &b"crashy"[..])
    );
    assert!(is_not_owner(a.extend("a", &id).await), "a lost it");
    b.extend("b", &id).await.unwrap();
    assert!(recv(a, "a", 10).await.is_empty(), "now held by b");
    b.ack(&id).await.unwrap();
    assert!(is_not_owner(b.extend("b", &id).await), "acked");
    assert_eq!(depth(a).await, (0, 0, 0));
    a.delete().await.unwrap();
}

/// Heartbeats keep a task that runs for 2.5 visibility timeouts from
/// being reclaimed; another consumer cannot extend it.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn extend_keeps_a_long_task(h: &dyn Harness) {
    let handles = h.open(config(600), 2).await;
    let (a, b) = (handles[0].as_ref(), handles[1].as_ref());
    let id = a.enqueue(Bytes::from_static(b"long")).await.unwrap();
    assert_eq!(recv(a, "a", 1).await.len(), 1);
    assert!(is_not_owner(b.extend("b", &id).await), "b does not hold it");
    for _ in 0..5 {
        h.sleep(Duration::from_millis(300)).await;
        a.extend("a", &id).await.unwrap();
        assert!(
            recv(b, "b", 10).await.is_empty(),
            "reclaimed while extended"
        );
    }
    a.ack(&id).await.unwrap();
    h.sleep(Duration::from_millis(700)).await;
    assert!(recv(b, "b", 10).await.is_empty());
    a.delete().await.unwrap();
}

/// After `max_deliveries` deliveries without an ack, a task moves to the
/// dead letters with its payload and is never delivered again.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn dead_letters_after_max_deliveries(h: &dyn Harness) {
    let vt = Duration::from_millis(200);
    let q = open_one(
        h,
        QueueConfig {
            max_deliveries: 2,
            ..config(200)
        },
    )
    .await;
    let payload = Bytes::from_static(b"poison \xff\x00 pill");
    let id = q.enqueue(payload.clone()).await.unwrap();
    assert_eq!(recv(q.as_ref(), "a", 1).await[0].deliveries, 1);
    h.sleep(vt + Duration::from_millis(100)).await;
    assert_eq!(recv(q.as_ref(), "b", 1).await[0].deliveries, 2);
    h.sleep(vt + Duration::from_millis(100)).await;
    assert!(
        recv(q.as_ref(), "c", 10).await.is_empty(),
        "dead, not delivered"
    );
    assert_eq!(
        q.dead_letters(10).await.unwrap(),
        vec![weir_queue::DeadLetter {
            id,
            payload,
            deliveries: 2
        }]
    );
    assert!(q.dead_letters(0).await.unwrap().is_empty());
    assert_eq!(depth(q.as_ref()).await, (0, 0, 1));
    assert!(is_not_owner(q.extend("b", &id).await));
    h.sleep(vt + Duration::from_millis(100)).await;
    assert!(recv(q.as_ref(), "c", 10).await.is_empty(), "never again");
    q.ack(&id).await.unwrap();
    assert_eq!(q.dead_letters(10).await.unwrap().len(), 1, "ack keeps it");
    q.delete().await.unwrap();
}

/// Payloads over `max_payload` are refused, batches all-or-nothing, and
/// the error does not quote the payload.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn refuses_oversized_payloads(h: &dyn Harness) {
    let q = open_one(
        h,
        QueueConfig {
            max_payload: 1024,
            ..config(30_000)
        },
    )
    .await;
    q.enqueue(Bytes::from(vec![7u8; 1024])).await.unwrap();
    let big = Bytes::from("SECRET".repeat(200));
    let e = q.enqueue(big.clone()).await.unwrap_err();
    assert!(
        matches!(
            e,
            QueueError::PayloadTooLarge {
                len: 1200,
                max: 1024
            }
        ),
        "{e:?}"
    );
    assert!(!format!("{e} {e:?}").contains("SECRET"));
    let e = q
        .enqueue_many(vec![Bytes::from_static(b"fine"), big])
        .await
        .unwrap_err();
    assert!(matches!(e, QueueError::PayloadTooLarge { .. }), "{e:?}");
    assert_eq!(depth(q.as_ref()).await, (1, 0, 0), "nothing of the batch");
    q.delete().await.unwrap();
}

/// A waiting `receive` returns as soon as a task arrives.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn receive_wakes_when_a_task_arrives(h: &dyn Harness) {
    let handles = h.open(config(30_000), 2).await;
    let (consumer, producer) = (handles[0].as_ref(), handles[1].as_ref());
    let start = h.now();
    let (got, id) = futures::join!(consumer.receive("c", 10, Duration::from_secs(5)), async {
        h.sleep(Duration::from_millis(200)).await;
        producer.enqueue(Bytes::from_static(b"wake")).await.unwrap()
    });
    let elapsed = h.now() - start;
    let got = got.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id, got[0].payload.as_ref()), (id, &b"wake"[..]));
    assert!(
        elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(3),
        "returned after {elapsed:?}"
    );
    consumer.delete().await.unwrap();
}

/// With nothing to deliver, `receive` returns empty after its wait (and at
/// once with a zero wait).
///
/// # Panics
///
/// On the first broken expectation.
pub async fn receive_returns_empty_after_the_wait(h: &dyn Harness) {
    let q = open_one(h, config(30_000)).await;
    let start = h.now();
    assert!(recv(q.as_ref(), "c", 10).await.is_empty());
    assert!(h.now() - start < Duration::from_secs(1), "zero wait");
    let start = h.now();
    let got = q
        .receive("c", 10, Duration::from_millis(300))
        .await
        .unwrap();
    let elapsed = h.now() - start;
    assert!(got.is_empty());
    assert!(
        elapsed >= Duration::from_millis(295) && elapsed < Duration::from_millis(2300),
        "returned after {elapsed:?}"
    );
    q.delete().await.unwrap();
}

/// `len` counts ready, pending and dead tasks through every transition.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn len_counts_ready_pending_and_dead(h: &dyn Harness) {
    let q = open_one(
        h,
        QueueConfig {
            max_deliveries: 1,
            ..config(200)
        },
    )
    .await;
    let q = q.as_ref();
    assert_eq!(depth(q).await, (0, 0, 0));
    q.enqueue_many(vec![Bytes::from_static(b"1"); 3])
        .await
        .unwrap();
    assert_eq!(depth(q).await, (3, 0, 0));
    let first = recv(q, "a", 1).await;
    assert_eq!(depth(q).await, (2, 1, 0));
    q.ack(&first[0].id).await.unwrap();
    assert_eq!(depth(q).await, (2, 0, 0));
    assert_eq!(recv(q, "a", 1).await.len(), 1);
    assert_eq!(depth(q).await, (1, 1, 0));
    h.sleep(Duration::from_millis(300)).await;
    // Reclaiming the held task dead-letters it (max 1 delivery); the last
    // ready one is delivered instead.
    assert_eq!(recv(q, "b", 1).await[0].deliveries, 1);
    assert_eq!(depth(q).await, (0, 1, 1));
    q.delete().await.unwrap();
}

/// `delete` removes tasks and dead letters; the handle then serves a new,
/// empty queue; old ids are acked as no-ops and cannot be extended.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn delete_removes_tasks_and_dead_letters(h: &dyn Harness) {
    let q = open_one(
        h,
        QueueConfig {
            max_deliveries: 1,
            ..config(200)
        },
    )
    .await;
    let q = q.as_ref();
    q.enqueue_many(vec![Bytes::from_static(b"old"); 3])
        .await
        .unwrap();
    let held = recv(q, "a", 1).await;
    h.sleep(Duration::from_millis(300)).await;
    let held = [held, recv(q, "a", 1).await].concat();
    assert_eq!(depth(q).await, (1, 1, 1));
    q.delete().await.unwrap();
    assert_eq!(depth(q).await, (0, 0, 0));
    assert!(q.dead_letters(10).await.unwrap().is_empty());
    for d in &held {
        assert!(is_not_owner(q.extend("a", &d.id).await));
        q.ack(&d.id).await.unwrap();
    }
    q.delete().await.unwrap();
    let id = q.enqueue(Bytes::from_static(b"new")).await.unwrap();
    let got = recv(q, "a", 10).await;
    assert_eq!(
        got.iter()
            .map(|d| (d.id, d.payload.as_ref(), d.deliveries))
            .collect::<Vec<_>>(),
        vec![(id, &b"new"[..], 1)]
    );
    q.delete().await.unwrap();
}

/// Malformed arguments are refused as `InvalidArgument`, not sent on.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn invalid_arguments_are_refused(h: &dyn Harness) {
    let q = open_one(h, config(30_000)).await;
    let id = q.enqueue(Bytes::from_static(b"x")).await.unwrap();
    let invalid = |r: Result<(), QueueError>| matches!(r, Err(QueueError::InvalidArgument { .. }));
    assert!(invalid(q.receive("", 1, Duration::ZERO).await.map(drop)));
    assert!(invalid(
        q.receive("a\nb", 1, Duration::ZERO).await.map(drop)
    ));
    assert!(invalid(q.extend("", &id).await));
    let c = h.coordination().await;
    let key = unique("invalid");
    let ttl = Duration::from_secs(1);
    assert!(invalid(c.leases.acquire("", "a", ttl).await.map(drop)));
    assert!(invalid(c.leases.acquire(&key, "", ttl).await.map(drop)));
    assert!(invalid(
        c.leases.acquire(&key, "a", Duration::ZERO).await.map(drop)
    ));
    assert!(invalid(c.once.first(&key, Duration::ZERO).await.map(drop)));
    assert!(invalid(c.fences.advance("", 1, ttl).await.map(drop)));
    assert_eq!(depth(q.as_ref()).await, (1, 0, 0));
    q.delete().await.unwrap();
}
