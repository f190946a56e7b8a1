//! The addresses of generated sources: FreeSWITCH's `tone_stream://`
//! (teletone scripts, the language also called TGML) and
//! `silence_stream://`, parsed into a typed description that
//! [`ToneGenerator`](super::tone_generator::ToneGenerator) plays. Parsing is
//! strict where FreeSWITCH shrugs (it reads `atoi("x")` as 0 and skips
//! characters it does not know): a typo in a dialplan's ringback is an
//! error that says what is wrong, not a silent tone.
//!
//! A script is a list of elements separated by `;`:
//!
//! - `%(on,off,f1,f2,…)` — play the frequencies (Hz, up to 18, mixed) for
//!   `on` ms, then `off` ms of silence. A frequency of 0 ends the list; a
//!   tone whose first frequency is 0 plays nothing at all, silence
//!   included, as in FreeSWITCH.
//! - DTMF keys `0`-`9`, `*`, `#`, `A`-`D` (either case), several to an
//!   element (`1234`), each optionally timed as `7(on,off)`; otherwise they
//!   use the `d=` and `w=` settings.
//! - Settings, each applying to what follows it: `v=dB` volume (-63 to 0,
//!   default -7), `d=ms` default key duration (250), `w=ms` default wait
//!   after a key (62.5), `>=ms` / `<=ms` lower / raise the volume by `+=dB`
//!   (default 1) every `ms` while a tone sounds, `l=N` play the next tone N
//!   times (-1 for ever), `L=N` play the whole script N times (the first
//!   `L=` counts, wherever it is).
//! - A final `;loops=N` replays everything N times (-1 for ever; 0 and 1
//!   both mean once).

use std::fmt;
use std::str::FromStr;

use super::goertzel::dtmf_frequencies;

/// A tone mixes at most this many frequencies (libteletone's limit).
pub const MAX_FREQUENCIES: usize = 18;
/// The volume range `v=` accepts, in dBm0.
pub const MIN_VOLUME_DB: f64 = -63.0;
pub const MAX_VOLUME_DB: f64 = 0.0;

const TONE_SCHEME: &str = "tone_stream://";
const SILENCE_SCHEME: &str = "silence_stream://";

/// Something a generator can play: a parsed `tone_stream://` or
/// `silence_stream://` address.
#[derive(Clone, Debug, PartialEq)]
pub enum ToneSource {
    Tone(ToneScript),
    Silence(Silence),
}

/// A parsed teletone script and how many times to play it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToneScript {
    pub elements: Vec<ToneElement>,
    pub loops: Repeat,
}

/// How many times something plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    Times(u32),
    Forever,
}

impl Repeat {
    /// FreeSWITCH's counts: negative is for ever, and 0 means once, like 1.
    fn from_count(n: i64) -> Repeat {
        if n < 0 {
            Repeat::Forever
        } else {
            Repeat::Times(n.clamp(1, u32::MAX as i64) as u32)
        }
    }
}

/// One `;`-separated piece of a script, or one key of a run of keys.
#[derive(Clone, Debug, PartialEq)]
pub enum ToneElement {
    /// `%(on,off,f1,…)`; `freqs` stops before the first 0.
    Tone {
        on_ms: u32,
        off_ms: u32,
        freqs: Vec<f64>,
    },
    /// A DTMF key, with its own `(on,off)` when given.
    Digit {
        digit: char,
        on_ms: Option<u32>,
        off_ms: Option<u32>,
    },
    /// `v=`
    Volume(f64),
    /// `d=`
    KeyDuration(u32),
    /// `w=`
    KeyWait(u32),
    /// `>=` (`rising` false) or `<=` (`rising` true).
    Ramp { step_ms: u32, rising: bool },
    /// `+=`
    RampStep(f64),
    /// `l=`
    RepeatNext(Repeat),
    /// `L=`
    RepeatScript(u32),
    /// `c=` and `r=`: accepted so that existing scripts parse, and ignored —
    /// the generator makes mono audio at the rate it is asked for.
    Ignored(String),
}

/// `silence_stream://ms[,noise]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Silence {
    /// How long; `None` for ever (FreeSWITCH's 0 or -1).
    pub duration_ms: Option<u32>,
    /// FreeSWITCH's comfort-noise divisor. Kept so the address round-trips;
    /// the generator plays pure silence.
    pub noise: Option<u32>,
}

