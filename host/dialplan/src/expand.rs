//! Variable expansion with FreeSWITCH's semantics (`switch_channel_expand_variables`
//! and `switch_event_expand_headers`): `${name}`, `$${global}`, substrings
//! `${name:offset:length}`, array elements `${name[idx]}`, inline api calls
//! `${cmd args}`, nesting, and `\$` escapes. It is sans-IO: every value comes
//! through the [`Vars`] trait, so the same code serves channels, events and
//! tests without touching global state. Nothing here panics; malformed input
//! is copied through literally, and runaway nesting or output is cut off by
//! [`MAX_DEPTH`] and [`MAX_OUTPUT`].

/// Where expansion gets its values from.
pub trait Vars {
    /// A channel (or event) variable.
    fn var(&self, name: &str) -> Option<String>;
    /// A global variable (`$${name}`).
    fn global(&self, name: &str) -> Option<String>;
    /// Runs api `cmd` with `args`; None if no such command.
    fn api(&self, cmd: &str, args: &str) -> Option<String>;
}

/// How many `${…}` may enclose one another. A deeper construct stops the
/// whole expansion: the result is what had been built before that construct
/// (at the top level) began. Without a bound, hostile dialplan input or a
/// self-feeding api could exhaust the stack.
pub const MAX_DEPTH: usize = 32;

/// The most bytes one expansion may produce. Reaching it stops the expansion
/// and returns the output built so far, cut at the limit on a character
/// boundary, so a variable or api that returns megabytes cannot balloon a
/// channel. Text without any `$` is returned as is, whatever its size, since
/// nothing in it is expanded.
pub const MAX_OUTPUT: usize = 1024 * 1024;

/// FreeSWITCH's serialised form of an array variable: `ARRAY::a|:b|:c`.
const ARRAY_PREFIX: &str = "ARRAY::";
const ARRAY_SEPARATOR: &str = "|:";

/// Expands every variable reference and api call in `input`.
///
/// - `${name}`: the channel variable, or, as in FreeSWITCH, the global of the
///   same name when the channel has none; empty when neither is set.
/// - `$${name}`: the global variable only; empty if unset.
/// - `${name:offset}`, `${name:offset:length}`: a substring in characters. A
///   negative offset counts from the end; an offset past the end gives
///   nothing, one before the start gives the whole value; a length that is
///   zero, negative or past the end means "to the end".
/// - `${name[idx]}`: element `idx` (from 0) of an `ARRAY::a|:b` value; index
///   0 of a plain value is the value itself; anything out of range is empty.
///   Index and substring combine: `${name[1]:0:2}`.
/// - `${cmd args}`: a space (outside nested braces) makes it an api call; the
///   command and its arguments are expanded first, the output has trailing
///   line breaks removed, and an unknown command gives nothing.
/// - The name inside `${…}` is expanded before lookup, so `${${name}}` works.
///   Values and api output are not expanded again.
/// - `\$` is a literal `$`; any other backslash is kept.
/// - A `${` without its closing `}` is kept literally, with everything after
///   it.
pub fn expand(input: &str, vars: &dyn Vars) -> String {
    if !input.contains('$') {
        // Backslashes only mean something before a `$`, so there is nothing
        // to rewrite.
        return input.to_owned();
    }
    let mut expander = Expander {
        vars,
        stopped: false,
    };
    expander.run(input, 0)
}

struct Expander<'a> {
    vars: &'a dyn Vars,
    /// Set when a guard trips; every level then unwinds with what it has, so
    /// the caller sees the output up to the point of trouble.
    stopped: bool,
}

