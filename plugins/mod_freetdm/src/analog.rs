//! Analog loop-start signalling, sans-IO: [`Fxs`] (the switch feeds a
//! phone: dial tone, digits, ringing) and [`Fxo`] (the switch is a phone
//! on an exchange line: ring detection, seizure, dialling), both in the
//! one shape of every protocol core ([`Protocol`]). Line events and the
//! switch's commands go in through `handle_input(input, now)`, time
//! passing through [`Protocol::handle_timeout`] at
//! [`Protocol::poll_timeout`]. What the span must do on the line (tones,
//! ringing voltage, the loop, in-band digits) comes out of
//! [`Protocol::poll_transmit`] as [`LineAction`]s; what the switch must
//! learn (a call to route, an answer, a hangup) out of
//! [`Protocol::poll_event`] as [`Event`]s. Within one step every line
//! action was asked for before every event.

use hotswitch_plugin_api::sansio::Protocol;
use hotswitch_plugin_api::CallCause;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// True (and the deadline cleared) when `deadline` has come by `now`.
fn take_due(deadline: &mut Option<Instant>, now: Instant) -> bool {
    let due = deadline.is_some_and(|d| d <= now);
    if due {
        *deadline = None;
    }
    due
}

/// A tone the span plays towards the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// 350 + 440 Hz: waiting for digits.
    Dial,
    /// 480 + 620 Hz: the call is over, hang up.
    Busy,
}

/// What the signalling asks the span to do on the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineAction {
    /// Play a tone (`None`: stop playing).
    Tone(Option<Tone>),
    /// FXS: ringing voltage on or off.
    Ring(bool),
    /// FXO: close (`true`) or open the loop.
    Seize(bool),
    /// FXO: dial these digits in-band.
    Dial(String),
}

/// What the signalling tells the switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Start an inbound call to this destination.
    Route(String),
    /// The far end answered our outbound call.
    Answered,
    /// The line ended the call.
    Hangup(CallCause),
}

/// The outputs of one machine, each kind in order.
#[derive(Debug, Default)]
struct Outputs {
    transmits: VecDeque<LineAction>,
    events: VecDeque<Event>,
}

impl Outputs {
    fn line(&mut self, a: LineAction) {
        self.transmits.push_back(a);
    }

    fn event(&mut self, e: Event) {
        self.events.push_back(e);
    }
}

/// The line events and commands both machines take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Loop closed by the phone (FXS).
    OffHook,
    /// Loop opened: the phone hung up (FXS) or the exchange dropped the
    /// line (FXO).
    OnHook,
    /// A DTMF digit was detected (FXS).
    Digit(char),
    /// Ringing voltage appeared / went (FXO).
    RingOn,
    /// See `RingOn`.
    RingOff,
    /// Place an outbound call (FXO: to this number).
    Call(String),
    /// The switch answered an inbound call.
    Answer,
    /// The switch hung up.
    Hangup,
}

/// Timing of an FXS port.
#[derive(Clone, Debug)]
pub struct FxsTiming {
    /// Time allowed between digits before the number is complete.
    pub digit_timeout: Duration,
    /// Time allowed after dial tone before the first digit.
    pub first_digit_timeout: Duration,
    /// A number this long is complete at once.
    pub max_digits: usize,
    /// Ring cadence: on …
    pub ring_on: Duration,
    /// … and off.
    pub ring_off: Duration,
}

impl Default for FxsTiming {
    fn default() -> FxsTiming {
        FxsTiming {
            digit_timeout: Duration::from_millis(2000),
            first_digit_timeout: Duration::from_secs(10),
            max_digits: 20,
            ring_on: Duration::from_secs(2),
            ring_off: Duration::from_secs(4),
        }
    }
}

/// States of an FXS port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FxsState {
    /// On hook, free.
    Down,
    /// Off hook, dial tone playing.
    DialTone,
    /// Digits arriving.
    Collecting,
    /// Ringing the phone for an outbound call.
    Ringing,
    /// In a call.
    Up,
    /// The call ended while the phone is off hook: busy tone until on hook.
    Lockout,
}

/// An FXS port: the switch powers and rings a phone.
#[derive(Debug)]
pub struct Fxs {
    state: FxsState,
    timing: FxsTiming,
    digits: String,
    deadline: Option<Instant>,
    ringing: bool,
    out: Outputs,
}

impl Fxs {
    /// A port with its phone on hook.
    pub fn new(timing: FxsTiming) -> Fxs {
        Fxs {
            state: FxsState::Down,
            timing,
            digits: String::new(),
            deadline: None,
            ringing: false,
            out: Outputs::default(),
        }
    }

