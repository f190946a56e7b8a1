//! FreeSWITCH's configuration preprocessor: turns `conf/freeswitch.xml` and
//! everything it includes into one XML text, the way `switch_xml_parse_file`
//! does before parsing. `<X-PRE-PROCESS cmd="set" data="name=value"/>`
//! defines a global that later `$${name}` receive; `cmd="include"` splices
//! in the files a path or glob names (relative to the including file, in
//! sorted order, recursively), dropping an included file's `<include>`
//! wrapper and XML declaration. Because the result is one text, [`Preprocessed`]
//! remembers where each of its lines came from, so that an error found later
//! (by the XML parser, or the dialplan) names the file and line a person
//! edits.
//!
//! Where we differ from FreeSWITCH, on purpose:
//! - Directives inside XML comments are not run. FreeSWITCH runs them
//!   ("YOU CAN NOT COMMENT OUT AN X-PRE-PROCESS line") because it scans line
//!   by line; this scanner knows where comments are.
//! - An unknown `$${name}` is left as written (FreeSWITCH makes it empty),
//!   so that the host can still expand its own core variables (`base_dir`,
//!   `hostname`, …) later, or pass them in through
//!   [`preprocess_with_globals`].
//! - `exec`, `exec-set` (run a program) and `stun-set` (ask a STUN server)
//!   are refused with an error: configuration is data, read without side
//!   effects. `env-set` is supported.
//! - A mistake FreeSWITCH logs and skips is an error naming file and line:
//!   an unknown command, a `set` without `=`, an include of a file that does
//!   not exist (a glob that matches nothing is still fine, as in
//!   FreeSWITCH), an include cycle (FreeSWITCH recurses 100 deep).
//! - Only the `<include>` tags are removed, not the whole line holding
//!   them; and the root file keeps its own `<include>` wrapper and XML
//!   declaration, so any single file can be preprocessed on its own.

use crate::xml::{Element, XmlError};
use std::fmt;
use std::path::{Path, PathBuf};

/// One configuration, preprocessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preprocessed {
    /// The combined XML text.
    pub text: String,
    /// Every global known at the end, in the order first set, with its last
    /// value (seeded ones first).
    pub globals: Vec<(String, String)>,
    /// Every file read, the root first; what a watcher would watch.
    pub files: Vec<PathBuf>,
    /// For each line of `text`: (index into `files`, 1-based line there).
    lines: Vec<(usize, usize)>,
}

impl Preprocessed {
    /// The file and line that `line` (1-based) of [`Self::text`] came from.
    /// Line 0, which [`XmlError`] uses for a file it could not read, stays 0.
    pub fn origin(&self, line: usize) -> (PathBuf, usize) {
        let file = |i: usize| self.files.get(i).cloned().unwrap_or_default();
        let at = line
            .checked_sub(1)
            .and_then(|i| self.lines.get(i).or(self.lines.last()));
        match at {
            Some(&(i, source_line)) => (file(i), source_line),
            None => (file(0), 0),
        }
    }

    /// Parses [`Self::text`]; an error names the original file and line.
    /// The elements' own `line`s are lines of `text`: map them with
    /// [`Self::origin`].
    pub fn parse(&self) -> Result<Element, XmlError> {
        let root = self.files.first().cloned().unwrap_or_default();
        crate::xml::parse(&self.text, &root).map_err(|e| {
            let (file, line) = self.origin(e.line);
            XmlError {
                file,
                line,
                reason: e.reason,
            }
        })
    }
}

/// A configuration that could not be preprocessed, with the file and line
/// (0 when the file itself could not be read) to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreprocessError {
    pub file: PathBuf,
    pub line: usize,
    pub kind: PreprocessErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreprocessErrorKind {
    /// A file could not be read: the root, or one an include names.
    Read {
        path: PathBuf,
        reason: String,
    },
    /// An include without wildcards names no file.
    MissingInclude {
        pattern: String,
        path: PathBuf,
    },
    /// Including `chain`'s last file again would never end.
    IncludeCycle {
        chain: Vec<PathBuf>,
    },
    TooDeep,
    /// `exec`, `exec-set`, `stun-set`: refused, never run.
    Unsupported {
        cmd: String,
    },
    UnknownCommand {
        cmd: String,
    },
    Malformed {
        reason: String,
    },
}

