//! `weir token issue`: API tokens for people and services (admins only: it
//! needs the server's state folder, which holds the signing keys).

use std::process::ExitCode;

use weir_audit::{Action as AuditAction, Decision, Origin};
use weir_auth::{ApiKeySet, Role};

use crate::storage::Storage;

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
    /// Revoke an API token by id (`jti`, shown by `audit query` as an HMAC,
    /// or kept when issuing) on every server sharing the Redis list.
    Revoke {
        /// The token's `jti`.
        #[arg(long)]
        jti: String,
        /// Until when to keep refusing it (Unix seconds; default: 30 days,
        /// the longest an API token lives).
        #[arg(long)]
        until: Option<i64>,
        /// The Redis the servers share (`weir serve --revocation`).
        #[arg(long)]
        revocation: String,
    },
}

/// `weir token ...`.
pub(crate) fn token(command: TokenCommand, storage: &Storage) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Issue { sub, roles, ttl } => issue(storage, &sub, &roles, &ttl),
        TokenCommand::Revoke {
            jti,
            until,
            revocation,
        } => revoke(storage, &jti, until, &revocation),
    }
}

fn revoke(storage: &Storage, jti: &str, until: Option<i64>, url: &str) -> anyhow::Result<ExitCode> {
    use weir_auth::RevocationList;
    anyhow::ensure!(
        !jti.is_empty() && jti.len() <= 128 && jti.chars().all(|c| c.is_ascii_alphanumeric()),
        "--jti must be a token id (letters and digits)"
    );
    let until = until.unwrap_or_else(|| {
        chrono::Utc::now().timestamp()
            + i64::try_from(weir_auth::API_MAX_LIFETIME.as_secs()).unwrap_or(0)
            + 60
    });
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let list = weir_server::revocation::RedisRevocation::connect(url).await?;
        let id = jti.to_owned();
        tokio::task::spawn_blocking(move || list.revoke(&id, until)).await??;
        let audit = storage.audit(Origin::Cli).await?;
        audit
            .record(
                audit
                    .event("admin", AuditAction::TokenRevoke, Decision::None)
                    .with_token(audit.token(jti))
                    .with_reason(format!("api token revoked until {until}")),
            )
            .await?;
        // Cover the event with a checkpoint before this short process exits.
        audit.checkpoint().await?;
        anyhow::Ok(())
    })?;
    println!("revoked; every server following {url} refuses it now");
    Ok(ExitCode::SUCCESS)
}

fn issue(storage: &Storage, sub: &str, roles: &[String], ttl: &str) -> anyhow::Result<ExitCode> {
    let (sub, ttl) = (sub.to_owned(), ttl.to_owned());
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
    let keys = ApiKeySet::load_or_create(storage.dir())?;
    let minted = keys
        .minter(weir_server::API_ISSUER, weir_server::API_AUDIENCE)
        .mint(&sub, &roles, ttl)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let audit = storage.audit(Origin::Cli).await?;
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
        audit.checkpoint().await?;
        anyhow::Ok(())
    })?;
    eprintln!(
        "token id (jti) {}, expires {}; revoke with `weir token revoke --jti {} --revocation REDIS_URL`",
        minted.jti, minted.exp, minted.jti
    );
    println!("{}", minted.token.expose());
    Ok(ExitCode::SUCCESS)
}
