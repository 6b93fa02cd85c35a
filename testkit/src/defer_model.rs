//! The Deferred model: programs over a handful of Deferreds (pending or already fired;
//! callbacks, errbacks, both, callbacks that fail, panic or return another Deferred,
//! fired or not; pause and unpause; cancel; fires in any order), run on the real engine
//! and on a small model of Twisted's `_runCallbacks`, which must agree on every step:
//! which functions ran, in which order, with what, and each Deferred's state
//! (`is_called`, `is_paused`, `has_result`) and final result.
//!
//! The choices that make a program come from a [`Choices`]: a seeded [`Rng`] in the
//! `defer_model` test of `ropewalk-deferred`, the fuzzer's bytes ([`ByteChoices`]) in the
//! `deferred_program` fuzz target. Behind the `deferred-model` feature, the only part of
//! this crate that depends on ropewalk.
//!
//! # Examples
//!
//! ```
//! use ropewalk_testkit::chaos::Rng;
//! use ropewalk_testkit::defer_model::{run_program, ByteChoices};
//!
//! for seed in 0..50 {
//!     run_program(&mut Rng(seed)).unwrap();
//! }
//! run_program(&mut ByteChoices::new(b"any bytes make a program")).unwrap();
//! ```

use std::cell::RefCell;
use std::panic;
use std::rc::Rc;

use crate::chaos::Rng;
use ropewalk_deferred::{
    Cancelled, Deferred, Failure, Outcome, Panicked, Resolver, ResolverDropped,
};

/// A failure the program raised, told apart by its tag.
#[derive(Debug)]
struct Tag(u32);

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tag {}", self.0)
    }
}

impl std::error::Error for Tag {}

/// A result as the model sees it.
#[derive(Clone, Debug, PartialEq)]
enum Res {
    Ok(i64),
    Tag(u32),
    Cancelled,
    Panicked,
    ResolverDropped,
}

fn res_of(r: &Result<i64, Failure>) -> Res {
    match r {
        Ok(v) => Res::Ok(*v),
        Err(f) => {
            if let Some(Tag(t)) = f.downcast_ref::<Tag>() {
                Res::Tag(*t)
            } else if f.is::<Cancelled>() {
                Res::Cancelled
            } else if f.is::<Panicked>() {
                Res::Panicked
            } else if f.is::<ResolverDropped>() {
                Res::ResolverDropped
            } else {
                panic!("unexpected failure {f}")
            }
        }
    }
}

/// One step added to a Deferred.
#[derive(Clone, Debug)]
enum Step {
    /// `add_callback(|v| Ok(v + c))`
    Add(i64),
    /// `add_callback(|_| Err(Tag))`
    Fail(u32),
    /// `add_callback(|_| panic!())`
    Panic,
    /// `add_callback(move |_| d_j)`: the callback returns Deferred `j` (moved in).
    Chain(usize),
    /// `add_errback(|_| Ok(c))`
    Recover(i64),
    /// `add_errback(|_| Err(Tag))`
    Refail(u32),
    /// `add_both(|r| Ok(v + c) or Ok(-c))`
    Both(i64),
    /// `add_callbacks(|v| Ok(v * 2), |_| Err(Tag))`
    Pair(u32),
    /// `chain_deferred(r_j)`: the result goes on to fire Deferred `j` (this handle and
    /// `j`'s resolver are moved in; nothing can follow it).
    ChainTo(usize),
}

/// One operation of a program.
#[derive(Clone, Debug)]
enum Op {
    AddStep(usize, Step),
    Fire(usize, Result<i64, u32>),
    /// The resolver is dropped unfired: the Deferred errbacks with `ResolverDropped`.
    DropResolver(usize),
    Pause(usize),
    Unpause(usize),
    Cancel(usize),
}

type Log = Rc<RefCell<Vec<(usize, usize)>>>;

/// The model of one Deferred.
#[derive(Clone, Debug, Default)]
struct MDef {
    steps: Vec<(usize, Step)>,
    next: usize,
    called: bool,
    result: Option<Res>,
    paused: u32,
    waiting_on: Option<usize>,
    chained_into: Option<usize>,
    swallow: bool,
    /// Made `with_canceller`: what its canceller returns (`None`: nothing, so `Cancelled`).
    canceller: Option<Option<Res>>,
}

