//! The reader's plan for each column: which fields survive, which are
//! masked, and the (unregistered) function that does it.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, LargeListArray, ListArray, StructArray,
};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use weir_auth::{ColumnRule, Mask};

use super::mask::{self, MaskKey};

/// The name the masking function shows in plans. It is never registered.
pub(super) const FUNCTION: &str = "weir_restrict";

/// `column` (of type `field`) as the stage may see it: itself if `node`
/// changes nothing, else passed through a masking function built for it.
pub(super) fn expr(column: Expr, field: &Field, node: Node, key: Option<&MaskKey>) -> Expr {
    if node.op == Op::Keep {
        return column;
    }
    let udf = ScalarUDF::new_from_impl(Restrict {
        signature: Signature::any(1, Volatility::Immutable),
        input: field.data_type().clone(),
        key: node.hashes().then(|| key.cloned()).flatten(),
        node,
    });
    udf.call(vec![column]).alias(field.name())
}

/// What the reader does to one field, with the field it produces.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Node {
    /// The field the stage sees.
    pub(super) out: FieldRef,
    op: Op,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Op {
    /// Unchanged.
    Keep,
    /// A struct keeping these children (by index), each transformed.
    Struct(Vec<(usize, Node)>),
    /// A list (`List`, `LargeList`, `FixedSizeList`) whose items are transformed.
    List(Box<Node>),
    /// Transform, then mask.
    Mask(Mask, Box<Node>),
}

impl Node {
    fn keep(field: &Field) -> Self {
        Self {
            out: Arc::new(field.clone()),
            op: Op::Keep,
        }
    }

    fn masked(mask: Mask, inner: Node) -> Self {
        let data_type = match mask {
            Mask::Hash | Mask::Redact => DataType::Utf8,
            Mask::Null => inner.out.data_type().clone(),
        };
        Self {
            out: Arc::new(Field::new(inner.out.name(), data_type, true)),
            op: Op::Mask(mask, Box::new(inner)),
        }
    }

    fn hashes(&self) -> bool {
        match &self.op {
            Op::Keep => false,
            Op::Struct(children) => children.iter().any(|(_, n)| n.hashes()),
            Op::List(item) => item.hashes(),
            Op::Mask(m, inner) => *m == Mask::Hash || inner.hashes(),
        }
    }
}

/// The reader's plan for `field`, named `name` (a dotted path); `None` if
/// it is hidden.
pub(super) fn plan(field: &Field, name: &str, rule: &ColumnRule) -> Option<Node> {
    plan_in(field, name, None, rule)
}

/// [`plan`] for a field of the struct named `parent`, if any.
fn plan_in(field: &Field, name: &str, parent: Option<&str>, rule: &ColumnRule) -> Option<Node> {
    if rule.denied_by(name).is_some() {
        return None;
    }
    let whole = rule
        .allow
        .as_ref()
        .is_none_or(|allow| allow.iter().any(|a| ColumnRule::covers(a, name)));
    let node = contents(field, name, rule, whole)?;
    Some(match mask_for(rule, name, parent) {
        Some(mask) => Node::masked(mask, node),
        None => node,
    })
}

/// The strongest mask whose name covers `name` ([`ColumnRule::mask_for`]),
/// leaving out those over `parent`: the struct masks itself whole, so its
/// fields need not be masked first. A top-level column has no parent, so a
/// mask on `contact` covers a column literally named `contact.email`.
fn mask_for(rule: &ColumnRule, name: &str, parent: Option<&str>) -> Option<Mask> {
    let Some(parent) = parent else {
        return rule.mask_for(name);
    };
    rule.mask
        .iter()
        .filter(|(m, _)| ColumnRule::covers(m, name) && !ColumnRule::covers(m, parent))
        .map(|(_, m)| *m)
        .max()
}