    /// Where the port is.
    pub fn state(&self) -> FxsState {
        self.state
    }

    /// The digits collected so far.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    fn go(&mut self, state: FxsState, deadline: Option<Instant>) {
        self.state = state;
        self.deadline = deadline;
    }

    fn route(&mut self) {
        let number = std::mem::take(&mut self.digits);
        self.go(FxsState::Up, None);
        self.out.event(Event::Route(number));
    }

    fn ring(&mut self, on: bool, now: Instant) {
        self.ringing = on;
        self.out.line(LineAction::Ring(on));
        let next = if on {
            self.timing.ring_on
        } else {
            self.timing.ring_off
        };
        self.deadline = Some(now + next);
    }

    /// A line event or a command.
    pub fn handle_input(&mut self, input: Input, now: Instant) {
        use FxsState::*;
        match (self.state, input) {
            (Down, Input::OffHook) => {
                self.digits.clear();
                self.go(DialTone, Some(now + self.timing.first_digit_timeout));
                self.out.line(LineAction::Tone(Some(Tone::Dial)));
            }
            (DialTone | Collecting, Input::Digit(d)) => {
                if self.state == DialTone {
                    self.out.line(LineAction::Tone(None));
                }
                self.state = Collecting;
                if d == '#' && !self.digits.is_empty() {
                    return self.route();
                }
                if d != '#' {
                    self.digits.push(d);
                }
                if self.digits.len() >= self.timing.max_digits {
                    return self.route();
                }
                self.deadline = Some(now + self.timing.digit_timeout);
            }
            (Down, Input::Call(_)) => {
                self.state = Ringing;
                self.ring(true, now);
            }
            (Ringing, Input::OffHook) => {
                self.go(Up, None);
                if self.ringing {
                    self.ringing = false;
                    self.out.line(LineAction::Ring(false));
                }
                self.out.event(Event::Answered);
            }
            (Ringing, Input::Hangup) => {
                self.go(Down, None);
                if self.ringing {
                    self.ringing = false;
                    self.out.line(LineAction::Ring(false));
                }
            }
            (Up, Input::OnHook) => {
                self.go(Down, None);
                self.out.event(Event::Hangup(CallCause::NORMAL_CLEARING));
            }
            (DialTone | Collecting | Lockout, Input::OnHook) => {
                self.go(Down, None);
                self.out.line(LineAction::Tone(None));
            }
            (Up, Input::Hangup) => {
                self.go(Lockout, None);
                self.out.line(LineAction::Tone(Some(Tone::Busy)));
            }
            _ => {}
        }
    }
}

impl Protocol for Fxs {
    type Transmit = LineAction;
    type Event = Event;

    /// Runs the timer if it is due.
    fn handle_timeout(&mut self, now: Instant) {
        if !take_due(&mut self.deadline, now) {
            return;
        }
        match self.state {
            FxsState::DialTone => {
                self.state = FxsState::Lockout;
                self.out.line(LineAction::Tone(Some(Tone::Busy)));
            }
            FxsState::Collecting => self.route(),
            FxsState::Ringing => self.ring(!self.ringing, now),
            _ => {}
        }
    }

    fn poll_transmit(&mut self) -> Option<LineAction> {
        self.out.transmits.pop_front()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }
}

/// States of an FXO port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FxoState {
    /// Line idle, loop open.
    Down,
    /// The line rings; the call is offered to the switch.
    Offered,
    /// Loop closed, waiting to dial.
    Seized,
    /// In a call.
    Up,
}

/// An FXO port: the switch is a phone on an exchange line.
#[derive(Debug)]
pub struct Fxo {
    state: FxoState,
    number: String,
    deadline: Option<Instant>,
    out: Outputs,
}

/// How long after the last ring an unanswered call counts as abandoned.
pub const FXO_RING_TIMEOUT: Duration = Duration::from_secs(8);
/// How long to wait for dial tone after seizing the line.
pub const FXO_DIAL_DELAY: Duration = Duration::from_millis(500);

impl Default for Fxo {
    fn default() -> Fxo {
        Fxo::new()
    }
}

impl Fxo {
    /// An idle line.
    pub fn new() -> Fxo {
        Fxo {
            state: FxoState::Down,
            number: String::new(),
            deadline: None,
            out: Outputs::default(),
        }
    }

    /// Where the port is.
    pub fn state(&self) -> FxoState {
        self.state
    }

