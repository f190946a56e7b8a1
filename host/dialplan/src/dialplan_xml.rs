//! FreeSWITCH's XML dialplan (`mod_dialplan_xml`), sans-IO. [`hunt`] takes
//! the dialplan section, a context name, the call (through [`Lookup`]: its
//! caller-profile fields, variable expansion and inline applications) and the
//! local time, walks the context's extensions in order and returns the
//! applications the call will run in CS_EXECUTE. It reads no clock, file or
//! channel, so every rule below is tested with a fixed time and a fake call.
//!
//! The rules are FreeSWITCH's, with these deliberate differences, each
//! because FreeSWITCH's behaviour there is an accident that silently
//! misroutes calls:
//! - a condition's time attributes and its field test must *both* hold
//!   (FreeSWITCH lets a matching field override a failed time test);
//! - an unknown `break`, `regex` rule, malformed time range, `loop` count or
//!   bad regular expression is an error naming the line, where FreeSWITCH
//!   logs it and treats the condition as false;
//! - nested conditions run only under a *true* parent (FreeSWITCH also runs
//!   them under a false parent that had anti-actions and `break="never"`).
//!
//! `$1…$N` in an action's data are the groups of the condition the action
//! sits in (FreeSWITCH's `switch_perform_substitution`), substituted only
//! when that expression has a `(`; anti-actions are never substituted. The
//! `DP_MATCH` channel variable FreeSWITCH also sets is not set here.
//!
//! Expressions are PCRE in FreeSWITCH; here they are the `regex` crate's
//! syntax over bytes with Unicode off, which is how FreeSWITCH compiles them
//! (PCRE without UTF): `.` is one byte, `\d` and `\w` are ASCII and `(?i)`
//! folds ASCII only. What PCRE has and `regex` does not — lookahead,
//! lookbehind, backreferences, possessive quantifiers, `\p{…}` without
//! Unicode — is refused as [`DialplanError::BadRegex`]. `$` matches only at
//! the very end (PCRE also matches before a final newline). FreeSWITCH's
//! `/expr/flags` form (flags `i` and `s`) and Asterisk-style `_NXXZ.`
//! patterns are understood.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use hotswitch_config::xml::Element;
use regex::bytes::RegexBuilder;
use std::fmt;

/// What the dialplan asks of the call it routes.
pub trait Lookup {
    /// A caller-profile field by FreeSWITCH name (destination_number,
    /// caller_id_name, caller_id_number, ani, aniii, rdnis, source, context,
    /// uuid, network_addr, username, dialplan, chan_name) or None.
    fn field(&self, name: &str) -> Option<String>;
    /// Expands `${var}` / `$${global}` / `${api args}` in a string (the host
    /// provides this).
    fn expand(&self, s: &str) -> String;
    /// Runs an inline action now (inline="true"): sets variables that later
    /// conditions see. Returns nothing.
    fn run_inline(&mut self, app: &str, data: &str);
}

/// One application for the call to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub application: String,
    /// With `$1…$N` already substituted; `${…}` is left for the host to
    /// expand when the application runs, as FreeSWITCH does.
    pub data: String,
}

/// A hunt that routes the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunt {
    /// The applications to run, in order. May be empty when the only actions
    /// the walk reached were inline: FreeSWITCH then executes nothing and
    /// hangs up with NORMAL_CLEARING.
    pub actions: Vec<Action>,
    /// The extensions whose condition chain matched, in walk order; an
    /// extension without a name is `UNKNOWN`, FreeSWITCH's name for it.
    pub extensions: Vec<String>,
}

/// Why a dialplan could not be hunted. Lines are those of the parsed text;
/// for a preprocessed configuration the host maps them back to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialplanError {
    /// A `<document>` without `<section name="dialplan">`.
    NoDialplanSection,
    /// Neither the context nor `global` exists. FreeSWITCH logs "Context …
    /// not found" and routes nowhere: hang up with NO_ROUTE_DESTINATION.
    UnknownContext {
        context: String,
    },
    BadRegex {
        line: usize,
        expression: String,
        reason: String,
    },
    BadBreak {
        line: usize,
        value: String,
    },
    BadRegexRule {
        line: usize,
        value: String,
    },
    BadTime {
        line: usize,
        attribute: String,
        value: String,
        reason: String,
    },
    /// `tz-offset` and `dst` need the channel's time zone, which a
    /// `NaiveDateTime` does not carry; refused rather than ignored so that a
    /// condition is never true by accident.
    UnsupportedTime {
        line: usize,
        attribute: String,
    },
    BadLoop {
        line: usize,
        value: String,
    },
    TooDeep {
        line: usize,
    },
}

impl fmt::Display for DialplanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialplanError::NoDialplanSection => {
                write!(f, "no <section name=\"dialplan\"> in the document")
            }
            DialplanError::UnknownContext { context } => {
                write!(
                    f,
                    "context {context:?} not found, nor \"{FALLBACK_CONTEXT}\""
                )
            }
            DialplanError::BadRegex {
                line,
                expression,
                reason,
            } => write!(
                f,
                "line {line}: bad regular expression {expression:?}: {reason}"
            ),
            DialplanError::BadBreak { line, value } => write!(
                f,
                "line {line}: break={value:?}: expected on-false, on-true, always or never"
            ),
            DialplanError::BadRegexRule { line, value } => {
                write!(f, "line {line}: regex={value:?}: expected all, any or xor")
            }
            DialplanError::BadTime {
                line,
                attribute,
                value,
                reason,
            } => write!(f, "line {line}: {attribute}={value:?}: {reason}"),
            DialplanError::UnsupportedTime { line, attribute } => write!(
                f,
                "line {line}: the {attribute} attribute is not supported; \
                 give the host's time in the wanted zone instead"
            ),
            DialplanError::BadLoop { line, value } => write!(
                f,
                "line {line}: loop={value:?}: expected a count from 0 to {MAX_LOOP}"
            ),
            DialplanError::TooDeep { line } => write!(
                f,
                "line {line}: conditions nested more than {MAX_NESTING} deep"
            ),
        }
    }
}

impl std::error::Error for DialplanError {}

/// The context FreeSWITCH assumes when the caller profile names none.
const DEFAULT_CONTEXT: &str = "default";
/// The context FreeSWITCH walks when the named one does not exist.
const FALLBACK_CONTEXT: &str = "global";
/// FreeSWITCH's own limit (`MAX_RECUR`); it also keeps hostile nesting from
/// exhausting the stack.
const MAX_NESTING: usize = 100;
/// FreeSWITCH has no limit; one `loop="1000000000"` would otherwise fill
/// memory with copies of one action.
const MAX_LOOP: u32 = 1000;

/// FreeSWITCH's `switch_true`: yes, on, true, t, enabled, active, allow (any
/// case) or a non-zero integer.
pub fn switch_true(value: &str) -> bool {
    const WORDS: [&str; 7] = ["yes", "on", "true", "t", "enabled", "active", "allow"];
    WORDS.iter().any(|w| value.eq_ignore_ascii_case(w))
        || value.trim().parse::<i64>().is_ok_and(|n| n != 0)
}