impl fmt::Display for PreprocessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        write!(f, ": ")?;
        match &self.kind {
            PreprocessErrorKind::Read { path, reason } => {
                write!(f, "cannot read {}: {reason}", path.display())
            }
            PreprocessErrorKind::MissingInclude { pattern, path } => {
                write!(f, "include {pattern:?}: no file {}", path.display())
            }
            PreprocessErrorKind::IncludeCycle { chain } => {
                let names: Vec<String> = chain.iter().map(|p| p.display().to_string()).collect();
                write!(f, "include cycle: {}", names.join(" -> "))
            }
            PreprocessErrorKind::TooDeep => {
                write!(f, "includes nested more than {MAX_DEPTH} deep")
            }
            PreprocessErrorKind::Unsupported { cmd } => write!(
                f,
                "cmd={cmd:?} is not supported (it would run a program or query the \
                 network); set the value with cmd=\"set\" instead"
            ),
            PreprocessErrorKind::UnknownCommand { cmd } => {
                write!(f, "unknown cmd={cmd:?} (expected set, include or env-set)")
            }
            PreprocessErrorKind::Malformed { reason } => write!(f, "{reason}"),
        }
    }
}

impl std::error::Error for PreprocessError {}

/// FreeSWITCH's limit on include depth.
const MAX_DEPTH: usize = 100;

/// The directive tag, matched without regard to case as FreeSWITCH does.
const DIRECTIVE: &str = "<X-PRE-PROCESS";

/// Preprocesses the file at `root` and everything it includes.
pub fn preprocess(root: &Path) -> Result<Preprocessed, PreprocessError> {
    preprocess_with_globals(root, &[])
}

/// Like [`preprocess`], with globals known before the first line, as
/// FreeSWITCH's core sets `base_dir`, `conf_dir`, `hostname`, … before it
/// reads `freeswitch.xml`.
pub fn preprocess_with_globals(
    root: &Path,
    globals: &[(String, String)],
) -> Result<Preprocessed, PreprocessError> {
    let mut p = Pre {
        out: Out::default(),
        globals: globals.to_vec(),
        files: Vec::new(),
        stack: Vec::new(),
    };
    p.file(root, None)?;
    Ok(Preprocessed {
        text: p.out.text,
        globals: p.globals,
        files: p.files,
        lines: p.out.lines,
    })
}

/// The combined text and, per line, where it came from.
#[derive(Default)]
struct Out {
    text: String,
    lines: Vec<(usize, usize)>,
    mid_line: bool,
}

impl Out {
    /// Appends `s`, which starts on `line` of `file`. A line of the output
    /// belongs to wherever its first character came from. `advance` is
    /// false for a substituted value: its line breaks are not the source's.
    fn emit(&mut self, s: &str, file: usize, mut line: usize, advance: bool) {
        for piece in s.split_inclusive('\n') {
            if !self.mid_line {
                self.lines.push((file, line));
                self.mid_line = true;
            }
            self.text.push_str(piece);
            if piece.ends_with('\n') {
                self.mid_line = false;
                if advance {
                    line += 1;
                }
            }
        }
    }

    fn copy(&mut self, (s, line): (&str, usize), file: usize) {
        self.emit(s, file, line, true);
    }

    /// Starts a fresh line, so that included text has lines of its own.
    fn break_line(&mut self) {
        if self.mid_line {
            self.text.push('\n');
            self.mid_line = false;
        }
    }
}

/// A position in a file's text.
struct Cursor<'t> {
    rest: &'t str,
    line: usize,
}

impl<'t> Cursor<'t> {
    /// Moves past `n` bytes, giving them and the line they start on.
    fn take(&mut self, n: usize) -> (&'t str, usize) {
        let (done, left) = self.rest.split_at(n);
        let line = self.line;
        self.line += newlines(done);
        self.rest = left;
        (done, line)
    }
}

struct Pre {
    out: Out,
    globals: Vec<(String, String)>,
    files: Vec<PathBuf>,
    /// The files being read, outermost first: (canonical path, path as named).
    stack: Vec<(PathBuf, PathBuf)>,
}

/// Where a directive sits: (file index, line).
type Site = (usize, usize);

impl Pre {
    fn error_at(&self, site: Site, kind: PreprocessErrorKind) -> PreprocessError {
        PreprocessError {
            file: self.files[site.0].clone(),
            line: site.1,
            kind,
        }
    }

