//! The conformance suite against [`RedisQueue`] and [`RedisCoordination`]
//! when `WEIR_TEST_REDIS_URL` is set (`.ci/run` sets it); otherwise each
//! test prints a loud SKIPPED line and passes. Then Redis-specific
//! properties: the key layout, reconnection after Redis drops every
//! connection, bounded failures, and blocking reads that do not stall
//! other calls.
//!
//! Every queue gets a fresh ulid name and every coordination key a unique
//! suffix, so tests run in parallel and re-run without cleanup.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use redis::Value;
use weir_queue::{
    InProcessQueue, LeaseOutcome, Leases, QueueConfig, QueueError, REDIS_TIMEOUT,
    RedisCoordination, RedisQueue, Result, WorkQueue,
};
use weir_testkit::queue::{self as conformance, Coordination, Harness};

const ENV: &str = "WEIR_TEST_REDIS_URL";

fn redis_url() -> Option<String> {
    let url = std::env::var(ENV).ok();
    if url.is_none() {
        eprintln!(
            "SKIPPED: set {ENV} (e.g. redis://127.0.0.1:6379/) to run the Redis queue tests; .ci/run sets it"
        );
    }
    url
}

fn fresh_name() -> String {
    format!("test-{}", ulid::Ulid::new())
}

struct RedisHarness {
    url: String,
    start: Instant,
}

impl RedisHarness {
    fn new() -> Option<Self> {
        Some(Self {
            url: redis_url()?,
            start: Instant::now(),
        })
    }
}

#[async_trait]
impl Harness for RedisHarness {
    async fn open(&self, config: QueueConfig, handles: usize) -> Vec<Arc<dyn WorkQueue>> {
        let name = fresh_name();
        let mut out: Vec<Arc<dyn WorkQueue>> = Vec::new();
        for _ in 0..handles {
            let queue = RedisQueue::connect(&self.url, &name, config.clone())
                .await
                .unwrap();
            out.push(Arc::new(queue));
        }
        out
    }

