//! The filter parser: recursive descent from tokens to an [`Expr`] tree, one function per grammar
//! rule (the grammar is in the [`batch_process`](crate::batch_process) module docs).
//!
//! Nesting of parentheses and `!` is bounded by [`MAX_DEPTH`], and `&&`/`||` chains are n-ary
//! nodes, so neither parsing nor evaluating can overflow the stack.

use crate::batch_process::error::{FilterError, FilterErrorKind};
use crate::batch_process::expr::lexer::{Token, TokenKind, tokenize};
use crate::batch_process::expr::{CompareOp, Expr, Literal, MAX_DEPTH};

/// A parse failure: why, and the byte offset of the bad token.
type Failure = (FilterErrorKind, usize);

/// Parses the whole of `source` as one expression.
pub(crate) fn parse(source: &str) -> Result<Expr, FilterError> {
    let to_error = |(kind, offset): Failure| FilterError::new(kind, offset, source);
    let tokens = tokenize(source).map_err(to_error)?;
    let mut parser = Parser { source, tokens, position: 0, depth: 0 };
    let expr = parser.or().map_err(to_error)?;
    let next = parser.peek();
    if next.kind != TokenKind::End {
        return Err(to_error(parser.expected("'&&', '||' or end of input", next)));
    }
    Ok(expr)
}

