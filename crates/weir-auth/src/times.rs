//! The time checks shared by every token kind.
//!
//! # Invariants
//!
//! With leeway `L` (at most [`MAX_LEEWAY`](crate::MAX_LEEWAY)) a token is
//! current at `now` only if:
//!
//! 1. every start it states (`iat`, `nbf`) is before `exp`;
//! 2. its lifetime, `exp - iat` (or `exp - now` without `iat`), is at most
//!    the maximum lifetime;
//! 3. `iat <= now + L` and `nbf <= now + L`;
//! 4. `now < exp + L`.
//!
//! All arithmetic saturates or is checked: no overflow, no panic.

use crate::error::{Error, Result};

/// Checks a configured clock-skew leeway: at most [`MAX_LEEWAY`](crate::MAX_LEEWAY).
///
/// # Errors
/// [`Error::InvalidConfig`](crate::Error::InvalidConfig) above it.
pub(crate) fn check_leeway(leeway: std::time::Duration) -> Result<()> {
    if leeway > crate::MAX_LEEWAY {
        return Err(Error::InvalidConfig {
            reason: "leeway may be at most 30 s",
        });
    }
    Ok(())
}

/// The time claims of a token, in Unix seconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Validity {
    pub(crate) iat: Option<i64>,
    pub(crate) nbf: Option<i64>,
    pub(crate) exp: i64,
}

/// How strictly to judge a [`Validity`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimePolicy {
    /// Clock-skew allowance in seconds (non-negative).
    pub(crate) leeway: i64,
    /// The longest accepted lifetime in seconds.
    pub(crate) max_lifetime: i64,
}

impl Validity {
    /// Checks the invariants in the module docs, in order, returning the
    /// first that fails: [`Error::InconsistentTimes`],
    /// [`Error::LifetimeTooLong`], [`Error::IssuedInFuture`],
    /// [`Error::NotYetValid`] or [`Error::Expired`].
    pub(crate) fn check(self, policy: TimePolicy, now: i64) -> Result<()> {
        let starts_before_exp = [self.iat, self.nbf]
            .into_iter()
            .flatten()
            .all(|t| t < self.exp);
        if !starts_before_exp {
            return Err(Error::InconsistentTimes);
        }
        let lifetime = self
            .exp
            .checked_sub(self.iat.unwrap_or(now))
            .ok_or(Error::InconsistentTimes)?;
        if lifetime > policy.max_lifetime {
            return Err(Error::LifetimeTooLong {
                lifetime,
                max: policy.max_lifetime,
            });
        }
        let horizon = now.saturating_add(policy.leeway);
        if self.iat.is_some_and(|iat| iat > horizon) {
            return Err(Error::IssuedInFuture);
        }
        if self.nbf.is_some_and(|nbf| nbf > horizon) {
            return Err(Error::NotYetValid);
        }
        if now >= self.exp.saturating_add(policy.leeway) {
            return Err(Error::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: TimePolicy = TimePolicy {
        leeway: 10,
        max_lifetime: 100,
    };

    fn v(iat: Option<i64>, nbf: Option<i64>, exp: i64) -> Validity {
        Validity { iat, nbf, exp }
    }

    #[test]
    fn each_invariant_is_checked() {
        let ok = v(Some(1_000), Some(1_000), 1_060);
        assert!(ok.check(POLICY, 1_000).is_ok());
        assert!(matches!(
            v(Some(1_060), None, 1_060).check(POLICY, 1_000),
            Err(Error::InconsistentTimes)
        ));
        assert!(matches!(
            v(None, Some(1_061), 1_060).check(POLICY, 1_000),
            Err(Error::InconsistentTimes)
        ));
        assert!(matches!(
            v(Some(1_000), None, 1_101).check(POLICY, 1_000),
            Err(Error::LifetimeTooLong {
                lifetime: 101,
                max: 100
            })
        ));
        assert!(matches!(
            v(None, None, 1_101).check(POLICY, 1_000),
            Err(Error::LifetimeTooLong { .. })
        ));
        assert!(matches!(
            v(Some(1_011), None, 1_060).check(POLICY, 1_000),
            Err(Error::IssuedInFuture)
        ));
        assert!(v(Some(1_010), None, 1_060).check(POLICY, 1_000).is_ok());
        assert!(matches!(
            v(None, Some(1_011), 1_060).check(POLICY, 1_000),
            Err(Error::NotYetValid)
        ));
        assert!(ok.check(POLICY, 1_069).is_ok(), "within leeway");
        assert!(matches!(ok.check(POLICY, 1_070), Err(Error::Expired)));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        for (iat, nbf, exp, now) in [
            (Some(i64::MIN), None, i64::MAX, 0),
            (None, None, i64::MIN, i64::MAX),
            (Some(i64::MIN), Some(i64::MIN), i64::MIN + 1, 0),
            (None, None, i64::MAX, i64::MAX),
        ] {
            assert!(v(iat, nbf, exp).check(POLICY, now).is_err());
        }
    }
}