    /// A line event or a command.
    pub fn handle_input(&mut self, input: Input, now: Instant) {
        use FxoState::*;
        match (self.state, input) {
            (Down, Input::RingOn) => {
                self.state = Offered;
                self.deadline = Some(now + FXO_RING_TIMEOUT);
                self.out.event(Event::Route(String::new()));
            }
            (Offered, Input::RingOn) => self.deadline = Some(now + FXO_RING_TIMEOUT),
            (Offered, Input::Answer) => {
                self.state = Up;
                self.deadline = None;
                self.out.line(LineAction::Seize(true));
            }
            (Offered, Input::Hangup) => {
                // Leave the line ringing; the caller gives up on their own.
                self.state = Down;
                self.deadline = None;
            }
            (Down, Input::Call(number)) => {
                self.state = Seized;
                self.number = number;
                self.deadline = Some(now + FXO_DIAL_DELAY);
                self.out.line(LineAction::Seize(true));
            }
            (Up, Input::OnHook) => {
                self.state = Down;
                self.out.line(LineAction::Seize(false));
                self.out.event(Event::Hangup(CallCause::NORMAL_CLEARING));
            }
            (Seized | Up, Input::Hangup) => {
                self.state = Down;
                self.deadline = None;
                self.out.line(LineAction::Seize(false));
            }
            _ => {}
        }
    }
}

impl Protocol for Fxo {
    type Transmit = LineAction;
    type Event = Event;

    /// Runs the timer if it is due.
    fn handle_timeout(&mut self, now: Instant) {
        if !take_due(&mut self.deadline, now) {
            return;
        }
        match self.state {
            FxoState::Offered => {
                self.state = FxoState::Down;
                self.out.event(Event::Hangup(CallCause::ORIGINATOR_CANCEL));
            }
            FxoState::Seized => {
                // Loop start has no answer supervision: up once dialled.
                self.state = FxoState::Up;
                let n = std::mem::take(&mut self.number);
                self.out.line(LineAction::Dial(n));
                self.out.event(Event::Answered);
            }
            _ => {}
        }
    }

