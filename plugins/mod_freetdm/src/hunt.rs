//! FreeTDM's dial strings and channel hunting, pure:
//! `freetdm/<span>/<chan>/<number>` (one channel), `freetdm/<span>/a/…`
//! (first free, ascending), `A` (descending), `r` / `R` (round robin up /
//! down from the channel used last), and `freetdm/group/<name>/<number>`
//! (a group, ascending; `group/<name>/<a|A|r|R>/<number>` to choose).

use hotswitch_plugin_api::CallCause;

/// The order channels are tried in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `a`
    Ascending,
    /// `A`
    Descending,
    /// `r`
    RoundRobin,
    /// `R`
    RoundRobinDown,
}

impl Direction {
    fn from_letter(s: &str) -> Option<Direction> {
        Some(match s {
            "a" => Direction::Ascending,
            "A" => Direction::Descending,
            "r" => Direction::RoundRobin,
            "R" => Direction::RoundRobinDown,
            _ => return None,
        })
    }
}

/// Which channels a dial string may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One channel of a span.
    Channel { span: String, chan: u16 },
    /// Any channel of a span.
    Span { span: String, dir: Direction },
    /// Any channel of a group.
    Group { name: String, dir: Direction },
}

/// A parsed dial string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialString {
    pub target: Target,
    /// The number to call (FXS: what the phone shows; FXO and ISDN: what
    /// is dialled).
    pub number: String,
}

/// Reads what follows `freetdm/`.
pub fn parse(data: &str) -> Result<DialString, CallCause> {
    let parts: Vec<&str> = data.split('/').collect();
    let bad = CallCause::INVALID_NUMBER_FORMAT;
    match parts.as_slice() {
        ["group", name, dir, number] => Ok(DialString {
            target: Target::Group {
                name: name.to_string(),
                dir: Direction::from_letter(dir).ok_or(bad)?,
            },
            number: number.to_string(),
        }),
        ["group", name, number] => Ok(DialString {
            target: Target::Group {
                name: name.to_string(),
                dir: Direction::Ascending,
            },
            number: number.to_string(),
        }),
        [span, chan, number] if !span.is_empty() => {
            let target = match Direction::from_letter(chan) {
                Some(dir) => Target::Span {
                    span: span.to_string(),
                    dir,
                },
                None => Target::Channel {
                    span: span.to_string(),
                    chan: chan.parse().map_err(|_| bad)?,
                },
            };
            Ok(DialString {
                target,
                number: number.to_string(),
            })
        }
        _ => Err(bad),
    }
}

/// Picks a free candidate: `free(i)` says whether candidate `i` (in the
/// configured order) is free; `cursor` is the round-robin position,
/// updated when round robin picks one.
pub fn hunt(
    len: usize,
    dir: Direction,
    cursor: &mut Option<usize>,
    free: impl Fn(usize) -> bool,
) -> Option<usize> {
    if len == 0 {
        return None;
    }
    let order: Vec<usize> = match dir {
        Direction::Ascending => (0..len).collect(),
        Direction::Descending => (0..len).rev().collect(),
        Direction::RoundRobin => {
            let start = cursor.map(|c| (c + 1) % len).unwrap_or(0);
            (0..len).map(|k| (start + k) % len).collect()
        }
        Direction::RoundRobinDown => {
            let start = cursor.map(|c| (c + len - 1) % len).unwrap_or(len - 1);
            (0..len).map(|k| (start + len - k) % len).collect()
        }
    };
    let pick = order.into_iter().find(|&i| free(i))?;
    // As FreeTDM's last_used_index: only round robin moves on.
    if matches!(dir, Direction::RoundRobin | Direction::RoundRobinDown) {
        *cursor = Some(pick);
    }
    Some(pick)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_strings_name_a_channel_a_hunt_or_a_group() {
        assert_eq!(
            parse("1/a/1000").unwrap(),
            DialString {
                target: Target::Span {
                    span: "1".into(),
                    dir: Direction::Ascending
                },
                number: "1000".into()
            }
        );
        assert_eq!(
            parse("pri/3/5551234").unwrap().target,
            Target::Channel {
                span: "pri".into(),
                chan: 3
            }
        );
        assert_eq!(
            parse("group/trunk/2000").unwrap().target,
            Target::Group {
                name: "trunk".into(),
                dir: Direction::Ascending
            }
        );
        assert_eq!(
            parse("group/trunk/R/2000").unwrap().target,
            Target::Group {
                name: "trunk".into(),
                dir: Direction::RoundRobinDown
            }
        );
        assert_eq!(parse("1/A/").unwrap().number, "");
        assert!(parse("1/x/1000").is_err());
        assert!(parse("1").is_err());
        assert!(parse("1/2/3/4").is_err());
    }

    #[test]
    fn hunting_follows_the_direction_and_skips_busy_channels() {
        let busy = [false, true, false, false];
        let free = |i: usize| !busy[i];
        let mut c = None;
        assert_eq!(hunt(4, Direction::Ascending, &mut c, free), Some(0));
        assert_eq!(hunt(4, Direction::Descending, &mut c, free), Some(3));
        assert_eq!(c, None, "only round robin moves the cursor");
        let mut rr = None;
        let picks: Vec<_> = (0..4)
            .map(|_| hunt(4, Direction::RoundRobin, &mut rr, free).unwrap())
            .collect();
        assert_eq!(picks, [0, 2, 3, 0]);
        let mut rr = None;
        let picks: Vec<_> = (0..4)
            .map(|_| hunt(4, Direction::RoundRobinDown, &mut rr, free).unwrap())
            .collect();
        assert_eq!(picks, [3, 2, 0, 3]);
        assert_eq!(hunt(4, Direction::Ascending, &mut c, |_| false), None);
        assert_eq!(hunt(0, Direction::Ascending, &mut c, |_| true), None);
    }
}
