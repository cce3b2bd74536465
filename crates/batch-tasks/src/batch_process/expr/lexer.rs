//! The filter lexer: expression text to tokens, each with the byte offset where it starts.
//!
//! Whitespace (any Unicode white space) separates tokens and is otherwise ignored. Field names
//! start with a letter (any script) or `_` and go on with letters, digits and `_`; a name in
//! backquotes (`` `Order ID` ``) may hold anything but a backquote. A path is names joined by dots,
//! and after a dot a name may also be all digits (an array index). Numbers start with a digit or
//! `-` and a digit; strings are quoted with `"` or `'`.

use crate::batch_process::error::FilterErrorKind;
use crate::batch_process::number::Number;
use crate::batch_process::path::FieldPath;

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    Field(FieldPath),
    String(String),
    Number {
        value: Number,
        text: String,
    },
    True,
    False,
    Null,
    In,
    Contains,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Not,
    And,
    Or,
    LeftParen,
    RightParen,
    LeftBracket,
    RightBracket,
    Comma,
    /// The end of the expression (always the last token).
    End,
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    /// The byte offset of its first character.
    pub(crate) offset: usize,
}

/// The reserved words: a lone unquoted name spelled like one of these is the keyword, not a field.
const KEYWORDS: [&str; 5] = ["true", "false", "null", "in", "contains"];

pub(crate) fn is_keyword(name: &str) -> bool {
    KEYWORDS.contains(&name)
}

/// Whether `c` may start a field name.
pub(crate) fn is_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

/// Whether `c` may continue a field name (or be a whole segment after a dot: digits are indexes).
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl TokenKind {
    /// The token for messages: `'&&'`, `field `amount``, `number 5`, `end of input`.
    pub(crate) fn describe(&self) -> String {
        match self {
            TokenKind::Field(path) => format!("field `{path}`"),
            TokenKind::String(text) => {
                let shown: String = text.chars().take(32).collect();
                let ellipsis = if shown.len() < text.len() { "…" } else { "" };
                format!("string {}{ellipsis}", serde_json::to_string(&shown).unwrap_or_default())
            }
            TokenKind::Number { text, .. } => format!("number {text}"),
            TokenKind::End => "end of input".to_owned(),
            other => format!("'{}'", other.symbol()),
        }
    }

    /// The spelling of a keyword or punctuation token.
    pub(crate) fn symbol(&self) -> &'static str {
        match self {
            TokenKind::True => "true",
            TokenKind::False => "false",
            TokenKind::Null => "null",
            TokenKind::In => "in",
            TokenKind::Contains => "contains",
            TokenKind::Eq => "==",
            TokenKind::Ne => "!=",
            TokenKind::Lt => "<",
            TokenKind::Le => "<=",
            TokenKind::Gt => ">",
            TokenKind::Ge => ">=",
            TokenKind::Not => "!",
            TokenKind::And => "&&",
            TokenKind::Or => "||",
            TokenKind::LeftParen => "(",
            TokenKind::RightParen => ")",
            TokenKind::LeftBracket => "[",
            TokenKind::RightBracket => "]",
            TokenKind::Comma => ",",
            TokenKind::Field(_) | TokenKind::String(_) | TokenKind::Number { .. } | TokenKind::End => "",
        }
    }
}

/// The tokens of `source`, ending with [`TokenKind::End`]; or the first lexical error and its byte
/// offset.
pub(crate) fn tokenize(source: &str) -> Result<Vec<Token>, (FilterErrorKind, usize)> {
    let mut lexer = Lexer { source, offset: 0 };
    let mut tokens = Vec::new();
    loop {
        lexer.skip_whitespace();
        let offset = lexer.offset;
        let Some(c) = lexer.peek() else {
            tokens.push(Token { kind: TokenKind::End, offset });
            return Ok(tokens);
        };
        let kind = match c {
            '(' => lexer.single(TokenKind::LeftParen),
            ')' => lexer.single(TokenKind::RightParen),
            '[' => lexer.single(TokenKind::LeftBracket),
            ']' => lexer.single(TokenKind::RightBracket),
            ',' => lexer.single(TokenKind::Comma),
            '=' => lexer.operator('=', TokenKind::Eq, None, "==")?,
            '!' => lexer.operator('=', TokenKind::Ne, Some(TokenKind::Not), "")?,
            '<' => lexer.operator('=', TokenKind::Le, Some(TokenKind::Lt), "")?,
            '>' => lexer.operator('=', TokenKind::Ge, Some(TokenKind::Gt), "")?,
            '&' => lexer.operator('&', TokenKind::And, None, "&&")?,
            '|' => lexer.operator('|', TokenKind::Or, None, "||")?,
            '"' | '\'' => TokenKind::String(lexer.string(c)?),
            '`' => lexer.path()?,
            c if c.is_ascii_digit() => lexer.number()?,
            '-' if lexer.peek_second().is_some_and(|next| next.is_ascii_digit()) => lexer.number()?,
            c if is_name_start(c) => lexer.path()?,
            c => {
                return Err((
                    FilterErrorKind::UnexpectedCharacter { character: c, suggestion: None },
                    offset,
                ));
            }
        };
        tokens.push(Token { kind, offset });
    }
}