    /// Reads `path`, included from `site` (None for the root), into the output.
    fn file(&mut self, path: &Path, site: Option<Site>) -> Result<(), PreprocessError> {
        let fail = |me: &Pre, kind| match site {
            Some(site) => me.error_at(site, kind),
            None => PreprocessError {
                file: path.to_path_buf(),
                line: 0,
                kind,
            },
        };
        let canonical = path
            .canonicalize()
            .map_err(|e| fail(self, read_error(path, e)))?;
        if self.stack.iter().any(|(c, _)| *c == canonical) {
            let mut chain: Vec<PathBuf> = self.stack.iter().map(|(_, p)| p.clone()).collect();
            chain.push(path.to_path_buf());
            return Err(fail(self, PreprocessErrorKind::IncludeCycle { chain }));
        }
        if self.stack.len() > MAX_DEPTH {
            return Err(fail(self, PreprocessErrorKind::TooDeep));
        }
        let text = std::fs::read_to_string(path).map_err(|e| fail(self, read_error(path, e)))?;
        let index = match self.files.iter().position(|f| f == path) {
            Some(i) => i,
            None => {
                self.files.push(path.to_path_buf());
                self.files.len() - 1
            }
        };
        self.stack.push((canonical, path.to_path_buf()));
        let result = self.scan(&text, index, site.is_some());
        self.stack.pop();
        result
    }

    /// Copies `text` (file `file`) to the output, running directives,
    /// substituting globals and, in an included file, dropping its
    /// `<include>` wrapper and XML declaration.
    fn scan(&mut self, text: &str, file: usize, included: bool) -> Result<(), PreprocessError> {
        let mut cur = Cursor {
            rest: text,
            line: 1,
        };
        while let Some(at) = cur.rest.find(['<', '$']) {
            self.out.copy(cur.take(at), file);
            if cur.rest.starts_with("$${") {
                let Some(len) = global_reference_len(cur.rest) else {
                    self.out.copy(cur.take(1), file);
                    continue;
                };
                match self.global(&cur.rest[3..len - 1]) {
                    Some(value) => {
                        self.out.emit(&value, file, cur.line, false);
                        cur.take(len);
                    }
                    None => self.out.copy(cur.take(len), file),
                }
            } else if cur.rest.starts_with("<!--#") {
                self.comment_command(&mut cur, file)?;
            } else if cur.rest.starts_with("<!--") {
                let end = cur.rest.find("-->").map_or(cur.rest.len(), |e| e + 3);
                self.out.copy(cur.take(end), file);
            } else if cur.rest.starts_with("<![CDATA[") {
                let end = cur.rest.find("]]>").map_or(cur.rest.len(), |e| e + 3);
                let expanded = self.expand(&cur.rest[..end]);
                self.out.emit(&expanded, file, cur.line, true);
                cur.take(end);
            } else if starts_with_tag(cur.rest, DIRECTIVE) {
                self.directive_tag(&mut cur, file)?;
            } else if included
                && (cur.rest.starts_with("<include>") || cur.rest.starts_with("</include>"))
            {
                let end = cur.rest.find('>').map_or(cur.rest.len(), |e| e + 1);
                cur.take(end);
            } else if included && cur.rest.starts_with("<?") {
                let end = cur.rest.find("?>").map_or(cur.rest.len(), |e| e + 2);
                cur.take(end);
            } else {
                self.out.copy(cur.take(1), file);
            }
        }
        self.out.copy(cur.take(cur.rest.len()), file);
        Ok(())
    }

