//! Audit events: what callers supply ([`NewEvent`]) and what the log holds
//! ([`AuditEvent`]).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::admission::{MAX_NAME_BYTES, MAX_PATH_BYTES, MAX_REASON_BYTES, check_opt, check_text};
use crate::audit_key::TokenIdHmac;
use crate::chain_id::ChainId;
use crate::digest::{EventHash, hash_bytes, hash_event};
use crate::error::{Error, Result};
use crate::record;

/// What happened: a data access or a control-plane event.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// An object was read.
    Read,
    /// An object was written.
    Write,
    /// A prefix was listed.
    List,
    /// An object was deleted.
    Delete,
    /// A run started.
    RunStart,
    /// A run finished.
    RunFinish,
    /// Planning refused a run (a missing grant).
    PlanDenied,
    /// A stage token was minted.
    TokenMint,
    /// A token was revoked.
    TokenRevoke,
    /// A signing key was rotated.
    KeyRotate,
    /// Policies were (re)loaded.
    PolicyLoaded,
    /// An access review was run.
    AccessReview,
    /// An API caller presented credentials (allow: authenticated; deny:
    /// refused, with the reason and never the token).
    Authenticate,
    /// An authenticated API caller asked for something its roles do not
    /// allow (deny), or a sensitive request was allowed (allow).
    Authorize,
    /// A worker received a task envelope: allow when it verified and its
    /// stage ran, deny (with the reason) when it was refused unopened.
    TaskReceive,
    /// A dataset was checked against its data contract: allow when every
    /// row passed or the bad rows were quarantined (the reason gives the
    /// counts), deny when a violation failed the stage.
    ContractCheck,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Self; 16] = [
        Self::Read,
        Self::Write,
        Self::List,
        Self::Delete,
        Self::RunStart,
        Self::RunFinish,
        Self::PlanDenied,
        Self::TokenMint,
        Self::TokenRevoke,
        Self::KeyRotate,
        Self::PolicyLoaded,
        Self::AccessReview,
        Self::Authenticate,
        Self::Authorize,
        Self::TaskReceive,
        Self::ContractCheck,
    ];

    /// The stored name (`read`, `run_start`, ...).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::List => "list",
            Self::Delete => "delete",
            Self::RunStart => "run_start",
            Self::RunFinish => "run_finish",
            Self::PlanDenied => "plan_denied",
            Self::TokenMint => "token_mint",
            Self::TokenRevoke => "token_revoke",
            Self::KeyRotate => "key_rotate",
            Self::PolicyLoaded => "policy_loaded",
            Self::AccessReview => "access_review",
            Self::Authenticate => "authenticate",
            Self::Authorize => "authorize",
            Self::TaskReceive => "task_receive",
            Self::ContractCheck => "contract_check",
        }
    }
}

impl FromStr for Action {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or(Error::event("action", "unknown action"))
    }
}

/// The access decision an event records.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The access was allowed.
    Allow,
    /// The access was denied.
    Deny,
    /// The event is not an access decision (e.g. `run_start`).
    None,
}

impl Decision {
    /// The stored name (`allow`, `deny`, `none`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::None => "none",
        }
    }
}

impl FromStr for Decision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "allow" => Ok(Self::Allow),
            "deny" => Ok(Self::Deny),
            "none" => Ok(Self::None),
            _ => Err(Error::event("decision", "unknown decision")),
        }
    }
}

/// Where the event was recorded.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The `weir` command line.
    Cli,
    /// The HTTP API.
    Api,
    /// A worker process on `host`.
    Worker {
        /// The worker's host name.
        host: String,
    },
}

impl Origin {
    /// The stored form: `cli`, `api` or `worker:<host>`.
    #[must_use]
    pub fn encode(&self) -> Cow<'_, str> {
        match self {
            Self::Cli => Cow::Borrowed("cli"),
            Self::Api => Cow::Borrowed("api"),
            Self::Worker { host } => Cow::Owned(format!("worker:{host}")),
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            Self::Worker { host } if host.is_empty() => {
                Err(Error::event("origin", "worker host is empty"))
            }
            Self::Worker { host } => check_text("origin", host, MAX_NAME_BYTES),
            Self::Cli | Self::Api => Ok(()),
        }
    }
}

