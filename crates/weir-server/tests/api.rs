//! The HTTP API over real HTTP: a server on 127.0.0.1 with an ephemeral
//! port, the example pipeline and policies, a real audit log.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};
use weir_audit::{Filter, Origin, Page};
use weir_auth::{ApiKeySet, ApiVerifier, ApiVerifierConfig, FixedClock, Role};
use weir_engine::{Audit, Security};
use weir_server::openapi::ROUTES;
use weir_server::refresh::{JwksLocation, JwksSource, KeyRefresh};
use weir_server::{API_AUDIENCE, API_ISSUER, AppState};

const USERS: &str = r#"
version: 1
principals:
  alice:
    kind: user
    roles: [engineer]
    run_as: [svc-customer-features]
  bob:
    kind: user
    roles: [engineer]
"#;

struct Server {
    base: String,
    state: AppState,
    keys: ApiKeySet,
    dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

async fn start() -> Server {
    start_with(None).await
}

async fn start_with(revocation: Option<Arc<dyn weir_auth::RevocationList>>) -> Server {
    start_custom(revocation, |verifier, _| KeyRefresh::new(verifier)).await
}

/// A server whose key sources `keys` sets up, given the verifier and the
/// state folder.
async fn start_custom(
    revocation: Option<Arc<dyn weir_auth::RevocationList>>,
    key_sources: impl FnOnce(ApiVerifier, &Path) -> KeyRefresh,
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    std::fs::copy(
        repo().join("pipelines/customer_features.yaml"),
        root.join("pipelines/customer_features.yaml"),
    )
    .unwrap();
    copy_dir(
        &repo().join("examples/data/raw"),
        &root.join("examples/data/raw"),
    );
    std::fs::create_dir_all(root.join("policies")).unwrap();
    std::fs::copy(
        repo().join("policies/customer_features.yaml"),
        root.join("policies/customer_features.yaml"),
    )
    .unwrap();
    std::fs::write(root.join("policies/users.yaml"), USERS).unwrap();
    let state_dir = root.join(".weir");
    std::fs::create_dir_all(&state_dir).unwrap();
    let policies = weir_policy::PolicySet::load_dir(&root.join("policies")).unwrap();
    let audit = Audit::open_local_as(&state_dir, Origin::Api).await.unwrap();
    let security = Arc::new(Security::open(&state_dir, policies.clone(), audit.clone()).unwrap());
    let keys = ApiKeySet::load_or_create(&state_dir).unwrap();
    let mut verifier =
        ApiVerifier::new(&keys, ApiVerifierConfig::new(API_ISSUER, API_AUDIENCE)).with_cache(1000);
    if let Some(list) = revocation {
        verifier = verifier.with_revocation(list);
    }
    let runs = Arc::new(weir_engine::record::FileRunStore::new(&state_dir));
    let refresh = key_sources(verifier, &state_dir);
    let state = AppState::new(
        refresh,
        audit,
        security,
        Arc::new(policies),
        state_dir,
        root.join("pipelines"),
        runs,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(weir_server::serve(listener, state.clone(), async {
        let _ = rx.await;
    }));
    Server {
        base: format!("http://{addr}"),
        state,
        keys,
        dir,
        _shutdown: tx,
    }
}

impl Server {
    fn token(&self, sub: &str, roles: &[Role]) -> String {
        self.keys
            .minter(API_ISSUER, API_AUDIENCE)
            .mint(sub, roles, Duration::from_secs(3600))
            .unwrap()
            .token
            .expose()
            .to_owned()
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = reqwest::Client::new().get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    async fn auth_events(&self, decision: &str) -> usize {
        let events = self
            .state
            .audit()
            .sink()
            .query(&Filter::all(), Page::first(10_000))
            .await
            .unwrap();
        events
            .iter()
            .filter(|e| e.action.as_str() == "authenticate" && e.decision.as_str() == decision)
            .count()
    }
}

async fn assert_invalid_token(response: reqwest::Response) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers().get("www-authenticate").unwrap(),
        "Bearer error=\"invalid_token\""
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"error": "invalid_token"}));
}