    /// `<X-PRE-PROCESS cmd="…" data="…"/>` at the cursor.
    fn directive_tag(&mut self, cur: &mut Cursor, file: usize) -> Result<(), PreprocessError> {
        let site = (file, cur.line);
        let bad = |me: &Pre, reason: &str| me.error_at(site, malformed(reason));
        let len = tag_len(cur.rest).ok_or_else(|| bad(self, "X-PRE-PROCESS is never closed"))?;
        let tag = &cur.rest[..len];
        let inside = tag.strip_suffix("/>").ok_or_else(|| {
            bad(
                self,
                "X-PRE-PROCESS must be an empty element: <X-PRE-PROCESS cmd=\"…\" data=\"…\"/>",
            )
        })?;
        let attrs = attributes(&inside[DIRECTIVE.len()..]).map_err(|reason| bad(self, &reason))?;
        let find = |name: &str| {
            attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| self.expand(v))
        };
        let cmd = find("cmd").ok_or_else(|| bad(self, "X-PRE-PROCESS without cmd"))?;
        let data = find("data").ok_or_else(|| bad(self, "X-PRE-PROCESS without data"))?;
        cur.take(len);
        self.directive(&cmd, &data, site)
    }

    /// The old comment form at the cursor: `<!--#include "x.xml"-->`,
    /// `<!--#set "a=b"-->`; any other word (`<!--#comment …-->`) makes a
    /// comment, dropped like the commands.
    fn comment_command(&mut self, cur: &mut Cursor, file: usize) -> Result<(), PreprocessError> {
        let site = (file, cur.line);
        let end = cur
            .rest
            .find("-->")
            .ok_or_else(|| self.error_at(site, malformed("<!--# is never closed by -->")))?;
        let first_line = cur.rest[5..end].lines().next().unwrap_or("");
        let (cmd, arg) = first_line.split_once(' ').unwrap_or((first_line, ""));
        if is_command(cmd) {
            let arg = self.expand(unquote(arg.trim()));
            self.directive(cmd, &arg, site)?;
        }
        cur.take(end + 3);
        Ok(())
    }

    fn directive(&mut self, cmd: &str, data: &str, site: Site) -> Result<(), PreprocessError> {
        match cmd.to_ascii_lowercase().as_str() {
            "set" => {
                let (name, value) = split_assignment(data).ok_or_else(|| {
                    self.error_at(site, malformed("set needs data=\"name=value\""))
                })?;
                self.set(name, value);
            }
            "env-set" => {
                // FreeSWITCH's form: data="name=$ENVIRONMENT_VARIABLE".
                let (name, variable) = split_assignment(data)
                    .and_then(|(n, v)| Some((n, v.strip_prefix('$')?)))
                    .ok_or_else(|| {
                        self.error_at(site, malformed("env-set needs data=\"name=$VARIABLE\""))
                    })?;
                if let Ok(value) = std::env::var(variable) {
                    self.set(name, &value);
                }
            }
            "include" => {
                let dir = self.files[site.0]
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                let paths = matching_files(&dir, data).map_err(|path| {
                    self.error_at(
                        site,
                        PreprocessErrorKind::MissingInclude {
                            pattern: data.to_string(),
                            path,
                        },
                    )
                })?;
                for path in paths {
                    self.out.break_line();
                    self.file(&path, Some(site))?;
                    self.out.break_line();
                }
            }
            "exec" | "exec-set" | "stun-set" => {
                return Err(self.error_at(
                    site,
                    PreprocessErrorKind::Unsupported {
                        cmd: cmd.to_string(),
                    },
                ))
            }
            _ => {
                return Err(self.error_at(
                    site,
                    PreprocessErrorKind::UnknownCommand {
                        cmd: cmd.to_string(),
                    },
                ))
            }
        }
        Ok(())
    }

    fn global(&self, name: &str) -> Option<String> {
        self.globals
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn set(&mut self, name: &str, value: &str) {
        match self.globals.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value.to_string(),
            None => self.globals.push((name.to_string(), value.to_string())),
        }
    }

    /// Substitutes known `$${name}` in `s`; values are not scanned again.
    fn expand(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(at) = rest.find("$${") {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            let Some(len) = global_reference_len(rest) else {
                break;
            };
            match self.global(&rest[3..len - 1]) {
                Some(value) => out.push_str(&value),
                None => out.push_str(&rest[..len]),
            }
            rest = &rest[len..];
        }
        out.push_str(rest);
        out
    }
}

fn read_error(path: &Path, e: std::io::Error) -> PreprocessErrorKind {
    PreprocessErrorKind::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn malformed(reason: &str) -> PreprocessErrorKind {
    PreprocessErrorKind::Malformed {
        reason: reason.to_string(),
    }
}

fn newlines(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'\n').count()
}

fn is_command(word: &str) -> bool {
    ["set", "include", "env-set", "exec", "exec-set", "stun-set"]
        .iter()
        .any(|c| word.eq_ignore_ascii_case(c))
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.split_once('"'))
        .map_or(s, |(inner, _)| inner)
}

/// `name=value`, with FreeSWITCH's trimming: spaces around the name and
/// before the value.
fn split_assignment(data: &str) -> Option<(&str, &str)> {
    let (name, value) = data.split_once('=')?;
    let name = name.trim();
    (!name.is_empty()).then(|| (name, value.trim_start_matches(' ')))
}

