//! `weir keys`: the signing keys in the state directory (stage tokens, and
//! with flags task envelopes and API tokens).

use std::process::ExitCode;

use weir_audit::Origin;
use weir_auth::StageKeySet;
use weir_auth::envelope::HmacKeySet;

use crate::storage::Storage;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum KeysCommand {
    /// Make a new active signing key. Old public keys stay trusted until every
    /// token they signed has expired.
    Rotate {
        /// Rotate the HMAC key that signs task envelopes instead. The old key
        /// still verifies for the longest time a task can wait (the longest
        /// token lifetime); workers pick up the new key without restarting.
        #[arg(long, conflicts_with = "api")]
        hmac: bool,
        /// Rotate the HS256 key that signs weir's API tokens instead. Tokens
        /// signed by the old key stay valid until they expire; a running
        /// `weir serve` picks up the new key without restarting.
        #[arg(long)]
        api: bool,
    },
    /// Print the public keys as a JWKS document.
    Jwks,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `weir keys ...`.
pub(crate) fn keys(command: KeysCommand, storage: &Storage) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Rotate { hmac: true, .. } => return rotate_hmac(storage),
        KeysCommand::Rotate { api: true, .. } => return rotate_api(storage),
        _ => {}
    }
    let state_dir = storage.dir();
    let mut set = StageKeySet::open(state_dir, now())?;
    match command {
        KeysCommand::Rotate { .. } => {
            let previous = set.active_kid().as_str().to_owned();
            let kid = set.rotate(now())?;
            record_rotation(
                storage,
                format!(
                    "stage signing key: new kid {}, previous {previous}",
                    kid.as_str()
                ),
            )?;
            println!(
                "rotated stage signing key: active kid {} (previous {previous} stays trusted for {})",
                kid.as_str(),
                weir_engine::humantime(set.retention())
            );
        }
        KeysCommand::Jwks => println!("{}", serde_json::to_string_pretty(&set.public_jwks())?),
    }
    Ok(ExitCode::SUCCESS)
}

/// Records a key rotation in the audit log.
fn record_rotation(storage: &Storage, reason: String) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let audit = storage.audit(Origin::Cli).await?;
        let actor = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty() && u.len() <= 64);
        let event = audit
            .event(
                actor.as_deref().unwrap_or("unknown"),
                weir_audit::Action::KeyRotate,
                weir_audit::Decision::None,
            )
            .with_reason(reason);
        audit.record(event).await?;
        // Cover the event with a checkpoint before this short process exits.
        anyhow::Ok(audit.checkpoint().await?)
    })?;
    Ok(())
}

/// `weir keys rotate --api`.
fn rotate_api(storage: &Storage) -> anyhow::Result<ExitCode> {
    let mut set = weir_auth::ApiKeySet::load_or_create(storage.dir())?;
    let previous = set.active_kid().as_str().to_owned();
    let kid = set.rotate(storage.dir())?;
    record_rotation(
        storage,
        format!(
            "API token key: new kid {}, previous {previous}",
            kid.as_str()
        ),
    )?;
    println!(
        "rotated API token key: active kid {} (previous {previous} still verifies for {}); \
         a running `weir serve` picks it up on the first token it signs",
        kid.as_str(),
        weir_engine::humantime(weir_auth::API_KEY_RETENTION)
    );
    Ok(ExitCode::SUCCESS)
}

/// `weir keys rotate --hmac`.
fn rotate_hmac(storage: &Storage) -> anyhow::Result<ExitCode> {
    let grace = weir_auth::DEFAULT_RETENTION;
    let mut set = HmacKeySet::open(storage.dir(), now())?;
    let previous = set.active_kid().as_str().to_owned();
    let kid = set.rotate(now(), grace)?;
    record_rotation(
        storage,
        format!(
            "task envelope HMAC key: new kid {}, previous {previous}",
            kid.as_str()
        ),
    )?;
    println!(
        "rotated task envelope key: active kid {} (previous {previous} still verifies for {}); \
         running workers pick it up on their next unknown-kid reload",
        kid.as_str(),
        weir_engine::humantime(grace)
    );
    Ok(ExitCode::SUCCESS)
}