/// The plan for what `field` holds, once `field` itself is let through
/// (entirely if `whole`, else only the parts an allow name reaches).
fn contents(field: &Field, name: &str, rule: &ColumnRule, whole: bool) -> Option<Node> {
    if !rule.reaches_inside(name) {
        return whole.then(|| Node::keep(field));
    }
    match field.data_type() {
        DataType::Struct(children) => {
            let kept: Vec<(usize, Node)> = children
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let path = format!("{name}.{}", c.name());
                    plan_in(c, &path, Some(name), rule).map(|n| (i, n))
                })
                .collect();
            if kept.is_empty() {
                return None;
            }
            if kept.len() == children.len() && kept.iter().all(|(_, n)| n.op == Op::Keep) {
                return Some(Node::keep(field));
            }
            let fields: Fields = kept.iter().map(|(_, n)| n.out.clone()).collect();
            Some(Node {
                out: Arc::new(field.clone().with_data_type(DataType::Struct(fields))),
                op: Op::Struct(kept),
            })
        }
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            let inner = contents(item, name, rule, whole)?;
            if inner.op == Op::Keep {
                return Some(Node::keep(field));
            }
            let data_type = match field.data_type() {
                DataType::LargeList(_) => DataType::LargeList(inner.out.clone()),
                DataType::FixedSizeList(_, n) => DataType::FixedSizeList(inner.out.clone(), *n),
                _ => DataType::List(inner.out.clone()),
            };
            Some(Node {
                out: Arc::new(field.clone().with_data_type(data_type)),
                op: Op::List(Box::new(inner)),
            })
        }
        dt if is_opaque(dt) => {
            // Weir cannot take this column apart: hide it if the rule hides
            // or allows only part of it, mask it whole if it masks a part.
            let strictly_inside =
                |n: &String| ColumnRule::covers(name, n) && !ColumnRule::covers(n, name);
            if !whole || rule.deny.iter().any(strictly_inside) {
                return None;
            }
            let keep = Node::keep(field);
            let inner_mask = rule
                .mask
                .iter()
                .filter(|(n, _)| strictly_inside(n))
                .map(|(_, m)| *m)
                .max();
            Some(match inner_mask {
                Some(mask) => Node::masked(mask, keep),
                None => keep,
            })
        }
        // A leaf holds no named parts: names inside it match nothing.
        _ => whole.then(|| Node::keep(field)),
    }
}

fn is_opaque(data_type: &DataType) -> bool {
    match data_type {
        DataType::Dictionary(_, values) => values.is_nested(),
        DataType::RunEndEncoded(_, _) => true,
        other => other.is_nested(),
    }
}

/// The masking function: one per restricted column, holding its plan and
/// its key. Never registered by name.
#[derive(PartialEq, Eq, Hash)]
struct Restrict {
    signature: Signature,
    input: DataType,
    node: Node,
    key: Option<MaskKey>,
}

impl fmt::Debug for Restrict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Restrict")
            .field("input", &self.input)
            .field("output", self.node.out.data_type())
            .finish_non_exhaustive()
    }
}

impl ScalarUDFImpl for Restrict {
    fn name(&self) -> &str {
        FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(self.node.out.data_type().clone())
    }

    fn return_field_from_args(
        &self,
        args: ReturnFieldArgs<'_>,
    ) -> datafusion::common::Result<FieldRef> {
        match args.arg_fields {
            [f] if *f.data_type() == self.input => Ok(self.node.out.clone()),
            _ => Err(DataFusionError::Internal(format!(
                "{FUNCTION}: the column's type changed since the view was built"
            ))),
        }
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{FUNCTION} takes one argument"
            )));
        };
        let array = arg.to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(apply(
            &self.node,
            &array,
            self.key.as_ref(),
        )?))
    }
}

