//! `weir serve`: the HTTP API.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use weir_audit::Origin;
use weir_auth::{ApiKeySet, ApiVerifier, ApiVerifierConfig};
use weir_engine::Security;
use weir_server::AppState;
use weir_server::refresh::{DEFAULT_REFRESH_INTERVAL, JwksLocation, JwksSource, KeyRefresh};

use crate::storage::Storage;

/// How API tokens are verified.
#[derive(Debug, clap::Args)]
pub(crate) struct AuthOptions {
    /// The JWKS of an external identity provider (RS256, ES256, EdDSA keys):
    /// a file, or an `https://` URL (plain `http://` only to a loopback
    /// host). Reloaded every 5 minutes and, at most every 30 s, when a token
    /// names an unknown key id.
    #[arg(long, requires_all = ["jwks_issuer", "jwks_audience"])]
    pub(crate) jwks: Option<String>,
    /// The `iss` of the provider's tokens.
    #[arg(long)]
    pub(crate) jwks_issuer: Option<String>,
    /// The `aud` the provider's tokens carry for weir.
    #[arg(long)]
    pub(crate) jwks_audience: Option<String>,
    /// Verified tokens kept in the cache (0 turns the cache off; revocation
    /// is checked on every request either way).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) token_cache: u64,
    /// Share API-token revocations with every server through this Redis
    /// (`redis://127.0.0.1:6379`); without it, revocations are per process.
    #[arg(long)]
    pub(crate) revocation: Option<String>,
}

/// `weir serve`.
pub(crate) fn serve(
    listen: &str,
    storage: &Storage,
    policies_dir: &Path,
    pipelines_dir: &Path,
    idp: &AuthOptions,
) -> anyhow::Result<ExitCode> {
    let Some(policies) = crate::access::load_policies(policies_dir)? else {
        return Ok(ExitCode::from(crate::load::EXIT_INVALID));
    };
    anyhow::ensure!(
        pipelines_dir.is_dir(),
        "--pipelines {}: no such folder",
        pipelines_dir.display()
    );
    let state_dir = storage.dir();
    let keys = ApiKeySet::load_or_create(state_dir)?;
    let mut verifier = ApiVerifier::new(
        &keys,
        ApiVerifierConfig::new(weir_server::API_ISSUER, weir_server::API_AUDIENCE),
    )
    .with_cache(idp.token_cache);
    // Checked before anything else starts: a plain-http JWKS URL to another
    // host is a configuration error.
    let jwks = match (&idp.jwks, &idp.jwks_issuer, &idp.jwks_audience) {
        (Some(location), Some(iss), Some(aud)) => Some((
            JwksSource::new(JwksLocation::parse(location)?, iss)?,
            aud.as_str(),
        )),
        _ => None,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut refresh = None;
        if let Some((source, aud)) = jwks {
            let doc = source.load().await?;
            verifier = verifier.with_external_jwks(&doc, source.issuer(), aud)?;
            refresh = Some(source);
        }
        if let Some(url) = &idp.revocation {
            let list = weir_server::revocation::RedisRevocation::connect(url)
                .await
                .with_context(|| format!("cannot use {url} for revocations"))?;
            verifier = verifier.with_revocation(list);
        }
        let audit = storage.audit(Origin::Api).await?;
        let runs = storage.runs().await?;
        let security = Arc::new(Security::open(state_dir, policies.clone(), audit.clone())?);
        let mut keys = KeyRefresh::new(verifier).with_api_keys(state_dir);
        if let Some(source) = refresh {
            keys = keys.with_jwks(source);
        }
        let state = AppState::new(
            keys,
            audit,
            security,
            Arc::new(policies),
            state_dir.to_path_buf(),
            pipelines_dir.to_path_buf(),
            runs,
        );
        let _periodic = state.keys().spawn_periodic(DEFAULT_REFRESH_INTERVAL);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        eprintln!("weir API on http://{}", listener.local_addr()?);
        weir_server::serve(listener, state, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        Ok(ExitCode::SUCCESS)
    })
}
