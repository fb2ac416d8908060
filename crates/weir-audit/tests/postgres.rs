//! The conformance suite against [`PostgresSink`], when
//! `WEIR_TEST_POSTGRES_URL` is set (CI sets it); otherwise each test prints
//! a loud SKIPPED line and passes.
//!
//! Every test gets its own schema, so tests run in parallel without
//! colliding; the schema is dropped at the end.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use weir_audit::{AuditSink, ChainId, CheckpointSigner, PostgresSink, SinkConfig, VerifyingKey};
use weir_testkit::audit::{self as conformance, Harness, Tamper};

const ENV: &str = "WEIR_TEST_POSTGRES_URL";

struct PgHarness {
    url: String,
    schema: String,
    raw: PgPool,
    signer: Arc<CheckpointSigner>,
}

impl PgHarness {
    async fn new() -> Option<Self> {
        let Ok(url) = std::env::var(ENV) else {
            eprintln!(
                "SKIPPED: set {ENV} (e.g. postgres://postgres@127.0.0.1:5432/test) to run the PostgreSQL audit tests"
            );
            return None;
        };
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!(
            "weir_audit_t_{}_{}_{}",
            std::process::id(),
            nanos,
            N.fetch_add(1, Ordering::SeqCst)
        );
        let options = PgConnectOptions::from_str(&url)
            .unwrap()
            .options([("search_path", schema.as_str())]);
        let raw = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        Some(Self {
            url,
            schema,
            raw,
            signer: Arc::new(CheckpointSigner::generate().unwrap()),
        })
    }

    async fn cleanup(self) {
        // Test-only DDL on a name this harness generated (digits and '_').
        // Dropped sinks may still be signing their final checkpoint: retry.
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        for attempt in 0.. {
            match sqlx::raw_sql(sqlx::AssertSqlSafe(drop.clone()))
                .execute(&self.raw)
                .await
            {
                Ok(_) => break,
                Err(e) if attempt < 10 => {
                    eprintln!("cleanup retry: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot drop test schema {}: {e}", self.schema),
            }
        }
        self.raw.close().await;
    }

    async fn drop_triggers(&self) {
        sqlx::raw_sql(
            "DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events;
             DROP TRIGGER IF EXISTS audit_checkpoints_append_only ON audit_checkpoints;",
        )
        .execute(&self.raw)
        .await
        .unwrap();
    }
}

#[async_trait]
impl Harness for PgHarness {
    async fn open(&self, chain: &ChainId) -> Box<dyn AuditSink> {
        let config = SinkConfig::new(chain.clone(), Arc::clone(&self.signer));
        Box::new(
            PostgresSink::connect(&self.url, Some(&self.schema), config)
                .await
                .unwrap(),
        )
    }

    fn verifying_key(&self) -> VerifyingKey {
        self.signer.verifying_key()
    }

    async fn tamper(&self, tamper: Tamper) {
        self.drop_triggers().await;
        let seq = |s: u64| i64::try_from(s).unwrap();
        let db = &self.raw;
        match tamper {
            Tamper::SetActor {
                chain,
                seq: s,
                actor,
            } => {
                sqlx::query("UPDATE audit_events SET actor = $1 WHERE chain = $2 AND seq = $3")
                    .bind(actor)
                    .bind(chain.as_str())
                    .bind(seq(s))
                    .execute(db)
                    .await
                    .unwrap();
            }
            Tamper::Delete { chain, seq: s } => {
                sqlx::query("DELETE FROM audit_events WHERE chain = $1 AND seq = $2")
                    .bind(chain.as_str())
                    .bind(seq(s))
                    .execute(db)
                    .await
                    .unwrap();
            }
            Tamper::Swap { chain, a, b } => {
                for (from, to) in [(seq(a), -1), (seq(b), seq(a)), (-1, seq(b))] {
                    sqlx::query("UPDATE audit_events SET seq = $1 WHERE chain = $2 AND seq = $3")
                        .bind(to)
                        .bind(chain.as_str())
                        .bind(from)
                        .execute(db)
                        .await
                        .unwrap();
                }
            }
            Tamper::Replace { event: e } => {
                sqlx::query(
                    "UPDATE audit_events SET time_us = $1, actor = $2, run = $3, stage = $4, \
                     attempt = $5, action = $6, store = $7, path = $8, decision = $9, reason = $10, \
                     token_id_hmac = $11, origin = $12, prev_hash = $13, hash = $14 \
                     WHERE chain = $15 AND seq = $16",
                )
                .bind(e.time.timestamp_micros())
                .bind(&e.actor)
                .bind(&e.run)
                .bind(&e.stage)
                .bind(e.attempt.map(i64::from))
                .bind(e.action.as_str())
                .bind(&e.store)
                .bind(&e.path)
                .bind(e.decision.as_str())
                .bind(&e.reason)
                .bind(e.token_id_hmac.as_ref().map(|t| t.as_str().to_owned()))
                .bind(e.origin.encode().into_owned())
                .bind(e.prev_hash.to_hex())
                .bind(e.hash.to_hex())
                .bind(e.chain.as_str())
                .bind(seq(e.seq))
                .execute(db)
                .await
                .unwrap();
            }
            Tamper::InsertCheckpoint { checkpoint: cp } => {
                let sig: String = cp.signature.iter().map(|b| format!("{b:02x}")).collect();
                sqlx::query(
                    "INSERT INTO audit_checkpoints (chain, seq, hash, time_us, signature) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(cp.chain.as_str())
                .bind(seq(cp.seq))
                .bind(cp.hash.to_hex())
                .bind(cp.time.timestamp_micros())
                .bind(sig)
                .execute(db)
                .await
                .unwrap();
            }
        }
    }

    async fn raw_update_refused(&self, chain: &ChainId, seq: u64) -> bool {
        let update =
            sqlx::query("UPDATE audit_events SET actor = 'x' WHERE chain = $1 AND seq = $2")
                .bind(chain.as_str())
                .bind(i64::try_from(seq).unwrap())
                .execute(&self.raw)
                .await;
        let truncate = sqlx::raw_sql("TRUNCATE audit_events")
            .execute(&self.raw)
            .await;
        update.is_err() && truncate.is_err()
    }
}

macro_rules! pg_test {
    ($name:ident, $suite:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(h) = PgHarness::new().await else {
                return;
            };
            $suite(&h).await;
            h.cleanup().await;
        }
    };
}

pg_test!(postgres_append_only, conformance::append_only);
pg_test!(
    postgres_gapless_under_concurrency,
    conformance::gapless_under_concurrency
);
pg_test!(
    postgres_durable_after_append,
    conformance::durable_after_append
);
pg_test!(postgres_tampering_detected, conformance::tampering_detected);
pg_test!(postgres_no_secrets_stored, conformance::no_secrets_stored);
pg_test!(postgres_query_filters, conformance::query_filters);

#[tokio::test]
async fn postgres_url_is_never_echoed() {
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let config = SinkConfig::new(ChainId::parse("x").unwrap(), signer);
    let url = "postgres://user:hunter2@[not-a-host";
    let err = PostgresSink::connect(url, None, config.clone())
        .await
        .err()
        .unwrap();
    assert!(!format!("{err} {err:?}").contains("hunter2"));
    let err = PostgresSink::connect("postgres://h/db", Some("x; DROP"), config)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, weir_audit::Error::InvalidConfig { .. }));
}