struct Parser<'s> {
    source: &'s str,
    /// Never empty: the last token is always `End`.
    tokens: Vec<Token>,
    position: usize,
    /// How many parentheses and `!` enclose the current position.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // `position` never passes the `End` token, which is last.
        &self.tokens[self.position.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if token.kind != TokenKind::End {
            self.position += 1;
        }
        token
    }

    /// `or = and { "||" and }`
    fn or(&mut self) -> Result<Expr, Failure> {
        let mut items = vec![self.and()?];
        while self.peek().kind == TokenKind::Or {
            self.advance();
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::Or(items) })
    }

    /// `and = comparison { "&&" comparison }`
    fn and(&mut self) -> Result<Expr, Failure> {
        let mut items = vec![self.comparison()?];
        while self.peek().kind == TokenKind::And {
            self.advance();
            items.push(self.comparison()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::And(items) })
    }

    /// `comparison = unary [ compare_op unary | "contains" unary | "in" list ]` — at most one.
    fn comparison(&mut self) -> Result<Expr, Failure> {
        let left = self.unary()?;
        let op = match self.peek().kind {
            TokenKind::Eq => CompareOp::Eq,
            TokenKind::Ne => CompareOp::Ne,
            TokenKind::Lt => CompareOp::Lt,
            TokenKind::Le => CompareOp::Le,
            TokenKind::Gt => CompareOp::Gt,
            TokenKind::Ge => CompareOp::Ge,
            TokenKind::In => {
                self.advance();
                let list = self.list()?;
                return self.no_chain(Expr::In { operand: Box::new(left), list });
            }
            TokenKind::Contains => {
                self.advance();
                let part = self.unary()?;
                return self.no_chain(Expr::Contains { whole: Box::new(left), part: Box::new(part) });
            }
            _ => return Ok(left),
        };
        self.advance();
        let right = self.unary()?;
        self.no_chain(Expr::Compare { op, left: Box::new(left), right: Box::new(right) })
    }

    /// Refuses a comparison right after `expr` (`a < b < c`): comparisons do not associate.
    fn no_chain(&self, expr: Expr) -> Result<Expr, Failure> {
        let next = self.peek();
        let chained = matches!(
            next.kind,
            TokenKind::Eq
                | TokenKind::Ne
                | TokenKind::Lt
                | TokenKind::Le
                | TokenKind::Gt
                | TokenKind::Ge
                | TokenKind::In
                | TokenKind::Contains
        );
        if chained {
            return Err((
                FilterErrorKind::ChainedComparison { operator: next.kind.symbol().to_owned() },
                next.offset,
            ));
        }
        Ok(expr)
    }

    /// `unary = "!" unary | primary`
    fn unary(&mut self) -> Result<Expr, Failure> {
        if self.peek().kind != TokenKind::Not {
            return self.primary();
        }
        let bang = self.advance();
        self.enter(bang.offset)?;
        let operand = self.unary();
        self.depth -= 1;
        Ok(Expr::Not(Box::new(operand?)))
    }

    /// `primary = path | literal | "(" or ")"`
    fn primary(&mut self) -> Result<Expr, Failure> {
        let token = self.peek().clone();
        match &token.kind {
            TokenKind::Field(path) => {
                let path = path.clone();
                self.advance();
                return Ok(Expr::Field(path));
            }
            TokenKind::LeftParen => {
                self.advance();
                self.enter(token.offset)?;
                let inner = self.or();
                self.depth -= 1;
                let inner = inner?;
                let close = self.peek();
                if close.kind != TokenKind::RightParen {
                    let expected = format!("')' to close '(' at column {}", self.column(token.offset));
                    return Err(self.expected(&expected, close));
                }
                self.advance();
                return Ok(inner);
            }
            _ => {}
        }
        if let Some(literal) = literal(token.kind.clone()) {
            self.advance();
            return Ok(Expr::Literal(literal));
        }
        let expected = match self.position.checked_sub(1).and_then(|index| self.tokens.get(index)) {
            Some(previous) => format!("a value after {}", previous.kind.describe()),
            None => "a value".to_owned(),
        };
        Err(self.expected(&expected, &token))
    }

    /// `list = "[" [ literal { "," literal } [ "," ] ] "]"`
    fn list(&mut self) -> Result<Vec<Literal>, Failure> {
        let open = self.peek();
        if open.kind != TokenKind::LeftBracket {
            return Err(self.expected("'[' after 'in'", open));
        }
        self.advance();
        let mut items = Vec::new();
        loop {
            let token = self.peek();
            if token.kind == TokenKind::RightBracket {
                self.advance();
                return Ok(items);
            }
            let Some(item) = literal(token.kind.clone()) else {
                return Err(
                    self.expected("a literal (string, number, true, false or null) in the list", token)
                );
            };
            items.push(item);
            self.advance();
            let separator = self.peek();
            match separator.kind {
                TokenKind::Comma => {
                    self.advance();
                }
                TokenKind::RightBracket => {}
                _ => return Err(self.expected("',' or ']' in the list", separator)),
            }
        }
    }

    /// Goes one level deeper (a `(` or `!` at `offset`), refusing to pass [`MAX_DEPTH`].
    fn enter(&mut self, offset: usize) -> Result<(), Failure> {
        if self.depth >= MAX_DEPTH {
            return Err((FilterErrorKind::TooDeep { limit: MAX_DEPTH }, offset));
        }
        self.depth += 1;
        Ok(())
    }

    /// "expected `expected`, found `token`", with a hint when the token is a word for an operator.
    fn expected(&self, expected: &str, token: &Token) -> Failure {
        let mut found = token.kind.describe();
        if let TokenKind::Field(path) = &token.kind {
            let hint = match path.as_str() {
                "and" | "AND" => Some("&&"),
                "or" | "OR" => Some("||"),
                "not" | "NOT" => Some("!"),
                _ => None,
            };
            if let Some(operator) = hint {
                found.push_str(&format!(" (use '{operator}')"));
            }
        }
        (FilterErrorKind::Expected { expected: expected.to_owned(), found }, token.offset)
    }

    /// The 1-based character column of byte `offset`.
    fn column(&self, offset: usize) -> usize {
        self.source.get(..offset).map_or(0, |before| before.chars().count()) + 1
    }
}

/// The literal a token is, if it is one.
fn literal(kind: TokenKind) -> Option<Literal> {
    match kind {
        TokenKind::Null => Some(Literal::Null),
        TokenKind::True => Some(Literal::Bool(true)),
        TokenKind::False => Some(Literal::Bool(false)),
        TokenKind::Number { value, text } => Some(Literal::Number { value, text }),
        TokenKind::String(text) => Some(Literal::String(text)),
        _ => None,
    }
}