/// The length of `$${name}` at the start of `s`, braces nesting as in
/// `switch_find_end_paren`; None when it is never closed.
fn global_reference_len(s: &str) -> Option<usize> {
    let mut depth = 0;
    for (i, b) in s.bytes().enumerate().skip(2) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Whether `s` starts with the tag `name` (any case) followed by a space,
/// `/` or `>`.
fn starts_with_tag(s: &str, name: &str) -> bool {
    s.get(..name.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(name))
        && s[name.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_whitespace() || c == '/' || c == '>')
}

/// The length of the tag at the start of `s`, through its `>` (quotes
/// respected).
fn tag_len(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// `name="value"` pairs, values taken as written (FreeSWITCH does not
/// decode entities in directives).
fn attributes(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("expected name=\"value\" at {rest:?}"))?;
        let after = after.trim_start();
        let quote = after
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or_else(|| format!("the value of {} is not quoted", name.trim()))?;
        let (value, left) = after[1..]
            .split_once(quote)
            .ok_or_else(|| format!("the value of {} is never closed", name.trim()))?;
        out.push((name.trim().to_string(), value.to_string()));
        rest = left.trim_start();
    }
    Ok(out)
}

fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The files `pattern` names, relative to `dir` unless absolute, sorted as
/// glob(3) sorts them. A pattern without wildcards must name a file (the
/// error is the path it looked for); one with wildcards may match nothing.
fn matching_files(dir: &Path, pattern: &str) -> Result<Vec<PathBuf>, PathBuf> {
    let full = dir.join(pattern);
    if !has_wildcards(pattern) {
        return if full.is_file() {
            Ok(vec![full])
        } else {
            Err(full)
        };
    }
    let mut found = vec![if Path::new(pattern).is_absolute() {
        PathBuf::new()
    } else {
        dir.to_path_buf()
    }];
    for part in Path::new(pattern).components() {
        let part = part.as_os_str();
        let text = part.to_string_lossy();
        if !has_wildcards(&text) {
            found.iter_mut().for_each(|f| f.push(part));
            continue;
        }
        let wanted: Vec<char> = text.chars().collect();
        let mut next = Vec::new();
        for base in &found {
            // An unreadable directory matches nothing, as glob(3) without
            // GLOB_ERR would have it.
            let Ok(entries) = std::fs::read_dir(base) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name: Vec<char> = name.to_string_lossy().chars().collect();
                let hidden = name.first() == Some(&'.') && wanted.first() != Some(&'.');
                if !hidden && wildcard_match(&wanted, &name) {
                    next.push(base.join(entry.file_name()));
                }
            }
        }
        found = next;
    }
    found.retain(|f| f.is_file());
    found.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    Ok(found)
}