struct Model {
    defs: Vec<MDef>,
    log: Vec<(usize, usize)>,
}

impl Model {
    fn settled(&self, i: usize) -> bool {
        let d = &self.defs[i];
        d.called && d.paused == 0 && d.waiting_on.is_none()
    }

    fn run(&mut self, i: usize) {
        if self.defs[i].paused > 0 || self.defs[i].waiting_on.is_some() || !self.defs[i].called {
            return;
        }
        while self.defs[i].next < self.defs[i].steps.len() {
            let (serial, step) = self.defs[i].steps[self.defs[i].next].clone();
            self.defs[i].next += 1;
            let cur = self.defs[i]
                .result
                .take()
                .expect("a fired chain has a result");
            let ran = |log: &mut Vec<(usize, usize)>| log.push((i, serial));
            let new = match (&step, cur) {
                (Step::Add(c), Res::Ok(v)) => {
                    ran(&mut self.log);
                    Res::Ok(v + c)
                }
                (Step::Fail(t), Res::Ok(_)) => {
                    ran(&mut self.log);
                    Res::Tag(*t)
                }
                (Step::Panic, Res::Ok(_)) => {
                    ran(&mut self.log);
                    Res::Panicked
                }
                (Step::Chain(j), Res::Ok(_)) => {
                    ran(&mut self.log);
                    let j = *j;
                    if self.settled(j) {
                        self.defs[j].result.take().expect("settled")
                    } else {
                        self.defs[i].waiting_on = Some(j);
                        self.defs[j].chained_into = Some(i);
                        return;
                    }
                }
                (
                    Step::Recover(c),
                    Res::Tag(_) | Res::Cancelled | Res::Panicked | Res::ResolverDropped,
                ) => {
                    ran(&mut self.log);
                    Res::Ok(*c)
                }
                (
                    Step::Refail(t),
                    Res::Tag(_) | Res::Cancelled | Res::Panicked | Res::ResolverDropped,
                ) => {
                    ran(&mut self.log);
                    Res::Tag(*t)
                }
                (Step::Both(c), r) => {
                    ran(&mut self.log);
                    match r {
                        Res::Ok(v) => Res::Ok(v + c),
                        _ => Res::Ok(-c),
                    }
                }
                (Step::Pair(_), Res::Ok(v)) => {
                    ran(&mut self.log);
                    Res::Ok(v * 2)
                }
                (Step::Pair(t), _) => {
                    ran(&mut self.log);
                    Res::Tag(*t)
                }
                (Step::ChainTo(j), r) => {
                    // Fires `j`; a `j` that already has a result keeps it (the engine logs
                    // an error, unless it was cancelled and owed one swallowed fire).
                    let _ = self.fire(*j, r);
                    return;
                }
                (_, r) => r, // the step does not apply to this path: passed by
            };
            self.defs[i].result = Some(new);
        }
        // Done: a chain that a callback returned hands its result on.
        if let Some(outer) = self.defs[i].chained_into.take() {
            let r = self.defs[i].result.take();
            self.defs[outer].result = r;
            self.defs[outer].waiting_on = None;
            self.run(outer);
        }
    }

    /// Fires `i`; `Err` is `AlreadyCalled`.
    fn fire(&mut self, i: usize, r: Res) -> Result<(), ()> {
        let d = &mut self.defs[i];
        if d.swallow {
            d.swallow = false;
            return Ok(());
        }
        if d.called {
            return Err(());
        }
        d.called = true;
        d.canceller = None;
        d.result = Some(r);
        self.run(i);
        Ok(())
    }

    fn cancel(&mut self, i: usize) {
        if !self.defs[i].called {
            match self.defs[i].canceller.take() {
                // The canceller's outcome wins; the producer's fire is AlreadyCalled.
                Some(out) => {
                    let _ = self.fire(i, out.unwrap_or(Res::Cancelled));
                }
                None => {
                    // Owed before the errbacks run: one may make the producer fire.
                    self.defs[i].called = true;
                    self.defs[i].swallow = true;
                    self.defs[i].result = Some(Res::Cancelled);
                    self.run(i);
                }
            }
        } else if let Some(j) = self.defs[i].waiting_on {
            self.cancel(j);
        }
    }
}

