//! Combining the column rules of the grants that justify one scope entry.
//!
//! When several allow grants justify an entry, the stage gets the columns
//! *every* one of them allows: the intersection of their `allow` lists,
//! minus the union of their `deny` lists. With no `allow` list the result
//! is the union of the `deny` lists; with no rule at all, no restriction.
//! A grant without `columns` restricts nothing.

use std::collections::BTreeSet;

use weir_auth::ColumnRule;

/// Combines `rules` as described in the [module docs](self). Lists come out
/// sorted.
///
/// # Errors
///
/// A reason if the `allow` lists leave no column at all.
pub(crate) fn combine<'a>(
    rules: impl IntoIterator<Item = &'a ColumnRule>,
) -> Result<Option<ColumnRule>, &'static str> {
    let mut allow: Option<BTreeSet<&str>> = None;
    let mut deny: BTreeSet<&str> = BTreeSet::new();
    for rule in rules {
        match rule {
            ColumnRule::Allow(cols) => {
                let these: BTreeSet<&str> = cols.iter().map(String::as_str).collect();
                allow = Some(match allow {
                    None => these,
                    Some(prev) => prev.intersection(&these).copied().collect(),
                });
            }
            ColumnRule::Deny(cols) => deny.extend(cols.iter().map(String::as_str)),
        }
    }
    let owned = |set: BTreeSet<&str>| set.into_iter().map(str::to_owned).collect::<Vec<_>>();
    match allow {
        Some(allowed) => {
            let left: BTreeSet<&str> = allowed.difference(&deny).copied().collect();
            if left.is_empty() {
                Err("the column rules of the justifying grants leave no column readable")
            } else {
                Ok(Some(ColumnRule::Allow(owned(left))))
            }
        }
        None if deny.is_empty() => Ok(None),
        None => Ok(Some(ColumnRule::Deny(owned(deny)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(c: &[&str]) -> ColumnRule {
        ColumnRule::Allow(c.iter().map(|s| (*s).to_owned()).collect())
    }

    fn deny(c: &[&str]) -> ColumnRule {
        ColumnRule::Deny(c.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn no_rules_no_restriction() {
        assert_eq!(combine([]), Ok(None));
    }

    #[test]
    fn allow_lists_intersect_and_deny_lists_unite() {
        assert_eq!(
            combine(&[allow(&["a", "b", "c"]), allow(&["c", "b", "d"])]),
            Ok(Some(allow(&["b", "c"])))
        );
        assert_eq!(
            combine(&[deny(&["email"]), deny(&["ssn", "email"])]),
            Ok(Some(deny(&["email", "ssn"])))
        );
        assert_eq!(
            combine(&[allow(&["id", "email"]), deny(&["email"])]),
            Ok(Some(allow(&["id"])))
        );
    }

    #[test]
    fn nothing_left_is_an_error() {
        assert!(combine(&[allow(&["a"]), allow(&["b"])]).is_err());
        assert!(combine(&[allow(&["a"]), deny(&["a"])]).is_err());
    }
}