/// Walks `context` (or `global`) of `dialplan` for the call behind `lookup`
/// at local time `now`.
///
/// `dialplan` is a `<document>` (its `<section name="dialplan">` is used), a
/// `<section>`, a `<dialplan>` or an `<include>`: whatever directly holds
/// the `<context>` elements. An empty `context` means `default`. When the
/// channel variable `auto_hunt` is true, the walk starts at the extension
/// named like the destination number, as in FreeSWITCH.
///
/// An extension *matches* when its condition chain proceeds: the last
/// condition evaluated was true, or was false but had anti-actions. The walk
/// stops at the first match unless that extension says `continue="true"`.
/// Actions are collected from every condition reached, matched or not (an
/// extension whose `break="never"` chain ends false keeps what its earlier
/// conditions added, and the walk goes on), exactly as FreeSWITCH builds its
/// caller extension.
///
/// The result is `Ok(Some)` when the walk reached at least one `<action>` or
/// `<anti-action>` (inline ones included), and `Ok(None)` otherwise, even if
/// an extension matched: FreeSWITCH creates the caller extension only when
/// it adds an application, and with none the call gets
/// NO_ROUTE_DESTINATION.
pub fn hunt(
    dialplan: &Element,
    context: &str,
    lookup: &mut dyn Lookup,
    now: NaiveDateTime,
) -> Result<Option<Hunt>, DialplanError> {
    let holder = contexts_holder(dialplan)?;
    let context = if context.is_empty() {
        DEFAULT_CONTEXT
    } else {
        context
    };
    let xcontext = find_named(holder, "context", context)
        .or_else(|| find_named(holder, "context", FALLBACK_CONTEXT))
        .ok_or_else(|| DialplanError::UnknownContext {
            context: context.to_string(),
        })?;

    let extensions: Vec<&Element> = xcontext.children_named("extension").collect();
    let start = if switch_true(&lookup.expand("${auto_hunt}")) {
        let destination = lookup.field("destination_number").unwrap_or_default();
        extensions
            .iter()
            .position(|x| is_named(x, &destination))
            .unwrap_or(0)
    } else {
        0
    };

    let mut walk = Walk {
        lookup,
        now,
        actions: Vec::new(),
        reached_action: false,
    };
    let mut matched = Vec::new();
    for exten in &extensions[start..] {
        if walk.chain(exten, 0)? {
            matched.push(exten.attr("name").unwrap_or("UNKNOWN").to_string());
            if !exten.attr("continue").is_some_and(switch_true) {
                break;
            }
        }
    }
    Ok(walk.reached_action.then_some(Hunt {
        actions: walk.actions,
        extensions: matched,
    }))
}

/// Every mistake in `dialplan` that [`hunt`] would report, found without a
/// call, so that the host can warn or refuse when it loads the dialplan
/// rather than fail calls one by one. Expressions containing `${…}` depend
/// on the call and are not compiled here.
pub fn check(dialplan: &Element) -> Vec<DialplanError> {
    let holder = match contexts_holder(dialplan) {
        Ok(holder) => holder,
        Err(e) => return vec![e],
    };
    let mut errors = Vec::new();
    for context in holder.children_named("context") {
        for exten in context.children_named("extension") {
            check_conditions(exten, 0, &mut errors);
        }
    }
    errors
}

fn check_conditions(parent: &Element, depth: usize, errors: &mut Vec<DialplanError>) {
    if depth > MAX_NESTING {
        errors.push(DialplanError::TooDeep { line: parent.line });
        return;
    }
    let static_expression = |e: &Element| {
        let written = expression_of(e);
        if written.contains("${") {
            Ok(())
        } else {
            compile(written, e.line).map(drop)
        }
    };
    for cond in parent.children_named("condition") {
        let mut results = vec![
            Break::of(cond).map(drop),
            time_matches(cond, NaiveDateTime::default()).map(drop),
        ];
        match cond.attr("regex") {
            Some(rule) => {
                results.push(Rule::of(cond, rule).map(drop));
                for child in cond.children_named("regex") {
                    results.push(time_matches(child, NaiveDateTime::default()).map(drop));
                    if child.attr("field").is_some() {
                        results.push(static_expression(child));
                    }
                }
            }
            None if cond.attr("field").is_some() => results.push(static_expression(cond)),
            None => {}
        }
        for action in cond.children.iter() {
            if action.name == "action" || action.name == "anti-action" {
                results.push(loop_count(action).map(drop));
            }
        }
        errors.extend(results.into_iter().filter_map(Result::err));
        check_conditions(cond, depth + 1, errors);
    }
}

fn contexts_holder(e: &Element) -> Result<&Element, DialplanError> {
    let e = if e.name == "document" {
        e.children_named("section")
            .find(|s| s.attr("name") == Some("dialplan"))
            .ok_or(DialplanError::NoDialplanSection)?
    } else {
        e
    };
    Ok(match (e.child("context"), e.child("dialplan")) {
        (None, Some(inner)) => inner,
        _ => e,
    })
}

/// FreeSWITCH compares names without regard to case (`switch_xml_find_child`).
fn is_named(e: &Element, name: &str) -> bool {
    e.attr("name").is_some_and(|n| n.eq_ignore_ascii_case(name))
}

fn find_named<'a>(parent: &'a Element, child: &'a str, name: &str) -> Option<&'a Element> {
    parent.children_named(child).find(|c| is_named(c, name))
}

/// When a condition ends the evaluation of its siblings.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Break {
    OnFalse,
    OnTrue,
    Always,
    Never,
}

impl Break {
    fn of(cond: &Element) -> Result<Break, DialplanError> {
        let Some(value) = cond.attr("break") else {
            return Ok(Break::OnFalse);
        };
        match value.to_ascii_lowercase().as_str() {
            "on-false" => Ok(Break::OnFalse),
            "on-true" => Ok(Break::OnTrue),
            "always" => Ok(Break::Always),
            "never" => Ok(Break::Never),
            _ => Err(DialplanError::BadBreak {
                line: cond.line,
                value: value.to_string(),
            }),
        }
    }

    fn stops_after(self, passed: bool) -> bool {
        match self {
            Break::OnFalse => !passed,
            Break::OnTrue => passed,
            Break::Always => true,
            Break::Never => false,
        }
    }
}

/// How a condition's `<regex>` children combine.
#[derive(Clone, Copy)]
enum Rule {
    All,
    Any,
    Xor,
}

impl Rule {
    fn of(cond: &Element, value: &str) -> Result<Rule, DialplanError> {
        match value.to_ascii_lowercase().as_str() {
            "all" => Ok(Rule::All),
            "any" => Ok(Rule::Any),
            "xor" => Ok(Rule::Xor),
            _ => Err(DialplanError::BadRegexRule {
                line: cond.line,
                value: value.to_string(),
            }),
        }
    }
}

/// The expression as written: an `<expression>` child (handy for CDATA) or
/// the `expression` attribute.
fn expression_of(e: &Element) -> &str {
    match e.child("expression") {
        Some(x) => x.text.as_str(),
        None => e.attr("expression").unwrap_or(""),
    }
}

/// Capture groups of a match, group 0 first; None for a group that took no
/// part. An unmatched expression with groups gives no groups at all, so its
/// `$N` become empty, as in FreeSWITCH.
type Captures = Vec<Option<String>>;

struct Test {
    passed: bool,
    /// Present when the expression has a `(`: FreeSWITCH substitutes `$N`
    /// only then, and otherwise leaves `$1` as written.
    captures: Option<Captures>,
}

struct Walk<'a> {
    lookup: &'a mut dyn Lookup,
    now: NaiveDateTime,
    actions: Vec<Action>,
    reached_action: bool,
}

