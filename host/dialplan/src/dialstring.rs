//! Dial strings: the argument of `originate` and `bridge`, parsed the way
//! FreeSWITCH's `switch_ivr_originate.c` reads it, into groups of legs with
//! their variables. Parsing is sans-IO: nothing here rings anything, it only
//! says what a dial string asks for.
//!
//! The shape is
//! `{globals}<group vars>[leg vars]endpoint/data,… | <group vars>…`:
//! `|` separates failover groups tried one after the other, `,` separates
//! legs rung at once within a group, and a leg's `[]` variables beat its
//! group's `<>` ones, which beat the dial string's `{}` ones.
//!
//! Quoting follows FreeSWITCH's `switch_separate_string`: `'…'` hides
//! separators and loses its quotes, and a backslash makes the next separator,
//! quote or backslash literal (`\n`, `\r`, `\t` and `\s` give a newline,
//! carriage return, tab and space; any other escape is kept as written).

use std::fmt;

/// A parsed dial string: variables for every leg, then the failover groups in
/// the order they are tried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialString {
    pub vars: Vec<(String, String)>,
    pub groups: Vec<DialGroup>,
}

/// Legs rung simultaneously; the next group is tried only if all of them fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialGroup {
    pub vars: Vec<(String, String)>,
    pub legs: Vec<DialLeg>,
}

/// One call attempt: the endpoint interface (`sofia`, `user`, `loopback`,
/// `error`, …) and everything after the first `/`, which only that endpoint
/// knows how to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialLeg {
    pub vars: Vec<(String, String)>,
    pub endpoint: String,
    pub data: String,
}

impl DialLeg {
    /// The leg's effective variables: the dial string's `{}` ones, then the
    /// group's `<>`, then the leg's `[]`, later overriding earlier. Each name
    /// appears once, in first-seen order, holding the winning value.
    pub fn effective_vars(&self, ds: &DialString, group: &DialGroup) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (name, value) in ds.vars.iter().chain(&group.vars).chain(&self.vars) {
            match out.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1.clone_from(value),
                None => out.push((name.clone(), value.clone())),
            }
        }
        out
    }
}

/// Why a dial string was refused. Offsets are byte offsets into the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialError {
    /// Nothing but white space.
    Empty,
    /// Variables were given but no leg to apply them to.
    NoLegs,
    /// Two separators with nothing between them, or a group with no legs.
    EmptyLeg { at: usize },
    /// A leg with no `/` between endpoint and data.
    MissingSlash { leg: String },
    /// A leg that starts with `/`.
    EmptyEndpoint { leg: String },
    /// A `{`, `[` or `<` that is never closed.
    Unclosed { open: char, at: usize },
    /// A `}`, `]` or `>` with no matching opener.
    UnexpectedClose { close: char, at: usize },
    /// A `'` with no closing `'`.
    UnterminatedQuote { at: usize },
    /// A variable item with no `=`, such as `{foo}`.
    MissingEquals { item: String, at: usize },
    /// A variable item such as `{=value}`.
    EmptyVarName { at: usize },
    /// A `{}` block anywhere but the start, or a `<>` block anywhere but the
    /// start of a group.
    MisplacedBlock { open: char, at: usize },
    /// A `^^X` separator that would make the block unreadable.
    BadSeparator { sep: char, at: usize },
    /// The `:_:` enterprise originate separator, which is not supported.
    Enterprise { at: usize },
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialError::Empty => write!(f, "empty dial string"),
            DialError::NoLegs => write!(f, "dial string has variables but no legs"),
            DialError::EmptyLeg { at } => write!(f, "empty leg at offset {at}"),
            DialError::MissingSlash { leg } => {
                write!(f, "leg `{leg}` has no `/` between endpoint and data")
            }
            DialError::EmptyEndpoint { leg } => write!(f, "leg `{leg}` has no endpoint before `/`"),
            DialError::Unclosed { open, at } => {
                write!(f, "`{open}` at offset {at} is never closed")
            }
            DialError::UnexpectedClose { close, at } => {
                write!(f, "unexpected `{close}` at offset {at}")
            }
            DialError::UnterminatedQuote { at } => {
                write!(f, "quote at offset {at} is never closed")
            }
            DialError::MissingEquals { item, at } => {
                write!(f, "variable `{item}` at offset {at} has no `=`")
            }
            DialError::EmptyVarName { at } => write!(f, "variable at offset {at} has no name"),
            DialError::MisplacedBlock { open: '{', at } => write!(
                f,
                "`{{…}}` block at offset {at}: such blocks are only allowed at the start of the dial string"
            ),
            DialError::MisplacedBlock { open, at } => {
                let close = closer_of(*open).unwrap_or(*open);
                write!(
                    f,
                    "`{open}…{close}` block at offset {at}: such blocks are only allowed at the start of a group"
                )
            }
            DialError::BadSeparator { sep, at } => {
                write!(f, "`^^{sep}` at offset {at} is not a usable variable separator")
            }
            DialError::Enterprise { at } => write!(
                f,
                "enterprise originate separator `:_:` at offset {at} is not supported"
            ),
        }
    }
}

