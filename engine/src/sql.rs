//! SQL as values: text plus bound parameters, and the one identifier escaper.
//!
//! Values never go into SQL text; property names and column names from untrusted files go
//! through [`ident`].

use duckdb::types::Value;

/// The text items of a DuckDB list value (other items and non-lists give nothing).
pub fn text_list(v: Value) -> Vec<String> {
    match v {
        Value::List(items) => items
            .into_iter()
            .filter_map(|x| match x {
                Value::Text(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Quote an identifier for DuckDB: wrap in double quotes, double any inner quote.
pub fn ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push('"');
    for c in name.chars() {
        if c == '"' {
            s.push('"');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// Anything that can be bound as a parameter.
pub trait Param {
    fn into_value(self) -> Value;
}

impl Param for &str {
    fn into_value(self) -> Value {
        Value::Text(self.to_string())
    }
}
impl Param for String {
    fn into_value(self) -> Value {
        Value::Text(self)
    }
}
impl Param for i64 {
    fn into_value(self) -> Value {
        Value::BigInt(self)
    }
}
impl Param for f64 {
    fn into_value(self) -> Value {
        Value::Double(self)
    }
}
impl Param for bool {
    fn into_value(self) -> Value {
        Value::Boolean(self)
    }
}
impl Param for Value {
    fn into_value(self) -> Value {
        self
    }
}
impl<T: Param> Param for Option<T> {
    fn into_value(self) -> Value {
        match self {
            Some(v) => v.into_value(),
            None => Value::Null,
        }
    }
}

/// A statement and its parameters.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    pub text: String,
    pub params: Vec<Value>,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Self {
        Sql {
            text: text.into(),
            params: Vec::new(),
        }
    }

    /// Append SQL text verbatim (must not contain values).
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Append a `?` placeholder bound to `value`.
    pub fn bind(&mut self, value: impl Param) -> &mut Self {
        self.text.push('?');
        self.params.push(value.into_value());
        self
    }

    /// Append another statement's text and parameters (e.g. a sub-select).
    pub fn embed(&mut self, other: &Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.params.extend(other.params.iter().cloned());
        self
    }

    pub fn execute(&self, conn: &duckdb::Connection) -> duckdb::Result<usize> {
        let mut stmt = conn.prepare(&self.text)?;
        stmt.execute(duckdb::params_from_iter(self.params.iter()))
    }
}

/// Column `i` of an Arrow batch of a query's result, cast to `to` (a no-op when it is
/// already) and downcast to its array type `A`.
pub fn arrow_column<A: duckdb::arrow::array::Array + Clone + 'static>(
    batch: &duckdb::arrow::record_batch::RecordBatch,
    i: usize,
    to: &duckdb::arrow::datatypes::DataType,
) -> crate::Result<A> {
    let bad = |e: String| crate::EngineError::InvalidArgument(format!("result column {i}: {e}"));
    let col = duckdb::arrow::compute::cast(batch.column(i), to).map_err(|e| bad(e.to_string()))?;
    col.as_any()
        .downcast_ref::<A>()
        .cloned()
        .ok_or_else(|| bad(format!("not {to}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ident_escapes_quotes() {
        assert_eq!(ident("a"), "\"a\"");
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(ident("$set.email"), "\"$set.email\"");
    }

    #[test]
    fn bind_adds_placeholders() {
        let mut s = Sql::new("SELECT ");
        s.bind(1i64).push(" + ").bind(2i64);
        assert_eq!(s.text, "SELECT ? + ?");
        assert_eq!(s.params.len(), 2);
    }
}
