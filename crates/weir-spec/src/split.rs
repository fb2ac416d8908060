//! `kind: split` stages: the `key` rows are hashed by and the `ratios`
//! that share them out, turned into whole millionths.

use crate::column;
use crate::decode::{self, Ctx, Fields, NameKind};
use crate::diagnostic::{Location, did_you_mean};
use crate::model::{SplitPart, StageKind};
use crate::yaml::{Node, NodeKind, Style, truncate};

/// Fields only a `split` stage may have.
pub(crate) const SPLIT_FIELDS: &[&str] = &["key", "ratios"];

/// How far the ratios may sum from 1 (floating-point addition of decimal
/// fractions is rarely exact).
const TOLERANCE: f64 = 1e-9;
const MILLION: i64 = 1_000_000;

/// Reads the fields of a `split` stage. `outputs` are the stage's outputs
/// as read; the parts follow their order.
pub(crate) fn decode_split(
    cx: &mut Ctx,
    f: &Fields<'_>,
    what: &str,
    outputs: &[(String, Location)],
) -> Option<StageKind> {
    let key = f
        .required(
            cx,
            "key",
            what,
            "add `key: <column>`, the column whose value decides each row's part",
        )
        .and_then(|n| column::column_name(cx, n, "split `key`"));
    let ratios_node = f.required(
        cx,
        "ratios",
        what,
        "add `ratios:` with a share per output, e.g. `ratios: { train: 0.8, test: 0.2 }`",
    )?;
    let ratios = ratios(cx, ratios_node, what, outputs)?;
    let parts = parts(cx, ratios_node, what, outputs, &ratios)?;
    Some(StageKind::Split { key: key?, parts })
}

/// A share as written: dataset, fraction, where the fraction is.
type Ratio = (String, f64, Location);

fn ratios(
    cx: &mut Ctx,
    node: &Node,
    what: &str,
    outputs: &[(String, Location)],
) -> Option<Vec<Ratio>> {
    let NodeKind::Map(pairs) = &node.kind else {
        cx.error(
            &node.loc,
            format!(
                "{what}: `ratios` must be a mapping of output to share, found {}",
                node.type_name()
            ),
        )
        .hint("write `ratios: { train: 0.8, test: 0.2 }`");
        return None;
    };
    let mut out = Vec::with_capacity(pairs.len());
    let mut ok = true;
    for (key, value) in pairs {
        let name = decode::name(cx, key, "dataset name in `ratios`", NameKind::Identifier);
        let share = fraction(cx, value, what);
        let (Some(name), Some(share)) = (name, share) else {
            ok = false;
            continue;
        };
        if !outputs.iter().any(|(o, _)| *o == name) {
            let b = cx.error(
                &key.loc,
                format!("{what}: `ratios` gives a share to `{name}`, which is not in `outputs`"),
            );
            match did_you_mean(&name, outputs.iter().map(|(o, _)| o.as_str())) {
                Some(c) => b.hint(format!("did you mean `{c}`?")),
                None => b.hint(format!("add `{name}` to `outputs`, or remove its share")),
            }
            ok = false;
            continue;
        }
        out.push((name, share, value.loc.clone()));
    }
    ok.then_some(out)
}

/// Reads a share: a plain number in (0, 1].
fn fraction(cx: &mut Ctx, node: &Node, what: &str) -> Option<f64> {
    const HINT: &str = "a share is a fraction of the rows, e.g. `0.8` for 80%; the shares sum to 1";
    let parsed = match &node.kind {
        NodeKind::Scalar {
            value,
            style: Style::Plain,
        } => value.parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    };
    match parsed {
        Some(f) if f > 0.0 && f <= 1.0 => Some(f),
        Some(f) => {
            cx.error(
                &node.loc,
                format!(
                    "{what}: a share in `ratios` must be greater than 0 and at most 1, found {f}"
                ),
            )
            .hint(HINT);
            None
        }
        None => {
            let b = cx.error(
                &node.loc,
                format!(
                    "{what}: a share in `ratios` must be a number, found {}",
                    node.type_name()
                ),
            );
            match &node.kind {
                NodeKind::Scalar { value, .. } if value.ends_with('%') => {
                    b.hint("write a fraction instead of a percentage: `0.8`, not `80%`");
                }
                NodeKind::Scalar {
                    value,
                    style: Style::Quoted,
                } if value.parse::<f64>().is_ok() => {
                    b.hint(format!("remove the quotes: `{}`", truncate(value)));
                }
                _ => b.hint(HINT),
            }
            None
        }
    }
}