    fn poll_transmit(&mut self) -> Option<LineAction> {
        self.out.transmits.pop_front()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `f` asked of the line and told the switch since last asked.
    fn outputs(
        f: &mut impl Protocol<Transmit = LineAction, Event = Event>,
    ) -> (Vec<LineAction>, Vec<Event>) {
        let line = std::iter::from_fn(|| f.poll_transmit()).collect();
        let events = std::iter::from_fn(|| f.poll_event()).collect();
        (line, events)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_phone_off_hook_hears_dial_tone_and_its_digits_route_after_the_timeout() {
        let t0 = Instant::now();
        let mut f = Fxs::new(FxsTiming::default());
        f.handle_input(Input::OffHook, t0);
        assert_eq!(
            outputs(&mut f),
            (vec![LineAction::Tone(Some(Tone::Dial))], vec![])
        );
        for (i, d) in "9196".chars().enumerate() {
            f.handle_input(Input::Digit(d), t0 + ms(200 * i as u64));
        }
        assert_eq!(outputs(&mut f), (vec![LineAction::Tone(None)], vec![]));
        assert_eq!(f.digits(), "9196");
        f.handle_timeout(t0 + ms(600 + 1999));
        assert_eq!(
            outputs(&mut f),
            (vec![], vec![]),
            "not before the inter-digit timeout"
        );
        f.handle_timeout(t0 + ms(600 + 2000));
        assert_eq!(outputs(&mut f), (vec![], vec![Event::Route("9196".into())]));
        assert_eq!(f.state(), FxsState::Up);
        f.handle_input(Input::OnHook, t0 + ms(5000));
        assert_eq!(
            outputs(&mut f),
            (vec![], vec![Event::Hangup(CallCause::NORMAL_CLEARING)])
        );
        assert_eq!(f.state(), FxsState::Down);
    }

    #[test]
    fn pound_or_max_digits_end_the_number_at_once() {
        let t0 = Instant::now();
        let mut f = Fxs::new(FxsTiming {
            max_digits: 3,
            ..FxsTiming::default()
        });
        f.handle_input(Input::OffHook, t0);
        f.handle_input(Input::Digit('1'), t0);
        f.handle_input(Input::Digit('#'), t0);
        assert_eq!(outputs(&mut f).1.last(), Some(&Event::Route("1".into())));
        f.handle_input(Input::OnHook, t0);
        f.handle_input(Input::OffHook, t0);
        for d in "123".chars() {
            f.handle_input(Input::Digit(d), t0);
        }
        assert_eq!(outputs(&mut f).1.last(), Some(&Event::Route("123".into())));
    }

    #[test]
    fn no_digit_after_dial_tone_gives_busy_tone_until_on_hook() {
        let t0 = Instant::now();
        let mut f = Fxs::new(FxsTiming::default());
        f.handle_input(Input::OffHook, t0);
        f.handle_timeout(t0 + Duration::from_secs(10));
        assert_eq!(
            outputs(&mut f).0.last(),
            Some(&LineAction::Tone(Some(Tone::Busy)))
        );
        assert_eq!(f.state(), FxsState::Lockout);
        f.handle_input(Input::OnHook, t0);
        assert_eq!(f.state(), FxsState::Down);
    }

    #[test]
    fn an_outbound_call_rings_in_cadence_and_answers_on_off_hook() {
        let t0 = Instant::now();
        let mut f = Fxs::new(FxsTiming::default());
        f.handle_input(Input::Call("1000".into()), t0);
        assert_eq!(outputs(&mut f), (vec![LineAction::Ring(true)], vec![]));
        f.handle_timeout(t0 + ms(2000));
        f.handle_timeout(t0 + ms(6000));
        assert_eq!(
            outputs(&mut f),
            (
                vec![LineAction::Ring(false), LineAction::Ring(true)],
                vec![]
            )
        );
        f.handle_input(Input::OffHook, t0 + ms(6500));
        assert_eq!(
            outputs(&mut f),
            (vec![LineAction::Ring(false)], vec![Event::Answered])
        );
        // The switch hangs up: busy tone until the phone is put down.
        f.handle_input(Input::Hangup, t0 + ms(9000));
        assert_eq!(
            outputs(&mut f),
            (vec![LineAction::Tone(Some(Tone::Busy))], vec![])
        );
        f.handle_input(Input::OnHook, t0 + ms(9500));
        assert_eq!(f.state(), FxsState::Down);
    }

    #[test]
    fn a_ringing_phone_stops_when_the_switch_gives_up() {
        let t0 = Instant::now();
        let mut f = Fxs::new(FxsTiming::default());
        f.handle_input(Input::Call(String::new()), t0);
        f.handle_input(Input::Hangup, t0 + ms(100));
        assert_eq!(
            outputs(&mut f),
            (
                vec![LineAction::Ring(true), LineAction::Ring(false)],
                vec![]
            )
        );
        assert_eq!(f.state(), FxsState::Down);
        assert_eq!(f.poll_timeout(), None);
    }

    #[test]
    fn fxo_routes_on_the_first_ring_seizes_on_answer_and_ends_on_loop_drop() {
        let t0 = Instant::now();
        let mut f = Fxo::new();
        f.handle_input(Input::RingOn, t0);
        f.handle_input(Input::RingOff, t0 + ms(2000));
        f.handle_input(Input::RingOn, t0 + ms(6000));
        f.handle_input(Input::Answer, t0 + ms(6100));
        f.handle_input(Input::OnHook, t0 + ms(9000));
        assert_eq!(
            outputs(&mut f),
            (
                vec![LineAction::Seize(true), LineAction::Seize(false)],
                vec![
                    Event::Route(String::new()),
                    Event::Hangup(CallCause::NORMAL_CLEARING)
                ]
            )
        );
    }

    #[test]
    fn fxo_rings_that_stop_before_an_answer_are_an_abandoned_call() {
        let t0 = Instant::now();
        let mut f = Fxo::new();
        f.handle_input(Input::RingOn, t0);
        f.handle_timeout(t0 + FXO_RING_TIMEOUT);
        assert_eq!(
            outputs(&mut f).1.last(),
            Some(&Event::Hangup(CallCause::ORIGINATOR_CANCEL))
        );
        assert_eq!(f.state(), FxoState::Down);
    }

    #[test]
    fn fxo_outbound_seizes_waits_for_dial_tone_then_dials_and_is_up() {
        let t0 = Instant::now();
        let mut f = Fxo::new();
        f.handle_input(Input::Call("5551234".into()), t0);
        f.handle_timeout(t0 + FXO_DIAL_DELAY);
        assert_eq!(
            outputs(&mut f),
            (
                vec![LineAction::Seize(true), LineAction::Dial("5551234".into())],
                vec![Event::Answered]
            )
        );
        f.handle_input(Input::Hangup, t0 + ms(800));
        assert_eq!(f.poll_transmit(), Some(LineAction::Seize(false)));
        assert_eq!(f.state(), FxoState::Down);
    }
}
