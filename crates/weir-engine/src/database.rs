//! The shared database: where run records and the audit log go when several
//! machines run weir (`--database postgres://...`).
//!
//! Without one, both stay in the state folder (JSON files and SQLite). Keys
//! stay in the state folder either way.
//!
//! # Security
//! The URL may hold a password: it is kept in a [`SecretString`], never
//! printed, and errors name the host at most.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use weir_auth::SecretString;

use crate::error::{Error, Result};

/// A PostgreSQL database for run records and the audit log, and the schema
/// weir's tables live in.
#[derive(Clone)]
pub struct Database {
    url: SecretString,
    schema: Option<String>,
    host: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("host", &self.host)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Checks `url` (`postgres://` or `postgresql://`) and `schema`
    /// (`[a-z_][a-z0-9_]{0,62}`, created when first used; without it, the
    /// connection's `search_path` decides). Does not connect.
    ///
    /// # Errors
    /// [`Error::DatabaseConfig`] for another scheme, a malformed URL or a bad
    /// schema name (the URL is never echoed).
    pub fn new(url: SecretString, schema: Option<&str>) -> Result<Self> {
        let text = url.expose();
        let scheme_ok = ["postgres://", "postgresql://"].iter().any(|p| {
            text.get(..p.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(p))
        });
        if !scheme_ok {
            return Err(Error::DatabaseConfig {
                reason: "the database URL must start with postgres:// (or postgresql://)",
            });
        }
        let options = PgConnectOptions::from_str(text).map_err(|_| Error::DatabaseConfig {
            reason: "the database URL is not a valid PostgreSQL URL",
        })?;
        if let Some(schema) = schema {
            check_schema_name(schema)?;
        }
        Ok(Self {
            host: options.get_host().to_owned(),
            url,
            schema: schema.map(str::to_owned),
        })
    }

    /// The server's host, for messages.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The schema weir's tables live in, if one was given.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The URL, for a driver. Keep the borrow short; never print it.
    pub(crate) fn url(&self) -> &SecretString {
        &self.url
    }

    /// Connection options with the schema as `search_path`, and as
    /// `weir.schema` for the statement that creates it.
    pub(crate) fn connect_options(&self) -> Result<PgConnectOptions> {
        let mut options =
            PgConnectOptions::from_str(self.url.expose()).map_err(|_| Error::DatabaseConfig {
                reason: "the database URL is not a valid PostgreSQL URL",
            })?;
        options = options.application_name("weir");
        if let Some(schema) = &self.schema {
            options = options.options([
                ("search_path", schema.as_str()),
                ("weir.schema", schema.as_str()),
            ]);
        }
        Ok(options)
    }

    /// An [`Error::Database`] for `operation` on this database.
    pub(crate) fn error(&self, operation: &'static str) -> impl Fn(sqlx::Error) -> Error + '_ {
        move |e| Error::Database {
            host: self.host.clone(),
            operation,
            message: match e {
                // A refused connection is retried until the pool's timeout.
                sqlx::Error::PoolTimedOut => {
                    "no connection before the timeout (is the server up and reachable?)".into()
                }
                e => crate::error::error_chain(&e),
            },
        }
    }
}

/// `[a-z_][a-z0-9_]{0,62}`: a plain identifier, the same rule as the audit
/// sink's.
fn check_schema_name(schema: &str) -> Result<()> {
    let mut bytes = schema.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if first_ok && rest_ok && schema.len() <= 63 {
        Ok(())
    } else {
        Err(Error::DatabaseConfig {
            reason: "the database schema must match [a-z_][a-z0-9_]{0,62}",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(url: &str, schema: Option<&str>) -> Result<Database> {
        Database::new(SecretString::new(url.to_owned()), schema)
    }

    #[test]
    fn accepts_postgres_urls_and_keeps_the_host() {
        let d = db("postgres://weir:hunter2@db.example:5432/weir", Some("weir")).unwrap();
        assert_eq!(d.host(), "db.example");
        assert_eq!(d.schema(), Some("weir"));
        assert!(db("postgresql://127.0.0.1/test", None).is_ok());
    }

    #[test]
    fn password_is_never_printed() {
        let d = db("postgres://weir:hunter2@db.example/weir", None).unwrap();
        assert!(!format!("{d:?}").contains("hunter2"));
        for bad in [
            "mysql://weir:hunter2@db.example/weir",
            "postgres://weir:hunter2@[db.example/weir",
            "hunter2",
        ] {
            let e = db(bad, None).unwrap_err();
            assert!(!format!("{e} {e:?}").contains("hunter2"), "{bad}");
        }
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        for bad in ["", "Weir", "1x", "a-b", "a\"; DROP SCHEMA public; --"] {
            assert!(
                matches!(
                    db("postgres://h/db", Some(bad)),
                    Err(Error::DatabaseConfig { .. })
                ),
                "{bad}"
            );
        }
        assert!(db("postgres://h/db", Some(&"a".repeat(64))).is_err());
        assert!(db("postgres://h/db", Some("weir_prod_2")).is_ok());
    }
}
