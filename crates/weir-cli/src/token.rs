//! `weir token issue`: API tokens for people and services (admins only: it
//! needs the server's state folder, which holds the signing keys).

use std::path::Path;
use std::process::ExitCode;

use weir_audit::{Action as AuditAction, Decision};
use weir_auth::{ApiKeySet, Role};
use weir_engine::Audit;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TokenCommand {
    /// Mint an API token and print it (to stdout only; it is recorded in the
    /// audit log by its id, never by value).
    Issue {
        /// Who the token is for.
        #[arg(long)]
        sub: String,
        /// A role: admin, engineer, auditor or worker (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Lifetime, e.g. `1h`, `30d`.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

/// `weir token ...`.
pub(crate) fn token(command: TokenCommand, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let TokenCommand::Issue { sub, roles, ttl } = command;
    let roles = roles
        .iter()
        .map(|r| {
            r.parse::<Role>().map_err(|_| {
                anyhow::anyhow!("unknown role `{r}` (admin, engineer, auditor, worker)")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ttl = weir_spec::parse_duration(&ttl)
        .ok_or_else(|| anyhow::anyhow!("--ttl `{ttl}` is not a duration such as `1h`"))?;
    let keys = ApiKeySet::load_or_create(state_dir)?;
    let minted = keys
        .minter(weir_server::API_ISSUER, weir_server::API_AUDIENCE)
        .mint(&sub, &roles, ttl)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let audit = Audit::open_local(state_dir).await?;
        let names: Vec<String> = roles.iter().map(ToString::to_string).collect();
        audit
            .record(
                audit
                    .event(&sub, AuditAction::TokenMint, Decision::None)
                    .with_token(audit.token(&minted.jti))
                    .with_reason(format!(
                        "api token, roles [{}], expires {}",
                        names.join(", "),
                        minted.exp
                    )),
            )
            .await?;
        anyhow::Ok(())
    })?;
    println!("{}", minted.token.expose());
    Ok(ExitCode::SUCCESS)
}