/// Where a program's choices come from.
///
/// # Examples
///
/// ```
/// use ropewalk_testkit::defer_model::{ByteChoices, Choices};
///
/// let mut c = ByteChoices::new(&[7, 1]);
/// assert_eq!(c.below(5), 2);
/// assert_eq!(c.below(5), 1);
/// assert_eq!(c.below(5), 0); // the bytes ran out
/// ```
pub trait Choices {
    /// A number below `n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize;
}

impl Choices for Rng {
    fn below(&mut self, n: usize) -> usize {
        Rng::below(self, n)
    }
}

/// Choices read from bytes, one byte each (a fuzzer's input): every byte string is a
/// program, and a small change to the bytes is a small change to the program. Once the
/// bytes run out, every choice is 0.
///
/// # Examples
///
/// ```
/// use ropewalk_testkit::defer_model::{run_program, ByteChoices};
///
/// assert!(run_program(&mut ByteChoices::new(&[3, 0, 5, 9, 2, 6])).is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct ByteChoices<'a> {
    bytes: &'a [u8],
}

impl<'a> ByteChoices<'a> {
    /// Choices from `bytes`.
    ///
    /// # Examples
    ///
    /// See [`ByteChoices`].
    ///
    /// ```
    /// let _ = ropewalk_testkit::defer_model::ByteChoices::new(b"abc");
    /// ```
    pub fn new(bytes: &'a [u8]) -> ByteChoices<'a> {
        ByteChoices { bytes }
    }
}

impl Choices for ByteChoices<'_> {
    fn below(&mut self, n: usize) -> usize {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                usize::from(b) % n
            }
            None => 0,
        }
    }
}

/// What the real side holds for Deferred `i`.
struct Real {
    handle: Option<Deferred<i64>>,
    resolver: Option<Resolver<i64>>,
}

fn closure_for(
    step: &Step,
    i: usize,
    serial: usize,
    log: &Log,
    handle: Deferred<i64>,
    inner: Option<Deferred<i64>>,
) -> Deferred<i64> {
    let log = log.clone();
    let ran = move || log.borrow_mut().push((i, serial));
    match *step {
        Step::Add(c) => handle.add_callback(move |v| {
            ran();
            Ok(v + c)
        }),
        Step::Fail(t) => handle.add_callback(move |_| -> Result<i64, Failure> {
            ran();
            Err(Failure::new(Tag(t)))
        }),
        Step::Panic => handle.add_callback(move |_| -> Result<i64, Failure> {
            ran();
            panic!("boom")
        }),
        Step::Chain(_) => {
            let inner = inner.expect("the chained Deferred");
            handle.add_callback(move |_| {
                ran();
                Outcome::Chain(inner)
            })
        }
        Step::Recover(c) => handle.add_errback(move |_| {
            ran();
            Ok(c)
        }),
        Step::Refail(t) => handle.add_errback(move |_| -> Result<i64, Failure> {
            ran();
            Err(Failure::new(Tag(t)))
        }),
        Step::Both(c) => handle.add_both(move |r| {
            ran();
            Ok(match r {
                Ok(v) => v + c,
                Err(_) => -c,
            })
        }),
        Step::ChainTo(_) => unreachable!("chain_deferred is applied in `apply`"),
        Step::Pair(t) => {
            let ran2 = ran.clone();
            handle.add_callbacks(
                move |v| {
                    ran();
                    Ok(v * 2)
                },
                move |_| -> Result<i64, Failure> {
                    ran2();
                    Err(Failure::new(Tag(t)))
                },
            )
        }
    }
}

