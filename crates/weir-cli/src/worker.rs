//! `weir worker`: run stages dispatched through a Redis queue.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use weir_audit::Origin;
use weir_engine::Broker;
use weir_engine::audit::host_name;
use weir_engine::distributed::{PipelineOperator, RedisBroker, Worker, WorkerConfig};
use weir_engine::queue::QueueConfig;

use crate::storage::Storage;

/// Checks a queue URL and returns it; never echoes a password.
pub(crate) fn check_queue_url(url: &str) -> anyhow::Result<&str> {
    anyhow::ensure!(
        url.starts_with("redis://") || url.starts_with("rediss://"),
        "--queue must be a redis:// or rediss:// URL (for example redis://127.0.0.1:6379)"
    );
    Ok(url)
}

/// Connects to the queue named by `url`.
pub(crate) async fn connect(url: &str) -> anyhow::Result<Arc<dyn Broker>> {
    connect_with(url, QueueConfig::default()).await
}

async fn connect_with(url: &str, config: QueueConfig) -> anyhow::Result<Arc<dyn Broker>> {
    let broker = RedisBroker::connect(check_queue_url(url)?, config)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the task queue: {e}"))?;
    Ok(Arc::new(broker))
}

/// `weir worker`.
pub(crate) fn worker(
    queue: &str,
    concurrency: usize,
    visibility_timeout: Duration,
    storage: &Storage,
) -> anyhow::Result<ExitCode> {
    let state_dir = storage.dir();
    anyhow::ensure!(concurrency >= 1, "--concurrency must be at least 1");
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let queue_config = QueueConfig {
            visibility_timeout,
            ..QueueConfig::default()
        };
        let broker = connect_with(queue, queue_config).await?;
        let host = host_name();
        let audit = storage.audit(Origin::Worker { host: host.clone() }).await?;
        let consumer = format!("{host}-{}", std::process::id());
        let config = WorkerConfig {
            consumer: consumer.clone(),
            concurrency,
            state_dir: state_dir.to_path_buf(),
            partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
            poll: Duration::from_secs(1),
            heartbeat: visibility_timeout / 3,
        };
        let operator = Arc::new(PipelineOperator::new(
            state_dir,
            config.partitions,
            audit.clone(),
            broker.clone(),
        ));
        let worker = Arc::new(Worker::new(broker, audit, config, operator).map_err(|e| {
            anyhow::anyhow!(
                "{e}\nhint: a worker needs the coordinator's public stage keys and HMAC keys in {}; \
                 run `weir keys rotate --hmac` (or any `weir run --queue`) on the coordinator first",
                state_dir.display()
            )
        })?);
        let stop = CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            eprintln!("stopping: finishing running stages");
            on_signal.cancel();
        });
        eprintln!("worker {consumer}: waiting for tasks (concurrency {concurrency})");
        worker.run(stop).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