impl FromStr for Origin {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let origin = match s {
            "cli" => Self::Cli,
            "api" => Self::Api,
            _ => match s.strip_prefix("worker:") {
                Some(host) => Self::Worker {
                    host: host.to_owned(),
                },
                None => return Err(Error::event("origin", "unknown origin")),
            },
        };
        origin.validate()?;
        Ok(origin)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

/// An event as a caller supplies it. The sink assigns chain, seq, time,
/// `prev_hash` and `hash`.
///
/// Built with [`NewEvent::new`] and the `with_*` methods; checked by
/// [`NewEvent::validate`] before it is queued.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The principal acting (a user, a service account).
    pub actor: String,
    /// The run, if any.
    pub run: Option<String>,
    /// The stage, if any.
    pub stage: Option<String>,
    /// The stage attempt, if any.
    pub attempt: Option<u32>,
    /// What happened.
    pub action: Action,
    /// The object store touched, if any.
    pub store: Option<String>,
    /// The path in that store, if any.
    pub path: Option<String>,
    /// The access decision.
    pub decision: Decision,
    /// Why (which grant allowed it, which check denied it).
    pub reason: Option<String>,
    /// The HMAC of the token id involved, never the id itself.
    pub token_id_hmac: Option<TokenIdHmac>,
    /// Where the event was recorded.
    pub origin: Origin,
}

impl NewEvent {
    /// An event with only the required fields.
    #[must_use]
    pub fn new(
        actor: impl Into<String>,
        action: Action,
        decision: Decision,
        origin: Origin,
    ) -> Self {
        Self {
            actor: actor.into(),
            run: None,
            stage: None,
            attempt: None,
            action,
            store: None,
            path: None,
            decision,
            reason: None,
            token_id_hmac: None,
            origin,
        }
    }

    /// Sets run, stage and attempt.
    #[must_use]
    pub fn with_stage(
        mut self,
        run: impl Into<String>,
        stage: impl Into<String>,
        attempt: u32,
    ) -> Self {
        self.run = Some(run.into());
        self.stage = Some(stage.into());
        self.attempt = Some(attempt);
        self
    }

    /// Sets the run only (run-level events).
    #[must_use]
    pub fn with_run(mut self, run: impl Into<String>) -> Self {
        self.run = Some(run.into());
        self
    }

    /// Sets the resource touched.
    #[must_use]
    pub fn with_resource(mut self, store: impl Into<String>, path: impl Into<String>) -> Self {
        self.store = Some(store.into());
        self.path = Some(path.into());
        self
    }

    /// Sets the reason.
    #[must_use]
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Sets the token id HMAC (see [`AuditKey::token_id_hmac`](crate::AuditKey::token_id_hmac)).
    #[must_use]
    pub fn with_token(mut self, token_id_hmac: TokenIdHmac) -> Self {
        self.token_id_hmac = Some(token_id_hmac);
        self
    }

    /// Checks every text field: size caps, no control characters, nothing
    /// that looks like a JWT; the actor is not empty.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] naming the first field refused.
    pub fn validate(&self) -> Result<()> {
        if self.actor.is_empty() {
            return Err(Error::event("actor", "is empty"));
        }
        check_text("actor", &self.actor, MAX_NAME_BYTES)?;
        check_opt("run", self.run.as_deref(), MAX_NAME_BYTES)?;
        check_opt("stage", self.stage.as_deref(), MAX_NAME_BYTES)?;
        check_opt("store", self.store.as_deref(), MAX_NAME_BYTES)?;
        check_opt("path", self.path.as_deref(), MAX_PATH_BYTES)?;
        check_opt("reason", self.reason.as_deref(), MAX_REASON_BYTES)?;
        self.origin.validate()
    }
}

/// How an event is stored and hashed.
///
/// A log keeps the format it was created with, so logs written by earlier
/// releases stay verifiable and go on growing in their own format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    /// One column per field; the hash is SHA-256 over a length-prefixed
    /// binary encoding of the fields ([`EventHash`] docs). PostgreSQL, and
    /// SQLite logs created before format 2.
    V1,
    /// One canonical JSON record per event, stored as it was hashed: the
    /// hash is SHA-256 over the record's exact bytes (see
    /// [`AuditEvent::to_record`]). New SQLite logs.
    V2,
}