impl Expander<'_> {
    /// Expands `text`, which sits inside `depth` enclosing `${…}`.
    fn run(&mut self, text: &str, depth: usize) -> String {
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len().min(MAX_OUTPUT));
        // Literal text is copied in runs; the delimiters are all ASCII, so
        // byte offsets next to them are always char boundaries.
        let mut literal_from = 0;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if bytes.get(i + 1) == Some(&b'$') => {
                    if !self.push(&mut out, &text[literal_from..i]) {
                        return out;
                    }
                    literal_from = i + 1;
                    i += 2;
                }
                b'$' => {
                    let global = bytes.get(i + 1) == Some(&b'$');
                    let open = if global { i + 2 } else { i + 1 };
                    if bytes.get(open) != Some(&b'{') {
                        i += 1;
                        continue;
                    }
                    let Some(close) = matching_brace(bytes, open) else {
                        // Unterminated: nothing later can close it either, so
                        // the rest of the text is literal.
                        break;
                    };
                    if !self.push(&mut out, &text[literal_from..i]) {
                        return out;
                    }
                    let value = self.construct(&text[open + 1..close], global, depth + 1);
                    if self.stopped || !self.push(&mut out, &value) {
                        return out;
                    }
                    i = close + 1;
                    literal_from = i;
                }
                _ => i += 1,
            }
        }
        self.push(&mut out, &text[literal_from..]);
        out
    }

    /// Evaluates the inside of one `${…}` (or `$${…}`) at nesting `depth`.
    fn construct(&mut self, inner: &str, global: bool, depth: usize) -> String {
        if depth > MAX_DEPTH {
            self.stopped = true;
            return String::new();
        }
        if !global {
            // `${func(args)}`: FreeSWITCH's other form of an api call.
            if let Some(open) = inner.find('(') {
                let name = &inner[..open];
                if inner.ends_with(')')
                    && !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    let args = self.run(&inner[open + 1..inner.len() - 1], depth);
                    if self.stopped {
                        return String::new();
                    }
                    return match self.vars.api(name, &args) {
                        Some(output) => output.trim_end_matches(['\r', '\n']).to_owned(),
                        None => String::new(),
                    };
                }
            }
            // Split on the raw text so that a space inside a nested
            // reference, or in a value it expands to, never makes an api
            // call out of a plain lookup.
            if let Some(space) = top_level_space(inner) {
                let cmd = self.run(&inner[..space], depth);
                if self.stopped {
                    return String::new();
                }
                let args = self.run(&inner[space + 1..], depth);
                if self.stopped || cmd.is_empty() {
                    return String::new();
                }
                return match self.vars.api(&cmd, &args) {
                    Some(output) => output.trim_end_matches(['\r', '\n']).to_owned(),
                    None => String::new(),
                };
            }
        }
        let reference = self.run(inner, depth);
        if self.stopped {
            return String::new();
        }
        self.lookup(&reference, global)
    }

    /// Resolves `name[idx]:offset:length` once nested references are gone.
    fn lookup(&self, reference: &str, global: bool) -> String {
        let (name, slice) = match reference.split_once(':') {
            Some((name, rest)) => {
                let offset = atoi(rest);
                let length = rest.split_once(':').map_or(0, |(_, len)| atoi(len));
                (name, Some((offset, length)))
            }
            None => (reference, None),
        };
        let (name, index) = match name.split_once('[') {
            Some((base, rest)) if rest.contains(']') => (base, Some(atoi(rest))),
            _ => (name, None),
        };
        let value = if global {
            self.vars.global(name)
        } else {
            self.vars.var(name).or_else(|| self.vars.global(name))
        };
        let Some(value) = value else {
            return String::new();
        };
        let value = match index {
            Some(index) => array_element(value, index),
            None => value,
        };
        match slice {
            Some((offset, length)) => substring(value, offset, length),
            None => value,
        }
    }

    /// Appends `s` unless that would pass [`MAX_OUTPUT`], in which case it
    /// appends what fits, trips the guard and returns false.
    fn push(&mut self, out: &mut String, s: &str) -> bool {
        let room = MAX_OUTPUT.saturating_sub(out.len());
        if s.len() <= room {
            out.push_str(s);
            return true;
        }
        let mut cut = room;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&s[..cut]);
        self.stopped = true;
        false
    }
}