/// Generates one program from `rng` and runs it on the engine and on the model; `Err`
/// describes the first disagreement, with the program.
///
/// Callbacks panic on purpose (the engine turns a panic into a failure): a caller that
/// wants quiet output installs a panic hook that stays silent for them.
///
/// # Errors
///
/// Where the engine and the model disagree, and the program that made them.
///
/// # Examples
///
/// ```
/// use ropewalk_testkit::chaos::Rng;
/// use ropewalk_testkit::defer_model::run_program;
///
/// run_program(&mut Rng(1)).unwrap();
/// ```
pub fn run_program(rng: &mut impl Choices) -> Result<(), String> {
    let n = 2 + rng.below(5);
    let log: Log = Rc::new(RefCell::new(Vec::new()));
    let mut model = Model {
        defs: vec![MDef::default(); n],
        log: Vec::new(),
    };
    let mut real: Vec<Real> = Vec::new();
    let mut program: Vec<String> = Vec::new();
    for i in 0..n {
        // One in four starts fired, with no resolver (`succeed` / `fail`).
        match rng.below(8) {
            0 => {
                let v = rng.below(100) as i64;
                program.push(format!("d{i} = succeed({v})"));
                real.push(Real {
                    handle: Some(Deferred::succeed(v)),
                    resolver: None,
                });
                let _ = model.fire(i, Res::Ok(v));
            }
            1 => {
                let t = rng.below(100) as u32;
                program.push(format!("d{i} = fail(Tag({t}))"));
                real.push(Real {
                    handle: Some(Deferred::fail(Failure::new(Tag(t)))),
                    resolver: None,
                });
                let _ = model.fire(i, Res::Tag(t));
            }
            2 => {
                let out = match rng.below(3) {
                    0 => None,
                    1 => Some(Res::Ok(rng.below(100) as i64)),
                    _ => Some(Res::Tag(rng.below(100) as u32)),
                };
                program.push(format!("(d{i}, r{i}) = with_canceller(|| {out:?})"));
                let give = out.clone();
                let (d, r) = Deferred::with_canceller(move || match give {
                    None => None,
                    Some(Res::Ok(v)) => Some(Ok(v)),
                    Some(Res::Tag(t)) => Some(Err(Failure::new(Tag(t)))),
                    Some(_) => unreachable!("generated above"),
                });
                real.push(Real {
                    handle: Some(d),
                    resolver: Some(r),
                });
                model.defs[i].canceller = Some(out);
            }
            _ => {
                program.push(format!("(d{i}, r{i}) = pending()"));
                let (d, r) = Deferred::pending();
                real.push(Real {
                    handle: Some(d),
                    resolver: Some(r),
                });
            }
        }
    }
    let ops = 4 + rng.below(24);
    let mut serial = 0;
    for _ in 0..ops {
        let i = rng.below(n);
        let op = match rng.below(10) {
            0..=4 => {
                let step = match rng.below(9) {
                    0 => Step::Add(rng.below(10) as i64),
                    1 => Step::Fail(rng.below(100) as u32),
                    2 => Step::Panic,
                    3 => Step::Chain(rng.below(n)),
                    4 => Step::Recover(rng.below(10) as i64),
                    5 => Step::Refail(rng.below(100) as u32),
                    6 => Step::Both(rng.below(10) as i64),
                    7 => Step::ChainTo(rng.below(n)),
                    _ => Step::Pair(rng.below(100) as u32),
                };
                Op::AddStep(i, step)
            }
            5 | 6 => Op::Fire(
                i,
                if rng.below(3) == 0 {
                    Err(rng.below(100) as u32)
                } else {
                    Ok(rng.below(100) as i64)
                },
            ),
            7 => Op::Pause(i),
            8 => Op::Unpause(i),
            9 if rng.below(3) == 0 => Op::DropResolver(i),
            _ => Op::Cancel(i),
        };
        // Skip what the types forbid: a handle moved away, a resolver used, a Deferred
        // returned from its own callback; and a paused handle given away, which nothing
        // could unpause (Twisted leaves such a chain stuck; ropewalk lets a paused
        // `chain_deferred` source that nothing holds go, its target errbacking with
        // `ResolverDropped`: see defer_chaining.rs).
        let ok = match &op {
            Op::AddStep(i, Step::Chain(j)) => {
                real[*i].handle.is_some()
                    && i != j
                    && real[*j].handle.is_some()
                    && model.defs[*j].paused == 0
            }
            Op::AddStep(i, Step::ChainTo(j)) => {
                real[*i].handle.is_some()
                    && i != j
                    && real[*j].resolver.is_some()
                    && model.defs[*i].paused == 0
            }
            Op::AddStep(i, _) | Op::Pause(i) | Op::Unpause(i) | Op::Cancel(i) => {
                real[*i].handle.is_some()
            }
            Op::Fire(i, _) | Op::DropResolver(i) => real[*i].resolver.is_some(),
        };
        if !ok {
            continue;
        }
        program.push(format!("{op:?}"));
        let outcome = panic::catch_unwind(panic::AssertUnwindSafe(|| {
            apply(&op, &mut real, &mut model, &log, &mut serial)
        }));
        if let Err(p) = outcome {
            let why = Panicked::from_payload(p);
            return Err(format!("{why}\nprogram:\n  {}", program.join("\n  ")));
        }
        compare(&mut real, &model, &log, false)
            .map_err(|e| format!("{e}\nprogram:\n  {}", program.join("\n  ")))?;
    }
    // The end: fire every resolver left, unpause every handle held, and look again.
    for i in 0..n {
        if real[i].resolver.is_some() {
            let op = Op::Fire(i, Ok(1000 + i as i64));
            program.push(format!("{op:?}"));
            apply(&op, &mut real, &mut model, &log, &mut serial);
        }
    }
    for i in 0..n {
        while real[i].handle.is_some() && model.defs[i].paused > 0 {
            let op = Op::Unpause(i);
            program.push(format!("{op:?}"));
            apply(&op, &mut real, &mut model, &log, &mut serial);
        }
    }
    compare(&mut real, &model, &log, true)
        .map_err(|e| format!("{e}\nprogram:\n  {}", program.join("\n  ")))
}

