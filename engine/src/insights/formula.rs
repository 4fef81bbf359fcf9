//! Formulas across trend series: letters name series (`A` the first), with numbers,
//! `+ - * /` and parentheses, e.g. `A / B` for DAU/MAU. Division by zero gives 0, as a
//! chart shows it.

use crate::{EngineError, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    Series(usize),
    Neg(Box<Expr>),
    Bin(Box<Expr>, char, Box<Expr>),
}

fn bad(f: &str, why: &str) -> EngineError {
    EngineError::InvalidQuery {
        code: "trends_formula",
        message: format!("formula \"{f}\": {why}"),
    }
}

/// Parse a formula over `series` series.
pub fn parse(text: &str, series: usize) -> Result<Expr> {
    let toks: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut p = Parser {
        text,
        toks,
        i: 0,
        series,
    };
    let e = p.sum()?;
    if p.i != p.toks.len() {
        return Err(bad(text, &format!("unexpected \"{}\"", p.toks[p.i])));
    }
    Ok(e)
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<char>,
    i: usize,
    series: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.toks.get(self.i).copied()
    }
    fn sum(&mut self) -> Result<Expr> {
        let mut e = self.product()?;
        while let Some(op @ ('+' | '-')) = self.peek() {
            self.i += 1;
            e = Expr::Bin(Box::new(e), op, Box::new(self.product()?));
        }
        Ok(e)
    }
    fn product(&mut self) -> Result<Expr> {
        let mut e = self.atom()?;
        while let Some(op @ ('*' | '/')) = self.peek() {
            self.i += 1;
            e = Expr::Bin(Box::new(e), op, Box::new(self.atom()?));
        }
        Ok(e)
    }
    fn atom(&mut self) -> Result<Expr> {
        match self.peek() {
            Some('(') => {
                self.i += 1;
                let e = self.sum()?;
                if self.peek() != Some(')') {
                    return Err(bad(self.text, "a \"(\" is not closed"));
                }
                self.i += 1;
                Ok(e)
            }
            Some('-') => {
                self.i += 1;
                Ok(Expr::Neg(Box::new(self.atom()?)))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                self.i += 1;
                let k = (c.to_ascii_uppercase() as u8 - b'A') as usize;
                if k >= self.series {
                    return Err(bad(
                        self.text,
                        &format!("there is no series {c} (this trend has {})", self.series),
                    ));
                }
                Ok(Expr::Series(k))
            }
            Some(c) if c.is_ascii_digit() || c == '.' => {
                let start = self.i;
                while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
                    self.i += 1;
                }
                let s: String = self.toks[start..self.i].iter().collect();
                s.parse()
                    .map(Expr::Num)
                    .map_err(|_| bad(self.text, &format!("\"{s}\" is not a number")))
            }
            Some(c) => Err(bad(self.text, &format!("unexpected \"{c}\""))),
            None => Err(bad(self.text, "it ends too early")),
        }
    }
}

/// Evaluate with `value(k)` the value of series k.
pub fn eval(e: &Expr, value: &dyn Fn(usize) -> f64) -> f64 {
    match e {
        Expr::Num(n) => *n,
        Expr::Series(k) => value(*k),
        Expr::Neg(x) => -eval(x, value),
        Expr::Bin(a, op, b) => {
            let (a, b) = (eval(a, value), eval(b, value));
            match op {
                '+' => a + b,
                '-' => a - b,
                '*' => a * b,
                _ => {
                    if b == 0.0 {
                        0.0
                    } else {
                        a / b
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_parentheses_and_division_by_zero() {
        let v = [10.0, 4.0, 0.0];
        let f = |t: &str| eval(&parse(t, 3).unwrap_or_else(|e| panic!("{e}")), &|k| v[k]);
        assert_eq!(f("A / B"), 2.5);
        assert_eq!(f("A + B * 2"), 18.0);
        assert_eq!(f("(A + B) * 2"), 28.0);
        assert_eq!(f("-A + 1"), -9.0);
        assert_eq!(f("A / C"), 0.0);
        assert_eq!(f("b/a*100"), 40.0);
        assert!(parse("A / D", 3).is_err());
        assert!(parse("A +", 3).is_err());
        assert!(parse("(A", 3).is_err());
        assert!(parse("A $ B", 3).is_err());
    }
}