fn apply(
    node: &Node,
    array: &ArrayRef,
    key: Option<&MaskKey>,
) -> datafusion::common::Result<ArrayRef> {
    let internal = |what: &str| DataFusionError::Internal(format!("{FUNCTION}: {what}"));
    match &node.op {
        Op::Keep => Ok(array.clone()),
        Op::Struct(kept) => {
            let s = array
                .as_struct_opt()
                .ok_or_else(|| internal("expected a struct"))?;
            let DataType::Struct(fields) = node.out.data_type() else {
                return Err(internal("expected a struct type"));
            };
            let columns = kept
                .iter()
                .map(|(i, child)| {
                    let column = s
                        .columns()
                        .get(*i)
                        .ok_or_else(|| internal("missing field"))?;
                    apply(child, column, key)
                })
                .collect::<datafusion::common::Result<Vec<_>>>()?;
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                columns,
                s.nulls().cloned(),
            )?))
        }
        Op::List(item) => {
            let out = item.out.clone();
            if let Some(l) = array.as_list_opt::<i32>() {
                let values = apply(item, l.values(), key)?;
                Ok(Arc::new(ListArray::try_new(
                    out,
                    l.offsets().clone(),
                    values,
                    l.nulls().cloned(),
                )?))
            } else if let Some(l) = array.as_list_opt::<i64>() {
                let values = apply(item, l.values(), key)?;
                Ok(Arc::new(LargeListArray::try_new(
                    out,
                    l.offsets().clone(),
                    values,
                    l.nulls().cloned(),
                )?))
            } else if let Some(l) = array.as_fixed_size_list_opt() {
                let values = apply(item, l.values(), key)?;
                Ok(Arc::new(FixedSizeListArray::try_new(
                    out,
                    l.value_length(),
                    values,
                    l.nulls().cloned(),
                )?))
            } else {
                Err(internal("expected a list"))
            }
        }
        Op::Mask(m, inner) => {
            let array = apply(inner, array, key)?;
            mask::apply(*m, &array, node.out.data_type(), key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_shows_no_key() {
        let bytes = [0xa7; 32];
        let udf = ScalarUDF::new_from_impl(Restrict {
            signature: Signature::any(1, Volatility::Immutable),
            input: DataType::Utf8,
            node: Node::masked(
                Mask::Hash,
                Node::keep(&Field::new("e", DataType::Utf8, true)),
            ),
            key: Some(MaskKey::from_bytes(bytes)),
        });
        let shown = format!(
            "{udf:?} {:?} {}",
            udf.inner(),
            udf.call(vec![datafusion::prelude::col("e")])
        );
        assert!(!shown.contains("a7a7") && !shown.contains("167"), "{shown}");
        assert!(shown.contains(FUNCTION), "{shown}");
    }

    fn map_field() -> Field {
        let entries = Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Utf8, true),
            ])),
            false,
        );
        Field::new("attrs", DataType::Map(Arc::new(entries), false), true)
    }

    #[test]
    fn columns_weir_cannot_take_apart_are_hidden_or_masked_whole() {
        let attrs = map_field();
        let deny_inside = ColumnRule::deny(["attrs.secret"]);
        assert!(plan(&attrs, "attrs", &deny_inside).is_none());
        let allow_inside = ColumnRule::allow(["attrs.public"]);
        assert!(plan(&attrs, "attrs", &allow_inside).is_none());
        let mut mask_inside = ColumnRule::default();
        mask_inside.mask.insert("attrs.secret".into(), Mask::Redact);
        let node = plan(&attrs, "attrs", &mask_inside).unwrap();
        assert_eq!(node.out.data_type(), &DataType::Utf8);
        assert!(matches!(node.op, Op::Mask(Mask::Redact, _)));
        // A plain value holds no named parts: a name inside it changes nothing.
        let age = Field::new("age", DataType::Int32, true);
        assert_eq!(
            plan(&age, "age", &ColumnRule::deny(["age.x"])).unwrap().op,
            Op::Keep
        );
        assert!(plan(&age, "age", &ColumnRule::allow(["age.x"])).is_none());
    }
}