fn apply(op: &Op, real: &mut [Real], model: &mut Model, log: &Log, serial: &mut usize) {
    match op {
        Op::AddStep(i, Step::ChainTo(j)) => {
            *serial += 1;
            let handle = real[*i].handle.take().expect("held");
            handle.chain_deferred(real[*j].resolver.take().expect("held"));
            model.defs[*i].steps.push((*serial, Step::ChainTo(*j)));
            model.run(*i);
        }
        Op::AddStep(i, step) => {
            *serial += 1;
            let inner = match step {
                Step::Chain(j) => real[*j].handle.take(),
                _ => None,
            };
            let handle = real[*i].handle.take().expect("held");
            real[*i].handle = Some(closure_for(step, *i, *serial, log, handle, inner));
            model.defs[*i].steps.push((*serial, step.clone()));
            model.run(*i);
        }
        Op::Fire(i, r) => {
            let resolver = real[*i].resolver.take().expect("held");
            let fired = match r {
                Ok(v) => resolver.callback(*v),
                Err(t) => resolver.errback(Failure::new(Tag(*t))),
            };
            let want = model.fire(
                *i,
                match r {
                    Ok(v) => Res::Ok(*v),
                    Err(t) => Res::Tag(*t),
                },
            );
            assert_eq!(
                fired.is_ok(),
                want.is_ok(),
                "AlreadyCalled: engine {fired:?}"
            );
        }
        Op::DropResolver(i) => {
            drop(real[*i].resolver.take().expect("held"));
            let _ = model.fire(*i, Res::ResolverDropped);
        }
        Op::Pause(i) => {
            real[*i].handle.as_mut().expect("held").pause();
            model.defs[*i].paused += 1;
        }
        Op::Unpause(i) => {
            real[*i].handle.as_ref().expect("held").unpause();
            if model.defs[*i].paused > 0 {
                model.defs[*i].paused -= 1;
                if model.defs[*i].paused == 0 {
                    model.run(*i);
                }
            }
        }
        Op::Cancel(i) => {
            real[*i].handle.as_ref().expect("held").cancel();
            model.cancel(*i);
        }
    }
}

/// The engine and the model agree on the log and on every held handle's state; at the
/// end (`last`), also on every result.
fn compare(real: &mut [Real], model: &Model, log: &Log, last: bool) -> Result<(), String> {
    if *log.borrow() != model.log {
        return Err(format!(
            "functions ran differently:\n  engine {:?}\n  model  {:?}",
            log.borrow(),
            model.log
        ));
    }
    for (i, r) in real.iter_mut().enumerate() {
        let Some(d) = r.handle.as_mut() else { continue };
        let m = &model.defs[i];
        let want_paused = m.paused > 0 || m.waiting_on.is_some();
        let want = (m.called, want_paused, model.settled(i));
        let got = (d.is_called(), d.is_paused(), d.has_result());
        if got != want {
            return Err(format!(
                "d{i}: (is_called, is_paused, has_result) engine {got:?}, model {want:?}"
            ));
        }
        if last {
            let got = d.try_result().map(|r| res_of(&r));
            let want = model.settled(i).then(|| m.result.clone()).flatten();
            if got != want {
                return Err(format!("d{i}: result engine {got:?}, model {want:?}"));
            }
        }
    }
    Ok(())
}