struct Lexer<'s> {
    source: &'s str,
    offset: usize,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.source[self.offset..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.offset += c.len_utf8();
        Some(c)
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn single(&mut self, kind: TokenKind) -> TokenKind {
        self.bump();
        kind
    }

    /// A one- or two-character operator: `double` when the first character is followed by
    /// `second`, else `single`; with no `single`, a lone first character is an error suggesting
    /// `suggestion`.
    fn operator(
        &mut self,
        second: char,
        double: TokenKind,
        single: Option<TokenKind>,
        suggestion: &'static str,
    ) -> Result<TokenKind, (FilterErrorKind, usize)> {
        let start = self.offset;
        let Some(first) = self.bump() else {
            return Err((
                FilterErrorKind::Expected { expected: "a token".into(), found: "end of input".into() },
                start,
            ));
        };
        if self.peek() == Some(second) {
            self.bump();
            return Ok(double);
        }
        single.ok_or((
            FilterErrorKind::UnexpectedCharacter { character: first, suggestion: Some(suggestion) },
            start,
        ))
    }

    /// A string literal opened by `quote`, escapes resolved.
    fn string(&mut self, quote: char) -> Result<String, (FilterErrorKind, usize)> {
        let start = self.offset;
        self.bump();
        let mut text = String::new();
        loop {
            let escape_at = self.offset;
            match self.bump() {
                None => return Err((FilterErrorKind::UnterminatedString, start)),
                Some(c) if c == quote => return Ok(text),
                Some('\\') => {
                    let resolved = match self.bump() {
                        None => return Err((FilterErrorKind::UnterminatedString, start)),
                        Some(c @ ('"' | '\'' | '\\' | '/')) => c,
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some('b') => '\u{8}',
                        Some('f') => '\u{c}',
                        Some('u') => self.unicode_escape(escape_at)?,
                        Some(other) => {
                            return Err((
                                FilterErrorKind::InvalidEscape { escape: format!("\\{other}") },
                                escape_at,
                            ));
                        }
                    };
                    text.push(resolved);
                }
                Some(c) => text.push(c),
            }
        }
    }

    /// The rest of a `\uXXXX` escape (JSON style, a surrogate pair as two escapes).
    fn unicode_escape(&mut self, escape_at: usize) -> Result<char, (FilterErrorKind, usize)> {
        let high = self.hex4(escape_at)?;
        let code = if (0xD800..0xDC00).contains(&high) {
            if !self.rest().starts_with("\\u") {
                return Err(self.invalid_escape(escape_at));
            }
            self.offset += 2;
            let low = self.hex4(escape_at)?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(self.invalid_escape(escape_at));
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| self.invalid_escape(escape_at))
    }

    fn hex4(&mut self, escape_at: usize) -> Result<u32, (FilterErrorKind, usize)> {
        let digits: String = self.rest().chars().take(4).collect();
        if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(self.invalid_escape(escape_at));
        }
        self.offset += 4;
        u32::from_str_radix(&digits, 16).map_err(|_| self.invalid_escape(escape_at))
    }

    /// An invalid `\u` escape at `escape_at`: what was read of it, or `\u` and the hex digits
    /// that follow (at most four) when the error came before reading them.
    fn invalid_escape(&self, escape_at: usize) -> (FilterErrorKind, usize) {
        let read = self.source.get(escape_at..self.offset).unwrap_or("\\u");
        let escape = if read.len() > 2 {
            read.to_owned()
        } else {
            let digits: String = self.rest().chars().take(4).take_while(char::is_ascii_hexdigit).collect();
            format!("\\u{digits}")
        };
        (FilterErrorKind::InvalidEscape { escape }, escape_at)
    }

    /// A number: everything that could belong to one is taken, then checked as a whole, so that
    /// `1.2.3` or `12abc` is one bad number rather than a number and a surprise.
    fn number(&mut self) -> Result<TokenKind, (FilterErrorKind, usize)> {
        let start = self.offset;
        if self.peek() == Some('-') {
            self.bump();
        }
        let mut previous = None;
        while let Some(c) = self.peek() {
            let exponent_sign = (c == '+' || c == '-') && matches!(previous, Some('e' | 'E'));
            if !(is_name_char(c) || c == '.' || exponent_sign) {
                break;
            }
            previous = Some(c);
            self.bump();
        }
        let text = &self.source[start..self.offset];
        // The token starts with a digit or `-` and a digit, so the number grammar of
        // `Number::parse` is exactly the literal grammar here.
        match Number::parse(text) {
            Some(value) => Ok(TokenKind::Number { value, text: text.to_owned() }),
            None => Err((FilterErrorKind::InvalidNumber { text: text.to_owned() }, start)),
        }
    }

    /// A field path, or a keyword when it is a lone unquoted name spelled like one.
    fn path(&mut self) -> Result<TokenKind, (FilterErrorKind, usize)> {
        let mut segments = Vec::new();
        let mut quoted_any = false;
        loop {
            let segment_start = self.offset;
            if self.peek() == Some('`') {
                self.bump();
                let Some(length) = self.rest().find('`') else {
                    return Err((FilterErrorKind::UnterminatedName, segment_start));
                };
                if length == 0 {
                    return Err((FilterErrorKind::EmptyName, segment_start));
                }
                segments.push(self.rest()[..length].to_owned());
                self.offset += length + 1;
                quoted_any = true;
            } else {
                while self.peek().is_some_and(is_name_char) {
                    self.bump();
                }
                if self.offset == segment_start {
                    return Err((FilterErrorKind::ExpectedFieldName, segment_start));
                }
                segments.push(self.source[segment_start..self.offset].to_owned());
            }
            if self.peek() != Some('.') {
                break;
            }
            self.bump();
        }
        if let [name] = segments.as_slice()
            && !quoted_any
        {
            match name.as_str() {
                "true" => return Ok(TokenKind::True),
                "false" => return Ok(TokenKind::False),
                "null" => return Ok(TokenKind::Null),
                "in" => return Ok(TokenKind::In),
                "contains" => return Ok(TokenKind::Contains),
                _ => {}
            }
        }
        Ok(TokenKind::Field(FieldPath::from_segments(segments)))
    }
}