    async fn coordination(&self) -> Coordination {
        let c = RedisCoordination::connect(&self.url).await.unwrap();
        Coordination {
            leases: Arc::new(c.clone()),
            once: Arc::new(c.clone()),
            fences: Arc::new(c),
        }
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

macro_rules! suite {
    ($($property:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $property() {
            let Some(h) = RedisHarness::new() else { return };
            conformance::$property(&h).await;
        }
    )*};
}

suite!(
    delivers_payloads_byte_exact_in_order,
    each_task_goes_to_exactly_one_consumer,
    acked_task_is_never_redelivered,
    redelivers_after_visibility_timeout,
    extend_keeps_a_long_task,
    dead_letters_after_max_deliveries,
    refuses_oversized_payloads,
    receive_wakes_when_a_task_arrives,
    receive_returns_empty_after_the_wait,
    len_counts_ready_pending_and_dead,
    delete_removes_tasks_and_dead_letters,
    invalid_arguments_are_refused,
    lease_is_exclusive,
    lease_renew_and_release_only_by_holder,
    lease_expires_unless_renewed,
    once_set_is_true_once,
    fences_only_move_up,
);

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Other services (dashboards, the other engineers' code) find the queue
/// by the documented key names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_the_documented_layout() {
    let Some(url) = redis_url() else { return };
    let name = fresh_name();
    let config = QueueConfig {
        visibility_timeout: Duration::from_millis(50),
        max_deliveries: 1,
        ..QueueConfig::default()
    };
    let q = RedisQueue::connect(&url, &name, config).await.unwrap();
    let id = q.enqueue(Bytes::from_static(b"payload")).await.unwrap();
    let mut conn = raw(&url).await;
    let stream = format!("weir:q:{name}");
    let kind: String = redis::cmd("TYPE")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kind, "stream");
    let entries: Value = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let text = format!("{entries:?}");
    assert!(text.contains(&id.to_string()), "{text}");
    let groups: Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(format!("{groups:?}").contains("weir"), "{groups:?}");

    q.receive("a", 1, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(q.receive("a", 1, Duration::ZERO).await.unwrap().is_empty());
    let dead: usize = redis::cmd("XLEN")
        .arg(format!("{stream}:dead"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead, 1);

    let c = RedisCoordination::connect(&url).await.unwrap();
    let key = format!("layout/{}", ulid::Ulid::new());
    c.acquire(&key, "alice", Duration::from_secs(5))
        .await
        .unwrap();
    let holder: String = redis::cmd("GET")
        .arg(format!("weir:lease:{key}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(holder, "alice");
    q.delete().await.unwrap();
    let left: usize = redis::cmd("EXISTS")
        .arg(&stream)
        .arg(format!("{stream}:dead"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "delete removes both streams");
}

/// A blocking receive holds its own connection: calls on the same handle
/// meanwhile answer at once instead of queueing behind the `XREADGROUP`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_receive_does_not_delay_other_calls() {
    let Some(url) = redis_url() else { return };
    let q = RedisQueue::connect(&url, &fresh_name(), QueueConfig::default())
        .await
        .unwrap();
    let started = Instant::now();
    let (blocked, others) = tokio::join!(q.receive("waiter", 1, Duration::from_secs(2)), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = Instant::now();
        for _ in 0..20 {
            q.len().await.unwrap();
            q.dead_letters(1).await.unwrap();
        }
        t.elapsed()
    });
    assert!(blocked.unwrap().is_empty());
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        others < Duration::from_secs(1),
        "40 calls took {others:?} while a receive was blocked"
    );
    q.delete().await.unwrap();
}

/// Retries `op` while it fails transiently (the call that meets a dropped
/// connection may fail; the next one reconnects).
async fn eventually<T, F, Fut>(what: &str, op: F) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    for _ in 0..3 {
        match op().await {
            Ok(v) => return v,
            Err(e) if e.is_transient() => eprintln!("{what}: transient {e}; again"),
            Err(e) => panic!("{what}: {e:?}"),
        }
    }
    panic!("{what}: still failing after reconnecting")
}

/// Kills every connection the queue and the coordination handle hold
/// (what `CLIENT KILL TYPE normal` does to them, or a Redis restart),
/// then checks they keep working. To leave the connections of tests
/// running in parallel alone, this test's handles use database 11 and
/// only clients on that database are killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_working_after_redis_drops_every_connection() {
    let Some(url) = redis_url() else { return };
    let mut db11 = url::Url::parse(&url).unwrap();
    db11.set_path("/11");
    let db11 = db11.to_string();
    let name = fresh_name();
    let q = RedisQueue::connect(&db11, &name, QueueConfig::default())
        .await
        .unwrap();
    let c = RedisCoordination::connect(&db11).await.unwrap();
    let before = q.enqueue(Bytes::from_static(b"before")).await.unwrap();
    // Leaves a pooled connection for blocking reads, to be killed too.
    let got = q.receive("w", 1, Duration::from_millis(100)).await.unwrap();
    q.ack(&got[0].id).await.unwrap();
    assert!(
        q.receive("w", 1, Duration::from_millis(100))
            .await
            .unwrap()
            .is_empty()
    );
    let before_2 = q.enqueue(Bytes::from_static(b"kept")).await.unwrap();
    assert_ne!(before, before_2);

    let mut admin = raw(&url).await;
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("normal")
        .query_async(&mut admin)
        .await
        .unwrap();
    let ids: Vec<&str> = clients
        .lines()
        .filter(|l| l.split(' ').any(|f| f == "db=11"))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .collect();
    assert!(
        ids.len() >= 3,
        "queue, blocking reader, coordination: {ids:?}"
    );
    for id in &ids {
        let _: Value = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(*id)
            .query_async(&mut admin)
            .await
            .unwrap();
    }

    // The shared connection reconnects on its own (RESP3 reports the
    // drop), so a call that comes a moment later does not fail at all.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let extra = q.enqueue(Bytes::from_static(b"extra")).await.unwrap();
    q.ack(&extra).await.unwrap();
    let got = eventually("receive", || q.receive("w", 10, Duration::from_millis(100))).await;
    assert_eq!(
        got.iter()
            .map(|d| (d.id, d.payload.clone()))
            .collect::<Vec<_>>(),
        vec![(before_2, Bytes::from_static(b"kept"))],
        "the task enqueued before the drop survives"
    );
    eventually("ack", || q.ack(&before_2)).await;
    let id = eventually("enqueue", || q.enqueue(Bytes::from_static(b"after"))).await;
    let (got, _) = tokio::join!(
        eventually("blocking receive", || q.receive(
            "w",
            1,
            Duration::from_secs(2)
        )),
        async {}
    );
    assert_eq!(got[0].id, id);
    eventually("ack", || q.ack(&id)).await;
    let depth = eventually("len", || q.len()).await;
    assert_eq!((depth.ready, depth.pending), (0, 0));
    let key = format!("reconnect/{}", ulid::Ulid::new());
    assert_eq!(
        eventually("lease", || c.acquire(&key, "alice", Duration::from_secs(5))).await,
        LeaseOutcome::Acquired
    );
    q.delete().await.unwrap();
}

/// With nothing listening, connecting fails fast with a transient error;
/// a server that accepts but never answers makes calls time out within
/// [`REDIS_TIMEOUT`] instead of hanging. Needs no Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_fails_within_the_time_limit() {
    let started = Instant::now();
    let e = RedisQueue::connect("redis://127.0.0.1:1/", "q", QueueConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(e, QueueError::Unavailable { .. }), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let e = RedisCoordination::connect("redis://127.0.0.1:1/")
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e:?}");