/// Why a tone or silence address was refused. `element` is the `;`-separated
/// piece at fault, as written.
#[derive(Clone, Debug, PartialEq)]
pub enum ToneError {
    UnknownScheme {
        address: String,
    },
    NoTones {
        script: String,
    },
    BadNumber {
        element: String,
        value: String,
    },
    Unclosed {
        element: String,
    },
    WrongArgumentCount {
        element: String,
        expected: &'static str,
    },
    TooManyFrequencies {
        element: String,
    },
    UnknownKey {
        element: String,
        key: char,
    },
    UnknownSetting {
        element: String,
    },
    VolumeOutOfRange {
        element: String,
    },
    BadScriptRepeat {
        element: String,
    },
    BadLoops {
        value: String,
    },
}

impl fmt::Display for ToneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToneError::UnknownScheme { address } => write!(
                f,
                "'{address}' is neither {TONE_SCHEME}… nor {SILENCE_SCHEME}…"
            ),
            ToneError::NoTones { script } => write!(f, "tone script '{script}' has no tones"),
            ToneError::BadNumber { element, value } => {
                write!(f, "in '{element}': '{value}' is not a valid number")
            }
            ToneError::Unclosed { element } => write!(f, "in '{element}': '(' is never closed"),
            ToneError::WrongArgumentCount { element, expected } => {
                write!(f, "in '{element}': expected {expected}")
            }
            ToneError::TooManyFrequencies { element } => write!(
                f,
                "in '{element}': a tone mixes at most {MAX_FREQUENCIES} frequencies"
            ),
            ToneError::UnknownKey { element, key } => write!(
                f,
                "in '{element}': '{key}' is not a DTMF key (0-9, *, #, A-D) nor '%(…)'"
            ),
            ToneError::UnknownSetting { element } => write!(
                f,
                "'{element}' is not a setting (v=, d=, w=, >=, <=, +=, l=, L=, c=, r=)"
            ),
            ToneError::VolumeOutOfRange { element } => write!(
                f,
                "in '{element}': volume must be between {MIN_VOLUME_DB} and {MAX_VOLUME_DB} dB"
            ),
            ToneError::BadScriptRepeat { element } => write!(
                f,
                "in '{element}': L= needs a count of 1 or more (for ever, use ;loops=-1)"
            ),
            ToneError::BadLoops { value } => write!(
                f,
                "';loops={value}': loops takes one whole number and must come last"
            ),
        }
    }
}

impl std::error::Error for ToneError {}

impl FromStr for ToneSource {
    type Err = ToneError;

    /// Parses `tone_stream://…` or `silence_stream://…` (scheme in any case).
    fn from_str(address: &str) -> Result<Self, Self::Err> {
        let address = address.trim();
        if let Some(rest) = strip_prefix_ignore_case(address, TONE_SCHEME) {
            return rest.parse().map(ToneSource::Tone);
        }
        if let Some(rest) = strip_prefix_ignore_case(address, SILENCE_SCHEME) {
            return rest.parse().map(ToneSource::Silence);
        }
        Err(ToneError::UnknownScheme {
            address: address.to_string(),
        })
    }
}

impl FromStr for Silence {
    type Err = ToneError;

    /// Parses what follows `silence_stream://`: `ms[,noise]`.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (ms, noise) = match spec.split_once(',') {
            Some((ms, noise)) => (ms, Some(noise)),
            None => (spec, None),
        };
        let ms: i64 = number(spec, ms)?;
        let noise = match noise {
            Some(n) => Some(number::<i64>(spec, n)?).filter(|&n| n > 0),
            None => None,
        };
        Ok(Silence {
            duration_ms: (ms > 0).then(|| ms.min(u32::MAX as i64) as u32),
            noise: noise.map(|n| n.min(u32::MAX as i64) as u32),
        })
    }
}

impl FromStr for ToneScript {
    type Err = ToneError;

