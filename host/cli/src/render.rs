//! How server output is shown: fs_cli's colours in a terminal (log lines
//! by level, errors red, events dim), plain text anywhere else.

const RESET: &str = "\x1b[0m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const MAGENTA: &str = "\x1b[35m";
const CYAN: &str = "\x1b[36m";
const DIM: &str = "\x1b[2m";
const BOLD_RED: &str = "\x1b[1;31m";

/// Turns server output into text for the terminal.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, color: &str, text: &str) -> String {
        let mut s = text.to_string();
        if !s.ends_with('\n') {
            s.push('\n');
        }
        if !self.color || color.is_empty() {
            return s;
        }
        // Colour each line, so that a line printed over the prompt keeps it.
        let mut out = String::with_capacity(s.len() + 16);
        for line in s.split_inclusive('\n') {
            let body = line.strip_suffix('\n').unwrap_or(line);
            out.push_str(color);
            out.push_str(body);
            out.push_str(RESET);
            out.push('\n');
        }
        out
    }

    /// An api command's output or a command's reply text: red when it is
    /// an error.
    pub fn reply(&self, text: &str) -> String {
        let color = if is_error(text) { RED } else { "" };
        self.paint(color, text)
    }

    /// A log line, coloured by its FreeSWITCH level as fs_cli does.
    pub fn log(&self, level: Option<u8>, text: &str) -> String {
        let color = match level {
            Some(1..=3) => RED,
            Some(4) => MAGENTA,
            Some(5) => CYAN,
            Some(6) => GREEN,
            Some(7) => YELLOW,
            _ => "",
        };
        self.paint(color, text)
    }

    /// An event as received, under a `RECV EVENT` line.
    pub fn event(&self, body: &str) -> String {
        let mut s = String::from("RECV EVENT\n");
        s.push_str(body.trim_end_matches('\n'));
        s.push_str("\n\n");
        self.paint(DIM, &s)
    }

    /// Something the CLI itself says about the connection.
    pub fn notice(&self, text: &str) -> String {
        self.paint(BOLD_RED, text)
    }

    /// A line of help or a banner.
    pub fn info(&self, text: &str) -> String {
        self.paint(CYAN, text)
    }
}

/// FreeSWITCH's failure replies: `-ERR …` and `-USAGE: …`.
pub fn is_error(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with("-ERR") || t.starts_with("-USAGE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_colour_text_is_unchanged_but_for_a_final_newline() {
        let s = Style { color: false };
        assert_eq!(
            s.reply("-ERR foo Command not found!\n"),
            "-ERR foo Command not found!\n"
        );
        assert_eq!(s.log(Some(3), "bad"), "bad\n");
        assert_eq!(
            s.event("Event-Name: X\n\n"),
            "RECV EVENT\nEvent-Name: X\n\n"
        );
    }

    #[test]
    fn in_colour_errors_are_red_and_successes_plain() {
        let s = Style { color: true };
        assert_eq!(s.reply("-ERR no\n"), "\x1b[31m-ERR no\x1b[0m\n");
        assert_eq!(s.reply("-USAGE: x"), "\x1b[31m-USAGE: x\x1b[0m\n");
        assert_eq!(s.reply("+OK\n"), "+OK\n");
    }

    #[test]
    fn log_lines_take_fs_clis_colour_for_their_level() {
        let s = Style { color: true };
        assert!(s.log(Some(7), "d").starts_with(YELLOW));
        assert!(s.log(Some(6), "i").starts_with(GREEN));
        assert!(s.log(Some(4), "w").starts_with(MAGENTA));
        assert!(s.log(Some(2), "c").starts_with(RED));
        assert_eq!(s.log(None, "x"), "x\n");
    }

    #[test]
    fn every_line_of_a_coloured_block_is_closed() {
        let s = Style { color: true };
        assert_eq!(
            s.event("A: 1\n"),
            format!("{DIM}RECV EVENT{RESET}\n{DIM}A: 1{RESET}\n{DIM}{RESET}\n")
        );
    }

    #[test]
    fn errors_are_recognised_by_their_prefix() {
        assert!(is_error("-ERR x"));
        assert!(is_error("-USAGE: x"));
        assert!(!is_error("+OK"));
        assert!(!is_error("true"));
    }
}