    // A black hole: accepts connections, reads, never replies.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hole = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("redis://{addr}/");
    let started = Instant::now();
    let e = RedisQueue::connect(&url, "q", QueueConfig::default())
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(e.is_transient(), "{e:?}");
    assert!(
        took >= Duration::from_secs(1) && took <= REDIS_TIMEOUT + Duration::from_secs(1),
        "took {took:?}"
    );
    hole.abort();
}

/// Neither a malformed URL nor a refused password is quoted in errors or
/// `Debug` output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_appear_in_errors() {
    let e = RedisQueue::connect("redis://:hunter2@[bad/", "q", QueueConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(e, QueueError::InvalidArgument { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains("hunter2"));

    let Some(url) = redis_url() else { return };
    let mut wrong = url::Url::parse(&url).unwrap();
    wrong.set_username("nobody-here").unwrap();
    wrong.set_password(Some("hunter2")).unwrap();
    let e = RedisQueue::connect(wrong.as_str(), "q", QueueConfig::default())
        .await
        .unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("hunter2"), "{shown}");

    let q = RedisQueue::connect(&url, &fresh_name(), QueueConfig::default())
        .await
        .unwrap();
    assert!(!format!("{q:?}").contains("redis://"), "{q:?}");
    q.delete().await.unwrap();
}

/// Names that could collide with another queue's keys are refused before
/// connecting.
#[tokio::test]
async fn queue_names_that_could_collide_are_refused() {
    for name in ["", "jobs:dead", "a b", "x".repeat(129).as_str()] {
        let e = RedisQueue::connect("redis://127.0.0.1:1/", name, QueueConfig::default())
            .await
            .unwrap_err();
        assert!(
            matches!(e, QueueError::InvalidArgument { .. }),
            "{name}: {e:?}"
        );
    }
    // Same check for configurations, on both backends.
    let bad = QueueConfig {
        max_deliveries: 0,
        ..QueueConfig::default()
    };
    assert!(InProcessQueue::new(bad.clone()).is_err());
    assert!(
        RedisQueue::connect("redis://127.0.0.1:1/", "q", bad)
            .await
            .is_err()
    );
}