impl std::error::Error for DialError {}

/// Parses an `originate` / `bridge` dial string.
pub fn parse(s: &str) -> Result<DialString, DialError> {
    if s.trim().is_empty() {
        return Err(DialError::Empty);
    }
    let mut p = Parser { src: s, pos: 0 };
    p.skip_ws();
    let mut vars = Vec::new();
    while p.peek() == Some('{') {
        vars.extend(p.block('{', '}')?);
        p.skip_ws();
    }
    if p.peek().is_none() {
        return Err(DialError::NoLegs);
    }
    let groups = p.groups()?;
    Ok(DialString { vars, groups })
}

fn closer_of(open: char) -> Option<char> {
    match open {
        '{' => Some('}'),
        '[' => Some(']'),
        '<' => Some('>'),
        _ => None,
    }
}

/// Escapes every context honours, on top of the separators it adds.
fn unescape(c: char, extra: &[char]) -> Option<char> {
    match c {
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        's' => Some(' '),
        '\'' | '"' | '\\' => Some(c),
        _ if extra.contains(&c) => Some(c),
        _ => None,
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

/// One `name=value` item of a variable block, as it is being read.
struct Item {
    start: usize,
    name: Option<String>,
    text: String,
}

impl Item {
    fn new(start: usize) -> Self {
        Item {
            start,
            name: None,
            text: String::new(),
        }
    }

    fn finish(
        self,
        src: &str,
        end: usize,
        vars: &mut Vec<(String, String)>,
    ) -> Result<(), DialError> {
        match self.name {
            // FreeSWITCH skips empty items, which makes `{a=1,}` and `{}` legal.
            None if self.text.trim().is_empty() => Ok(()),
            None => Err(DialError::MissingEquals {
                item: src
                    .get(self.start..end)
                    .unwrap_or(&self.text)
                    .trim()
                    .to_string(),
                at: self.start,
            }),
            Some(name) => {
                let name = name.trim();
                if name.is_empty() {
                    return Err(DialError::EmptyVarName { at: self.start });
                }
                vars.push((name.to_string(), self.text));
                Ok(())
            }
        }
    }
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// Reads the character after a backslash into `out`.
    fn escape_into(&mut self, out: &mut String, extra: &[char]) {
        let Some(c) = self.bump() else {
            out.push('\\');
            return;
        };
        match unescape(c, extra) {
            Some(lit) => out.push(lit),
            None => {
                out.push('\\');
                out.push(c);
            }
        }
    }

    /// Reads one `{…}`, `[…]` or `<…>` block starting at the cursor.
    fn block(&mut self, open: char, close: char) -> Result<Vec<(String, String)>, DialError> {
        let open_at = self.pos;
        self.bump();
        let mut sep = ',';
        if self.rest().starts_with("^^") {
            self.pos += 2;
            let sep_at = self.pos;
            match self.bump() {
                None => return Err(DialError::Unclosed { open, at: open_at }),
                Some(c) if [open, close, '=', '\'', '\\'].contains(&c) => {
                    return Err(DialError::BadSeparator { sep: c, at: sep_at })
                }
                Some(c) => sep = c,
            }
        }
        let extra = [sep, ',', '|', '='];
        let mut vars = Vec::new();
        let mut item = Item::new(self.pos);
        // Same-kind nesting is counted so `{x=${y}}` keeps its inner braces,
        // as FreeSWITCH's switch_find_end_paren does; going further than
        // FreeSWITCH, a separator inside them does not cut `${f(a,b)}` apart.
        let mut depth = 0usize;
        let mut quote_at: Option<usize> = None;
        loop {
            let at = self.pos;
            let Some(c) = self.bump() else {
                return Err(match quote_at {
                    Some(q) => DialError::UnterminatedQuote { at: q },
                    None => DialError::Unclosed { open, at: open_at },
                });
            };
            if c == '\\' {
                self.escape_into(&mut item.text, &extra);
                continue;
            }
            if c == '\'' {
                quote_at = if quote_at.is_some() { None } else { Some(at) };
                continue;
            }
            if quote_at.is_some() {
                item.text.push(c);
            } else if c == open {
                depth += 1;
                item.text.push(c);
            } else if c == close && depth > 0 {
                depth -= 1;
                item.text.push(c);
            } else if c == close {
                item.finish(self.src, at, &mut vars)?;
                return Ok(vars);
            } else if c == sep && depth == 0 {
                let next = Item::new(self.pos);
                std::mem::replace(&mut item, next).finish(self.src, at, &mut vars)?;
            } else if c == '=' && depth == 0 && item.name.is_none() {
                item.name = Some(std::mem::take(&mut item.text));
            } else {
                item.text.push(c);
            }
        }
    }

    fn groups(&mut self) -> Result<Vec<DialGroup>, DialError> {
        let mut groups: Vec<DialGroup> = Vec::new();
        loop {
            self.skip_ws();
            let mut vars = Vec::new();
            while self.peek() == Some('<') {
                vars.extend(self.block('<', '>')?);
                self.skip_ws();
            }
            let mut legs = Vec::new();
            let last_group = loop {
                let at = self.pos;
                let leg = self.leg()?;
                let term = self.bump();
                match leg {
                    Some(leg) => legs.push(leg),
                    // FreeSWITCH's splitter drops one dangling separator, so
                    // `user/1000,` and `a/1|` still dial; any other hole is
                    // most likely a mistake in how the string was built.
                    None if !legs.is_empty() && term != Some(',') => {}
                    None if term.is_none() && groups.is_empty() => return Err(DialError::NoLegs),
                    None if term.is_none() && vars.is_empty() && !groups.is_empty() => {
                        return Ok(groups)
                    }
                    None => return Err(DialError::EmptyLeg { at }),
                }
                match term {
                    Some(',') => continue,
                    Some(_) => break false,
                    None => break true,
                }
            };
            groups.push(DialGroup { vars, legs });
            if last_group {
                return Ok(groups);
            }
        }
    }

    /// Reads one leg up to (not including) its `,` / `|` terminator. `None`
    /// means the leg was completely empty.
    fn leg(&mut self) -> Result<Option<DialLeg>, DialError> {
        self.skip_ws();
        let start = self.pos;
        let mut vars = Vec::new();
        let mut had_block = false;
        while self.peek() == Some('[') {
            vars.extend(self.block('[', ']')?);
            had_block = true;
            self.skip_ws();
        }
        if let Some(open @ ('{' | '<')) = self.peek() {
            return Err(DialError::MisplacedBlock { open, at: self.pos });
        }
        let text = self.leg_text()?;
        if text.is_empty() && !had_block {
            return Ok(None);
        }
        let raw = || {
            self.src
                .get(start..self.pos)
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let Some((endpoint, data)) = text.split_once('/') else {
            return Err(DialError::MissingSlash { leg: raw() });
        };
        if endpoint.is_empty() {
            return Err(DialError::EmptyEndpoint { leg: raw() });
        }
        Ok(Some(DialLeg {
            vars,
            endpoint: endpoint.to_string(),
            data: data.to_string(),
        }))
    }

    /// Reads `endpoint/data`, resolving quotes and escapes and dropping
    /// trailing white space that was not quoted or escaped.
    fn leg_text(&mut self) -> Result<String, DialError> {
        let mut out = String::new();
        let mut keep = 0;
        // Brackets in data (an IPv6 host, a `${…}` expansion) shield their
        // separators but stay in the data.
        let mut nest: Vec<(char, usize)> = Vec::new();
        let mut quote_at: Option<usize> = None;
        while let Some(c) = self.peek() {
            let at = self.pos;
            if quote_at.is_none() && nest.is_empty() && (c == ',' || c == '|') {
                break;
            }
            self.bump();
            if c == '\\' {
                self.escape_into(&mut out, &[',', '|']);
                keep = out.len();
                continue;
            }
            if c == '\'' {
                quote_at = if quote_at.is_some() { None } else { Some(at) };
                keep = out.len();
                continue;
            }
            if quote_at.is_none() {
                match c {
                    ':' if nest.is_empty() && self.rest().starts_with("_:") => {
                        return Err(DialError::Enterprise { at });
                    }
                    '{' | '[' | '<' => nest.push((c, at)),
                    '}' | ']' | '>' => match nest.pop() {
                        Some((open, _)) if closer_of(open) == Some(c) => {}
                        _ => return Err(DialError::UnexpectedClose { close: c, at }),
                    },
                    _ => {}
                }
            }
            out.push(c);
            if quote_at.is_some() || !c.is_whitespace() {
                keep = out.len();
            }
        }
        if let Some(at) = quote_at {
            return Err(DialError::UnterminatedQuote { at });
        }
        if let Some(&(open, at)) = nest.last() {
            return Err(DialError::Unclosed { open, at });
        }
        out.truncate(keep);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn leg(endpoint: &str, data: &str) -> DialLeg {
        DialLeg {
            vars: Vec::new(),
            endpoint: endpoint.to_string(),
            data: data.to_string(),
        }
    }

    /// Every group's legs as `endpoint/data`, for compact shape checks.
    fn shape(ds: &DialString) -> Vec<Vec<String>> {
        ds.groups
            .iter()
            .map(|g| {
                g.legs
                    .iter()
                    .map(|l| format!("{}/{}", l.endpoint, l.data))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn single_leg_splits_endpoint_from_data_at_the_first_slash() {
        let ds = parse("loopback/9664/default/XML").unwrap();
        assert!(ds.vars.is_empty());
        assert_eq!(
            ds.groups,
            vec![DialGroup {
                vars: Vec::new(),
                legs: vec![leg("loopback", "9664/default/XML")],
            }]
        );
    }

    #[test]
    fn sofia_leg_keeps_profile_and_uri_in_data() {
        let ds = parse("sofia/internal/1000@127.0.0.1").unwrap();
        assert_eq!(
            ds.groups[0].legs,
            vec![leg("sofia", "internal/1000@127.0.0.1")]
        );
    }

    #[test]
    fn error_endpoint_takes_the_cause_as_data() {
        let ds = parse("error/USER_BUSY").unwrap();
        assert_eq!(ds.groups[0].legs, vec![leg("error", "USER_BUSY")]);
    }

    #[test]
    fn braces_set_variables_for_the_whole_dial_string() {
        let ds = parse(
            "{origination_uuid=abc,ignore_early_media=true}loopback/9664|sofia/gateway/gw1/1000",
        )
        .unwrap();
        assert_eq!(
            ds.vars,
            vars(&[("origination_uuid", "abc"), ("ignore_early_media", "true")])
        );
        assert_eq!(
            shape(&ds),
            vec![vec!["loopback/9664"], vec!["sofia/gateway/gw1/1000"]]
        );
        assert!(ds.groups.iter().all(|g| g.vars.is_empty()));
        assert!(ds
            .groups
            .iter()
            .flat_map(|g| &g.legs)
            .all(|l| l.vars.is_empty()));
    }

    #[test]
    fn several_brace_blocks_accumulate_in_order() {
        let ds = parse("{a=1} {b=2}user/1000").unwrap();
        assert_eq!(ds.vars, vars(&[("a", "1"), ("b", "2")]));
    }

    #[test]
    fn brackets_set_variables_for_their_leg_only() {
        let ds = parse("[leg_timeout=5]user/1000,[leg_timeout=10]user/1001").unwrap();
        let legs = &ds.groups[0].legs;
        assert_eq!(legs.len(), 2);
        assert_eq!(legs[0].vars, vars(&[("leg_timeout", "5")]));
        assert_eq!(legs[0].data, "1000");
        assert_eq!(legs[1].vars, vars(&[("leg_timeout", "10")]));
        assert_eq!(legs[1].data, "1001");
    }

    #[test]
    fn several_bracket_blocks_on_one_leg_accumulate() {
        let ds = parse("[a=1][b=2] user/1000").unwrap();
        assert_eq!(ds.groups[0].legs[0].vars, vars(&[("a", "1"), ("b", "2")]));
        assert_eq!(ds.groups[0].legs[0].endpoint, "user");
    }

    #[test]
    fn brackets_override_braces_of_the_same_name() {
        let ds =
            parse("{leg_timeout=30,hangup_after_bridge=true}[leg_timeout=5]user/1000,user/1001")
                .unwrap();
        let g = &ds.groups[0];
        assert_eq!(
            g.legs[0].effective_vars(&ds, g),
            vars(&[("leg_timeout", "5"), ("hangup_after_bridge", "true")])
        );
        assert_eq!(
            g.legs[1].effective_vars(&ds, g),
            vars(&[("leg_timeout", "30"), ("hangup_after_bridge", "true")])
        );
    }

    #[test]
    fn commas_ring_legs_in_parallel_within_one_group() {
        let ds = parse("user/1000,user/1001,sofia/internal/1002@example.com").unwrap();
        assert_eq!(
            shape(&ds),
            vec![vec![
                "user/1000",
                "user/1001",
                "sofia/internal/1002@example.com"
            ]]
        );
    }

    #[test]
    fn pipes_make_sequential_failover_groups() {
        let ds = parse("error/USER_BUSY|null/1000").unwrap();
        assert_eq!(shape(&ds), vec![vec!["error/USER_BUSY"], vec!["null/1000"]]);
    }

    #[test]
    fn commas_and_pipes_combine_into_groups_of_parallel_legs() {
        let ds = parse("a/1,b/2|c/3").unwrap();
        assert_eq!(shape(&ds), vec![vec!["a/1", "b/2"], vec!["c/3"]]);
    }

    #[test]
    fn commas_inside_braces_do_not_split_legs() {
        let ds = parse("{a=1,b=2}user/1000").unwrap();
        assert_eq!(ds.groups.len(), 1);
        assert_eq!(ds.groups[0].legs.len(), 1);
        assert_eq!(ds.vars, vars(&[("a", "1"), ("b", "2")]));
    }

    #[test]
    fn commas_and_pipes_inside_brackets_do_not_split_legs_or_groups() {
        let ds = parse("[a=1,b=x\\|y]user/1000,user/1001").unwrap();
        assert_eq!(shape(&ds), vec![vec!["user/1000", "user/1001"]]);
        assert_eq!(ds.groups[0].legs[0].vars, vars(&[("a", "1"), ("b", "x|y")]));
    }

    #[test]
    fn quoted_values_keep_commas_and_pipes() {
        let ds = parse("{absolute_codec_string='PCMU,PCMA',x='a|b'}[y='1,2|3']user/1000|user/1001")
            .unwrap();
        assert_eq!(
            ds.vars,
            vars(&[("absolute_codec_string", "PCMU,PCMA"), ("x", "a|b")])
        );
        assert_eq!(ds.groups[0].legs[0].vars, vars(&[("y", "1,2|3")]));
        assert_eq!(shape(&ds), vec![vec!["user/1000"], vec!["user/1001"]]);
    }

    #[test]
    fn escaped_comma_is_a_literal_comma_inside_blocks() {
        let ds = parse("{codecs=PCMU\\,PCMA}[note=a\\,b]user/1000").unwrap();
        assert_eq!(ds.vars, vars(&[("codecs", "PCMU,PCMA")]));
        assert_eq!(ds.groups[0].legs[0].vars, vars(&[("note", "a,b")]));
    }

    #[test]
    fn caret_caret_changes_the_variable_separator() {
        let ds = parse("{^^:a=1,2:b=3}user/1000").unwrap();
        assert_eq!(ds.vars, vars(&[("a", "1,2"), ("b", "3")]));
    }

    #[test]
    fn caret_caret_works_in_leg_brackets_without_splitting_legs() {
        let ds =
            parse("[^^;absolute_codec_string=PCMU,PCMA;leg_timeout=5]user/1000,user/1001").unwrap();
        assert_eq!(
            ds.groups[0].legs[0].vars,
            vars(&[("absolute_codec_string", "PCMU,PCMA"), ("leg_timeout", "5")])
        );
        assert_eq!(shape(&ds), vec![vec!["user/1000", "user/1001"]]);
    }

    #[test]
    fn angle_brackets_set_variables_for_their_group() {
        let ds = parse("{a=1}<b=2>user/1000,user/1001|<b=3,c=4>user/1002|user/1003").unwrap();
        assert_eq!(ds.vars, vars(&[("a", "1")]));
        assert_eq!(ds.groups[0].vars, vars(&[("b", "2")]));
        assert_eq!(ds.groups[1].vars, vars(&[("b", "3"), ("c", "4")]));
        assert!(ds.groups[2].vars.is_empty());
        assert_eq!(
            shape(&ds),
            vec![
                vec!["user/1000", "user/1001"],
                vec!["user/1002"],
                vec!["user/1003"]
            ]
        );
    }

    #[test]
    fn effective_vars_rank_leg_over_group_over_dial_string() {
        let ds = parse("{x=global,y=global,z=global}<y=group,z=group>[z=leg]user/1000").unwrap();
        let g = &ds.groups[0];
        assert_eq!(
            g.legs[0].effective_vars(&ds, g),
            vars(&[("x", "global"), ("y", "group"), ("z", "leg")])
        );
    }

    #[test]
    fn effective_vars_list_each_name_once_in_first_seen_order() {
        let ds = parse("{b=1,a=1,b=2}<c=1,a=2>[d=1,c=2]user/1000").unwrap();
        let g = &ds.groups[0];
        assert_eq!(
            g.legs[0].effective_vars(&ds, g),
            vars(&[("b", "2"), ("a", "2"), ("c", "2"), ("d", "1")])
        );
    }

    #[test]
    fn white_space_around_legs_and_separators_is_trimmed() {
        let ds = parse("  {a=1}  [b=2] user/1000 ,  user/1001  |  <c=3>  user/1002  ").unwrap();
        assert_eq!(
            shape(&ds),
            vec![vec!["user/1000", "user/1001"], vec!["user/1002"]]
        );
        assert_eq!(ds.groups[1].vars, vars(&[("c", "3")]));
    }

    #[test]
    fn names_are_trimmed_and_values_kept_as_written() {
        let ds = parse("{ a = 1 , b=' two '}user/1000").unwrap();
        assert_eq!(ds.vars, vars(&[("a", " 1 "), ("b", " two ")]));
    }

    #[test]
    fn values_may_contain_equals_signs() {
        let ds = parse("{sip_h_X-Foo=a=b}user/1000").unwrap();
        assert_eq!(ds.vars, vars(&[("sip_h_X-Foo", "a=b")]));
    }

    #[test]
    fn empty_items_in_a_block_are_ignored() {
        let ds = parse("{a=1,,b=2,}{}user/1000").unwrap();
        assert_eq!(ds.vars, vars(&[("a", "1"), ("b", "2")]));
    }

    #[test]
    fn nested_braces_in_a_value_are_kept_whole() {
        let ds = parse("{origination_caller_id_number=${caller_id_number},x=1}user/1000").unwrap();
        assert_eq!(
            ds.vars,
            vars(&[
                ("origination_caller_id_number", "${caller_id_number}"),
                ("x", "1")
            ])
        );
    }

    #[test]
    fn backslash_escapes_follow_freeswitch() {
        let ds = parse("{a=x\\sy,b=\\d+,c=it\\'s}user/1000").unwrap();
        assert_eq!(ds.vars, vars(&[("a", "x y"), ("b", "\\d+"), ("c", "it's")]));
    }

    #[test]
    fn escaped_comma_in_leg_data_does_not_split_legs() {
        let ds = parse("loopback/a\\,b,user/1000").unwrap();
        assert_eq!(shape(&ds), vec![vec!["loopback/a,b", "user/1000"]]);
    }

    #[test]
    fn quotes_in_leg_data_shield_separators_and_are_removed() {
        let ds = parse("loopback/'a,b|c' ,user/1000").unwrap();
        assert_eq!(shape(&ds), vec![vec!["loopback/a,b|c", "user/1000"]]);
    }

    #[test]
    fn brackets_in_leg_data_shield_separators_and_are_kept() {
        let ds = parse("sofia/internal/1000@[2001:db8::1]:5060,loopback/${a,b}|user/1000").unwrap();
        assert_eq!(
            shape(&ds),
            vec![
                vec!["sofia/internal/1000@[2001:db8::1]:5060", "loopback/${a,b}"],
                vec!["user/1000"]
            ]
        );
    }

    #[test]
    fn one_trailing_separator_is_tolerated_like_freeswitch() {
        assert_eq!(
            shape(&parse("user/1000,").unwrap()),
            vec![vec!["user/1000"]]
        );
        assert_eq!(
            shape(&parse("user/1000|").unwrap()),
            vec![vec!["user/1000"]]
        );
        assert_eq!(
            shape(&parse("user/1000,|user/1001").unwrap()),
            vec![vec!["user/1000"], vec!["user/1001"]]
        );
    }

    #[test]
    fn enterprise_separator_inside_quotes_is_data() {
        let ds = parse("loopback/'a:_:b'").unwrap();
        assert_eq!(ds.groups[0].legs[0].data, "a:_:b");
        let ds = parse("{x=a:_:b}user/1000").unwrap();
        assert_eq!(ds.vars, vars(&[("x", "a:_:b")]));
    }

    #[test]
    fn empty_dial_string_is_an_error() {
        assert_eq!(parse(""), Err(DialError::Empty));
        assert_eq!(parse("   "), Err(DialError::Empty));
    }

    #[test]
    fn variables_without_any_leg_are_an_error() {
        assert_eq!(parse("{a=1} "), Err(DialError::NoLegs));
        assert_eq!(parse("{a=1}<b=2>"), Err(DialError::NoLegs));
    }

    #[test]
    fn leg_without_slash_is_an_error_naming_the_leg() {
        assert_eq!(
            parse("user/1000,[a=1]voicemail"),
            Err(DialError::MissingSlash {
                leg: "[a=1]voicemail".to_string()
            })
        );
        let msg = parse("nowhere").unwrap_err().to_string();
        assert!(msg.contains("nowhere"), "{msg}");
    }

    #[test]
    fn leg_without_endpoint_is_an_error() {
        assert_eq!(
            parse("/1000"),
            Err(DialError::EmptyEndpoint {
                leg: "/1000".to_string()
            })
        );
    }

    #[test]
    fn empty_leg_between_separators_is_an_error() {
        assert_eq!(parse("a/1,,b/2"), Err(DialError::EmptyLeg { at: 4 }));
        assert_eq!(parse("a/1||b/2"), Err(DialError::EmptyLeg { at: 4 }));
        assert_eq!(parse("|a/1"), Err(DialError::EmptyLeg { at: 0 }));
        assert_eq!(parse("{a=1}|a/1"), Err(DialError::EmptyLeg { at: 5 }));
        assert!(matches!(
            parse("a/1|<x=1>"),
            Err(DialError::EmptyLeg { .. })
        ));
    }

    #[test]
    fn unbalanced_brace_is_an_error_with_its_position() {
        assert_eq!(
            parse("{a=1user/1000"),
            Err(DialError::Unclosed { open: '{', at: 0 })
        );
    }

    #[test]
    fn unbalanced_bracket_is_an_error_with_its_position() {
        assert_eq!(
            parse("user/1000,[a=1user/1001"),
            Err(DialError::Unclosed { open: '[', at: 10 })
        );
    }

    #[test]
    fn unbalanced_angle_bracket_is_an_error_with_its_position() {
        assert_eq!(
            parse("a/1|<x=1 b/2"),
            Err(DialError::Unclosed { open: '<', at: 4 })
        );
    }

    #[test]
    fn unbalanced_bracket_in_leg_data_is_an_error() {
        assert_eq!(
            parse("sofia/internal/1000@[::1"),
            Err(DialError::Unclosed { open: '[', at: 20 })
        );
    }

    #[test]
    fn stray_closing_bracket_is_an_error() {
        assert_eq!(
            parse("{a=1}}user/1000"),
            Err(DialError::UnexpectedClose { close: '}', at: 5 })
        );
        assert_eq!(
            parse("user/1000]"),
            Err(DialError::UnexpectedClose { close: ']', at: 9 })
        );
    }

    #[test]
    fn unterminated_quote_is_an_error_with_its_position() {
        assert_eq!(
            parse("{a='1,2}user/1000"),
            Err(DialError::UnterminatedQuote { at: 3 })
        );
        assert_eq!(
            parse("loopback/'9664"),
            Err(DialError::UnterminatedQuote { at: 9 })
        );
    }

    #[test]
    fn enterprise_separator_is_rejected() {
        assert_eq!(
            parse("{a=1}user/1000:_:user/1001"),
            Err(DialError::Enterprise { at: 14 })
        );
        assert!(parse("a/1 :_: b/2")
            .unwrap_err()
            .to_string()
            .contains(":_:"));
    }

    #[test]
    fn variable_without_equals_is_an_error_naming_it() {
        assert_eq!(
            parse("{foo}user/1000"),
            Err(DialError::MissingEquals {
                item: "foo".to_string(),
                at: 1
            })
        );
        assert_eq!(
            parse("[a=1, bar ]user/1000"),
            Err(DialError::MissingEquals {
                item: "bar".to_string(),
                at: 5
            })
        );
    }

    #[test]
    fn variable_without_name_is_an_error() {
        assert_eq!(
            parse("{ =1}user/1000"),
            Err(DialError::EmptyVarName { at: 1 })
        );
    }

    #[test]
    fn unusable_caret_caret_separator_is_an_error() {
        assert_eq!(
            parse("{^^=a=1}user/1000"),
            Err(DialError::BadSeparator { sep: '=', at: 3 })
        );
        assert_eq!(parse("{^^"), Err(DialError::Unclosed { open: '{', at: 0 }));
    }

    #[test]
    fn brace_block_after_the_start_is_rejected() {
        assert_eq!(
            parse("user/1000|{a=1}user/1001"),
            Err(DialError::MisplacedBlock { open: '{', at: 10 })
        );
        assert_eq!(
            parse("<a=1>{b=2}user/1000"),
            Err(DialError::MisplacedBlock { open: '{', at: 5 })
        );
    }

    #[test]
    fn angle_block_inside_a_group_is_rejected() {
        assert_eq!(
            parse("user/1000,<a=1>user/1001"),
            Err(DialError::MisplacedBlock { open: '<', at: 10 })
        );
    }

    #[test]
    fn errors_display_as_one_line() {
        for s in [
            "",
            "{a=1}",
            "a/1,,b/2",
            "x",
            "/x",
            "{a",
            "a/1]",
            "'",
            "{a}x/1",
            "{=1}x/1",
            "a/1,<b=1>c/2",
            "{a=1}<b=1>{c=1}x/1",
            "{^^'}x/1",
            "a/1:_:b/2",
        ] {
            let err = parse(s).unwrap_err();
            let msg = err.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "{s:?} -> {msg:?}");
            let _: &dyn std::error::Error = &err;
        }
    }

    #[test]
    fn multibyte_text_is_handled_without_panicking() {
        let ds = parse("{^^éa=ü,1éb=2}[nom='ça']loopback/ñ").unwrap();
        assert_eq!(ds.vars, vars(&[("a", "ü,1"), ("b", "2")]));
        assert_eq!(ds.groups[0].legs[0].vars, vars(&[("nom", "ça")]));
        assert_eq!(ds.groups[0].legs[0].data, "ñ");
    }

    #[test]
    fn every_prefix_of_a_complex_dial_string_parses_or_errors_without_panicking() {
        let samples = [
            "{^^:a=1,2:b='x|y'}<g=1>[leg_timeout=5,z=a\\,b]user/1000 , loopback/'a,b'|<h=2>sofia/gateway/gw1/1000|error/USER_BUSY",
            "{a=${b}}[^^é=é]x/[::1]:5060,é/ü\\",
            "a/1:_:b/2'{[<>]}\\",
        ];
        for s in samples {
            for (i, _) in s.char_indices().chain([(s.len(), ' ')]) {
                let _ = parse(&s[..i]);
            }
            for (i, _) in s.char_indices() {
                let _ = parse(&s[i..]);
            }
        }
    }
}