#[tokio::test]
async fn public_routes_need_no_token_and_the_openapi_document_matches_the_routes() {
    let s = start().await;
    let jwks: Value = s
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        jwks["keys"].as_array().is_some_and(|k| !k.is_empty()),
        "{jwks}"
    );
    let doc: Value = s
        .get("/api/v1/openapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, table);
    // Every documented route is served: public ones answer, the others ask
    // for a token (never 404 or 405).
    for r in ROUTES {
        let path = r.path.replace("{run_id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV");
        let response = match r.method {
            "get" => s.get(&path, None).await,
            _ => s.post(&path, None, &json!({})).await,
        };
        let expected = if r.authenticated {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        assert_eq!(response.status(), expected, "{} {}", r.method, r.path);
    }
    assert_eq!(
        s.get("/api/v1/nope", None).await.status(),
        StatusCode::NOT_FOUND
    );
}

fn forge(header: &Value, payload: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(payload.to_string()),
        B64.encode(signature)
    )
}

#[tokio::test]
async fn every_hostile_token_is_a_bare_401_and_is_audited() {
    let s = start().await;
    let good = s.token("alice", &[Role::Engineer]);
    let (h, rest) = good.split_once('.').unwrap();
    let (p, sig) = rest.split_once('.').unwrap();
    let header: Value = serde_json::from_slice(&B64.decode(h).unwrap()).unwrap();
    let mut payload: Value = serde_json::from_slice(&B64.decode(p).unwrap()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let other_keys = ApiKeySet::load_or_create(&s.dir.path().join("other")).unwrap();
    let past = Arc::new(FixedClock::new(now - 10 * 3600));
    let expired = s
        .keys
        .minter(API_ISSUER, API_AUDIENCE)
        .with_clock(past)
        .mint("alice", &[Role::Admin], Duration::from_secs(3600))
        .unwrap();
    let wrong_aud = s
        .keys
        .minter(API_ISSUER, "weir-data-plane")
        .mint("alice", &[Role::Admin], Duration::from_secs(60))
        .unwrap();
    let wrong_iss = s
        .keys
        .minter("evil", API_AUDIENCE)
        .mint("alice", &[Role::Admin], Duration::from_secs(60))
        .unwrap();
    let unknown_kid = other_keys
        .minter(API_ISSUER, API_AUDIENCE)
        .mint("alice", &[Role::Admin], Duration::from_secs(60))
        .unwrap();
    let mut none_header = header.clone();
    none_header["alg"] = json!("none");
    let alg_none = format!("{}.{}.", B64.encode(none_header.to_string()), p);
    payload["roles"] = json!(["admin"]);
    let escalated = format!("{h}.{}.{sig}", B64.encode(payload.to_string()));
    let mut bad_sig = good.clone();
    let last = bad_sig.pop().unwrap();
    bad_sig.push(if last == 'A' { 'B' } else { 'A' });
    let mut crit_header = header.clone();
    crit_header["crit"] = json!(["exp"]);
    let crit = forge(&crit_header, &payload, b"x");
    let cases: Vec<(&str, String)> = vec![
        ("garbage", "not-a-jwt".into()),
        ("empty segments", "..".into()),
        ("expired", expired.token.expose().to_owned()),
        ("wrong audience", wrong_aud.token.expose().to_owned()),
        ("wrong issuer", wrong_iss.token.expose().to_owned()),
        ("unknown kid", unknown_kid.token.expose().to_owned()),
        ("alg none", alg_none),
        ("payload edited (roles escalated)", escalated),
        ("signature edited", bad_sig),
        ("crit header", crit),
        ("truncated", good[..good.len() - 10].to_owned()),
        ("oversized", format!("{good}{}", "A".repeat(9 * 1024))),
    ];
    let before = s.auth_events("deny").await;
    for (what, token) in &cases {
        let response = s.get("/api/v1/whoami", Some(token)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_invalid_token(response).await;
    }
    // No token, another scheme, two Authorization headers.
    assert_invalid_token(s.get("/api/v1/whoami", None).await).await;
    let basic = reqwest::Client::new()
        .get(format!("{}/api/v1/whoami", s.base))
        .header("authorization", "Basic YWxpY2U6cHc=")
        .send()
        .await
        .unwrap();
    assert_invalid_token(basic).await;
    let twice = reqwest::Client::new()
        .get(format!("{}/api/v1/whoami", s.base))
        .header("authorization", format!("Bearer {good}"))
        .header("authorization", format!("Bearer {good}"))
        .send()
        .await
        .unwrap();
    assert_invalid_token(twice).await;
    assert_eq!(s.auth_events("deny").await, before + cases.len() + 3);
    // The good token still works, and its use is recorded.
    let ok = s.get("/api/v1/whoami", Some(&good)).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let me: Value = ok.json().await.unwrap();
    assert_eq!(me["sub"], "alice");
    assert!(s.auth_events("allow").await >= 1);
    // No audit event holds a token.
    let events = s
        .state
        .audit()
        .sink()
        .query(&Filter::all(), Page::first(10_000))
        .await
        .unwrap();
    let dump = serde_json::to_string(&events).unwrap();
    assert!(!dump.contains(&good[..40]), "a token reached the audit log");
}

#[tokio::test]
async fn role_route_matrix() {
    let s = start().await;
    let admin = s.token("root", &[Role::Admin]);
    let engineer = s.token("bob", &[Role::Engineer]);
    let auditor = s.token("carol", &[Role::Auditor]);
    let worker = s.token("w1", &[Role::Worker]);
    // (route, admin, engineer, auditor, worker): true = allowed.
    let table: &[(&str, bool, bool, bool, bool)] = &[
        ("/api/v1/whoami", true, true, true, true),
        ("/api/v1/pipelines", true, true, false, false),
        ("/api/v1/runs", true, true, false, false),
        ("/api/v1/audit?limit=5", true, false, true, false),
        (
            "/api/v1/audit/export?action=authenticate",
            true,
            false,
            true,
            false,
        ),
        ("/api/v1/access-review?since=1d", true, false, true, false),
    ];
    for (path, a, e, au, w) in table {
        for (token, allowed, who) in [
            (&admin, a, "admin"),
            (&engineer, e, "engineer"),
            (&auditor, au, "auditor"),
            (&worker, w, "worker"),
        ] {
            let status = s.get(path, Some(token)).await.status();
            if *allowed {
                assert_eq!(status, StatusCode::OK, "{who} GET {path}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{who} GET {path}");
            }
        }
    }
    // Submitting: auditors and workers never; bob is an engineer without
    // `run_as` for the pipeline's principal.
    let body = json!({"pipeline": "customer_features"});
    for token in [&auditor, &worker, &engineer] {
        let status = s.post("/api/v1/runs", Some(token), &body).await.status();
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn an_engineer_runs_a_granted_pipeline_and_follows_it() {
    let s = start().await;
    let alice = s.token("alice", &[Role::Engineer]);
    let response = s
        .post(
            "/api/v1/runs",
            Some(&alice),
            &json!({"pipeline": "customer_features"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let run_id = response.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = s
        .get(&format!("/api/v1/runs/{run_id}/events"), Some(&alice))
        .await
        .text()
        .await
        .unwrap();
    let lines: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.first().unwrap()["event"], "run_started");
    assert_eq!(lines.last().unwrap()["event"], "run_finished", "{events}");
    assert_eq!(lines.last().unwrap()["status"], "succeeded", "{events}");
    let record: Value = s
        .get(&format!("/api/v1/runs/{run_id}"), Some(&alice))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["stages"].as_array().unwrap().len(), 4);
    // Bad input is a 400 that says what is wrong.
    let bad = s
        .post(
            "/api/v1/runs",
            Some(&alice),
            &json!({"yaml": "name: [unclosed"}),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let both = s
        .post(
            "/api/v1/runs",
            Some(&alice),
            &json!({"pipeline": "x", "yaml": "y"}),
        )
        .await;
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
    let traversal = s
        .post(
            "/api/v1/runs",
            Some(&alice),
            &json!({"pipeline": "../policies/users"}),
        )
        .await;
    assert_eq!(traversal.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_revoked_token_is_refused_even_while_cached() {
    let s = start().await;
    let minted = s
        .keys
        .minter(API_ISSUER, API_AUDIENCE)
        .mint("carol", &[Role::Auditor], Duration::from_secs(3600))
        .unwrap();
    let token = minted.token.expose().to_owned();
    assert_eq!(
        s.get("/api/v1/whoami", Some(&token)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        s.get("/api/v1/whoami", Some(&token)).await.status(),
        StatusCode::OK
    );
    s.state.verifier().revoke(&minted.jti, minted.exp).unwrap();
    assert_invalid_token(s.get("/api/v1/whoami", Some(&token)).await).await;
}

#[tokio::test]
async fn failed_authentications_are_rate_limited_per_client() {
    let s = start().await;
    for _ in 0..weir_server::auth::MAX_FAILURES_PER_MINUTE {
        assert_eq!(
            s.get("/api/v1/whoami", Some("x.y.z")).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = s.get("/api/v1/whoami", Some("x.y.z")).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get("retry-after").is_some());
    // Even a good token waits out the window from this client.
    let good = s.token("alice", &[Role::Engineer]);
    assert_eq!(
        s.get("/api/v1/whoami", Some(&good)).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn oversized_bodies_and_headers_are_refused() {
    let s = start().await;
    let alice = s.token("alice", &[Role::Engineer]);
    let big = json!({"yaml": "#".repeat(2 * 1024 * 1024)});
    let response = s.post("/api/v1/runs", Some(&alice), &big).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/whoami", s.base))
        .header("x-padding", "p".repeat(20 * 1024))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
}

/// Two servers sharing one Redis revocation list: a token revoked through
/// a third client is refused by both, though both had it cached. Runs when
/// `WEIR_TEST_REDIS_URL` is set (CI sets it).
#[tokio::test]
async fn a_revocation_in_redis_reaches_every_server() {
    use weir_server::revocation::RedisRevocation;
    let Ok(url) = std::env::var("WEIR_TEST_REDIS_URL") else {
        eprintln!("skipped: WEIR_TEST_REDIS_URL is not set (.ci/run sets it)");
        return;
    };
    let one = start_with(Some(RedisRevocation::connect(&url).await.unwrap())).await;
    // The second server trusts the first one's signing keys: same state dir keys.
    let two = start_with(Some(RedisRevocation::connect(&url).await.unwrap())).await;
    let minted_one = one
        .keys
        .minter(API_ISSUER, API_AUDIENCE)
        .mint("carol", &[Role::Auditor], Duration::from_secs(3600))
        .unwrap();
    let minted_two = two
        .keys
        .minter(API_ISSUER, API_AUDIENCE)
        .mint("carol", &[Role::Auditor], Duration::from_secs(3600))
        .unwrap();
    let (t1, t2) = (minted_one.token.expose(), minted_two.token.expose());
    assert_eq!(
        one.get("/api/v1/whoami", Some(t1)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        two.get("/api/v1/whoami", Some(t2)).await.status(),
        StatusCode::OK
    );
    // An admin elsewhere revokes both ids.
    let admin = RedisRevocation::connect(&url).await.unwrap();
    for m in [&minted_one, &minted_two] {
        let (list, jti, exp) = (Arc::clone(&admin), m.jti.clone(), m.exp);
        tokio::task::spawn_blocking(move || {
            weir_auth::RevocationList::revoke(list.as_ref(), &jti, exp + 60)
        })
        .await
        .unwrap()
        .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let a = one.get("/api/v1/whoami", Some(t1)).await.status();
        let b = two.get("/api/v1/whoami", Some(t2)).await.status();
        if a == StatusCode::UNAUTHORIZED && b == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still accepted: {a} {b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A server that starts later learns the revocation from the set.
    let three = start_with(Some(RedisRevocation::connect(&url).await.unwrap())).await;
    let list = RedisRevocation::connect(&url).await.unwrap();
    assert!(weir_auth::RevocationList::is_revoked(
        list.as_ref(),
        &minted_one.jti
    ));
    drop(three);
}

#[tokio::test]
async fn audit_pages_name_their_chain() {
    let s = start().await;
    let auditor = s.token("carol", &[Role::Auditor]);
    // Each request is recorded, so there are at least two events.
    let _ = s.get("/api/v1/whoami", Some(&auditor)).await;
    let first: Value = s
        .get("/api/v1/audit?limit=1", Some(&auditor))
        .await
        .json()
        .await
        .unwrap();
    let seq = first["next_after_seq"].as_u64().unwrap();
    assert_eq!(first["next_after_chain"], "local");
    assert_eq!(first["events"][0]["seq"], seq);
    let next: Value = s
        .get(
            &format!("/api/v1/audit?limit=1&after_chain=local&after_seq={seq}"),
            Some(&auditor),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["events"][0]["seq"], seq + 1);
    let bad = s
        .get(
            "/api/v1/audit?limit=1&after_chain=a%20b&after_seq=1",
            Some(&auditor),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------------------
// Key reloads: an identity provider's JWKS fetched from a URL, and weir's own
// rotated API keys, picked up by a running server.

const IDP_ISSUER: &str = "https://idp.test";
const IDP_AUDIENCE: &str = "weir-api";

/// A test identity provider on 127.0.0.1 serving a JWKS document it can
/// change, counting fetches.
struct Idp {
    url: String,
    state: Arc<IdpState>,
    task: tokio::task::JoinHandle<()>,
}

struct IdpState {
    response: std::sync::Mutex<(u16, Vec<u8>)>,
    fetches: std::sync::atomic::AtomicUsize,
    delay: Duration,
}

impl Idp {
    async fn start(doc: &Value, delay: Duration) -> Self {
        use axum::extract::State;
        let state = Arc::new(IdpState {
            response: std::sync::Mutex::new((200, serde_json::to_vec(doc).unwrap())),
            fetches: std::sync::atomic::AtomicUsize::new(0),
            delay,
        });
        let app = axum::Router::new()
            .route(
                "/jwks",
                axum::routing::get(|State(s): State<Arc<IdpState>>| async move {
                    s.fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(s.delay).await;
                    let (status, body) = s.response.lock().unwrap().clone();
                    (axum::http::StatusCode::from_u16(status).unwrap(), body)
                }),
            )
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, state, task }
    }

    fn serve(&self, status: u16, body: Vec<u8>) {
        *self.state.response.lock().unwrap() = (status, body);
    }

    fn publish(&self, doc: &Value) {
        self.serve(200, serde_json::to_vec(doc).unwrap());
    }

    fn fetches(&self) -> usize {
        self.state.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// An Ed25519 key of the identity provider, from a fixed seed.
fn idp_key(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

fn jwk(kid: &str, key: &ed25519_dalek::SigningKey) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
           "x": B64.encode(key.verifying_key().as_bytes())})
}

fn jwks(keys: &[(&str, &ed25519_dalek::SigningKey)]) -> Value {
    json!({"keys": keys.iter().map(|(kid, k)| jwk(kid, k)).collect::<Vec<_>>()})
}

/// A token of the identity provider, signed by `key` under `kid`.
fn idp_token(kid: &str, key: &ed25519_dalek::SigningKey, sub: &str) -> String {
    use ed25519_dalek::Signer as _;
    let now = chrono_now();
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
    let claims = json!({"iss": IDP_ISSUER, "aud": IDP_AUDIENCE, "sub": sub,
        "roles": ["engineer"], "iat": now, "exp": now + 600});
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature.to_bytes()))
}

fn chrono_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A server trusting `idp` (first fetch done here), reloading on unknown
/// kids at most once per `interval`.
async fn start_with_idp(idp: &Idp, interval: Duration) -> Server {
    let source = JwksSource::new(JwksLocation::parse(&idp.url).unwrap(), IDP_ISSUER).unwrap();
    let doc = source.load().await.unwrap();
    start_custom(None, move |verifier, state_dir| {
        let verifier = verifier
            .with_external_jwks(&doc, IDP_ISSUER, IDP_AUDIENCE)
            .unwrap();
        KeyRefresh::new(verifier)
            .with_api_keys(state_dir)
            .with_jwks(source)
            .with_unknown_kid_interval(interval)
    })
    .await
}

async fn whoami(s: &Server, token: &str) -> StatusCode {
    s.get("/api/v1/whoami", Some(token)).await.status()
}

#[tokio::test]
async fn a_key_the_idp_publishes_after_start_is_accepted_after_one_refresh() {
    let (a, b) = (idp_key(1), idp_key(2));
    let idp = Idp::start(&jwks(&[("a", &a)]), Duration::ZERO).await;
    let s = start_with_idp(&idp, Duration::from_secs(60)).await;
    assert_eq!(idp.fetches(), 1, "the start-up fetch");
    assert_eq!(
        whoami(&s, &idp_token("a", &a, "alice")).await,
        StatusCode::OK
    );
    assert_eq!(idp.fetches(), 1, "a known kid fetches nothing");

    idp.publish(&jwks(&[("a", &a), ("b", &b)]));
    let response = s
        .get("/api/v1/whoami", Some(&idp_token("b", &b, "bob")))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let who: Value = response.json().await.unwrap();
    assert_eq!(who["sub"], "bob", "{who}");
    assert_eq!(idp.fetches(), 2, "one refresh");
    assert_eq!(s.state.keys().jwks_loads(), 1);
    assert_eq!(
        whoami(&s, &idp_token("a", &a, "alice")).await,
        StatusCode::OK
    );
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn concurrent_requests_with_an_unknown_kid_cause_exactly_one_fetch() {
    let (a, b) = (idp_key(1), idp_key(2));
    let idp = Idp::start(&jwks(&[("a", &a)]), Duration::from_millis(300)).await;
    let s = start_with_idp(&idp, Duration::from_secs(60)).await;
    idp.publish(&jwks(&[("a", &a), ("b", &b)]));
    let token = idp_token("b", &b, "bob");
    let requests = (0..16).map(|_| whoami(&s, &token));
    let statuses = futures::future::join_all(requests).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(idp.fetches(), 2, "start-up fetch plus exactly one refresh");
}

#[tokio::test]
async fn a_flood_of_random_kids_is_rate_limited() {
    let a = idp_key(1);
    let idp = Idp::start(&jwks(&[("a", &a)]), Duration::ZERO).await;
    let s = start_with_idp(&idp, Duration::from_secs(60)).await;
    let server = &s;
    let flood = (0..12).map(|i| {
        let token = idp_token(&format!("random-{i}"), &a, "mallory");
        async move { whoami(server, &token).await }
    });
    let statuses = futures::future::join_all(flood).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(
        idp.fetches(),
        2,
        "start-up fetch plus one refresh per interval"
    );
    // Sequential misses after the refresh stay within the interval too.
    for i in 0..4 {
        let token = idp_token(&format!("later-{i}"), &a, "mallory");
        assert_eq!(whoami(&s, &token).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn an_idp_that_is_down_or_hostile_keeps_the_old_keys_and_unknown_kids_get_401() {
    let (a, b) = (idp_key(1), idp_key(2));
    let idp = Idp::start(&jwks(&[("a", &a)]), Duration::ZERO).await;
    // No rate limit, so every unknown kid refreshes.
    let s = start_with_idp(&idp, Duration::ZERO).await;
    let known = idp_token("a", &a, "alice");
    let unknown = idp_token("b", &b, "bob");
    let mut oversized = br#"{"keys": [], "pad": ""#.to_vec();
    oversized.resize(2 * 1024 * 1024, b'x');
    oversized.extend_from_slice(br#""}"#);
    let duplicate = format!(
        r#"{{"keys": [{}], "keys": [{}]}}"#,
        jwk("b", &b),
        jwk("b", &b)
    );
    let cases: Vec<(&str, u16, Vec<u8>)> = vec![
        ("server error", 500, b"oops".to_vec()),
        ("garbage", 200, b"<html>not json</html>".to_vec()),
        ("oversized", 200, oversized),
        ("repeated JSON key", 200, duplicate.into_bytes()),
        (
            "symmetric key",
            200,
            br#"{"keys": [{"kty": "oct", "kid": "b", "k": "AAAA"}]}"#.to_vec(),
        ),
        ("no keys", 200, br#"{"keys": []}"#.to_vec()),
    ];
    for (why, status, body) in cases {
        let before = idp.fetches();
        idp.serve(status, body);
        assert_eq!(
            whoami(&s, &unknown).await,
            StatusCode::UNAUTHORIZED,
            "{why}"
        );
        assert_eq!(idp.fetches(), before + 1, "{why}: one refresh attempt");
        assert_eq!(
            whoami(&s, &known).await,
            StatusCode::OK,
            "{why}: old keys kept"
        );
    }
    // Down: nothing listens any more.
    idp.task.abort();
    let _ = idp.task.await;
    assert_eq!(whoami(&s, &unknown).await, StatusCode::UNAUTHORIZED, "down");
    assert_eq!(
        whoami(&s, &known).await,
        StatusCode::OK,
        "down: old keys kept"
    );
    assert!(s.state.verifier().kids().iter().any(|k| k.as_str() == "a"));
}

#[tokio::test]
async fn a_plain_http_jwks_url_to_another_host_is_refused() {
    for url in [
        "http://idp.example.com/jwks",
        "http://10.1.2.3/.well-known/jwks.json",
        "http://127.0.0.1.evil.com/jwks",
    ] {
        let err = JwksLocation::parse(url).unwrap_err().to_string();
        assert!(
            err.contains("plain http is allowed only to a loopback host"),
            "{err}"
        );
    }
    assert!(JwksLocation::parse("https://idp.example.com/jwks").is_ok());
}

#[tokio::test]
async fn a_rotated_api_key_is_accepted_by_a_running_server() {
    let s = start_custom(None, |verifier, state_dir| {
        KeyRefresh::new(verifier).with_api_keys(state_dir)
    })
    .await;
    let old = s.token("alice", &[Role::Engineer]);
    assert_eq!(whoami(&s, &old).await, StatusCode::OK);

    let state_dir = s.dir.path().join(".weir");
    let mut keys = ApiKeySet::load_or_create(&state_dir).unwrap();
    let new_kid = keys.rotate(&state_dir).unwrap();
    assert!(!s.state.verifier().kids().contains(&new_kid));
    let new = keys
        .minter(API_ISSUER, API_AUDIENCE)
        .mint("bob", &[Role::Engineer], Duration::from_secs(600))
        .unwrap();
    assert_eq!(whoami(&s, new.token.expose()).await, StatusCode::OK);
    assert!(s.state.verifier().kids().contains(&new_kid));
    assert_eq!(
        whoami(&s, &old).await,
        StatusCode::OK,
        "old key still verifies"
    );
}

#[tokio::test]
async fn without_key_sources_an_unknown_kid_reloads_nothing() {
    let s = start().await;
    let state_dir = s.dir.path().join(".weir");
    let mut keys = ApiKeySet::load_or_create(&state_dir).unwrap();
    keys.rotate(&state_dir).unwrap();
    let new = keys
        .minter(API_ISSUER, API_AUDIENCE)
        .mint("bob", &[Role::Engineer], Duration::from_secs(600))
        .unwrap();
    assert_invalid_token(s.get("/api/v1/whoami", Some(new.token.expose())).await).await;
}