/// One record of the log, as stored and as verified.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// How the event is stored and hashed.
    pub format: EventFormat,
    /// The writer's chain.
    pub chain: ChainId,
    /// Position in the chain: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    /// When the sink sealed the event (UTC, microsecond precision).
    pub time: DateTime<Utc>,
    /// The principal acting.
    pub actor: String,
    /// The run, if any.
    pub run: Option<String>,
    /// The stage, if any.
    pub stage: Option<String>,
    /// The stage attempt, if any.
    pub attempt: Option<u32>,
    /// What happened.
    #[serde(serialize_with = "as_str_action")]
    pub action: Action,
    /// The object store touched, if any.
    pub store: Option<String>,
    /// The path in that store, if any.
    pub path: Option<String>,
    /// The access decision.
    #[serde(serialize_with = "as_str_decision")]
    pub decision: Decision,
    /// Why.
    pub reason: Option<String>,
    /// HMAC-SHA256 of the token id under the audit key, hex.
    pub token_id_hmac: Option<TokenIdHmac>,
    /// Where the event was recorded.
    #[serde(serialize_with = "as_display")]
    pub origin: Origin,
    /// The previous event's hash ([`EventHash::GENESIS`] for seq 1).
    pub prev_hash: EventHash,
    /// SHA-256 over every other field: over their binary encoding in
    /// [`EventFormat::V1`], over the stored JSON record in
    /// [`EventFormat::V2`].
    pub hash: EventHash,
}

impl AuditEvent {
    /// Seals `new` at position `seq` after `prev_hash`; in
    /// [`EventFormat::V2`] also returns the record to store, whose SHA-256
    /// is the event's hash.
    ///
    /// # Errors
    ///
    /// [`Error::Internal`] if the record cannot be encoded.
    pub(crate) fn seal(
        format: EventFormat,
        chain: ChainId,
        seq: u64,
        time: DateTime<Utc>,
        prev_hash: EventHash,
        new: NewEvent,
    ) -> Result<(Self, Option<String>)> {
        let mut event = Self {
            format,
            chain,
            seq,
            time,
            actor: new.actor,
            run: new.run,
            stage: new.stage,
            attempt: new.attempt,
            action: new.action,
            store: new.store,
            path: new.path,
            decision: new.decision,
            reason: new.reason,
            token_id_hmac: new.token_id_hmac,
            origin: new.origin,
            prev_hash,
            hash: EventHash::GENESIS,
        };
        match format {
            EventFormat::V1 => {
                event.hash = hash_event(&event);
                Ok((event, None))
            }
            EventFormat::V2 => {
                let record = record::encode(&event)?;
                event.hash = hash_bytes(record.as_bytes());
                Ok((event, Some(record)))
            }
        }
    }

    /// The event as a format-2 record: canonical JSON, keys in a fixed
    /// order, every key present (`null` when absent), no whitespace. For a
    /// [`EventFormat::V2`] event, [`hash`](Self::hash) is the SHA-256 of
    /// exactly these bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Internal`] if the record cannot be encoded (no field can
    /// cause that; the error exists because JSON encoding is fallible in
    /// general).
    pub fn to_record(&self) -> Result<String> {
        record::encode(self)
    }

    /// The hash the event's fields (and `prev_hash`) call for. Equal to
    /// [`hash`](Self::hash) unless the record was altered.
    #[must_use]
    ///
    /// In [`EventFormat::V2`] this is the hash of the canonical record
    /// ([`to_record`](Self::to_record)); if it could not be encoded the
    /// result is [`EventHash::GENESIS`], which matches no sealed event, so
    /// the failure shows as damage rather than passing.
    pub fn compute_hash(&self) -> EventHash {
        match self.format {
            EventFormat::V1 => hash_event(self),
            EventFormat::V2 => record::encode(self)
                .map(|r| hash_bytes(r.as_bytes()))
                .unwrap_or(EventHash::GENESIS),
        }
    }
}

fn as_str_action<S: Serializer>(a: &Action, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(a.as_str())
}