/// Shell wildcards over one name: `*`, `?`, `[a-z]`, `[!…]` / `[^…]`, and
/// `\` to take the next character literally.
fn wildcard_match(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and how much of the name it has taken.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if pattern.get(p) == Some(&'*') {
            star = Some((p, n));
            p += 1;
            continue;
        }
        if let Some((matched, len)) = one(&pattern[p..], name[n]) {
            if matched {
                p += len;
                n += 1;
                continue;
            }
        }
        match star {
            Some((sp, sn)) => {
                star = Some((sp, sn + 1));
                p = sp + 1;
                n = sn + 1;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether the pattern element at the start of `p` matches `c`, and its
/// length; None at the end of the pattern.
fn one(p: &[char], c: char) -> Option<(bool, usize)> {
    match *p.first()? {
        '?' => Some((true, 1)),
        '\\' if p.len() > 1 => Some((p[1] == c, 2)),
        '[' => Some(class(p, c).unwrap_or((c == '[', 1))),
        literal => Some((literal == c, 1)),
    }
}

/// A `[…]` class at the start of `p`; None when it is never closed (then
/// `[` is itself).
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negated = matches!(p.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            return Some((hit != negated, i + 1));
        }
        first = false;
        match (p.get(i + 1), p.get(i + 2)) {
            (Some('-'), Some(&to)) if to != ']' => {
                hit |= ch <= c && c <= to;
                i += 3;
            }
            _ => {
                hit |= ch == c;
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory of configuration files, removed when dropped.
    struct Conf {
        dir: PathBuf,
    }

    impl Conf {
        fn new() -> Conf {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "hotswitch-preprocess-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            Conf { dir }
        }

        fn file(&self, name: &str, text: &str) -> &Conf {
            let path = self.dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("subdir");
            }
            std::fs::write(path, text).expect("write");
            self
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.join(name)
        }

        fn run(&self) -> Result<Preprocessed, PreprocessError> {
            preprocess(&self.path("freeswitch.xml"))
        }
    }

    impl Drop for Conf {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// The text without blank lines or indentation, for comparisons.
    fn squeeze(text: &str) -> String {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn set_defines_a_global_that_later_text_and_attributes_receive() {
        let conf = Conf::new();
        conf.file(
            "freeswitch.xml",
            r#"<document>
  <X-PRE-PROCESS cmd="set" data="domain = example.com"/>
  <X-PRE-PROCESS cmd="set" data="realm=sip.$${domain}"/>
  <param name="realm" value="$${realm}"/>
  <text>at $${domain}</text>
</document>"#,
        );
        let p = conf.run().expect("preprocessed");
        assert_eq!(
            squeeze(&p.text),
            "<document>\n<param name=\"realm\" value=\"sip.example.com\"/>\n<text>at example.com</text>\n</document>"
        );
        assert_eq!(
            p.globals,
            vec![
                ("domain".to_string(), "example.com".to_string()),
                ("realm".to_string(), "sip.example.com".to_string())
            ]
        );
        p.parse().expect("the result parses");
    }

    #[test]
    fn an_unknown_global_is_left_as_written_for_the_host_to_expand() {
        let conf = Conf::new();
        conf.file(
            "freeswitch.xml",
            r#"<a v="$${base_dir}/x" w="$${unclosed"/>"#,
        );
        let p = conf.run().expect("preprocessed");
        assert_eq!(p.text, r#"<a v="$${base_dir}/x" w="$${unclosed"/>"#);
        let seeded = preprocess_with_globals(
            &conf.path("freeswitch.xml"),
            &[("base_dir".into(), "/usr/local/freeswitch".into())],
        )
        .expect("preprocessed");
        assert_eq!(
            seeded.text,
            r#"<a v="/usr/local/freeswitch/x" w="$${unclosed"/>"#
        );
    }

    #[test]
    fn a_glob_include_splices_matching_files_in_sorted_order() {
        let conf = Conf::new();
        conf.file(
            "freeswitch.xml",
            r#"<document><section name="configuration">
    <X-PRE-PROCESS cmd="include" data="autoload_configs/*.xml"/>
    <X-PRE-PROCESS cmd="include" data="empty/*.xml"/>
</section></document>"#,
        )
        .file(
            "autoload_configs/b.conf.xml",
            "<configuration name=\"b\"/>\n",
        )
        .file(
            "autoload_configs/a.conf.xml",
            "<configuration name=\"a\"/>\n",
        )
        .file("autoload_configs/.hidden.xml", "<hidden/>\n")
        .file("autoload_configs/notes.txt", "not xml\n");
        std::fs::create_dir_all(conf.path("empty")).expect("dir");
        let p = conf.run().expect("preprocessed");
        let root = p.parse().expect("parses");
        let names: Vec<_> = root.children[0]
            .children
            .iter()
            .map(|c| c.attr("name").unwrap_or(&c.name).to_string())
            .collect();
        assert_eq!(names, vec!["a", "b"]);
        assert_eq!(p.files.len(), 3);
    }

    #[test]
    fn includes_nest_relative_to_the_including_file() {
        let conf = Conf::new();
        conf.file(
            "freeswitch.xml",
            r#"<document><X-PRE-PROCESS cmd="include" data="dialplan/main.xml"/></document>"#,
        )
        .file(
            "dialplan/main.xml",
            r#"<include><X-PRE-PROCESS cmd="include" data="parts/p?.xml"/></include>"#,
        )
        .file("dialplan/parts/p1.xml", "<include><one/></include>")
        .file("dialplan/parts/p2.xml", "<include><two/></include>");
        let root = conf.run().expect("preprocessed").parse().expect("parses");
        let names: Vec<_> = root.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["one", "two"]);
    }

    #[test]
    fn the_include_wrapper_and_declaration_of_an_included_file_are_dropped() {
        let conf = Conf::new();
        conf.file(
            "freeswitch.xml",
            "<?xml version=\"1.0\"?>\n<document type=\"freeswitch/xml\">\n  <section name=\"dialplan\">\n    <X-PRE-PROCESS cmd=\"include\" data=\"dialplan/*.xml\"/>\n  </section>\n</document>\n",
        )
        .file(
            "dialplan/default.xml",
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<include>\n  <context name=\"default\"/>\n  <context name=\"features\"/>\n</include>\n",
        )
        .file(
            "dialplan/public.xml",
            "<include><context name=\"public\"/></include>",
        );
        let root = conf.run().expect("preprocessed").parse().expect("parses");
        let section = root.child("section").expect("section");
        let contexts: Vec<_> = section
            .children_named("context")
            .filter_map(|c| c.attr("name"))
            .collect();
        assert_eq!(contexts, vec!["default", "features", "public"]);
        assert!(section.child("include").is_none());
    }

    #[test]
    fn the_root_file_keeps_its_own_include_wrapper() {
        let conf = Conf::new();
        conf.file(
            "freeswitch.xml",
            "<include><context name=\"a\"/><context name=\"b\"/></include>",
        );
        let root = conf.run().expect("preprocessed").parse().expect("parses");
        assert_eq!(root.name, "include");
        assert_eq!(root.children.len(), 2);
    }

    #[test]
    fn an_include_cycle_is_refused_at_the_including_line() {
        let conf = Conf::new();
        conf.file(
            "freeswitch.xml",
            "<document>\n<X-PRE-PROCESS cmd=\"include\" data=\"a.xml\"/>\n</document>",
        )
        .file(
            "a.xml",
            "<include>\n\n<X-PRE-PROCESS cmd=\"include\" data=\"./freeswitch.xml\"/>\n</include>",
        );
        let e = conf.run().expect_err("cycle");
        assert_eq!(e.file, conf.path("a.xml"));
        assert_eq!(e.line, 3);
        let PreprocessErrorKind::IncludeCycle { chain } = &e.kind else {
            panic!("unexpected {e}");
        };
        assert_eq!(chain.len(), 3, "{e}");
        assert!(e.to_string().contains("include cycle"), "{e}");
    }

    #[test]
    fn a_missing_include_file_is_an_error_naming_the_file_and_line() {
        let conf = Conf::new();
        conf.file(
            "freeswitch.xml",
            "<document>\n\n  <X-PRE-PROCESS cmd=\"include\" data=\"vars.xml\"/>\n</document>",
        );
        let e = conf.run().expect_err("missing");
        assert_eq!((e.file.clone(), e.line), (conf.path("freeswitch.xml"), 3));
        assert!(
            matches!(e.kind, PreprocessErrorKind::MissingInclude { .. }),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("freeswitch.xml:3: include \"vars.xml\""),
            "{e}"
        );
    }

    #[test]
    fn a_missing_root_file_is_an_error_at_line_zero() {
        let conf = Conf::new();
        let e = conf.run().expect_err("no root");
        assert_eq!(e.line, 0);
        assert!(matches!(e.kind, PreprocessErrorKind::Read { .. }), "{e}");
    }

    #[test]
    fn commands_that_run_programs_or_query_the_network_are_refused() {
        for cmd in ["exec", "exec-set", "stun-set"] {
            let conf = Conf::new();
            conf.file(
                "freeswitch.xml",
                &format!("<a>\n<X-PRE-PROCESS cmd=\"{cmd}\" data=\"x=touch /tmp/pwned\"/>\n</a>"),
            );
            let e = conf.run().expect_err(cmd);
            assert_eq!(e.line, 2, "{e}");
            assert_eq!(e.kind, PreprocessErrorKind::Unsupported { cmd: cmd.into() });
        }
    }

    #[test]
    fn an_unknown_command_or_a_set_without_a_value_is_refused() {
        let conf = Conf::new();
        conf.file(
            "freeswitch.xml",
            "<a><X-PRE-PROCESS cmd=\"frobnicate\" data=\"\"/></a>",
        );
        let e = conf.run().expect_err("unknown");
        assert!(
            matches!(e.kind, PreprocessErrorKind::UnknownCommand { .. }),
            "{e}"
        );
        conf.file(
            "freeswitch.xml",
            "<a><X-PRE-PROCESS cmd=\"set\" data=\"novalue\"/></a>",
        );
        let e = conf.run().expect_err("set without =");
        assert!(
            matches!(e.kind, PreprocessErrorKind::Malformed { .. }),
            "{e}"
        );
    }

    #[test]
    fn a_commented_out_directive_is_not_run() {
        let conf = Conf::new();
        conf.file(
            "freeswitch.xml",
            "<a>\n<!-- <X-PRE-PROCESS cmd=\"include\" data=\"gone.xml\"/>\n<X-PRE-PROCESS cmd=\"set\" data=\"x=1\"/> -->\n</a>",
        );
        let p = conf.run().expect("preprocessed");
        assert!(p.globals.is_empty());
        p.parse().expect("parses");
    }

    #[test]
    fn the_old_comment_syntax_sets_and_includes() {
        let conf = Conf::new();
        conf.file(
            "freeswitch.xml",
            "<a>\n<!--#set \"x=1\"-->\n<!--#comment\n  anything at all\n-->\n<!--#include \"b.xml\"-->\n<v>$${x}</v>\n</a>",
        )
        .file("b.xml", "<include><b/></include>");
        let p = conf.run().expect("preprocessed");
        assert_eq!(squeeze(&p.text), "<a>\n<b/>\n<v>1</v>\n</a>");
    }

    #[test]
    fn env_set_copies_an_environment_variable() {
        let conf = Conf::new();
        conf.file(
            "freeswitch.xml",
            "<a><X-PRE-PROCESS cmd=\"env-set\" data=\"dir=$CARGO_MANIFEST_DIR\"/></a>",
        );
        let p = conf.run().expect("preprocessed");
        let expected: Vec<(String, String)> = std::env::var("CARGO_MANIFEST_DIR")
            .map(|v| vec![("dir".to_string(), v)])
            .unwrap_or_default();
        assert_eq!(p.globals, expected);
    }

    #[test]
    fn a_parse_error_in_an_included_file_maps_back_to_its_file_and_line() {
        let conf = Conf::new();
        conf.file(
            "freeswitch.xml",
            "<document>\n  <X-PRE-PROCESS cmd=\"set\" data=\"a=1\"/>\n  <section name=\"configuration\">\n    <X-PRE-PROCESS cmd=\"include\" data=\"autoload_configs/*.xml\"/>\n  </section>\n  <after/>\n</document>\n",
        )
        .file(
            "autoload_configs/good.conf.xml",
            "<configuration name=\"good\">\n  <settings/>\n</configuration>\n",
        )
        .file(
            "autoload_configs/z.conf.xml",
            "<include>\n<configuration name=\"bad\">\n  <settings>\n  </setting>\n</configuration>\n</include>\n",
        );
        let p = conf.run().expect("preprocessed");
        let e = p.parse().expect_err("broken file");
        assert_eq!(e.file, conf.path("autoload_configs/z.conf.xml"), "{e}");
        assert_eq!(e.line, 4, "{e}");
        // Lines around the include map back too.
        let line_of = |needle: &str| {
            p.text
                .lines()
                .position(|l| l.contains(needle))
                .map(|i| i + 1)
                .expect("line present")
        };
        assert_eq!(
            p.origin(line_of("<after/>")),
            (conf.path("freeswitch.xml"), 6)
        );
        assert_eq!(
            p.origin(line_of("name=\"good\"")),
            (conf.path("autoload_configs/good.conf.xml"), 1)
        );
        assert_eq!(p.origin(0), (conf.path("freeswitch.xml"), 0));
    }

    #[test]
    fn a_line_found_in_the_parsed_tree_maps_back_to_the_included_file() {
        let conf = Conf::new();
        conf.file(
            "freeswitch.xml",
            "<document type=\"freeswitch/xml\">\n  <section name=\"dialplan\">\n    <X-PRE-PROCESS cmd=\"include\" data=\"dialplan/*.xml\"/>\n  </section>\n</document>\n",
        )
        .file(
            "dialplan/default.xml",
            "<include>\n  <context name=\"default\">\n    <extension name=\"x\">\n      <condition field=\"destination_number\" expression=\"^(1\"/>\n    </extension>\n  </context>\n</include>\n",
        );
        let p = conf.run().expect("preprocessed");
        let root = p.parse().expect("parses");
        // Where the dialplan would report its bad regular expression.
        let condition = root
            .child("section")
            .and_then(|s| s.child("context"))
            .and_then(|c| c.child("extension"))
            .and_then(|e| e.child("condition"))
            .expect("the condition is in the tree");
        assert_eq!(
            p.origin(condition.line),
            (conf.path("dialplan/default.xml"), 4)
        );
    }

    #[test]
    fn wildcards_match_like_the_shell() {
        let m = |p: &str, n: &str| {
            wildcard_match(
                &p.chars().collect::<Vec<_>>(),
                &n.chars().collect::<Vec<_>>(),
            )
        };
        assert!(m("*.xml", "a.conf.xml"));
        assert!(!m("*.xml", "a.xml.bak"));
        assert!(m("p?.xml", "p1.xml"));
        assert!(m("[a-c]*", "beta"));
        assert!(!m("[!a-c]*", "beta"));
        assert!(m("\\*", "*"));
        assert!(m("[]x]", "]"));
        assert!(m("a[", "a["));
    }
}