/// The index of the `}` closing the `{` at `open`, counting every brace in
/// between as FreeSWITCH does.
fn matching_brace(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The first space not inside nested braces.
fn top_level_space(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' => depth = depth.saturating_sub(1),
            b' ' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// C's `atoi`, which FreeSWITCH uses for offsets and indexes: optional
/// leading whitespace and sign, then digits up to the first non-digit;
/// garbage reads as 0. Saturates instead of overflowing.
fn atoi(text: &str) -> i64 {
    let text = text.trim_start();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        let d = i64::from(b - b'0');
        n = n.saturating_mul(10);
        n = if negative {
            n.saturating_sub(d)
        } else {
            n.saturating_add(d)
        };
    }
    n
}

fn array_element(value: String, index: i64) -> String {
    let Ok(index) = usize::try_from(index) else {
        return String::new();
    };
    match value.strip_prefix(ARRAY_PREFIX) {
        Some(items) => items
            .split(ARRAY_SEPARATOR)
            .nth(index)
            .map(str::to_owned)
            .unwrap_or_default(),
        None if index == 0 => value,
        None => String::new(),
    }
}

fn substring(value: String, offset: i64, length: i64) -> String {
    if offset == 0 && length <= 0 {
        return value;
    }
    let count = value.chars().count() as u64;
    let start = if offset >= 0 {
        let offset = offset.unsigned_abs();
        if offset > count {
            return String::new();
        }
        offset
    } else {
        // FreeSWITCH leaves the value whole when a negative offset reaches
        // before its start.
        count.saturating_sub(offset.unsigned_abs())
    };
    let rest = count - start;
    let take = match u64::try_from(length) {
        Ok(length) if length > 0 && length < rest => length,
        _ => rest,
    };
    // Both are at most `count`, which came from a usize.
    let (start, take) = (start as usize, take as usize);
    value.chars().skip(start).take(take).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct TestVars {
        vars: HashMap<String, String>,
        globals: HashMap<String, String>,
    }

    impl TestVars {
        fn new() -> Self {
            Self::default()
        }

        fn var(mut self, name: &str, value: &str) -> Self {
            self.vars.insert(name.to_owned(), value.to_owned());
            self
        }

        fn global(mut self, name: &str, value: &str) -> Self {
            self.globals.insert(name.to_owned(), value.to_owned());
            self
        }
    }

    impl Vars for TestVars {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }

        fn global(&self, name: &str) -> Option<String> {
            self.globals.get(name).cloned()
        }

        fn api(&self, cmd: &str, args: &str) -> Option<String> {
            match cmd {
                "upper" => Some(args.to_uppercase()),
                // Like most FreeSWITCH apis, ends its output with a newline.
                "echo" => Some(format!("{args}\n")),
                "crlf" => Some(format!("{args}\r\n\r\n")),
                "sum" => {
                    let total: i64 = args.split('+').map(atoi).sum();
                    Some(total.to_string())
                }
                _ => None,
            }
        }
    }

    fn nested(levels: usize, innermost: &str) -> String {
        format!("{}{innermost}{}", "${".repeat(levels), "}".repeat(levels))
    }

    #[test]
    fn text_without_a_dollar_is_returned_unchanged() {
        let vars = TestVars::new();
        for text in ["", "plain text", "back\\slash {braces} [x] a:b", "ünïcödé"] {
            assert_eq!(expand(text, &vars), text);
        }
    }

    #[test]
    fn a_set_variable_expands_to_its_value() {
        let vars = TestVars::new().var("dest", "1000");
        assert_eq!(expand("${dest}", &vars), "1000");
    }

    #[test]
    fn text_around_references_is_kept() {
        let vars = TestVars::new().var("a", "1").var("b", "2");
        assert_eq!(expand("x=${a}, y=${b}; ü€", &vars), "x=1, y=2; ü€");
    }

    #[test]
    fn an_unset_variable_expands_to_nothing() {
        let vars = TestVars::new();
        assert_eq!(expand("[${missing}]", &vars), "[]");
    }

    #[test]
    fn empty_braces_expand_to_nothing() {
        let vars = TestVars::new();
        assert_eq!(expand("a${}b$${}c", &vars), "abc");
    }

    #[test]
    fn a_double_dollar_reads_the_global_variable() {
        let vars = TestVars::new().global("domain", "example.com");
        assert_eq!(expand("sip:1000@$${domain}", &vars), "sip:1000@example.com");
    }

    #[test]
    fn an_unset_global_expands_to_nothing() {
        let vars = TestVars::new();
        assert_eq!(expand("[$${missing}]", &vars), "[]");
    }

    #[test]
    fn a_double_dollar_ignores_channel_variables() {
        let vars = TestVars::new().var("domain", "channel.example");
        assert_eq!(expand("$${domain}", &vars), "");
    }

    #[test]
    fn an_unset_channel_variable_falls_back_to_the_global_of_that_name() {
        let vars = TestVars::new().global("domain", "example.com");
        assert_eq!(expand("${domain}", &vars), "example.com");
    }

    #[test]
    fn a_channel_variable_shadows_the_global_of_that_name() {
        let vars = TestVars::new()
            .var("domain", "channel.example")
            .global("domain", "example.com");
        assert_eq!(expand("${domain}", &vars), "channel.example");
    }

    #[test]
    fn an_offset_skips_leading_characters() {
        let vars = TestVars::new().var("x", "abcdef");
        assert_eq!(expand("${x:2}", &vars), "cdef");
    }

    #[test]
    fn an_offset_and_length_take_a_slice() {
        let vars = TestVars::new().var("x", "abcdef");
        assert_eq!(expand("${x:1:3}", &vars), "bcd");
        assert_eq!(expand("${x:0:2}", &vars), "ab");
    }

    #[test]
    fn a_negative_offset_counts_from_the_end() {
        let vars = TestVars::new().var("x", "abcdef");
        assert_eq!(expand("${x:-3}", &vars), "def");
    }

    #[test]
    fn a_negative_offset_with_a_length_slices_from_the_end() {
        let vars = TestVars::new().var("x", "abcdef");
        assert_eq!(expand("${x:-4:2}", &vars), "cd");
    }

    #[test]
    fn an_offset_past_the_end_gives_nothing() {
        let vars = TestVars::new().var("x", "abc");
        assert_eq!(expand("[${x:4}]", &vars), "[]");
        assert_eq!(expand("[${x:3}]", &vars), "[]");
        assert_eq!(expand("[${x:99999999999999999999999}]", &vars), "[]");
    }

    #[test]
    fn a_negative_offset_before_the_start_keeps_the_whole_value() {
        let vars = TestVars::new().var("x", "abc");
        assert_eq!(expand("${x:-10}", &vars), "abc");
        assert_eq!(expand("${x:-99999999999999999999999:2}", &vars), "ab");
    }

    #[test]
    fn a_length_that_is_zero_negative_or_too_long_means_to_the_end() {
        let vars = TestVars::new().var("x", "abcdef");
        assert_eq!(expand("${x:2:0}", &vars), "cdef");
        assert_eq!(expand("${x:2:-1}", &vars), "cdef");
        assert_eq!(expand("${x:2:100}", &vars), "cdef");
    }

    #[test]
    fn a_non_numeric_offset_reads_as_zero() {
        let vars = TestVars::new().var("x", "abc");
        assert_eq!(expand("${x:abc}", &vars), "abc");
        assert_eq!(expand("${x:}", &vars), "abc");
        assert_eq!(expand("${x:-}", &vars), "abc");
    }

    #[test]
    fn substrings_count_characters_not_bytes() {
        let vars = TestVars::new().var("x", "héllo wörld€");
        assert_eq!(expand("${x:1:4}", &vars), "éllo");
        assert_eq!(expand("${x:-3}", &vars), "ld€");
    }

    #[test]
    fn a_substring_of_an_unset_variable_is_empty() {
        let vars = TestVars::new();
        assert_eq!(expand("${x:-3:1}", &vars), "");
    }

    #[test]
    fn an_array_index_selects_an_element() {
        let vars = TestVars::new().var("arr", "ARRAY::a|:bb|:ccc");
        assert_eq!(expand("${arr[0]}-${arr[1]}-${arr[2]}", &vars), "a-bb-ccc");
    }

    #[test]
    fn an_array_index_out_of_range_gives_nothing() {
        let vars = TestVars::new().var("arr", "ARRAY::a|:b");
        assert_eq!(expand("[${arr[2]}]", &vars), "[]");
        assert_eq!(expand("[${arr[99999999999999999999]}]", &vars), "[]");
    }

    #[test]
    fn a_negative_array_index_gives_nothing() {
        let vars = TestVars::new().var("arr", "ARRAY::a|:b").var("x", "plain");
        assert_eq!(expand("[${arr[-1]}${x[-1]}]", &vars), "[]");
    }

    #[test]
    fn index_zero_of_a_plain_value_is_the_value_itself() {
        let vars = TestVars::new().var("x", "plain");
        assert_eq!(expand("${x[0]}", &vars), "plain");
    }

    #[test]
    fn a_later_index_of_a_plain_value_gives_nothing() {
        let vars = TestVars::new().var("x", "plain");
        assert_eq!(expand("[${x[1]}]", &vars), "[]");
    }

    #[test]
    fn an_array_index_combines_with_a_substring() {
        let vars = TestVars::new().var("arr", "ARRAY::alpha|:bravo");
        assert_eq!(expand("${arr[1]:1:3}", &vars), "rav");
        assert_eq!(expand("${arr[0]:-2}", &vars), "ha");
    }

    #[test]
    fn an_array_index_works_on_globals() {
        let vars = TestVars::new().global("codecs", "ARRAY::PCMU|:PCMA");
        assert_eq!(expand("$${codecs[1]}", &vars), "PCMA");
    }

    #[test]
    fn a_bracket_without_its_close_is_part_of_the_name() {
        let vars = TestVars::new().var("x[0", "odd");
        assert_eq!(expand("${x[0}", &vars), "odd");
    }

    #[test]
    fn a_space_makes_the_reference_an_api_call() {
        let vars = TestVars::new();
        assert_eq!(expand("<${upper hello world}>", &vars), "<HELLO WORLD>");
    }

    #[test]
    fn api_arguments_are_expanded_before_the_call() {
        let vars = TestVars::new().var("a", "41").var("name", "bob");
        assert_eq!(expand("${sum ${a}+1}", &vars), "42");
        assert_eq!(expand("${upper hi ${name}!}", &vars), "HI BOB!");
    }

    #[test]
    fn the_api_command_may_itself_be_a_reference() {
        let vars = TestVars::new().var("cmd", "upper");
        assert_eq!(expand("${${cmd} shout}", &vars), "SHOUT");
    }

    #[test]
    fn api_calls_nest_inside_api_arguments() {
        let vars = TestVars::new().var("n", "2");
        assert_eq!(expand("${sum ${sum ${n}+3}+10}", &vars), "15");
    }

    #[test]
    fn an_api_result_loses_its_trailing_line_breaks() {
        let vars = TestVars::new();
        assert_eq!(expand("[${echo hi}]", &vars), "[hi]");
        assert_eq!(expand("[${crlf hi}]", &vars), "[hi]");
    }

    #[test]
    fn a_call_in_parentheses_is_an_api_call_with_expanded_arguments() {
        let vars = TestVars::new().var("u", "1000");
        assert_eq!(
            expand("${upper(${u}@example.com)}", &vars),
            "1000@EXAMPLE.COM"
        );
        assert_eq!(expand("${echo(a b)}", &vars), "a b");
        // Not a name before the parenthesis: a plain lookup.
        assert_eq!(expand("${a-b(c)}", &vars), "");
    }

    #[test]
    fn an_unknown_api_expands_to_nothing() {
        let vars = TestVars::new();
        assert_eq!(expand("[${nosuchapi some args}]", &vars), "[]");
    }

    #[test]
    fn a_leading_space_is_an_api_call_with_no_name_and_gives_nothing() {
        let vars = TestVars::new().var("x", "1");
        assert_eq!(expand("[${ x}]", &vars), "[]");
    }

    #[test]
    fn api_output_is_not_expanded_again() {
        let vars = TestVars::new().var("x", "secret");
        assert_eq!(expand("${echo \\${x}}", &vars), "${x}");
    }

    #[test]
    fn a_nested_reference_is_expanded_before_the_outer_lookup() {
        let vars = TestVars::new().var("which", "target").var("target", "hit");
        assert_eq!(expand("${${which}}", &vars), "hit");
    }

    #[test]
    fn a_nested_reference_can_build_part_of_a_name() {
        let vars = TestVars::new().var("leg", "b").var("sip_b_ip", "10.0.0.2");
        assert_eq!(expand("${sip_${leg}_ip}", &vars), "10.0.0.2");
    }

    #[test]
    fn a_nested_reference_can_supply_the_offset() {
        let vars = TestVars::new().var("n", "-2").var("x", "abcdef");
        assert_eq!(expand("${x:${n}}", &vars), "ef");
    }

    #[test]
    fn a_space_in_a_nested_value_does_not_make_an_api_call() {
        let vars = TestVars::new()
            .var("name", "upper hi")
            .var("upper hi", "looked up");
        assert_eq!(expand("${${name}}", &vars), "looked up");
    }

    #[test]
    fn variable_values_are_not_expanded_again() {
        let vars = TestVars::new().var("a", "${b}").var("b", "no");
        assert_eq!(expand("${a}", &vars), "${b}");
    }

    #[test]
    fn an_escaped_dollar_becomes_a_literal_dollar() {
        let vars = TestVars::new();
        assert_eq!(expand("cost: \\$5", &vars), "cost: $5");
    }

    #[test]
    fn an_escaped_dollar_does_not_start_a_reference() {
        let vars = TestVars::new().var("x", "1");
        assert_eq!(expand("\\${x} ${x}", &vars), "${x} 1");
    }

    #[test]
    fn a_backslash_before_anything_else_is_kept() {
        let vars = TestVars::new().var("x", "1");
        assert_eq!(expand("a\\nb\\\\c\\ ${x}\\", &vars), "a\\nb\\\\c\\ 1\\");
    }

    #[test]
    fn a_dollar_not_followed_by_a_brace_is_kept() {
        let vars = TestVars::new().var("x", "1");
        assert_eq!(expand("$5 $x $$y ${x}$", &vars), "$5 $x $$y 1$");
        assert_eq!(expand("$$", &vars), "$$");
        assert_eq!(expand("$$$${x}", &vars), "$$");
    }

    #[test]
    fn an_unterminated_reference_is_kept_literally() {
        let vars = TestVars::new().var("foo", "bar");
        assert_eq!(expand("${foo", &vars), "${foo");
        assert_eq!(expand("$${foo", &vars), "$${foo");
        assert_eq!(expand("a ${", &vars), "a ${");
    }

    #[test]
    fn only_the_unterminated_part_is_kept_literally() {
        let vars = TestVars::new().var("a", "1").var("b", "2");
        assert_eq!(expand("${a} ${b ${a}", &vars), "1 ${b ${a}");
        assert_eq!(expand("${a} ${b:${a}", &vars), "1 ${b:${a}");
    }

    #[test]
    fn a_stray_closing_brace_is_kept() {
        let vars = TestVars::new().var("a", "1");
        assert_eq!(expand("} ${a}} {", &vars), "} 1} {");
    }

    #[test]
    fn nesting_up_to_the_depth_limit_expands() {
        let vars = TestVars::new().var("x", "x");
        assert_eq!(expand(&nested(MAX_DEPTH, "x"), &vars), "x");
    }

    #[test]
    fn nesting_beyond_the_depth_limit_stops_with_the_output_so_far() {
        let vars = TestVars::new().var("x", "x");
        let input = format!("${{x}} kept {} lost ${{x}}", nested(MAX_DEPTH + 1, "x"));
        assert_eq!(expand(&input, &vars), "x kept ");
    }

    #[test]
    fn nesting_far_beyond_the_depth_limit_does_not_overflow_the_stack() {
        let vars = TestVars::new();
        assert_eq!(expand(&nested(100_000, "x"), &vars), "");
        let unbalanced = "${".repeat(100_000);
        assert_eq!(expand(&unbalanced, &vars), unbalanced);
    }

    #[test]
    fn output_reaching_the_size_limit_is_cut_at_the_limit() {
        let big = "y".repeat(MAX_OUTPUT / 2 + 10);
        let vars = TestVars::new().var("big", &big);
        let out = expand("${big}${big}${big} never", &vars);
        assert_eq!(out.len(), MAX_OUTPUT);
        assert!(out.bytes().all(|b| b == b'y'));
    }

    #[test]
    fn the_size_limit_cuts_on_a_character_boundary() {
        let big = "€".repeat(MAX_OUTPUT / 3 + 1);
        let vars = TestVars::new().var("big", &big);
        let out = expand("a${big}", &vars);
        assert!(out.len() <= MAX_OUTPUT);
        assert!(out.len() > MAX_OUTPUT - 3);
        assert!(out.starts_with("a€"));
    }

    #[test]
    fn an_oversized_api_argument_stops_expansion() {
        let big = "z".repeat(MAX_OUTPUT + 1);
        let vars = TestVars::new().var("big", &big);
        assert_eq!(expand("before ${upper ${big}} after", &vars), "before ");
    }

    #[test]
    fn malformed_input_never_panics() {
        let vars = TestVars::new()
            .var("x", "héllo")
            .var("arr", "ARRAY::a|:b")
            .global("g", "ARRAY::")
            .var("cmd", "upper");
        let fixed = [
            "${",
            "$${",
            "}",
            "${}}",
            "${{}",
            "${x:",
            "${x::}",
            "${x:-}",
            "${x[}",
            "${x]}",
            "${x[]}",
            "${arr[",
            "$${g[0]}",
            "${x:-1:-1}",
            "\\",
            "\\$",
            "$\\",
            "${\\}",
            "${ }",
            "${  }",
            "${${cmd}}",
            "${${",
            "}}}{{{",
            "$ {x}",
            "${x:9223372036854775807}",
            "${x:-9223372036854775808:9223372036854775807}",
            "${arr[-9223372036854775808]}",
        ];
        for text in fixed {
            let _ = expand(text, &vars);
        }
        // A cheap deterministic fuzz over the characters that matter.
        let alphabet: Vec<char> = "${}[]:-\\ x0ü€c".chars().collect();
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            let mut text = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let _ = expand(&text, &vars);
        }
    }
}