impl Walk<'_> {
    /// Evaluates the `<condition>` children of `parent` (an extension, or a
    /// condition holding nested ones) and says whether the chain proceeded.
    fn chain(&mut self, parent: &Element, depth: usize) -> Result<bool, DialplanError> {
        if depth > MAX_NESTING {
            return Err(DialplanError::TooDeep { line: parent.line });
        }
        let mut proceed = false;
        for cond in parent.children_named("condition") {
            let brk = Break::of(cond)?;
            let test = self.test(cond)?;
            proceed = if test.passed {
                self.take(cond, "action", test.captures.as_ref())?;
                true
            } else {
                self.take(cond, "anti-action", None)?
            };
            if brk.stops_after(test.passed) {
                break;
            }
            if test.passed && cond.child("condition").is_some() {
                // require-nested="false" lets the parent stand whatever its
                // nested conditions decide.
                proceed = self.chain(cond, depth + 1)?
                    || !cond.attr("require-nested").is_none_or(switch_true);
                if !proceed && brk != Break::Never {
                    break;
                }
            }
        }
        Ok(proceed)
    }

    fn test(&mut self, cond: &Element) -> Result<Test, DialplanError> {
        let time = time_matches(cond, self.now)?;
        let field = match cond.attr("regex") {
            Some(rule) => self.regex_rule(cond, rule)?,
            None => match cond.attr("field") {
                Some(field) => self.field_test(cond, field)?,
                None => Test {
                    passed: true,
                    captures: None,
                },
            },
        };
        Ok(Test {
            passed: time.unwrap_or(true) && field.passed,
            captures: field.captures,
        })
    }

    /// `regex="all|any|xor"` over `<regex field= expression=>` children
    /// (the condition's own `field` is then ignored, as in FreeSWITCH); `$N`
    /// come from the last child evaluated whose expression has a group.
    fn regex_rule(&mut self, cond: &Element, rule: &str) -> Result<Test, DialplanError> {
        let rule = Rule::of(cond, rule)?;
        let (mut pass, mut fail) = (0, 0);
        let mut captures = None;
        for child in cond.children_named("regex") {
            let time = time_matches(child, self.now)?;
            let test = match child.attr("field") {
                Some(field) => self.field_test(child, field)?,
                None => Test {
                    passed: true,
                    captures: None,
                },
            };
            let passed = time.unwrap_or(true) && test.passed;
            if test.captures.is_some() {
                captures = test.captures;
            }
            if passed {
                pass += 1;
            } else {
                fail += 1;
            }
            match rule {
                Rule::Any if passed => break,
                Rule::All if !passed => break,
                _ => {}
            }
        }
        let passed = match rule {
            Rule::All => fail == 0,
            Rule::Any => pass > 0,
            Rule::Xor => pass == 1,
        };
        Ok(Test { passed, captures })
    }

    /// Matches `field` (a profile field, or text with `${…}` to expand)
    /// against the element's expression (`expression=` or an
    /// `<expression>` child, `${…}` expanded too).
    fn field_test(&mut self, e: &Element, field: &str) -> Result<Test, DialplanError> {
        let subject = if field.contains('$') {
            self.lookup.expand(field)
        } else {
            self.lookup.field(field).unwrap_or_default()
        };
        let written = expression_of(e);
        let expression = if written.contains('$') {
            self.lookup.expand(written)
        } else {
            written.to_string()
        };
        let re = compile(&expression, e.line)?;
        // Most conditions of a large dialplan do not match: a plain match
        // test is far cheaper than building capture groups.
        let found = if re.is_match(subject.as_bytes()) {
            re.captures(subject.as_bytes())
        } else {
            None
        };
        let passed = found.is_some();
        let captures = expression.contains('(').then(|| {
            found
                .map(|c| {
                    c.iter()
                        .map(|g| g.map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned()))
                        .collect()
                })
                .unwrap_or_default()
        });
        Ok(Test { passed, captures })
    }

    /// Adds (or runs, when inline) the `kind` children of `cond`; says
    /// whether there were any, which for anti-actions makes the chain proceed.
    fn take(
        &mut self,
        cond: &Element,
        kind: &str,
        captures: Option<&Captures>,
    ) -> Result<bool, DialplanError> {
        let mut any = false;
        for a in cond.children_named(kind) {
            any = true;
            self.reached_action = true;
            let application = a.attr("application").unwrap_or("");
            let written = if a.text.is_empty() {
                a.attr("data").unwrap_or("")
            } else {
                a.text.as_str()
            };
            let data = match captures {
                Some(c) => substitute(written, c),
                None => written.to_string(),
            };
            let inline = a.attr("inline").is_some_and(switch_true);
            for _ in 0..loop_count(a)? {
                if inline {
                    self.lookup.run_inline(application, &data);
                } else {
                    self.actions.push(Action {
                        application: application.to_string(),
                        data: data.clone(),
                    });
                }
            }
        }
        Ok(any)
    }
}

fn loop_count(a: &Element) -> Result<u32, DialplanError> {
    let Some(value) = a.attr("loop") else {
        return Ok(1);
    };
    // FreeSWITCH reads a count below one as "never".
    match value.trim().parse::<i64>() {
        Ok(n) if n <= 0 => Ok(0),
        Ok(n) if n <= i64::from(MAX_LOOP) => Ok(n as u32),
        _ => Err(DialplanError::BadLoop {
            line: a.line,
            value: value.to_string(),
        }),
    }
}

/// Compiled expressions, shared by every hunt: a dialplan's regexes are
/// compiled once, not on every call. Bounded so that expressions built from
/// `${variables}` cannot grow it without end. An `Arc`, not a cloned
/// `Regex`: each clone of a regex builds its own matching caches from
/// scratch, which cost more than the match itself.
type SharedRegex = std::sync::Arc<regex::bytes::Regex>;
static REGEX_CACHE: hotswitch_plugin_api::sync::Mutex<
    Option<std::collections::HashMap<String, SharedRegex>>,
> = hotswitch_plugin_api::sync::Mutex::new(None);
const REGEX_CACHE_MAX: usize = 20_000;

/// Compiles an expression (cached).
fn compile(expression: &str, line: usize) -> Result<SharedRegex, DialplanError> {
    {
        let cache = REGEX_CACHE.lock();
        if let Some(r) = cache.as_ref().and_then(|c| c.get(expression)) {
            return Ok(r.clone());
        }
    }
    let r = std::sync::Arc::new(compile_uncached(expression, line)?);
    let mut cache = REGEX_CACHE.lock();
    let c = cache.get_or_insert_with(Default::default);
    if c.len() >= REGEX_CACHE_MAX {
        c.clear();
    }
    c.insert(expression.to_string(), r.clone());
    Ok(r)
}

/// Compiles an expression the way `switch_regex_perform` reads it.
fn compile_uncached(expression: &str, line: usize) -> Result<regex::bytes::Regex, DialplanError> {
    let bad = |reason: String| DialplanError::BadRegex {
        line,
        expression: expression.to_string(),
        reason,
    };
    let mut builder;
    if let Some(pattern) = expression.strip_prefix('_') {
        builder = RegexBuilder::new(&asterisk_to_regex(pattern));
    } else if let Some(delimited) = expression.strip_prefix('/') {
        let (pattern, flags) = delimited
            .rsplit_once('/')
            .ok_or_else(|| bad("no closing '/' after /expression".into()))?;
        builder = RegexBuilder::new(pattern);
        builder
            .case_insensitive(flags.contains('i'))
            .dot_matches_new_line(flags.contains('s'));
    } else {
        builder = RegexBuilder::new(expression);
    }
    builder
        .unicode(false)
        .build()
        .map_err(|e| bad(e.to_string()))
}

