//! Stage tokens of tasks that arrive together, verified together.
//!
//! A worker handles each delivery in its own task. Instead of checking its
//! token's Ed25519 signature alone, each asks the [`TokenBatcher`], whose one
//! task takes every request waiting at that moment (up to [`MAX_BATCH`]) and
//! verifies them with [`StageVerifier::verify_batch`]: about half the CPU per
//! token when tasks arrive in bursts, as they do when a worker drains a
//! queue. A lone request is verified alone, so an idle worker adds only a
//! channel hop to a task's latency.
//!
//! # Guarantees
//!
//! - Every token gets exactly the answer `StageVerifier::verify` would give
//!   (see `verify_batch`): a bad token fails alone.
//! - Each batch is verified with the verifier current when it is taken, so
//!   reloaded keys apply from the next batch on.
//! - Tokens are never logged; a request holds its token only until its batch
//!   is verified.

use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};
use weir_auth::{Clock, StageClaims, StageVerifier, SystemClock};

use crate::error::{Error, Result};

/// Most tokens verified in one batch. ed25519-dalek's batch equation gains
/// little beyond 64 (measured: 42,800 tokens/s at 16, 44,500 at 64).
pub(crate) const MAX_BATCH: usize = 64;

/// The verifier a worker holds, replaced when keys are reloaded.
pub(crate) type SharedVerifier = Arc<RwLock<Arc<StageVerifier>>>;

struct Request {
    token: String,
    reply: oneshot::Sender<weir_auth::Result<StageClaims>>,
}

/// Hands tokens to the batching task and waits for their answers.
pub(crate) struct TokenBatcher {
    requests: mpsc::Sender<Request>,
}

impl TokenBatcher {
    /// Starts the batching task on the current runtime; it ends when the
    /// batcher is dropped.
    pub(crate) fn start(verifier: SharedVerifier) -> Self {
        let (requests, rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(serve(rx, verifier));
        Self { requests }
    }

    /// Verifies `token` (with others waiting at the same time).
    ///
    /// # Errors
    /// [`Error::Security`] if the token is refused; [`Error::Internal`] if
    /// the batching task is gone.
    pub(crate) async fn verify(&self, token: &str) -> Result<StageClaims> {
        let gone = || Error::Internal {
            message: "the token verification task stopped".into(),
        };
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request {
                token: token.to_owned(),
                reply,
            })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?.map_err(Error::security)
    }
}

async fn serve(mut rx: mpsc::Receiver<Request>, verifier: SharedVerifier) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let results = match current(&verifier) {
            Some(v) => {
                let tokens: Vec<&str> = batch.iter().map(|r| r.token.as_str()).collect();
                v.verify_batch(&tokens, SystemClock.now())
            }
            None => batch
                .iter()
                .map(|_| {
                    Err(weir_auth::Error::Internal {
                        reason: "verifier lock poisoned",
                    })
                })
                .collect(),
        };
        for (request, result) in batch.drain(..).zip(results) {
            // The asking task may have been cancelled; nothing to do then.
            let _ = request.reply.send(result);
        }
    }
}

fn current(verifier: &SharedVerifier) -> Option<Arc<StageVerifier>> {
    verifier.read().ok().map(|v| Arc::clone(&v))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use weir_auth::{
        Action, ActionSet, DEFAULT_MAX_LIFETIME, MintRequest, Minter, PathKind, Scope, ScopeEntry,
        ScopePath, StageKeySet,
    };

    use super::*;

    fn minter(state: &std::path::Path) -> Minter {
        let keys = StageKeySet::open(state, SystemClock.now()).unwrap();
        Minter::new(keys, "weir", "weir-worker", DEFAULT_MAX_LIFETIME).unwrap()
    }

    fn mint(minter: &Minter, stage: &str) -> String {
        let entry = ScopeEntry {
            store: "lake".into(),
            path: ScopePath::parse("raw/train").unwrap(),
            kind: PathKind::Prefix,
            actions: ActionSet::empty().with(Action::Read),
            columns: None,
        };
        let request = MintRequest {
            principal: "svc".into(),
            run: "run".into(),
            stage: stage.into(),
            attempt: 1,
            scope: Scope::new(vec![entry]).unwrap(),
            ttl: Duration::from_secs(600),
        };
        minter.mint(request).unwrap().token.expose().to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_each_get_their_own_answer() {
        let state = tempfile::tempdir().unwrap();
        let minter = minter(state.path());
        let verifier: SharedVerifier =
            Arc::new(RwLock::new(Arc::new(minter.verifier().without_cache())));
        let batcher = Arc::new(TokenBatcher::start(verifier));
        let mut tasks = Vec::new();
        for n in 0..200 {
            let token = if n % 7 == 3 {
                format!("{}x", mint(&minter, &format!("s{n}")))
            } else {
                mint(&minter, &format!("s{n}"))
            };
            let batcher = batcher.clone();
            tasks.push(tokio::spawn(
                async move { (n, batcher.verify(&token).await) },
            ));
        }
        for task in tasks {
            let (n, result) = task.await.unwrap();
            if n % 7 == 3 {
                assert!(result.is_err(), "tampered token {n} accepted");
            } else {
                assert_eq!(result.unwrap().stage, format!("s{n}"));
            }
        }
    }

    #[tokio::test]
    async fn reloaded_keys_apply_to_later_batches() {
        let old_state = tempfile::tempdir().unwrap();
        let new_state = tempfile::tempdir().unwrap();
        let (old, new) = (minter(old_state.path()), minter(new_state.path()));
        let verifier: SharedVerifier = Arc::new(RwLock::new(Arc::new(old.verifier())));
        let batcher = TokenBatcher::start(verifier.clone());
        let token = mint(&new, "later");
        assert!(batcher.verify(&token).await.is_err());
        *verifier.write().unwrap() = Arc::new(new.verifier());
        assert_eq!(batcher.verify(&token).await.unwrap().stage, "later");
    }
}