fn as_str_decision<S: Serializer>(d: &Decision, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(d.as_str())
}

fn as_display<S: Serializer>(o: &Origin, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&o.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AuditEvent {
        let new = NewEvent::new("svc-train", Action::Read, Decision::Allow, Origin::Cli)
            .with_stage("01J0RUN", "prepare", 1)
            .with_resource("lake", "raw/train/part-0.parquet")
            .with_reason("grant g1");
        let time = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        AuditEvent::seal(
            EventFormat::V1,
            ChainId::parse("cli").unwrap(),
            1,
            time,
            EventHash::GENESIS,
            new,
        )
        .unwrap()
        .0
    }

    #[test]
    fn names_round_trip() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
        }
        for d in [Decision::Allow, Decision::Deny, Decision::None] {
            assert_eq!(d.as_str().parse::<Decision>().unwrap(), d);
        }
        for o in [
            Origin::Cli,
            Origin::Api,
            Origin::Worker {
                host: "gpu-1".into(),
            },
        ] {
            assert_eq!(o.encode().parse::<Origin>().unwrap(), o);
        }
        assert!("READ".parse::<Action>().is_err());
        assert!("worker:".parse::<Origin>().is_err());
    }

    #[test]
    fn every_field_changes_the_hash() {
        let e = sample();
        assert_eq!(e.compute_hash(), e.hash);
        type Edit = Box<dyn Fn(&mut AuditEvent)>;
        let edits: Vec<Edit> = vec![
            Box::new(|e| e.chain = ChainId::parse("api").unwrap()),
            Box::new(|e| e.seq = 2),
            Box::new(|e| e.time += chrono::Duration::microseconds(1)),
            Box::new(|e| e.actor.push('x')),
            Box::new(|e| e.run = None),
            Box::new(|e| e.stage = Some("other".into())),
            Box::new(|e| e.attempt = Some(2)),
            Box::new(|e| e.action = Action::Write),
            Box::new(|e| e.store = Some("lake2".into())),
            Box::new(|e| e.path = Some("raw/training".into())),
            Box::new(|e| e.decision = Decision::Deny),
            Box::new(|e| e.reason = Some(String::new())),
            Box::new(|e| e.token_id_hmac = Some(TokenIdHmac::from_hex(&"a".repeat(64)).unwrap())),
            Box::new(|e| e.origin = Origin::Api),
            Box::new(|e| e.prev_hash = EventHash::from_bytes([1; 32])),
        ];
        for edit in edits {
            let mut changed = e.clone();
            edit(&mut changed);
            assert_ne!(changed.compute_hash(), e.hash, "{changed:?}");
        }
    }

    #[test]
    fn moving_text_between_optional_fields_changes_the_hash() {
        let mut a = sample();
        a.run = Some("x".into());
        a.stage = None;
        let mut b = sample();
        b.run = None;
        b.stage = Some("x".into());
        assert_ne!(a.compute_hash(), b.compute_hash());
    }

    #[test]
    fn jwt_in_reason_is_refused() {
        let jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl";
        let e = NewEvent::new("a", Action::Read, Decision::Deny, Origin::Api).with_reason(jwt);
        assert!(matches!(
            e.validate(),
            Err(Error::InvalidEvent {
                field: "reason",
                ..
            })
        ));
    }

    #[test]
    fn jwt_as_actor_or_worker_host_is_refused() {
        let jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl";
        assert!(
            NewEvent::new(jwt, Action::Read, Decision::Allow, Origin::Cli)
                .validate()
                .is_err()
        );
        let w = Origin::Worker { host: jwt.into() };
        assert!(
            NewEvent::new("a", Action::Read, Decision::Allow, w)
                .validate()
                .is_err()
        );
    }

    #[test]
    fn empty_actor_is_refused() {
        let e = NewEvent::new("", Action::RunStart, Decision::None, Origin::Cli);
        assert!(e.validate().is_err());
    }

    #[test]
    fn serializes_names_not_variants() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["action"], "read");
        assert_eq!(json["decision"], "allow");
        assert_eq!(json["origin"], "cli");
        assert_eq!(json["hash"].as_str().unwrap().len(), 64);
    }
}