/// Asterisk's extension patterns as FreeSWITCH translates them
/// (`switch_ast2regex`): N is 2-9, X is 0-9, Z is 1-9, `.` is anything,
/// everything else is itself, and the whole must match.
fn asterisk_to_regex(pattern: &str) -> String {
    let mut out = String::from("^");
    for c in pattern.chars() {
        match c {
            'N' => out.push_str("[2-9]"),
            'X' => out.push_str("[0-9]"),
            'Z' => out.push_str("[1-9]"),
            '.' => out.push_str(".*"),
            c => out.push(c),
        }
    }
    out.push('$');
    out
}

/// Replaces `$N` and `${N}` with capture group N (empty when there is no
/// such group), like `switch_perform_substitution`; any other `$` — such as
/// `${var}` for the host to expand later — is kept.
fn substitute(data: &str, captures: &Captures) -> String {
    let mut out = String::with_capacity(data.len());
    let mut rest = data;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (braced, body) = match after.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, after),
        };
        let digits = body.bytes().take_while(u8::is_ascii_digit).count();
        let closed = !braced || body[digits..].starts_with('}');
        if digits == 0 || !closed {
            out.push('$');
            rest = after;
            continue;
        }
        let group = body[..digits]
            .parse::<usize>()
            .ok()
            .and_then(|n| captures.get(n))
            .and_then(|g| g.as_deref());
        out.push_str(group.unwrap_or(""));
        rest = &body[digits + usize::from(braced)..];
    }
    out.push_str(rest);
    out
}

/// Checks every time attribute of `e` against `now`: None when it has
/// none, else whether all of them hold.
fn time_matches(e: &Element, now: NaiveDateTime) -> Result<Option<bool>, DialplanError> {
    let mut any = false;
    let mut all = true;
    for (attribute, value) in &e.attrs {
        let number = |n: u32| numbers_match(value, i64::from(n));
        let result = match attribute.as_str() {
            "date-time" => date_times_match(value, now),
            "year" => numbers_match(value, i64::from(now.year())),
            "yday" => number(now.ordinal()),
            "mon" => number(now.month()),
            "mday" => number(now.day()),
            "week" => number(now.ordinal0() / 7 + 1),
            "mweek" => number(week_of_month(now)),
            "wday" => weekdays_match(value, now.weekday().number_from_sunday()),
            "hour" => number(now.hour()),
            "minute" => number(now.minute()),
            // FreeSWITCH counts minutes of the day from 1 (00:00 is 1).
            "minute-of-day" => number(now.hour() * 60 + now.minute() + 1),
            "time-of-day" => times_of_day_match(value, now.num_seconds_from_midnight()),
            "tz-offset" | "dst" => {
                return Err(DialplanError::UnsupportedTime {
                    line: e.line,
                    attribute: attribute.clone(),
                })
            }
            _ => continue,
        };
        any = true;
        all &= result.map_err(|reason| DialplanError::BadTime {
            line: e.line,
            attribute: attribute.clone(),
            value: value.clone(),
            reason,
        })?;
    }
    Ok(any.then_some(all))
}

/// FreeSWITCH's week of the month (1-6), weeks starting on Sunday, computed
/// with its own formula so that the edges agree.
fn week_of_month(now: NaiveDateTime) -> u32 {
    let mday = now.day() as i32;
    let wday = now.weekday().num_days_from_sunday() as i32;
    let first_dow = (7 - (mday - (wday + 1)) % 7) % 7;
    ((mday + first_dow + 6) / 7) as u32
}

/// `a-b` ranges are inclusive; a reversed range wraps (`18-8` is the night).
fn in_range<T: PartialOrd>(value: T, from: T, to: T) -> bool {
    if from <= to {
        from <= value && value <= to
    } else {
        value >= from || value <= to
    }
}

/// Splits a `,` list into trimmed items, refusing empty ones.
fn items(spec: &str) -> Result<Vec<&str>, String> {
    spec.split(',')
        .map(str::trim)
        .map(|item| {
            if item.is_empty() {
                Err("empty item in the list".to_string())
            } else {
                Ok(item)
            }
        })
        .collect()
}

/// `switch_number_cmp`: a list of numbers and ranges, e.g. `1-5,7`.
fn numbers_match(spec: &str, value: i64) -> Result<bool, String> {
    let number = |s: &str| {
        s.trim()
            .parse::<i64>()
            .map_err(|_| format!("{s:?} is not a number"))
    };
    let mut hit = false;
    for item in items(spec)? {
        hit |= match item.split_once('-') {
            Some((from, to)) => in_range(value, number(from)?, number(to)?),
            None => number(item)? == value,
        };
    }
    Ok(hit)
}

/// `switch_dow_cmp`: days 1 (Sunday) to 7, or their English names.
fn weekdays_match(spec: &str, value: u32) -> Result<bool, String> {
    const NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    const FULL: [&str; 7] = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    let day = |s: &str| -> Result<u32, String> {
        let s = s.trim().to_ascii_lowercase();
        if let Ok(n @ 1..=7) = s.parse::<u32>() {
            return Ok(n);
        }
        NAMES
            .iter()
            .zip(FULL)
            .position(|(short, full)| s == *short || s == full)
            .map(|i| i as u32 + 1)
            .ok_or_else(|| format!("{s:?} is not a day (1-7 from Sunday, or sun-sat)"))
    };
    let mut hit = false;
    for item in items(spec)? {
        hit |= match item.split_once('-') {
            Some((from, to)) => in_range(value, day(from)?, day(to)?),
            None => day(item)? == value,
        };
    }
    Ok(hit)
}

/// `H[:M[:S]]` as seconds since midnight.
fn seconds_of_day(s: &str) -> Result<u32, String> {
    let bad = || format!("{s:?} is not a time of day (HH:MM or HH:MM:SS)");
    let mut parts = s.trim().split(':');
    let mut unit = |limit: u32| -> Result<u32, String> {
        match parts.next() {
            None => Ok(0),
            Some(p) => match p.trim().parse::<u32>() {
                Ok(n) if n < limit => Ok(n),
                _ => Err(bad()),
            },
        }
    };
    let (h, m, sec) = (unit(24)?, unit(60)?, unit(60)?);
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(h * 3600 + m * 60 + sec)
}

/// `switch_tod_cmp`: `HH:MM[:SS]-HH:MM[:SS]` ranges, inclusive at both ends.
fn times_of_day_match(spec: &str, value: u32) -> Result<bool, String> {
    let mut hit = false;
    for item in items(spec)? {
        let (from, to) = item
            .split_once('-')
            .filter(|(from, to)| from.contains(':') && to.contains(':'))
            .ok_or_else(|| format!("{item:?} is not a range like 08:00-17:30"))?;
        hit |= in_range(value, seconds_of_day(from)?, seconds_of_day(to)?);
    }
    Ok(hit)
}

