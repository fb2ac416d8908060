//! `weir keys`: the stage-token signing keys in the state directory.

use std::path::Path;
use std::process::ExitCode;

use weir_auth::StageKeySet;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum KeysCommand {
    /// Make a new active signing key. Old public keys stay trusted until every
    /// token they signed has expired.
    Rotate,
    /// Print the public keys as a JWKS document.
    Jwks,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `weir keys ...`.
pub(crate) fn keys(command: KeysCommand, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let mut set = StageKeySet::open(state_dir, now())?;
    match command {
        KeysCommand::Rotate => {
            let previous = set.active_kid().as_str().to_owned();
            let kid = set.rotate(now())?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async {
                let audit = weir_engine::Audit::open_local(state_dir).await?;
                let actor = std::env::var("USER")
                    .ok()
                    .filter(|u| !u.is_empty() && u.len() <= 64);
                let event = audit
                    .event(
                        actor.as_deref().unwrap_or("unknown"),
                        weir_audit::Action::KeyRotate,
                        weir_audit::Decision::None,
                    )
                    .with_reason(format!(
                        "stage signing key: new kid {}, previous {previous}",
                        kid.as_str()
                    ));
                audit.record(event).await
            })?;
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