    /// Parses what follows `tone_stream://`.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (script, loops) = split_loops(spec)?;
        let mut elements = Vec::new();
        for piece in script.split(';') {
            let piece = piece.trim();
            if piece.is_empty() {
                continue;
            }
            if piece.as_bytes().get(1) == Some(&b'=') {
                elements.push(parse_setting(piece)?);
            } else {
                parse_tones(piece, &mut elements)?;
            }
        }
        let sounds = elements
            .iter()
            .any(|e| matches!(e, ToneElement::Tone { .. } | ToneElement::Digit { .. }));
        if !sounds {
            return Err(ToneError::NoTones {
                script: spec.to_string(),
            });
        }
        Ok(ToneScript { elements, loops })
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Splits off the trailing `;loops=N`, found in any case as FreeSWITCH
/// finds it.
fn split_loops(spec: &str) -> Result<(&str, Repeat), ToneError> {
    const KEY: &str = ";loops=";
    let at = spec.to_ascii_lowercase().find(KEY);
    match at {
        None => Ok((spec, Repeat::Times(1))),
        Some(at) => {
            let value = spec[at + KEY.len()..].trim();
            let n: i64 = value.parse().map_err(|_| ToneError::BadLoops {
                value: value.to_string(),
            })?;
            Ok((&spec[..at], Repeat::from_count(n)))
        }
    }
}

fn number<T: FromStr>(element: &str, value: &str) -> Result<T, ToneError> {
    let value = value.trim();
    value.parse().map_err(|_| ToneError::BadNumber {
        element: element.to_string(),
        value: value.to_string(),
    })
}

fn parse_setting(element: &str) -> Result<ToneElement, ToneError> {
    let key = element.as_bytes()[0];
    let value = &element[2..];
    Ok(match key {
        b'v' => {
            let db: f64 = number(element, value)?;
            if !(MIN_VOLUME_DB..=MAX_VOLUME_DB).contains(&db) {
                return Err(ToneError::VolumeOutOfRange {
                    element: element.to_string(),
                });
            }
            ToneElement::Volume(db)
        }
        b'd' => ToneElement::KeyDuration(number(element, value)?),
        b'w' => ToneElement::KeyWait(number(element, value)?),
        b'>' | b'<' => ToneElement::Ramp {
            step_ms: number(element, value)?,
            rising: key == b'<',
        },
        b'+' => {
            let db: f64 = number(element, value)?;
            if !db.is_finite() {
                return Err(ToneError::BadNumber {
                    element: element.to_string(),
                    value: value.trim().to_string(),
                });
            }
            ToneElement::RampStep(db)
        }
        b'l' => ToneElement::RepeatNext(Repeat::from_count(number(element, value)?)),
        b'L' => {
            let n: i64 = number(element, value)?;
            if n < 1 {
                return Err(ToneError::BadScriptRepeat {
                    element: element.to_string(),
                });
            }
            ToneElement::RepeatScript(n.min(u32::MAX as i64) as u32)
        }
        b'c' | b'r' => {
            number::<u32>(element, value)?;
            ToneElement::Ignored(element.to_string())
        }
        _ => {
            return Err(ToneError::UnknownSetting {
                element: element.to_string(),
            })
        }
    })
}

/// Parses a run of tones: `%(…)` and keys, each key perhaps with `(on,off)`.
fn parse_tones(element: &str, out: &mut Vec<ToneElement>) -> Result<(), ToneError> {
    let mut rest = element;
    while let Some(key) = rest.chars().next() {
        rest = &rest[key.len_utf8()..];
        if key.is_whitespace() {
            continue;
        }
        let args = if let Some(inner) = rest.strip_prefix('(') {
            let close = inner.find(')').ok_or_else(|| ToneError::Unclosed {
                element: element.to_string(),
            })?;
            rest = &inner[close + 1..];
            Some(&inner[..close])
        } else {
            None
        };
        if key == '%' {
            out.push(parse_generic_tone(element, args)?);
            continue;
        }
        if dtmf_frequencies(key).is_none() {
            return Err(ToneError::UnknownKey {
                element: element.to_string(),
                key,
            });
        }
        let (on_ms, off_ms) = match args {
            None => (None, None),
            Some(args) => match args.split(',').collect::<Vec<_>>()[..] {
                [on, off] => (Some(number(element, on)?), Some(number(element, off)?)),
                _ => {
                    return Err(ToneError::WrongArgumentCount {
                        element: element.to_string(),
                        expected: "a key's (on ms, off ms)",
                    })
                }
            },
        };
        out.push(ToneElement::Digit {
            digit: key.to_ascii_uppercase(),
            on_ms,
            off_ms,
        });
    }
    Ok(())
}

fn parse_generic_tone(element: &str, args: Option<&str>) -> Result<ToneElement, ToneError> {
    let wrong_count = || ToneError::WrongArgumentCount {
        element: element.to_string(),
        expected: "%(on ms, off ms, frequency, …) with at least one frequency",
    };
    let args: Vec<&str> = args.ok_or_else(wrong_count)?.split(',').collect();
    if args.len() < 3 {
        return Err(wrong_count());
    }
    if args.len() - 2 > MAX_FREQUENCIES {
        return Err(ToneError::TooManyFrequencies {
            element: element.to_string(),
        });
    }
    let mut freqs = Vec::with_capacity(args.len() - 2);
    for arg in &args[2..] {
        let f: f64 = number(element, arg)?;
        if !f.is_finite() || f < 0.0 {
            return Err(ToneError::BadNumber {
                element: element.to_string(),
                value: arg.trim().to_string(),
            });
        }
        freqs.push(f);
    }
    let audible = freqs.iter().take_while(|&&f| f > 0.0).count();
    freqs.truncate(audible);
    Ok(ToneElement::Tone {
        on_ms: number(element, args[0])?,
        off_ms: number(element, args[1])?,
        freqs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(address: &str) -> ToneSource {
        match address.parse() {
            Ok(source) => source,
            Err(e) => panic!("{address}: {e}"),
        }
    }

    fn script(spec: &str) -> ToneScript {
        match parse(&format!("tone_stream://{spec}")) {
            ToneSource::Tone(script) => script,
            other => panic!("not a tone: {other:?}"),
        }
    }

    #[test]
    fn silence_keeps_its_noise_level() {
        assert_eq!(
            parse("silence_stream://1000,1400"),
            ToneSource::Silence(Silence {
                duration_ms: Some(1000),
                noise: Some(1400)
            })
        );
    }

    #[test]
    fn scripts_parse_into_typed_elements() {
        let parsed =
            script(" L=2; v=-10 ;%(2000, 4000, 440, 480);>=5;+=0.5;1(50,25)#;c=1;loops=-1");
        assert_eq!(parsed.loops, Repeat::Forever);
        assert_eq!(
            parsed.elements,
            [
                ToneElement::RepeatScript(2),
                ToneElement::Volume(-10.0),
                ToneElement::Tone {
                    on_ms: 2000,
                    off_ms: 4000,
                    freqs: vec![440.0, 480.0]
                },
                ToneElement::Ramp {
                    step_ms: 5,
                    rising: false
                },
                ToneElement::RampStep(0.5),
                ToneElement::Digit {
                    digit: '1',
                    on_ms: Some(50),
                    off_ms: Some(25)
                },
                ToneElement::Digit {
                    digit: '#',
                    on_ms: None,
                    off_ms: None
                },
                ToneElement::Ignored("c=1".to_string()),
            ]
        );
    }

    #[test]
    fn loops_is_found_in_any_case_and_zero_means_once() {
        assert_eq!(script("%(10,0,440);LOOPS=4").loops, Repeat::Times(4));
        assert_eq!(script("%(10,0,440);loops=0").loops, Repeat::Times(1));
        assert_eq!(script("%(10,0,440)").loops, Repeat::Times(1));
    }

    #[test]
    fn bad_scripts_say_what_is_wrong() {
        let cases = [
            ("tone_stream://%(100,x,440)", "in '%(100,x,440)': 'x' is not a valid number"),
            ("tone_stream://%(100,0,440", "in '%(100,0,440': '(' is never closed"),
            (
                "tone_stream://%(100,0)",
                "in '%(100,0)': expected %(on ms, off ms, frequency, …) with at least one frequency",
            ),
            (
                "tone_stream://12x",
                "in '12x': 'x' is not a DTMF key (0-9, *, #, A-D) nor '%(…)'",
            ),
            ("tone_stream://v=3;%(100,0,440)", "in 'v=3': volume must be between -63 and 0 dB"),
            (
                "tone_stream://q=3;%(100,0,440)",
                "'q=3' is not a setting (v=, d=, w=, >=, <=, +=, l=, L=, c=, r=)",
            ),
            (
                "tone_stream://L=-1;%(100,0,440)",
                "in 'L=-1': L= needs a count of 1 or more (for ever, use ;loops=-1)",
            ),
            (
                "tone_stream://%(100,0,440);loops=2;%(100,0,620)",
                "';loops=2;%(100,0,620)': loops takes one whole number and must come last",
            ),
            ("tone_stream://v=-7", "tone script 'v=-7' has no tones"),
            ("silence_stream://abc", "in 'abc': 'abc' is not a valid number"),
            (
                "file_stream://x.wav",
                "'file_stream://x.wav' is neither tone_stream://… nor silence_stream://…",
            ),
            ("tone_stream://7(100)", "in '7(100)': expected a key's (on ms, off ms)"),
            ("tone_stream://%(1,0,-440)", "in '%(1,0,-440)': '-440' is not a valid number"),
        ];
        for (address, message) in cases {
            match address.parse::<ToneSource>() {
                Ok(parsed) => panic!("{address} parsed as {parsed:?}"),
                Err(e) => assert_eq!(e.to_string(), message, "{address}"),
            }
        }
    }

    #[test]
    fn more_than_eighteen_frequencies_are_refused() {
        let freqs: Vec<String> = (1..=19).map(|i| (i * 100).to_string()).collect();
        let address = format!("tone_stream://%(100,0,{})", freqs.join(","));
        let err = address.parse::<ToneSource>().unwrap_err();
        assert!(matches!(err, ToneError::TooManyFrequencies { .. }), "{err}");
    }
}
