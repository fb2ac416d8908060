//! The decision is recorded before the call is delegated, even when the
//! sink is slow: a probe store under the guard checks, on every call it
//! receives, that the sink already holds an allowed decision for it.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use weir_auth::{FixedClock, StageClaims, TokenType};
use weir_policy::{AccessDecision, DecisionSink, GuardedStore, InMemoryDecisionSink, SinkError};
use weir_testkit::{decisions, fixture, hostile};

const NOW: i64 = 1_800_000_000;

/// Sleeps before recording, so a guard that did not await the sink would
/// reach the wrapped store before the decision lands.
#[derive(Debug, Default)]
struct SlowSink {
    recorded: InMemoryDecisionSink,
}

#[async_trait]
impl DecisionSink for SlowSink {
    async fn record(&self, decision: &AccessDecision<'_>) -> Result<(), SinkError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.recorded.record(decision).await
    }
}

/// The store under the guard. Every call it receives must find, as the
/// sink's latest decision, an allowed one naming the path it is asked
/// about; any other call is kept as a miss.
#[derive(Debug)]
struct Probe {
    inner: Arc<dyn ObjectStore>,
    sink: Arc<SlowSink>,
    calls: Mutex<Vec<String>>,
    misses: Arc<Mutex<Vec<String>>>,
}

impl Probe {
    fn new(inner: Arc<dyn ObjectStore>, sink: Arc<SlowSink>) -> Self {
        Self {
            inner,
            sink,
            calls: Mutex::new(Vec::new()),
            misses: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn check(&self, what: &str, path: &str) {
        self.calls.lock().unwrap().push(format!("{what} {path}"));
        check(&self.sink, &self.misses, what, path);
    }

    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    fn misses(&self) -> Vec<String> {
        self.misses.lock().unwrap().clone()
    }
}

fn check(sink: &SlowSink, misses: &Mutex<Vec<String>>, what: &str, path: &str) {
    let last = sink.recorded.decisions().pop();
    let ok = last
        .as_ref()
        .is_some_and(|d| d.allowed && (d.path == path || d.source.as_deref() == Some(path)));
    if !ok {
        misses.lock().unwrap().push(format!(
            "{what} {path:?} reached the store; last decision: {last:?}"
        ));
    }
}

fn prefix_str(prefix: Option<&Path>) -> &str {
    prefix.map_or("", |p| p.as_ref())
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Probe({})", self.inner)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for Probe {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check("put_opts", location.as_ref());
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check("put_multipart_opts", location.as_ref());
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.check("get_opts", location.as_ref());
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.check("get_ranges", location.as_ref());
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.calls.lock().unwrap().push("delete_stream".into());
        let sink = Arc::clone(&self.sink);
        let misses = Arc::clone(&self.misses);
        let checked = locations
            .inspect(move |item| {
                if let Ok(path) = item {
                    check(&sink, &misses, "delete_stream", path.as_ref());
                }
            })
            .boxed();
        self.inner.delete_stream(checked)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.check("list", prefix_str(prefix));
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.check("list_with_offset", prefix_str(prefix));
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.check("list_with_delimiter", prefix_str(prefix));
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.check("copy_opts", to.as_ref());
        self.check("copy_opts source", from.as_ref());
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.check("rename_opts", to.as_ref());
        self.check("rename_opts source", from.as_ref());
        self.inner.rename_opts(from, to, options).await
    }
}

fn claims() -> StageClaims {
    StageClaims {
        iss: "weir".into(),
        aud: "weir-worker".into(),
        sub: "svc-train".into(),
        run: "01JRUN".into(),
        stage: "prepare".into(),
        attempt: 1,
        scope: fixture::stage_scope(),
        iat: NOW,
        nbf: NOW,
        exp: NOW + 600,
        jti: "01JTOKENID".into(),
        typ: TokenType::Stage,
    }
}

async fn setup() -> (GuardedStore, Arc<Probe>, Arc<SlowSink>) {
    let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    fixture::seed(raw.as_ref()).await;
    let sink = Arc::new(SlowSink::default());
    let probe = Arc::new(Probe::new(raw, Arc::clone(&sink)));
    let guarded = GuardedStore::new(
        Arc::clone(&probe) as Arc<dyn ObjectStore>,
        fixture::STORE,
        &claims(),
        Arc::new(FixedClock::new(NOW)),
        Arc::clone(&sink) as Arc<dyn DecisionSink>,
    );
    (guarded, probe, sink)
}

#[tokio::test]
async fn slow_sink_holds_every_decision_before_the_store_is_called() {
    let (guarded, probe, sink) = setup().await;
    let count = Arc::clone(&sink);
    decisions::exactly_one_decision_per_call(&guarded, &move || count.recorded.len()).await;
    assert_eq!(probe.misses(), Vec::<String>::new());
    // Every kind of call reached the store at least once: the probe saw
    // something to check.
    let calls = probe.calls.lock().unwrap().clone();
    for kind in [
        "put_opts",
        "put_multipart_opts",
        "get_opts",
        "get_ranges",
        "delete_stream",
        "list ",
        "list_with_offset",
        "list_with_delimiter",
        "copy_opts",
        "rename_opts",
    ] {
        assert!(
            calls.iter().any(|c| c.starts_with(kind)),
            "{kind} never reached the store: {calls:?}"
        );
    }
}

#[tokio::test]
async fn list_stream_records_when_polled_not_when_built() {
    let (guarded, probe, sink) = setup().await;
    let listing = guarded.list(Some(&Path::from("raw/train")));
    assert!(sink.recorded.is_empty(), "recorded before the stream ran");
    assert_eq!(probe.calls(), 0, "the store was asked before the decision");
    let items: Vec<_> = listing.collect().await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!((sink.recorded.len(), probe.calls()), (1, 1));
    assert_eq!(probe.misses(), Vec::<String>::new());
}

#[tokio::test]
async fn failing_sink_never_reaches_the_store() {
    let (guarded, probe, sink) = setup().await;
    sink.recorded.set_failing(true);
    hostile::assert_denied(
        "get",
        guarded.get(&Path::from(fixture::TRAIN_FILES[0])).await,
    );
    hostile::assert_denied(
        "put",
        guarded
            .put(&Path::from("out/model/x"), PutPayload::from_static(b"x"))
            .await,
    );
    hostile::assert_denied(
        "list_with_delimiter",
        guarded.list_with_delimiter(None).await,
    );
    let listed: Vec<_> = guarded.list(None).collect().await;
    assert_eq!(listed.len(), 1);
    for item in listed {
        hostile::assert_denied("list", item);
    }
    let deletes: Vec<_> = guarded
        .delete_stream(futures::stream::iter([Ok(Path::from(fixture::OUTPUT_FILE))]).boxed())
        .collect()
        .await;
    for item in deletes {
        hostile::assert_denied("delete_stream", item);
    }
    let calls = probe.calls.lock().unwrap().clone();
    assert!(
        calls.iter().all(|c| c == "delete_stream"),
        "a call reached the store although its decision was not recorded: {calls:?}"
    );
    assert_eq!(probe.misses(), Vec::<String>::new());
}