/// A moment in a `date-time` range: `YYYY-MM-DD[ HH[:MM[:SS]]]`, or a bare
/// time of day meaning today, as `switch_str_time` reads them.
fn moment(s: &str, today: NaiveDate) -> Result<NaiveDateTime, String> {
    let s = s.trim();
    let (date, time) = match s.split_once(char::is_whitespace) {
        Some((d, t)) => (Some(d), t),
        None if s.contains('-') => (Some(s), ""),
        None => (None, s),
    };
    let date = match date {
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD HH:MM:SS)"))?,
        None => today,
    };
    let seconds = if time.trim().is_empty() {
        0
    } else {
        seconds_of_day(time)?
    };
    let time = NaiveTime::from_num_seconds_from_midnight_opt(seconds, 0)
        .ok_or_else(|| format!("{s:?} is not a time of day"))?;
    Ok(date.and_time(time))
}

/// `switch_fulldate_cmp`: `start~end` ranges, the start included and the end
/// excluded.
fn date_times_match(spec: &str, now: NaiveDateTime) -> Result<bool, String> {
    let mut hit = false;
    for item in items(spec)? {
        let (from, to) = item
            .split_once('~')
            .ok_or_else(|| format!("{item:?} is not a range like START~END"))?;
        let (from, to) = (moment(from, now.date())?, moment(to, now.date())?);
        hit |= from <= now && now < to;
    }
    Ok(hit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    /// A call: profile fields, channel variables, and a log of inline runs.
    #[derive(Default)]
    struct Call {
        fields: HashMap<String, String>,
        vars: HashMap<String, String>,
        inline: Vec<(String, String)>,
    }

    impl Call {
        fn to(destination: &str) -> Call {
            let mut call = Call::default();
            call.fields
                .insert("destination_number".into(), destination.into());
            call
        }

        fn with_field(mut self, name: &str, value: &str) -> Call {
            self.fields.insert(name.into(), value.into());
            self
        }

        fn with_var(mut self, name: &str, value: &str) -> Call {
            self.vars.insert(name.into(), value.into());
            self
        }
    }

    impl Lookup for Call {
        fn field(&self, name: &str) -> Option<String> {
            self.fields.get(name).cloned()
        }

        fn expand(&self, s: &str) -> String {
            let mut out = String::new();
            let mut rest = s;
            while let Some(at) = rest.find("${") {
                out.push_str(&rest[..at]);
                let Some(end) = rest[at..].find('}') else {
                    break;
                };
                let name = &rest[at + 2..at + end];
                out.push_str(self.vars.get(name).map_or("", String::as_str));
                rest = &rest[at + end + 1..];
            }
            out.push_str(rest);
            out
        }

        fn run_inline(&mut self, app: &str, data: &str) {
            self.inline.push((app.into(), data.into()));
            if app == "set" {
                if let Some((k, v)) = data.split_once('=') {
                    self.vars.insert(k.into(), v.into());
                }
            }
        }
    }

    /// Monday 2 September 2024, 10:30:00.
    fn monday_morning() -> NaiveDateTime {
        at("2024-09-02 10:30:00")
    }

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("test time")
    }

    fn dialplan(contexts: &str) -> Element {
        let text = format!("<dialplan>\n{contexts}\n</dialplan>");
        hotswitch_config::xml::parse(&text, Path::new("test.xml")).expect("test dialplan parses")
    }

    fn run(plan: &str, context: &str, call: &mut Call, now: NaiveDateTime) -> Option<Hunt> {
        hunt(&dialplan(plan), context, call, now).expect("hunt succeeds")
    }

    /// The actions as `app data` strings, for compact assertions.
    fn apps(h: &Option<Hunt>) -> Option<Vec<String>> {
        h.as_ref().map(|h| {
            h.actions
                .iter()
                .map(|a| format!("{} {}", a.application, a.data).trim().to_string())
                .collect()
        })
    }

    fn route(plan: &str, call: &mut Call) -> Option<Vec<String>> {
        apps(&run(plan, "default", call, monday_morning()))
    }

    fn error(plan: &str, call: &mut Call) -> DialplanError {
        hunt(&dialplan(plan), "default", call, monday_morning()).expect_err("hunt fails")
    }

    #[test]
    fn routing_follows_freeswitch_for_each_case_in_the_table() {
        let users = r#"<context name="default">
              <extension name="exact">
                <condition field="destination_number" expression="^9196$">
                  <action application="answer"/>
                  <action application="echo"/>
                </condition>
              </extension>
              <extension name="users">
                <condition field="destination_number" expression="^(10[01][0-9])$">
                  <action application="bridge" data="user/$1@${domain_name}"/>
                </condition>
              </extension>
              <extension name="ast">
                <condition field="destination_number" expression="_NXXXXXX">
                  <action application="bridge" data="sofia/gateway/out/$1"/>
                </condition>
              </extension>
              <extension name="caseless">
                <condition field="destination_number" expression="/^echo(\d?)$/i">
                  <action application="echo" data="${2}x$1"/>
                </condition>
              </extension>
            </context>"#;
        let cases: &[(&str, &str, Option<&[&str]>)] = &[
            (
                "an exact number runs its actions in order",
                "9196",
                Some(&["answer", "echo"]),
            ),
            (
                "captures are substituted but ${var} is left for the host",
                "1005",
                Some(&["bridge user/1005@${domain_name}"]),
            ),
            (
                "an expression without a group leaves $1 as written",
                "5551234",
                Some(&["bridge sofia/gateway/out/$1"]),
            ),
            (
                "/expr/i matches without case and ${N} is a group",
                "ECHO7",
                Some(&["echo x7"]),
            ),
            ("no matching extension routes nowhere", "1100", None),
            (
                "an anchored expression refuses a longer number",
                "91960",
                None,
            ),
        ];
        for (what, destination, expected) in cases {
            let got = route(users, &mut Call::to(destination));
            let expected = expected.map(|e| e.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, expected, "{what}");
        }
    }

    #[test]
    fn the_walk_stops_at_the_first_matching_extension() {
        let h = run(
            r#"<context name="default">
                 <extension name="a"><condition field="destination_number" expression="^1">
                   <action application="log" data="a"/></condition></extension>
                 <extension name="b"><condition field="destination_number" expression="^12">
                   <action application="log" data="b"/></condition></extension>
               </context>"#,
            "default",
            &mut Call::to("123"),
            monday_morning(),
        )
        .expect("routed");
        assert_eq!(h.extensions, vec!["a"]);
        assert_eq!(h.actions.len(), 1);
    }

    #[test]
    fn continue_true_accumulates_the_actions_of_both_extensions() {
        let h = run(
            r#"<context name="default">
                 <extension name="set-vars" continue="true">
                   <condition field="destination_number" expression="^.*$">
                     <action application="set" data="a=1"/></condition></extension>
                 <extension name="not-me"><condition field="destination_number" expression="^9">
                   <action application="log" data="nope"/></condition></extension>
                 <extension name="park"><condition field="destination_number" expression="^1">
                   <action application="park"/></condition></extension>
               </context>"#,
            "default",
            &mut Call::to("123"),
            monday_morning(),
        )
        .expect("routed");
        assert_eq!(h.extensions, vec!["set-vars", "park"]);
        assert_eq!(
            apps(&Some(h.clone())),
            Some(vec!["set a=1".into(), "park".into()])
        );
    }

    #[test]
    fn a_false_condition_runs_its_anti_actions_and_still_ends_the_walk() {
        let plan = r#"<context name="default">
             <extension name="office">
               <condition field="destination_number" expression="^1000$">
                 <action application="bridge" data="user/1000"/>
                 <anti-action application="log" data="not 1000"/>
               </condition>
             </extension>
             <extension name="never-reached">
               <condition><action application="park"/></condition>
             </extension>
           </context>"#;
        let h = run(plan, "default", &mut Call::to("2000"), monday_morning()).expect("routed");
        assert_eq!(h.extensions, vec!["office"]);
        assert_eq!(apps(&Some(h)), Some(vec!["log not 1000".into()]));
        assert_eq!(
            route(plan, &mut Call::to("1000")),
            Some(vec!["bridge user/1000".into()])
        );
    }

    #[test]
    fn by_default_a_false_condition_stops_its_extension() {
        let plan = r#"<context name="default">
             <extension name="x">
               <condition field="destination_number" expression="^9$"/>
               <condition><action application="log" data="skipped"/></condition>
             </extension>
           </context>"#;
        assert_eq!(route(plan, &mut Call::to("1")), None);
    }

    #[test]
    fn break_never_evaluates_the_conditions_after_a_false_one() {
        let plan = r#"<context name="default">
             <extension name="x">
               <condition field="caller_id_number" expression="^555" break="never">
                 <action application="log" data="vip"/>
                 <anti-action application="log" data="ordinary"/>
               </condition>
               <condition field="destination_number" expression="^(\d+)$">
                 <action application="bridge" data="user/$1"/>
               </condition>
             </extension>
           </context>"#;
        let mut call = Call::to("1000").with_field("caller_id_number", "444");
        assert_eq!(
            route(plan, &mut call),
            Some(vec!["log ordinary".into(), "bridge user/1000".into()])
        );
    }

    #[test]
    fn actions_of_a_break_never_chain_that_ends_false_are_kept_but_the_walk_goes_on() {
        let plan = r#"<context name="default">
             <extension name="half">
               <condition break="never"><action application="log" data="half"/></condition>
               <condition field="destination_number" expression="^9$"/>
             </extension>
             <extension name="rest"><condition><action application="park"/></condition></extension>
           </context>"#;
        let h = run(plan, "default", &mut Call::to("1"), monday_morning()).expect("routed");
        assert_eq!(h.extensions, vec!["rest"]);
        assert_eq!(apps(&Some(h)), Some(vec!["log half".into(), "park".into()]));
    }

    #[test]
    fn break_on_true_stops_after_the_first_true_condition() {
        let plan = r#"<context name="default">
             <extension name="x">
               <condition field="destination_number" expression="^1" break="on-true">
                 <action application="log" data="first"/>
               </condition>
               <condition><action application="log" data="second"/></condition>
             </extension>
           </context>"#;
        assert_eq!(
            route(plan, &mut Call::to("1")),
            Some(vec!["log first".into()])
        );
        // False, it goes on to the next condition instead.
        assert_eq!(
            route(plan, &mut Call::to("2")),
            Some(vec!["log second".into()])
        );
    }

    #[test]
    fn break_always_stops_after_the_condition_either_way() {
        let plan = r#"<context name="default">
             <extension name="x">
               <condition field="destination_number" expression="^1" break="always">
                 <anti-action application="log" data="anti"/>
               </condition>
               <condition><action application="log" data="second"/></condition>
             </extension>
           </context>"#;
        assert_eq!(route(plan, &mut Call::to("1")), None);
        assert_eq!(
            route(plan, &mut Call::to("2")),
            Some(vec!["log anti".into()])
        );
    }

    #[test]
    fn nested_conditions_are_evaluated_only_under_a_true_parent() {
        let plan = r#"<context name="default">
             <extension name="x">
               <condition field="destination_number" expression="^(1\d+)$">
                 <action application="log" data="outer $1"/>
                 <condition field="caller_id_name" expression="^Bob$">
                   <action application="log" data="bob"/>
                   <anti-action application="log" data="not bob"/>
                 </condition>
               </condition>
               <condition><action application="log" data="after"/></condition>
             </extension>
           </context>"#;
        let mut bob = Call::to("100").with_field("caller_id_name", "Bob");
        assert_eq!(
            route(plan, &mut bob),
            Some(vec![
                "log outer 100".into(),
                "log bob".into(),
                "log after".into()
            ])
        );
        let mut eve = Call::to("100").with_field("caller_id_name", "Eve");
        assert_eq!(
            route(plan, &mut eve),
            Some(vec![
                "log outer 100".into(),
                "log not bob".into(),
                "log after".into()
            ])
        );
        assert_eq!(route(plan, &mut Call::to("200")), None);
    }

    #[test]
    fn a_failed_nested_chain_fails_the_parent_unless_require_nested_is_false() {
        let plan = |require: &str| {
            format!(
                r#"<context name="default">
                 <extension name="x">
                   <condition field="destination_number" expression="^1" {require}>
                     <action application="log" data="outer"/>
                     <condition field="caller_id_name" expression="^Bob$"/>
                   </condition>
                   <condition><action application="log" data="after"/></condition>
                 </extension>
                 <extension name="y"><condition><action application="log" data="y"/></condition></extension>
               </context>"#
            )
        };
        let mut eve = Call::to("1").with_field("caller_id_name", "Eve");
        let strict = run(&plan(""), "default", &mut eve, monday_morning()).expect("routed");
        assert_eq!(strict.extensions, vec!["y"]);
        let lenient = run(
            &plan(r#"require-nested="false""#),
            "default",
            &mut eve,
            monday_morning(),
        )
        .expect("routed");
        assert_eq!(lenient.extensions, vec!["x"]);
        assert_eq!(
            apps(&Some(lenient)),
            Some(vec!["log outer".into(), "log after".into()])
        );
    }

    #[test]
    fn regex_all_any_and_xor_combine_the_regex_children() {
        let plan = |rule: &str| {
            format!(
                r#"<context name="default"><extension name="x">
                   <condition regex="{rule}">
                     <regex field="destination_number" expression="^1"/>
                     <regex field="caller_id_number" expression="^(5)(\d+)$"/>
                     <action application="log" data="yes $2"/>
                     <anti-action application="log" data="no"/>
                   </condition></extension></context>"#
            )
        };
        let both = || Call::to("100").with_field("caller_id_number", "5123");
        let one = || Call::to("100").with_field("caller_id_number", "6123");
        let none = || Call::to("200").with_field("caller_id_number", "6123");
        let yes = Some(vec!["log yes 123".to_string()]);
        // No capturing child was evaluated: `$2` is left as written.
        let yes_unsubstituted = Some(vec!["log yes $2".to_string()]);
        // The capturing child was evaluated but failed: `$2` is empty.
        let yes_empty = Some(vec!["log yes".to_string()]);
        let no = Some(vec!["log no".to_string()]);

        assert_eq!(route(&plan("all"), &mut both()), yes);
        assert_eq!(route(&plan("all"), &mut one()), no);
        // "any" stops at the first match, so the capturing child is not reached.
        assert_eq!(route(&plan("any"), &mut one()), yes_unsubstituted);
        assert_eq!(route(&plan("any"), &mut none()), no);
        assert_eq!(route(&plan("xor"), &mut one()), yes_empty);
        assert_eq!(route(&plan("xor"), &mut both()), no);
        assert_eq!(route(&plan("xor"), &mut none()), no);
    }

    #[test]
    fn a_field_and_an_expression_with_variables_are_expanded_before_matching() {
        let plan = r#"<context name="default"><extension name="x">
             <condition field="${sip_user_agent}" expression="^${trusted_agent}/(\d+)">
               <action application="log" data="version $1"/>
             </condition></extension></context>"#;
        let mut call = Call::to("1")
            .with_var("sip_user_agent", "Polycom/5")
            .with_var("trusted_agent", "Polycom");
        assert_eq!(route(plan, &mut call), Some(vec!["log version 5".into()]));
        let mut other = Call::to("1")
            .with_var("sip_user_agent", "Yealink/5")
            .with_var("trusted_agent", "Polycom");
        assert_eq!(route(plan, &mut other), None);
    }

    #[test]
    fn an_inline_set_is_run_at_once_and_seen_by_later_conditions() {
        let plan = r#"<context name="default"><extension name="x">
             <condition field="destination_number" expression="^(\d+)$">
               <action application="set" data="target=$1" inline="true"/>
               <action application="answer"/>
             </condition>
             <condition field="${target}" expression="^100$">
               <action application="log" data="target seen"/>
             </condition></extension></context>"#;
        let mut call = Call::to("100");
        assert_eq!(
            route(plan, &mut call),
            Some(vec!["answer".into(), "log target seen".into()])
        );
        assert_eq!(
            call.inline,
            vec![("set".to_string(), "target=100".to_string())]
        );
    }

    #[test]
    fn only_inline_actions_still_route_with_an_empty_application_list() {
        let plan = r#"<context name="default"><extension name="x"><condition>
             <action application="set" data="a=b" inline="true"/>
           </condition></extension></context>"#;
        let h = run(plan, "default", &mut Call::to("1"), monday_morning()).expect("routed");
        assert!(h.actions.is_empty());
        assert_eq!(h.extensions, vec!["x"]);
    }

    #[test]
    fn a_matching_extension_without_actions_ends_the_walk_but_routes_nowhere() {
        let plan = r#"<context name="default">
             <extension name="empty"><condition field="destination_number" expression="^1$"/></extension>
             <extension name="later"><condition><action application="park"/></condition></extension>
           </context>"#;
        assert_eq!(route(plan, &mut Call::to("1")), None);
        assert_eq!(route(plan, &mut Call::to("2")), Some(vec!["park".into()]));
    }

    #[test]
    fn loop_repeats_an_action_and_action_text_is_its_data() {
        let plan = r#"<context name="default"><extension name="x"><condition>
             <action application="playback" loop="3">beep.wav</action>
             <action application="never" loop="0"/>
           </condition></extension></context>"#;
        assert_eq!(
            route(plan, &mut Call::to("1")),
            Some(vec!["playback beep.wav".to_string(); 3])
        );
    }

    #[test]
    fn a_missing_context_falls_back_to_global_and_then_is_an_error() {
        let plan = r#"<context name="global"><extension name="g"><condition>
             <action application="log" data="global"/></condition></extension></context>
           <context name="Public"><extension name="p"><condition>
             <action application="log" data="public"/></condition></extension></context>"#;
        let mut call = Call::to("1");
        assert_eq!(
            apps(&run(plan, "nowhere", &mut call, monday_morning())),
            Some(vec!["log global".into()])
        );
        assert_eq!(
            apps(&run(plan, "public", &mut call, monday_morning())),
            Some(vec!["log public".into()]),
            "context names ignore case"
        );
        let only_public = r#"<context name="public"/>"#;
        assert_eq!(
            hunt(
                &dialplan(only_public),
                "default",
                &mut call,
                monday_morning()
            ),
            Err(DialplanError::UnknownContext {
                context: "default".into()
            })
        );
    }

    #[test]
    fn an_empty_context_name_means_default() {
        let plan = r#"<context name="default"><extension name="d"><condition>
             <action application="park"/></condition></extension></context>"#;
        assert_eq!(
            apps(&run(plan, "", &mut Call::to("1"), monday_morning())),
            Some(vec!["park".into()])
        );
    }

    #[test]
    fn the_dialplan_section_of_a_whole_document_is_found() {
        let text = r#"<document type="freeswitch/xml">
             <section name="configuration"><configuration name="x"/></section>
             <section name="dialplan" description="Regex/XML Dialplan">
               <context name="default"><extension name="d"><condition>
                 <action application="park"/></condition></extension></context>
             </section>
           </document>"#;
        let doc = hotswitch_config::xml::parse(text, Path::new("freeswitch.xml")).expect("parses");
        let h = hunt(&doc, "default", &mut Call::to("1"), monday_morning()).expect("hunts");
        assert_eq!(apps(&h), Some(vec!["park".into()]));
        let bare = hotswitch_config::xml::parse("<document/>", Path::new("x.xml")).expect("parses");
        assert_eq!(
            hunt(&bare, "default", &mut Call::to("1"), monday_morning()),
            Err(DialplanError::NoDialplanSection)
        );
    }

    #[test]
    fn auto_hunt_starts_at_the_extension_named_like_the_destination() {
        let plan = r#"<context name="default">
             <extension name="first"><condition><action application="log" data="first"/></condition></extension>
             <extension name="1000"><condition><action application="log" data="direct"/></condition></extension>
           </context>"#;
        assert_eq!(
            route(plan, &mut Call::to("1000")),
            Some(vec!["log first".into()])
        );
        let mut hunting = Call::to("1000").with_var("auto_hunt", "true");
        assert_eq!(route(plan, &mut hunting), Some(vec!["log direct".into()]));
    }

    #[test]
    fn a_bad_regex_is_an_error_carrying_the_line_of_its_condition() {
        let plan = r#"<context name="default"><extension name="x">
             <condition field="destination_number" expression="^(1"/>
           </extension></context>"#;
        match error(plan, &mut Call::to("1")) {
            DialplanError::BadRegex {
                line, expression, ..
            } => {
                assert_eq!(line, 3, "<dialplan> is line 1, the extension line 2");
                assert_eq!(expression, "^(1");
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn lookaround_is_refused_as_a_bad_regex() {
        let plan = r#"<context name="default"><extension name="x">
             <condition field="destination_number" expression="^(?!911)\d+$"/>
           </extension></context>"#;
        let e = error(plan, &mut Call::to("1"));
        assert!(matches!(e, DialplanError::BadRegex { line: 3, .. }), "{e}");
    }

    #[test]
    fn check_finds_every_static_mistake_without_a_call() {
        let plan = r#"<context name="default">
             <extension name="valet_park">
               <condition field="destination_number" expression="^((?!6000)60\d{2})$"/>
             </extension>
             <extension name="x">
               <condition field="${foo}" expression="^${bar}($"/>
               <condition break="maybe" wday="8">
                 <action application="a" loop="x"/>
                 <condition regex="most"/>
               </condition>
             </extension>
           </context>"#;
        let lines: Vec<usize> = check(&dialplan(plan))
            .iter()
            .map(|e| match e {
                DialplanError::BadRegex { line, .. }
                | DialplanError::BadBreak { line, .. }
                | DialplanError::BadTime { line, .. }
                | DialplanError::BadLoop { line, .. }
                | DialplanError::BadRegexRule { line, .. } => *line,
                other => panic!("unexpected {other}"),
            })
            .collect();
        // The call-dependent expression on line 7 is not judged.
        assert_eq!(lines, vec![4, 8, 8, 9, 10]);
        assert!(check(&dialplan(r#"<context name="default"/>"#)).is_empty());
    }

    #[test]
    fn an_unknown_break_value_is_an_error_with_its_line() {
        let plan = r#"<context name="default"><extension name="x">
             <condition break="sometimes"/>
           </extension></context>"#;
        assert_eq!(
            error(plan, &mut Call::to("1")),
            DialplanError::BadBreak {
                line: 3,
                value: "sometimes".into()
            }
        );
    }

    #[test]
    fn expressions_match_bytes_like_pcre_without_utf() {
        let plan = r#"<context name="default"><extension name="x">
             <condition field="caller_id_name" expression="^Jos.$">
               <action application="log" data="one byte"/>
               <anti-action application="log" data="two bytes"/>
             </condition></extension></context>"#;
        let mut call = Call::to("1").with_field("caller_id_name", "José");
        assert_eq!(route(plan, &mut call), Some(vec!["log two bytes".into()]));
    }

    /// Routes a call at `now` through one condition carrying `attrs`.
    fn open_at(attrs: &str, now: &str) -> bool {
        let plan = format!(
            r#"<context name="default"><extension name="t">
                 <condition {attrs}><action application="log" data="open"/></condition>
               </extension></context>"#
        );
        run(&plan, "default", &mut Call::to("1"), at(now)).is_some()
    }

    #[test]
    fn wday_counts_from_sunday_and_takes_names_ranges_and_lists() {
        // 2024-09-02 is a Monday (day 2).
        let monday = "2024-09-02 10:30:00";
        assert!(open_at(r#"wday="2-6""#, monday));
        assert!(open_at(r#"wday="mon-fri""#, monday));
        assert!(open_at(r#"wday="1,2""#, monday));
        assert!(!open_at(r#"wday="1,7""#, monday));
        assert!(open_at(r#"wday="1,7""#, "2024-09-01 10:30:00"));
        assert!(
            open_at(r#"wday="sat-mon""#, monday),
            "a reversed range wraps"
        );
        assert!(!open_at(r#"wday="tue-sat""#, monday));
    }

    #[test]
    fn hour_and_minute_ranges_include_both_ends() {
        assert!(open_at(r#"hour="9-17""#, "2024-09-02 09:00:00"));
        assert!(open_at(r#"hour="9-17""#, "2024-09-02 17:59:59"));
        assert!(!open_at(r#"hour="9-17""#, "2024-09-02 18:00:00"));
        assert!(!open_at(r#"hour="9-17""#, "2024-09-02 08:59:59"));
        assert!(open_at(r#"hour="18-8""#, "2024-09-02 03:00:00"), "wraps");
        assert!(open_at(r#"minute="0-14,45-59""#, "2024-09-02 10:45:00"));
        assert!(!open_at(r#"minute="0-14,45-59""#, "2024-09-02 10:30:00"));
    }

    #[test]
    fn minute_of_day_counts_midnight_as_one() {
        // 09:00 is minute 541: 540-1080 opens at 08:59.
        assert!(open_at(
            r#"minute-of-day="540-1080""#,
            "2024-09-02 08:59:00"
        ));
        assert!(!open_at(
            r#"minute-of-day="540-1080""#,
            "2024-09-02 08:58:59"
        ));
        assert!(open_at(r#"minute-of-day="1""#, "2024-09-02 00:00:30"));
    }

    #[test]
    fn time_of_day_ranges_include_both_ends_to_the_second() {
        let day = r#"time-of-day="08:00-17:00""#;
        assert!(open_at(day, "2024-09-02 08:00:00"));
        assert!(open_at(day, "2024-09-02 17:00:00"));
        assert!(!open_at(day, "2024-09-02 17:00:01"));
        assert!(!open_at(day, "2024-09-02 07:59:59"));
        let precise = r#"time-of-day="08:00:00-17:30:00""#;
        assert!(open_at(precise, "2024-09-02 17:30:00"));
        assert!(!open_at(precise, "2024-09-02 17:30:01"));
        assert!(open_at(
            r#"time-of-day="22:00-06:00""#,
            "2024-09-02 23:00:00"
        ));
        assert!(open_at(
            r#"time-of-day="01:00-02:00,12:00-13:00""#,
            "2024-09-02 12:30:00"
        ));
    }

    #[test]
    fn date_time_ranges_include_the_start_and_exclude_the_end() {
        let range = r#"date-time="2010-10-01 00:00:01~2010-10-15 23:59:59""#;
        assert!(!open_at(range, "2010-10-01 00:00:00"));
        assert!(open_at(range, "2010-10-01 00:00:01"));
        assert!(open_at(range, "2010-10-15 23:59:58"));
        assert!(!open_at(range, "2010-10-15 23:59:59"));
        assert!(open_at(
            r#"date-time="2024-12-24~2024-12-27""#,
            "2024-12-26 23:00:00"
        ));
    }

    #[test]
    fn calendar_attributes_match_the_date() {
        let now = "2024-09-02 10:30:00";
        assert!(open_at(r#"year="2024" mon="9" mday="1-7""#, now));
        assert!(open_at(r#"yday="246""#, now), "2024 is a leap year");
        assert!(
            open_at(r#"week="36""#, now),
            "day 245 from 0, over 7, plus 1"
        );
        assert!(
            open_at(r#"mweek="1""#, now),
            "weeks start on Sunday, 1 September"
        );
        assert!(open_at(r#"mweek="1""#, "2024-10-05 10:00:00"));
        assert!(open_at(r#"mweek="2""#, "2024-10-06 10:00:00"));
    }

    #[test]
    fn time_attributes_and_a_field_test_must_both_hold() {
        let plan = r#"<context name="default"><extension name="x">
             <condition field="destination_number" expression="^1$" wday="2-6" hour="9-17">
               <action application="bridge" data="office"/>
               <anti-action application="voicemail" data="closed"/>
             </condition></extension></context>"#;
        let route_at = |now: &str| apps(&run(plan, "default", &mut Call::to("1"), at(now)));
        assert_eq!(
            route_at("2024-09-02 10:00:00"),
            Some(vec!["bridge office".into()])
        );
        assert_eq!(
            route_at("2024-09-02 20:00:00"),
            Some(vec!["voicemail closed".into()])
        );
        assert_eq!(
            route_at("2024-09-01 10:00:00"),
            Some(vec!["voicemail closed".into()])
        );
    }

    #[test]
    fn malformed_or_unsupported_time_attributes_are_errors_with_their_line() {
        let plan = |attrs: &str| {
            format!(
                r#"<context name="default"><extension name="x"><condition {attrs}/></extension></context>"#
            )
        };
        let e = error(&plan(r#"wday="mon-funday""#), &mut Call::to("1"));
        assert!(matches!(e, DialplanError::BadTime { line: 2, .. }), "{e}");
        let e = error(&plan(r#"time-of-day="8-17""#), &mut Call::to("1"));
        assert!(matches!(e, DialplanError::BadTime { .. }), "{e}");
        let e = error(&plan(r#"tz-offset="-5""#), &mut Call::to("1"));
        assert!(matches!(e, DialplanError::UnsupportedTime { .. }), "{e}");
    }

    #[test]
    fn substitution_replaces_only_numbered_groups() {
        let caps: Captures = vec![Some("100".into()), Some("1".into()), None];
        assert_eq!(substitute("$1-${1}-$2-$9", &caps), "1-1--");
        assert_eq!(
            substitute("${var} $ $x ${1x} $0", &caps),
            "${var} $ $x ${1x} 100"
        );
    }

    #[test]
    fn switch_true_accepts_freeswitchs_words_and_non_zero_numbers() {
        for yes in [
            "yes", "ON", "true", "t", "enabled", "active", "allow", "1", "-2",
        ] {
            assert!(switch_true(yes), "{yes}");
        }
        for no in ["no", "false", "0", "", "2x"] {
            assert!(!switch_true(no), "{no}");
        }
    }
}