/// The parts in the order of `outputs`, in millionths that sum to exactly
/// 1,000,000: each share is rounded, and the last absorbs the rounding.
fn parts(
    cx: &mut Ctx,
    node: &Node,
    what: &str,
    outputs: &[(String, Location)],
    ratios: &[Ratio],
) -> Option<Vec<SplitPart>> {
    let ordered: Vec<&Ratio> = outputs
        .iter()
        .filter_map(|(o, _)| ratios.iter().find(|(r, _, _)| r == o))
        .collect();
    if ordered.len() < 2 {
        cx.error(
            &node.loc,
            format!(
                "{what}: a `split` stage needs at least two parts in `ratios`, found {}",
                ordered.len()
            ),
        )
        .hint("give each output a share, e.g. `ratios: { train: 0.8, test: 0.2 }`");
        return None;
    }
    let sum: f64 = ordered.iter().map(|(_, f, _)| f).sum();
    if (sum - 1.0).abs() > TOLERANCE {
        cx.error(
            &node.loc,
            format!("{what}: the shares in `ratios` add up to {sum}, not 1"),
        )
        .hint("make the shares sum to 1, e.g. `ratios: { train: 0.8, test: 0.2 }`");
        return None;
    }
    let mut parts = Vec::with_capacity(ordered.len());
    let mut given: i64 = 0;
    let last = ordered.len() - 1;
    for (i, (dataset, share, loc)) in ordered.into_iter().enumerate() {
        // `share` is in (0, 1], so the product fits an i64.
        let millionths = if i == last {
            MILLION - given
        } else {
            (share * 1e6).round() as i64
        };
        let Some(millionths) = u32::try_from(millionths).ok().filter(|m| *m >= 1) else {
            cx.error(
                loc,
                format!("{what}: the share of `{dataset}` is less than one millionth"),
            )
            .hint("shares are kept in millionths; give each part at least 0.000001");
            return None;
        };
        given += i64::from(millionths);
        parts.push(SplitPart {
            dataset: dataset.clone(),
            millionths,
        });
    }
    Some(parts)
}

/// Reports `split`-only fields on a stage of another kind.
pub(crate) fn refuse_split_fields(cx: &mut Ctx, f: &Fields<'_>, what: &str, kind: &str) {
    for field in SPLIT_FIELDS {
        if let Some(n) = f.get(field) {
            cx.error(
                &n.loc,
                format!(
                    "{what}: `{field}` is only allowed on a `split` stage, not on a `{kind}` stage"
                ),
            )
            .hint(format!(
                "remove `{field}`, or use `kind: split` to split a dataset by key"
            ));
        }
    }
}

/// Reports `sql` on a stage that runs no query.
pub(crate) fn refuse_sql(cx: &mut Ctx, f: &Fields<'_>, what: &str, kind: &str) {
    if let Some(n) = f.get("sql") {
        cx.error(
            &n.loc,
            format!("{what}: `sql` is only allowed on a `sql` stage, not on a `{kind}` stage"),
        )
        .hint("remove `sql`, or use `kind: sql` for a query");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Limits, load};

    fn split(ratios: &str, outputs: &[&str]) -> (Option<Vec<u32>>, Vec<String>) {
        let (root, _) = load(
            "t.yaml",
            &format!("key: id\nratios: {ratios}\n"),
            Limits::default(),
        );
        let root = root.unwrap();
        let mut cx = Ctx::default();
        let f = decode::fields(&mut cx, &root, "s", SPLIT_FIELDS, &|_| None).unwrap();
        let outputs: Vec<(String, Location)> = outputs
            .iter()
            .map(|o| ((*o).to_owned(), Location::new("t.yaml", 1, 1)))
            .collect();
        let kind = decode_split(&mut cx, &f, "s", &outputs);
        let parts = kind.map(|k| match k {
            StageKind::Split { parts, .. } => parts.iter().map(|p| p.millionths).collect(),
            _ => unreachable!(),
        });
        (parts, cx.diags.into_iter().map(|d| d.message).collect())
    }

    #[test]
    fn shares_become_millionths_in_output_order() {
        assert_eq!(
            split("{ test: 0.2, train: 0.8 }", &["train", "test"]).0,
            Some(vec![800_000, 200_000])
        );
        // Thirds: the last part absorbs the rounding.
        let third = 1.0_f64 / 3.0;
        let r = format!("{{ a: {third}, b: {third}, c: {third} }}");
        let parts = split(&r, &["a", "b", "c"]).0.unwrap();
        assert_eq!(parts, vec![333_333, 333_333, 333_334]);
        assert_eq!(parts.iter().sum::<u32>(), 1_000_000);
    }

    #[test]
    fn bad_shares_are_refused() {
        let (parts, errs) = split("{ a: 0.5, b: 0.6 }", &["a", "b"]);
        assert!(parts.is_none());
        assert!(errs[0].contains("add up to 1.1"), "{errs:?}");
        let (_, errs) = split("{ a: 1 }", &["a"]);
        assert!(errs[0].contains("at least two parts"), "{errs:?}");
        let (_, errs) = split("{ a: 0.9999999, b: 0.0000001 }", &["a", "b"]);
        assert!(errs[0].contains("less than one millionth"), "{errs:?}");
        let (_, errs) = split("{ a: 80%, b: 20% }", &["a", "b"]);
        assert_eq!(errs.len(), 2, "{errs:?}");
    }
}
