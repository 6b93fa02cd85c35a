//! The type-erased engine under [`Deferred`](crate::Deferred): one shared chain of steps,
//! run by a loop that never recurses.
//!
//! The typed handles guarantee that every step receives the type the step before produced,
//! so the erased values are always read back as the right type.
//!
//! What keeps it cheap, with no `unsafe`:
//!
//! - **Small values are stored inline.** `()`, integers, `bool`, `char` and floats live in
//!   the chain itself as a [`Value::Unit`] or [`Value::Word`] (recognised by `TypeId`,
//!   moved in and out through `Any`), so a chain of such values allocates nothing for them.
//!   Other values live in a box: the box of the step that produced them, or a small
//!   [`Ready`] box when a resolver fires.
//! - **A step holds only its closure** when its output is stored inline, so a step whose
//!   closure captures nothing is a zero-sized box: no allocation.
//! - **Chains are recycled.** The last handle to let go of a chain (no other strong or weak
//!   reference) empties it and keeps its allocation in a small per-thread pool that
//!   [`ChainRef::pending`] takes from (inline; making a new chain is out of line). The pool
//!   has no destructor of its own, so reaching it is a plain thread-local access, with no
//!   check of its state: a guard registered on first use empties it at thread exit. It is
//!   a fixed array of cells and a length, with no borrow flag to set and clear.
//!   Emptying drops only what owns something; a result that owns nothing stays, unread
//!   until the chain fires again.
//! - **A chain nobody else sees is reached without borrow flags** ([`Rc::get_mut`]):
//!   recycling it, and taking the result of a settled one ([`take_unique`],
//!   [`put_returned`]). A callback that returns an already settled Deferred hands its
//!   erased result on at once, as it is (a word is copied in place), and that chain goes
//!   back to the pool there and then, with only its flags to reset.
//! - **A fire does what it can in one borrow.** It marks the chain called and, if there is
//!   something to run, running; a chain whose only content is its tail (a Deferred that a
//!   callback returned, with no callbacks of its own) hands its result straight to the
//!   chain waiting on it, without a run of its own, and a result handed to a waiting chain
//!   with nothing left to run or wake does not start one either.
//! - **Results are written in place, field by field.** A result built aside and copied
//!   in whole is a wide load of narrow stores, which stalls store forwarding: `put_mark`
//!   writes only the tag of a mark (`Taken`, `Pending`) over a result that owns nothing,
//!   `put_with` builds the new result after dropping the old one, and a result handed to
//!   a waiting chain is stored there as it is best stored (a word in place).
//! - **Rarely set fields are behind one flag.** A chain's overflow of steps, tail,
//!   canceller, waker, the chain it waits on and the cancel flags are looked at only when
//!   its `rare` flag says one of them was ever set: a fire, the hand-over of a returned
//!   settled Deferred, and recycling test that one flag (and the step count) instead.
//! - **A run is one function with its steps loop inline.** It borrows the chain it starts
//!   with from its caller (no reference count of its own), and marks it stopped in the
//!   same borrow that found no step left; only a chain its result is handed to is held
//!   by the run itself.

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell, RefMut};
use std::collections::VecDeque;
use std::fmt;
use std::mem::{self, ManuallyDrop};
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::rc::{Rc, Weak};
use std::task::Waker;

use crate::error::{AlreadyCalled, Cancelled, ResolverDropped, WaitError};
use crate::Failure;

/// A counted reference to a chain. The last one to go recycles the chain's allocation.
pub(crate) struct ChainRef(Rc<Node>);

/// A reference that does not keep the chain alive (cancel handles, `chained_to`).
#[derive(Clone, Default)]
pub(crate) struct WeakChainRef(Weak<Node>);

/// A chain and its result, each in a cell of its own.
///
/// The result is read only once the chain is `called`: before that it is `Pending`, or,
/// in a recycled chain, whatever owning nothing the last use left (rewriting it on every
/// recycle would cost a 24-byte store per chain).
///
/// A run holds the result for as long as it runs steps, and hands each step a `&mut` to
/// it, while it lets go of the chain around every step (a step may add steps, cancel, or
/// look). So a result is never copied between steps: copying a 24-byte value that was
/// just written field by field stalls the processor (store forwarding).
pub(crate) struct Node {
    chain: RefCell<Chain>,
    current: RefCell<Current>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Current::Failure(f) = self.current.get_mut() {
            log_unhandled(self.chain.get_mut().created_at, f);
        }
        let_target_go(self.chain.get_mut());
    }
}

/// How many emptied chains a thread keeps for reuse.
const POOL_CAP: usize = 64;

/// Emptied chains a thread keeps for reuse.
///
/// Cells only, no borrow flag: each slot is taken or set whole, and nothing that runs
/// meanwhile (a destructor) can see a slot half changed.
struct Pool {
    /// Whether [`POOL_GUARD`] is registered to empty the pool when the thread ends.
    guarded: Cell<bool>,
    /// How many of `chains` (the first ones) hold a chain.
    len: Cell<usize>,
    /// Emptied chains, each referenced only from here.
    chains: [Cell<Option<ChainRef>>; POOL_CAP],
}

thread_local! {
    /// The thread's pool.
    ///
    /// Without drop glue of its own (`ManuallyDrop`), so that reaching it is a plain
    /// thread-local access, with no check of whether it is initialised or already
    /// destroyed: [`POOL_GUARD`] empties it when the thread ends.
    static POOL: ManuallyDrop<Pool> = const {
        ManuallyDrop::new(Pool {
            guarded: Cell::new(false),
            len: Cell::new(0),
            chains: [const { Cell::new(None) }; POOL_CAP],
        })
    };
    /// Empties [`POOL`] when the thread ends. Reached (and so registered) when the pool
    /// gets its first chain; once it is gone, the pool takes no more.
    static POOL_GUARD: PoolGuard = const { PoolGuard };
}

/// Empties the thread's pool when the thread ends.
struct PoolGuard;

impl Drop for PoolGuard {
    fn drop(&mut self) {
        let _ = POOL.try_with(|p| {
            // Closed first: the chains dropped here find the pool closed, and (this guard
            // being gone) cannot open it again.
            p.guarded.set(false);
            while let Some(s) = pop_chain(p) {
                drop(s);
            }
        });
    }
}

/// Whether the pool may take a chain: only while [`POOL_GUARD`] is registered (the first
/// call registers it), to empty the pool when the thread ends.
#[inline(always)]
fn open(p: &Pool) -> bool {
    p.guarded.get() || guard(p)
}

/// Registers [`POOL_GUARD`], if it can still be: a thread that is ending keeps nothing.
#[cold]
fn guard(p: &Pool) -> bool {
    let ok = POOL_GUARD.try_with(|_| ()).is_ok();
    p.guarded.set(ok);
    ok
}

/// Takes the last chain kept.
#[inline(always)]
fn pop_chain(p: &Pool) -> Option<ChainRef> {
    let n = p.len.get().checked_sub(1)?;
    let s = p.chains.get(n)?.take();
    p.len.set(n);
    s
}

/// Keeps `s()` if the pool has room (and is open); otherwise `s` is not called.
#[inline(always)]
fn push_chain(p: &Pool, s: impl FnOnce() -> ChainRef) {
    let n = p.len.get();
    if let Some(slot) = p.chains.get(n) {
        if open(p) {
            // The slots from `len` on are empty: nothing to drop.
            mem::forget(slot.replace(Some(s())));
            p.len.set(n + 1);
        }
    }
}

impl ChainRef {
    /// A chain with no result yet: a recycled one when the thread has one.
    #[inline]
    pub(crate) fn pending(created_at: &'static Location<'static>) -> ChainRef {
        let reused = POOL.try_with(|p| pop_chain(p)).ok().flatten();
        match reused {
            Some(s) => {
                s.borrow_mut().created_at = created_at;
                s
            }
            None => ChainRef::new_node(created_at),
        }
    }

    /// A new chain, when the pool has none: out of line, so that taking one from the pool
    /// stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn new_node(created_at: &'static Location<'static>) -> ChainRef {
        ChainRef(Rc::new(Node {
            chain: RefCell::new(Chain::new(created_at)),
            current: RefCell::new(Current::Pending),
        }))
    }

    /// A chain that already has its result.
    pub(crate) fn fired(created_at: &'static Location<'static>, result: Res) -> ChainRef {
        let s = ChainRef::pending(created_at);
        s.borrow_mut().called = true;
        put(&mut s.cur().borrow_mut(), result.into_current());
        s
    }

    /// Where the chain's Deferred was created.
    pub(crate) fn created_at(&self) -> &'static Location<'static> {
        self.borrow().created_at
    }

    /// The chain's result.
    #[inline(always)]
    pub(crate) fn cur(&self) -> &RefCell<Current> {
        &self.0.current
    }

    /// Takes the final result for an awaiting task or `wait()`.
    pub(crate) fn take_result<T: 'static>(&self) -> Result<T, Failure> {
        match mem::replace(&mut *self.cur().borrow_mut(), Current::Taken) {
            Current::Value(v) => Ok(v.take::<T>()),
            Current::Failure(f) => Err(f),
            _ => Err(Failure::new(WaitError::ResultTaken)),
        }
    }

    /// The final value, if it is a `T`, for `Debug`.
    pub(crate) fn inspect_value<T: 'static, R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        {
            let c = self.try_borrow().ok()?;
            if !c.is_settled() || c.chained_to.is_some() {
                return None;
            }
        }
        match &*self.cur().try_borrow().ok()? {
            Current::Value(v) => v.inspect(f),
            _ => None,
        }
    }

    pub(crate) fn downgrade(&self) -> WeakChainRef {
        WeakChainRef(Rc::downgrade(&self.0))
    }

    pub(crate) fn ptr_eq(&self, other: &ChainRef) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }

    pub(crate) fn as_ptr(&self) -> *const Node {
        Rc::as_ptr(&self.0)
    }

    fn strong_count(&self) -> usize {
        Rc::strong_count(&self.0)
    }

    /// No other strong or weak reference.
    #[inline]
    pub(crate) fn is_unique(&self) -> bool {
        Rc::strong_count(&self.0) == 1 && Rc::weak_count(&self.0) == 0
    }
}

impl Clone for ChainRef {
    #[inline]
    fn clone(&self) -> ChainRef {
        ChainRef(self.0.clone())
    }
}

impl Deref for ChainRef {
    type Target = RefCell<Chain>;
    #[inline]
    fn deref(&self) -> &RefCell<Chain> {
        &self.0.chain
    }
}

impl Drop for ChainRef {
    #[inline]
    fn drop(&mut self) {
        if self.is_unique() {
            recycle(&mut self.0);
        }
    }
}

/// Empties a chain nobody else can see and keeps its allocation for reuse.
fn recycle(rc: &mut Rc<Node>) {
    // Unique: no other strong or weak reference, so no borrow of its cells either.
    if let Some(node) = Rc::get_mut(rc) {
        empty(node);
        keep_clone(rc);
    }
}

/// Empties a chain for reuse.
///
/// What the chain held is dropped in place: no destructor can reach this chain (nothing
/// else refers to it), and the pool is not borrowed meanwhile, so destructors may create
/// and drop other chains.
#[inline(always)]
fn empty(node: &mut Node) {
    let c = node.chain.get_mut();
    let cur = node.current.get_mut();
    // Only what owns something is dropped: the rest is never read before the next fire.
    if cur.owns_something() {
        if let Current::Failure(f) = &*cur {
            log_unhandled(c.created_at, f);
        }
        drop_cold(mem::replace(cur, Current::Pending));
    }
    // One branch for the common case: no steps (of a chain that never fired), and none
    // of the rarely set fields ever set. Otherwise only what is still set is cleared.
    if (c.steps.len != 0) | c.rare
        && (c.steps.len != 0)
            | c.steps.overflow.is_some()
            | c.steps.tail.is_some()
            | c.chained_to.is_some()
            | c.canceller.is_some()
            | c.waker.is_some()
    {
        clear_rest(c);
    }
    reset_flags(c);
}

/// The flags of an emptied chain: as new.
#[inline(always)]
fn reset_flags(c: &mut Chain) {
    c.paused = 0;
    c.called = false;
    c.running = false;
    c.suppress_already_called = false;
    c.cancelling = false;
    c.rare = false;
}

/// Keeps an emptied chain in the thread's pool, if it has room: this reference to it,
/// the only one.
#[inline(always)]
fn keep(s: ChainRef) {
    let _ = POOL.try_with(move |p| push_chain(p, move || s));
}

/// As [`keep`], for a chain whose only reference is being dropped: the pool takes a new
/// one.
#[inline(always)]
fn keep_clone(rc: &Rc<Node>) {
    let _ = POOL.try_with(|p| push_chain(p, || ChainRef(rc.clone())));
}

/// Drops what a recycled chain still holds besides its result (steps of a chain that
/// never fired, a canceller, a waker): rare.
#[cold]
fn clear_rest(c: &mut Chain) {
    let_target_go(c);
    c.steps = Steps::new();
    c.chained_to = None;
    c.canceller = None;
    c.waker = None;
}

/// Reports a failure dropped unhandled: through `log` when a logger takes errors, else on
/// stderr (as Twisted prints it with no setup), so that it never vanishes.
fn log_unhandled(at: &'static Location<'static>, f: &Failure) {
    if log::log_enabled!(log::Level::Error) {
        log::error!("Unhandled error in Deferred (created at {at}): {f}");
    } else {
        // `eprintln!`, which a test harness captures (a closed stderr is ignored).
        eprintln!(
            "Unhandled error in Deferred (created at {at}): {f}\n\
             (printed here because no `log` logger takes errors: install one, e.g. env_logger)"
        );
    }
}

impl WeakChainRef {
    pub(crate) fn upgrade(&self) -> Option<ChainRef> {
        self.0.upgrade().map(ChainRef)
    }
}

/// Holds a value of one type, reachable as `&mut dyn Any` (an `Option<T>` inside).
pub(crate) trait Holder {
    /// `&Option<T>`.
    fn slot(&self) -> &dyn Any;
    /// `&mut Option<T>`.
    fn slot_mut(&mut self) -> &mut dyn Any;
}

/// A boxed value of its own (a resolver fired it, or it was moved out of a step).
pub(crate) struct Ready<T>(pub(crate) Option<T>);

impl<T: 'static> Holder for Ready<T> {
    fn slot(&self) -> &dyn Any {
        &self.0
    }
    fn slot_mut(&mut self) -> &mut dyn Any {
        &mut self.0
    }
}

/// An erased value: inline when it is small and plain, boxed otherwise.
pub(crate) enum Value {
    /// `()`.
    Unit,
    /// An integer, `bool`, `char` or float, as its bits.
    Word(u64),
    /// Anything else: an `Option<T>` (always `Some` here) in a holder.
    Boxed(Box<dyn Holder>),
}

#[inline(always)]
fn same<A: 'static, B: 'static>() -> bool {
    TypeId::of::<A>() == TypeId::of::<B>()
}

/// Moves a `A` into a `B` when they are the same type (checked by the caller).
#[inline(always)]
fn cast<A: 'static, B: 'static>(a: A) -> B {
    let mut slot = Some(a);
    take_value::<B>(&mut slot)
}

macro_rules! words {
    ($($t:ty),*) => {
        /// Whether values of `T` are stored as a [`Value::Word`].
        #[inline(always)]
        fn is_word<T: 'static>() -> bool {
            false $(|| same::<T, $t>())* || same::<T, bool>() || same::<T, char>()
                || same::<T, f64>() || same::<T, f32>()
        }

        #[inline(always)]
        fn to_word<T: 'static>(v: T) -> u64 {
            $(if same::<T, $t>() {
                return cast::<T, $t>(v) as u64;
            })*
            if same::<T, bool>() {
                return u64::from(cast::<T, bool>(v));
            }
            if same::<T, char>() {
                return u64::from(cast::<T, char>(v));
            }
            if same::<T, f64>() {
                return cast::<T, f64>(v).to_bits();
            }
            if same::<T, f32>() {
                return u64::from(cast::<T, f32>(v).to_bits());
            }
            unreachable!("ropewalk-deferred: not a word type (bug)")
        }

        #[inline(always)]
        fn from_word<T: 'static>(w: u64) -> T {
            $(if same::<T, $t>() {
                return cast::<$t, T>(w as $t);
            })*
            if same::<T, bool>() {
                return cast::<bool, T>(w != 0);
            }
            if same::<T, char>() {
                let c = u32::try_from(w).ok().and_then(char::from_u32);
                return cast::<char, T>(c.expect("ropewalk-deferred: a stored char (bug)"));
            }
            if same::<T, f64>() {
                return cast::<f64, T>(f64::from_bits(w));
            }
            if same::<T, f32>() {
                let bits = u32::try_from(w).expect("ropewalk-deferred: a stored f32 (bug)");
                return cast::<f32, T>(f32::from_bits(bits));
            }
            unreachable!("ropewalk-deferred: not a word type (bug)")
        }
    };
}

words!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl Value {
    /// Whether a `T` is stored inline (no box).
    #[inline(always)]
    pub(crate) fn inlines<T: 'static>() -> bool {
        same::<T, ()>() || is_word::<T>()
    }

    /// Stores `v`: inline if it can, else in a box of its own.
    #[inline(always)]
    pub(crate) fn new<T: 'static>(v: T) -> Value {
        if same::<T, ()>() {
            Value::Unit
        } else if is_word::<T>() {
            Value::Word(to_word(v))
        } else {
            Value::Boxed(Box::new(Ready(Some(v))))
        }
    }

    /// Takes the value out as the `T` it was stored as.
    #[inline(always)]
    pub(crate) fn take<T: 'static>(self) -> T {
        // Decided by `T` at compile time: only one arm is compiled in.
        if same::<T, ()>() {
            return cast::<(), T>(());
        }
        if is_word::<T>() {
            return match self {
                Value::Word(w) => from_word::<T>(w),
                _ => wrong_type(),
            };
        }
        match self {
            Value::Boxed(mut h) => take_value::<T>(h.slot_mut()),
            _ => wrong_type(),
        }
    }

    /// Calls `f` with a reference to the value, if it is a `T` (for `Debug`).
    pub(crate) fn inspect<T: 'static, R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        match self {
            Value::Unit if same::<T, ()>() => Some(f(&cast::<(), T>(()))),
            Value::Word(w) if is_word::<T>() => Some(f(&from_word::<T>(*w))),
            Value::Boxed(h) => h.slot().downcast_ref::<Option<T>>()?.as_ref().map(f),
            _ => None,
        }
    }
}

#[cold]
#[inline(never)]
fn wrong_type() -> ! {
    panic!("ropewalk-deferred: a step received a value of the wrong type (bug)")
}

/// Takes the `T` out of an `&mut Option<T>` seen as `Any`.
#[inline(always)]
pub(crate) fn take_value<T: 'static>(slot: &mut dyn Any) -> T {
    slot.downcast_mut::<Option<T>>()
        .and_then(Option::take)
        .expect("ropewalk-deferred: a step received a value of the wrong type (bug)")
}

/// A result: what fires a chain, what a step receives.
pub(crate) enum Res {
    Value(Value),
    Failure(Failure),
}

impl Res {
    #[inline]
    fn into_current(self) -> Current {
        match self {
            Res::Value(v) => Current::Value(v),
            Res::Failure(f) => Current::Failure(f),
        }
    }
}

/// Takes a step's input apart: the value as a `T`, or the failure.
#[inline(always)]
pub(crate) fn input<T: 'static>(cur: Current) -> Result<T, Failure> {
    match cur {
        Current::Value(v) => Ok(v.take::<T>()),
        Current::Failure(f) => Err(f),
        _ => unreachable!("ropewalk-deferred: a step ran without a result (bug)"),
    }
}

/// Takes a step's input out of `cur`. A word or `()` is read in place (the slot is left as
/// it was, trivially droppable, for [`put`] to overwrite): no wide copy of a result that
/// the step before has just written, which would stall store forwarding.
#[inline(always)]
pub(crate) fn take_input<T: 'static>(cur: &mut Current) -> Result<T, Failure> {
    if is_word::<T>() {
        if let Current::Value(Value::Word(w)) = *cur {
            return Ok(from_word::<T>(w));
        }
    } else if same::<T, ()>() {
        if let Current::Value(Value::Unit) = *cur {
            return Ok(cast::<(), T>(()));
        }
    }
    input::<T>(mem::replace(cur, Current::Running))
}

/// Stores a result in `cur`, over what was there (what [`take_input`] left, a
/// placeholder, or a result to drop).
///
/// It looks at the tag, drops what owns anything out of line, and overwrites the rest
/// without a drop call (most often a placeholder or an inline value). (Written out rather
/// than as `put_with(cur, || new)`, which measured 8–10 more instructions per op in the
/// chained scenarios of `bench/deferred`.)
#[inline(always)]
pub(crate) fn put(cur: &mut Current, new: Current) {
    if cur.owns_something() {
        drop_cold(mem::replace(cur, Current::Running));
    }
    // What is left owns nothing: overwrite it without a drop.
    mem::forget(mem::replace(cur, new));
}

/// As [`put`], with the new result built only once the old one is dropped, so that it is
/// written in place, field by field (built before, it is copied in whole: see
/// [`put_mark`]).
#[inline(always)]
fn put_with(cur: &mut Current, new: impl FnOnce() -> Current) {
    if cur.owns_something() {
        drop_cold(mem::replace(cur, Current::Running));
    }
    // What is left owns nothing: overwrite it without a drop.
    mem::forget(mem::replace(cur, new()));
}

/// Writes a mark (`Pending`, `Running`, `Taken`) over a result known to own nothing: only
/// the tag is written. (Through [`put`], the mark would be built aside and copied in
/// whole: a wide load of a narrow store, which stalls store forwarding.)
#[inline(always)]
fn put_mark(cur: &mut Current, mark: Current) {
    debug_assert!(
        !cur.owns_something(),
        "a mark is put over a result that owns nothing"
    );
    mem::forget(mem::replace(cur, mark));
}

/// Stores a step's value in `cur`: a word over a word is one 8-byte write.
#[inline(always)]
pub(crate) fn put_value<U: 'static>(cur: &mut Current, v: U) {
    if is_word::<U>() {
        let w = to_word(v);
        if let Current::Value(Value::Word(slot)) = cur {
            *slot = w;
        } else {
            put_with(cur, || Current::Value(Value::Word(w)));
        }
    } else {
        put(cur, Current::Value(Value::new(v)));
    }
}

/// One link of the chain: a callback, an errback, or both.
///
/// A step gets the chain's result (`Value` or `Failure`) in `cur` and leaves the new one
/// there: a `Value`, a `Failure`, or `Wait` on a Deferred it returned.
pub(crate) trait Step {
    /// Runs once on the current result. (The result is passed by reference: returned by
    /// value, the 24-byte result would be written by the step and copied by the caller
    /// at once, a store-forwarding stall on every step.)
    fn run(self: Box<Self>, cur: &mut Current);
    /// Runs once on a value that is not stored yet: `&mut Option<T>` on a resolver's stack.
    fn run_on(self: Box<Self>, slot: &mut dyn Any) -> Current;
}

pub(crate) enum Current {
    /// Not fired yet.
    Pending,
    Value(Value),
    Failure(Failure),
    /// What a step returns when it returned a Deferred that the chain must wait on; never
    /// stored in a chain.
    Wait(ChainRef),
    /// A step is running with the result.
    Running,
    /// Handed on (to a chained Deferred, an awaiting task or `wait()`).
    Taken,
}

impl Current {
    /// Whether dropping this result would do anything (free a box, log a failure, let go
    /// of a chain): what must be dropped before it is overwritten or recycled.
    #[inline(always)]
    fn owns_something(&self) -> bool {
        matches!(
            self,
            Current::Value(Value::Boxed(_)) | Current::Failure(_) | Current::Wait(_)
        )
    }
}

/// What follows a chain's last step: its result is handed to another chain.
///
/// At most one, and always last: it is added when the chain's handle is given away (a
/// callback returned it, or `chain_deferred` consumed it), so no step can follow it.
pub(crate) enum Tail {
    /// Hand the result to the chain that waits on this one (a callback there returned
    /// this chain's Deferred) and run it.
    Continue(ChainRef),
    /// Fire another chain with the result (`chain_deferred`) and run it.
    ChainTo(ChainRef),
}

/// A chain is going away: a `chain_deferred` target it never fired (it was paused, and
/// then nothing held it) goes as a dropped resolver does, instead of being left, with
/// whatever waits on it, unfired for ever.
#[cold]
fn let_target_go(c: &mut Chain) {
    if let Some(Tail::ChainTo(target)) = c.steps.tail.take() {
        resolver_dropped(&target);
    }
}

/// A FIFO of steps that keeps the first four inline (most chains never allocate for it),
/// then the tail.
pub(crate) struct Steps {
    // Boxes only (16 bytes, no tag): a wider entry, built on the stack and copied in,
    // stalled store forwarding on every append.
    ring: [Option<Box<dyn Step>>; INLINE],
    // Full words: byte-wide fields here cost store-forwarding stalls in the hot loop.
    head: usize,
    len: usize,
    /// Used once the ring is full, and until it empties, so order is kept.
    overflow: Option<VecDeque<Box<dyn Step>>>,
    tail: Option<Tail>,
}

const INLINE: usize = 4;

impl Steps {
    const fn new() -> Steps {
        Steps {
            ring: [None, None, None, None],
            head: 0,
            len: 0,
            overflow: None,
            tail: None,
        }
    }

    #[inline]
    fn has_steps(&self) -> bool {
        self.len != 0 || self.overflow.as_ref().is_some_and(|o| !o.is_empty())
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        !self.has_steps() && self.tail.is_none()
    }

    pub(crate) fn len(&self) -> usize {
        self.len + self.overflow.as_ref().map_or(0, |o| o.len()) + usize::from(self.tail.is_some())
    }

    /// Appends a step; `false` if it went to (or made) the overflow.
    #[inline(always)]
    fn push_step(&mut self, step: Box<dyn Step>) -> bool {
        debug_assert!(self.tail.is_none(), "no step follows a chain's tail");
        if self.len < INLINE && self.overflow.is_none() {
            self.put_in_ring(step);
            true
        } else {
            self.push_step_slow(step);
            false
        }
    }

    /// Writes the slot after the last one (free: slots behind `len` are `None`).
    #[inline(always)]
    fn put_in_ring(&mut self, step: Box<dyn Step>) {
        let old = self.ring[(self.head + self.len) % INLINE].replace(step);
        debug_assert!(old.is_none(), "a free ring slot");
        mem::forget(old);
        self.len += 1;
    }

    /// The ring is full, or steps already wait in the overflow: keep the order.
    #[cold]
    fn push_step_slow(&mut self, step: Box<dyn Step>) {
        match &mut self.overflow {
            Some(o) if !o.is_empty() || self.len == INLINE => o.push_back(step),
            Some(_) => self.put_in_ring(step),
            None => self.overflow.insert(VecDeque::new()).push_back(step),
        }
    }

    fn set_tail(&mut self, tail: Tail) {
        debug_assert!(self.tail.is_none(), "a chain has one tail");
        self.tail = Some(tail);
    }

    #[inline(always)]
    pub(crate) fn pop_step(&mut self) -> Option<Box<dyn Step>> {
        if self.len > 0 {
            let e = self.ring[self.head].take();
            self.head = (self.head + 1) % INLINE;
            self.len -= 1;
            e
        } else {
            self.overflow.as_mut().and_then(|o| o.pop_front())
        }
    }
}

/// What a canceller did.
pub(crate) enum Cancelling {
    /// It gives the result: the Deferred fires with it.
    Fire(Res),
    /// It stopped the work: the Deferred fires with `Cancelled`.
    Cancelled,
    /// It passed the cancellation on to the work the Deferred waits for, which fires it
    /// (a task resumes at its `.await` with the awaited Deferred's result): the Deferred
    /// stays pending, and this canceller answers the next cancel.
    PassedOn(Canceller),
}

pub(crate) type Canceller = Box<dyn FnOnce() -> Cancelling>;

pub(crate) struct Chain {
    pub(crate) steps: Steps,
    pub(crate) paused: u32,
    pub(crate) called: bool,
    pub(crate) running: bool,
    /// Cancelled without a canceller: swallow exactly one late fire.
    pub(crate) suppress_already_called: bool,
    /// A canceller is running: a resolver dropped meanwhile does not fire.
    pub(crate) cancelling: bool,
    /// Set whenever one of the rarely set fields is: `steps.overflow`, `steps.tail`,
    /// `chained_to`, `canceller`, `waker`, `suppress_already_called`, `cancelling`
    /// (through [`set_tail`](Chain::set_tail), [`set_canceller`](Chain::set_canceller),
    /// [`set_waker`](Chain::set_waker), and the few places in this module that set the
    /// others). While it is clear, none of them is set (the overflow may be there, empty),
    /// so the common paths test this one flag instead of each of them. Cleared only when
    /// the chain is emptied for reuse.
    pub(crate) rare: bool,
    /// The Deferred this one waits on (implicit chaining), for `cancel` and `Debug`.
    pub(crate) chained_to: Option<WeakChainRef>,
    pub(crate) canceller: Option<Canceller>,
    pub(crate) waker: Option<Waker>,
    pub(crate) created_at: &'static Location<'static>,
}

thread_local! {
    /// How many steps are running on this thread (for `wait()` inside a callback).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether a Deferred callback is running on this thread.
pub(crate) fn in_callback() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

pub(crate) struct DepthGuard;

impl DepthGuard {
    #[inline]
    pub(crate) fn enter() -> DepthGuard {
        DEPTH.with(|d| d.set(d.get() + 1));
        DepthGuard
    }
}

impl Drop for DepthGuard {
    #[inline]
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

impl Chain {
    const fn new(created_at: &'static Location<'static>) -> Chain {
        Chain {
            steps: Steps::new(),
            paused: 0,
            called: false,
            running: false,
            suppress_already_called: false,
            cancelling: false,
            rare: false,
            chained_to: None,
            canceller: None,
            waker: None,
            created_at,
        }
    }

    #[inline]
    fn runnable(&self) -> bool {
        self.called && self.paused == 0 && !self.running
    }

    /// Fired, not paused, nothing left to run: the result is final.
    #[inline]
    pub(crate) fn is_settled(&self) -> bool {
        self.runnable() && self.steps.len == 0 && (!self.rare || self.steps.is_empty())
    }

    /// Settled, waiting on nothing, and with no task to wake: its result can be taken
    /// as it is.
    #[inline]
    fn is_settled_alone(&self) -> bool {
        self.runnable()
            && self.steps.len == 0
            && (!self.rare
                || (self.steps.is_empty() && self.chained_to.is_none() && self.waker.is_none()))
    }

    /// Appends a step.
    #[inline(always)]
    pub(crate) fn push_step(&mut self, step: Box<dyn Step>) {
        if !self.steps.push_step(step) {
            self.rare = true;
        }
    }

    /// Ends the chain with a hand-over of its result.
    #[inline]
    pub(crate) fn set_tail(&mut self, tail: Tail) {
        self.rare = true;
        self.steps.set_tail(tail);
    }

    /// Gives the chain a canceller.
    pub(crate) fn set_canceller(&mut self, canceller: Canceller) {
        self.rare = true;
        self.canceller = Some(canceller);
    }

    /// Gives the chain a task to wake when it settles.
    pub(crate) fn set_waker(&mut self, waker: Waker) {
        self.rare = true;
        self.waker = Some(waker);
    }
}

/// Fires a chain. `Err` if it already had a result (and was not owed a swallowed fire).
///
/// Inlined, so that the result is built right where it is stored.
#[inline(always)]
pub(crate) fn fire(chain: &ChainRef, result: Res) -> Result<(), AlreadyCalled> {
    fire_with(chain, result)
}

/// A result to fire a chain with, stored as it is best stored.
trait Firing {
    fn store(self, cur: &mut Current);
}

impl Firing for Res {
    #[inline(always)]
    fn store(self, cur: &mut Current) {
        put(cur, self.into_current());
    }
}

/// A value stored inline: over a word left in the chain, one 8-byte write.
struct InlineValue<T>(T);

impl<T: 'static> Firing for InlineValue<T> {
    #[inline(always)]
    fn store(self, cur: &mut Current) {
        put_value(cur, self.0);
    }
}

#[inline(always)]
fn fire_with(chain: &ChainRef, result: impl Firing) -> Result<(), AlreadyCalled> {
    let go = {
        let mut c = chain.borrow_mut();
        if c.called {
            drop(c);
            return fire_again(chain);
        }
        if c.rare {
            return fire_rare(chain, c, result);
        }
        c.called = true;
        // No canceller, waker, tail or overflow to look at.
        if (c.paused == 0) & (c.steps.len != 0) {
            // Marked here, in the same borrow: the run starts at once.
            c.running = true;
            true
        } else {
            false
        }
    };
    // Not running before (it was not called): nobody holds the result.
    result.store(&mut chain.cur().borrow_mut());
    if go {
        run_marked(chain);
    }
    Ok(())
}

/// [`fire_with`] for a chain with one of the rarely set fields set (a canceller to drop,
/// a waker, a tail, an overflow of steps): out of line, so that the common fire stays
/// small.
#[cold]
#[inline(never)]
fn fire_rare(
    chain: &ChainRef,
    mut c: RefMut<'_, Chain>,
    result: impl Firing,
) -> Result<(), AlreadyCalled> {
    c.called = true;
    c.canceller = None;
    let go = if c.paused != 0 {
        false
    } else if c.steps.has_steps() || c.waker.is_some() {
        // Marked here, in the same borrow: the run starts at once.
        c.running = true;
        true
    } else if let Some(tail) = c.steps.tail.take() {
        // Nothing to run here: the result goes straight on to the tail's chain.
        drop(c);
        hand_on(chain, tail, result);
        return Ok(());
    } else {
        false
    };
    drop(c);
    // Not running before (it was not called): nobody holds the result.
    result.store(&mut chain.cur().borrow_mut());
    if go {
        run_marked(chain);
    }
    Ok(())
}

/// Fires a chain that has nothing to run but its tail: the result goes on to the tail's
/// chain without being stored here, and that chain runs if it can.
#[inline(never)]
fn hand_on(chain: &ChainRef, tail: Tail, result: impl Firing) {
    // As after a run that handed its result on. Never called before, the chain holds no
    // result that owns anything: only the tag is written.
    put_mark(&mut chain.cur().borrow_mut(), Current::Taken);
    let (target, explicit) = match tail {
        Tail::Continue(target) => (target, false),
        Tail::ChainTo(target) => (target, true),
    };
    if deliver(&target, result, explicit) {
        run(&target);
    }
}

/// A second fire: swallowed once after a cancel, `AlreadyCalled` otherwise.
#[cold]
fn fire_again(chain: &ChainRef) -> Result<(), AlreadyCalled> {
    let mut c = chain.borrow_mut();
    if mem::take(&mut c.suppress_already_called) {
        return Ok(());
    }
    Err(AlreadyCalled {
        created_at: c.created_at,
    })
}

/// Fires a chain with a value. A value that is not stored inline runs the first waiting
/// callback where it lies, so it needs no box of its own.
#[inline(always)]
pub(crate) fn fire_value<T: 'static>(chain: &ChainRef, value: T) -> Result<(), AlreadyCalled> {
    if Value::inlines::<T>() {
        return fire_with(chain, InlineValue(value));
    }
    fire_boxed(chain, value)
}

fn fire_boxed<T: 'static>(chain: &ChainRef, value: T) -> Result<(), AlreadyCalled> {
    let step = {
        let mut c = chain.borrow_mut();
        if c.called || c.paused > 0 || c.running || !c.steps.has_steps() {
            drop(c);
            return fire(chain, Res::Value(Value::new(value)));
        }
        let Some(step) = c.steps.pop_step() else {
            unreachable!("checked above")
        };
        c.called = true;
        c.canceller = None;
        c.running = true;
        step
    };
    put(&mut chain.cur().borrow_mut(), Current::Running);
    let mut slot = Some(value);
    let out = {
        let _depth = DepthGuard::enter();
        catch_unwind(AssertUnwindSafe(move || step.run_on(&mut slot)))
            .unwrap_or_else(|p| Current::Failure(Failure::from_panic(p)))
    };
    let mut c = chain.borrow_mut();
    c.running = false;
    let result = match out {
        Current::Wait(inner) => wait_on(chain, &mut c, inner),
        other => Some(other),
    };
    let Some(result) = result else {
        // Waits on `inner`, which continues it.
        put(&mut chain.cur().borrow_mut(), Current::Pending);
        return Ok(());
    };
    put(&mut chain.cur().borrow_mut(), result);
    drop(c);
    run(chain);
    Ok(())
}

/// Appends a step; runs it at once if the chain has a result and is not paused.
#[inline(always)]
pub(crate) fn push(chain: &ChainRef, step: Box<dyn Step>) {
    let runnable = {
        let mut c = chain.borrow_mut();
        c.push_step(step);
        c.runnable()
    };
    if runnable {
        run(chain);
    }
}

/// Ends the chain with `chain_deferred`'s hand-over to `target`.
pub(crate) fn chain_to(chain: &ChainRef, target: ChainRef) {
    let runnable = {
        let mut c = chain.borrow_mut();
        c.set_tail(Tail::ChainTo(target));
        c.runnable()
    };
    if runnable {
        run(chain);
    }
}

pub(crate) fn pause(chain: &ChainRef) {
    chain.borrow_mut().paused += 1;
}

/// Undoes one `pause`; an unmatched call does nothing. A chain waiting on a Deferred a
/// callback returned holds one pause of its own for the wait (`wait_on`), which only the
/// waited-on chain's result undoes (`deliver`): an unmatched `unpause` must not end the
/// wait, or the next step would run without the result it waits for.
pub(crate) fn unpause(chain: &ChainRef) {
    let runnable = {
        let mut c = chain.borrow_mut();
        let waiting = u32::from(c.chained_to.is_some());
        if c.paused <= waiting {
            return;
        }
        c.paused -= 1;
        c.runnable()
    };
    if runnable {
        run(chain);
    }
}

/// Twisted's `cancel`: canceller or `Cancelled`, or cancel the Deferred waited on.
pub(crate) fn cancel(chain: &ChainRef) {
    let mut c = chain.borrow_mut();
    if !c.called {
        match c.canceller.take() {
            Some(canceller) => {
                c.cancelling = true;
                c.rare = true;
                drop(c);
                let outcome = catch_unwind(AssertUnwindSafe(canceller)).unwrap_or_else(|p| {
                    log::error!("canceller panicked: {}", Failure::from_panic(p));
                    Cancelling::Cancelled
                });
                let outcome = {
                    let mut c = chain.borrow_mut();
                    c.cancelling = false;
                    match outcome {
                        Cancelling::Fire(res) => res,
                        Cancelling::Cancelled => Res::Failure(Failure::new(Cancelled)),
                        Cancelling::PassedOn(next) => {
                            if !c.called {
                                c.canceller = Some(next);
                            }
                            return;
                        }
                    }
                };
                // The canceller's outcome wins; the producer's later fire is AlreadyCalled.
                let _ = fire(chain, outcome);
            }
            None => {
                // Set before firing: an errback may make the producer fire at once.
                c.suppress_already_called = true;
                c.rare = true;
                drop(c);
                let _ = fire(chain, Res::Failure(Failure::new(Cancelled)));
            }
        }
    } else if let Some(inner) = c.chained_to.as_ref().and_then(WeakChainRef::upgrade) {
        drop(c);
        cancel(&inner);
    }
}

/// A resolver went away without firing.
pub(crate) fn resolver_dropped(chain: &ChainRef) {
    let listened = {
        let c = chain.borrow();
        if c.called || c.cancelling {
            return;
        }
        // Nobody holds the Deferred and nothing waits on it: let it go quietly.
        chain.strong_count() > 1 || !c.steps.is_empty() || c.waker.is_some()
    };
    if listened {
        let _ = fire(chain, Res::Failure(Failure::new(ResolverDropped)));
    }
}

/// Unfired, and nobody can see it fire: only the resolver holds the chain, with no step to
/// run and no task awaiting it (its Deferred was dropped unobserved).
pub(crate) fn abandoned(chain: &ChainRef) -> bool {
    let c = chain.borrow();
    !c.called && chain.strong_count() == 1 && c.steps.is_empty() && c.waker.is_none()
}

/// Takes the final result out of a chain that nobody else can see (no other strong or weak
/// reference, nothing waiting), so the handle can carry it and run callbacks inline. Its
/// cells are reached without borrow flags, and a word is read in place: the chain is
/// recycled next, over it.
#[inline]
pub(crate) fn take_unique<T: 'static>(
    chain: &mut ChainRef,
) -> Option<(Result<T, Failure>, &'static Location<'static>)> {
    let node = Rc::get_mut(&mut chain.0)?;
    let c = node.chain.get_mut();
    if !c.is_settled_alone() {
        return None;
    }
    let at = c.created_at;
    let cur = node.current.get_mut();
    if is_word::<T>() {
        if let Current::Value(Value::Word(w)) = *cur {
            return Some((Ok(from_word::<T>(w)), at));
        }
    }
    match mem::replace(cur, Current::Taken) {
        Current::Value(v) => Some((Ok(v.take::<T>()), at)),
        Current::Failure(f) => Some((Err(f), at)),
        other => {
            *cur = other;
            None
        }
    }
}

/// Gives a settled chain whose result was taken ([`take_unique`]) a new final result, as
/// if it had fired with it (it stays called, with nothing to run).
pub(crate) fn refill(chain: &ChainRef, result: Res) {
    debug_assert!(chain.borrow().is_settled(), "a settled chain is refilled");
    put(&mut chain.cur().borrow_mut(), result.into_current());
}

/// Stores in `cur` what a step hands on by returning a Deferred on the chain `returned`:
/// its final result, taken at once if nobody else can see that chain (which is then
/// recycled), else `Wait` on it. The erased result moves across as it is: same type.
#[inline(never)]
pub(crate) fn put_returned(cur: &mut Current, mut returned: ChainRef) {
    if let Some(node) = Rc::get_mut(&mut returned.0) {
        let c = node.chain.get_mut();
        if c.is_settled_alone() {
            let theirs = node.current.get_mut();
            if let Current::Value(Value::Word(w)) = *theirs {
                // A word is copied, and left there: it owns nothing.
                if let Current::Value(Value::Word(slot)) = cur {
                    *slot = w;
                } else {
                    put(cur, Current::Value(Value::Word(w)));
                }
            } else {
                match mem::replace(theirs, Current::Taken) {
                    result @ (Current::Value(_) | Current::Failure(_)) => put(cur, result),
                    other => {
                        *theirs = other;
                        put_with(cur, || Current::Wait(returned));
                        return;
                    }
                }
            }
            // Recycled now, while it is known to be unique: this reference goes to the
            // pool as it is. Settled, it holds no step, tail, waker or wait, nor a
            // canceller (firing drops it), and its result is taken or a word: only the
            // flags are left to reset.
            debug_assert!(c.canceller.is_none());
            reset_flags(c);
            keep(returned);
            return;
        }
    }
    put_with(cur, || Current::Wait(returned));
}

/// Runs chains until none can go on: the loop that replaces Twisted's recursion.
///
/// A continuation hands the result to the chain that waited on this one and moves on to
/// that chain, so a million nested Deferreds use no more stack than one.
pub(crate) fn run(cur: &ChainRef) {
    {
        let mut c = cur.borrow_mut();
        if !c.runnable() {
            return;
        }
        c.running = true;
    }
    run_marked(cur);
}

/// As [`run`], for a chain its caller found runnable and marked `running` (and keeps
/// alive meanwhile: the run takes no reference of its own to it).
fn run_marked(first: &ChainRef) {
    if let Some(next) = run_one::<true>(first) {
        run_on(next);
    }
}

/// Goes on with the chains that results were handed to, one after the other.
#[inline(never)]
fn run_on(mut cur: ChainRef) {
    loop {
        {
            let mut c = cur.borrow_mut();
            if !c.runnable() {
                return;
            }
            c.running = true;
        }
        match run_one::<false>(&cur) {
            Some(next) => cur = next,
            None => return,
        }
    }
}

/// How a run of steps ended.
enum Ended {
    /// No longer running (settled, paused or waiting), with the waker of a task to wake
    /// if it is settled.
    Stopped(Option<Waker>),
    /// The result was handed on (the chain is still marked running), and the chain to
    /// go on with if it has something to run.
    HandedOn(Option<ChainRef>),
}

/// Runs a chain marked `running`; returns the chain to go on with, if its result was
/// handed on.
///
/// `FIRST` only tells the two callers' copies apart, so that each has the whole run
/// inline (one copy shared by both would be a call of its own).
#[inline(always)]
fn run_one<const FIRST: bool>(shared: &ChainRef) -> Option<ChainRef> {
    let _depth = DepthGuard::enter();
    // One unwind guard for the whole run rather than one per step: a step that panics
    // leaves the chain `Running`, with no borrow held; its result is the panic, and the
    // run goes on from there.
    let ended = loop {
        match catch_unwind(AssertUnwindSafe(|| run_steps(shared))) {
            Ok(ended) => break ended,
            Err(p) => {
                let failure = Failure::from_panic(p);
                put(&mut shared.cur().borrow_mut(), Current::Failure(failure));
            }
        }
    };
    match ended {
        Ended::Stopped(None) => None,
        Ended::Stopped(Some(w)) => {
            w.wake();
            None
        }
        Ended::HandedOn(next) => {
            let waker = stop(&mut shared.borrow_mut());
            if let Some(w) = waker {
                w.wake();
            }
            next
        }
    }
}

/// Marks a chain no longer running; the waker to wake if it is settled.
#[inline(always)]
fn stop(c: &mut Chain) -> Option<Waker> {
    c.running = false;
    if c.waker.is_some() && c.steps.is_empty() && c.paused == 0 {
        c.waker.take()
    } else {
        None
    }
}

/// Runs the steps of a running chain until it is paused, waits, hands its result on, or
/// has no step left; unless it handed its result on, marks it no longer running in the
/// same borrow.
///
/// The result stays borrowed, in place, for the whole run; the chain itself is let go
/// around every step.
#[inline(always)]
fn run_steps(shared: &ChainRef) -> Ended {
    let mut cur = shared.cur().borrow_mut();
    let mut c = shared.borrow_mut();
    while c.paused == 0 {
        let Some(step) = c.steps.pop_step() else {
            let Some(tail) = c.steps.tail.take() else {
                break;
            };
            drop(c);
            let result = into_res(mem::replace(&mut *cur, Current::Taken));
            drop(cur);
            // Nobody else holds this chain's handle: it has nothing more to run.
            let (target, explicit) = match tail {
                Tail::Continue(target) => (target, false),
                Tail::ChainTo(target) => (target, true),
            };
            return Ended::HandedOn(deliver(&target, result, explicit).then_some(target));
        };
        drop(c);
        step.run(&mut cur);
        c = shared.borrow_mut();
        if let Current::Wait(_) = *cur {
            let Current::Wait(inner) = mem::replace(&mut *cur, Current::Running) else {
                unreachable!("matched above")
            };
            match wait_on(shared, &mut c, inner) {
                Some(result) => put(&mut cur, result),
                None => {
                    // Paused until `inner` continues it. (`Running`, just written, owns
                    // nothing.)
                    put_mark(&mut cur, Current::Pending);
                    break;
                }
            }
        }
    }
    Ended::Stopped(stop(&mut c))
}

/// A chain's result, to hand on.
#[inline]
fn into_res(cur: Current) -> Res {
    match cur {
        Current::Value(v) => Res::Value(v),
        Current::Failure(f) => Res::Failure(f),
        _ => Res::Failure(Failure::new(WaitError::ResultTaken)),
    }
}

#[cold]
fn drop_cold(old: Current) {
    drop(old);
}

/// A step returned `inner`: take its result now if it has a final one, else pause this
/// chain until `inner` continues it.
fn wait_on(shared: &ChainRef, c: &mut Chain, inner: ChainRef) -> Option<Current> {
    if shared.ptr_eq(&inner) {
        return Some(Current::Failure(Failure::msg(
            "a callback returned the deferred it was attached to",
        )));
    }
    let mut ic = inner.borrow_mut();
    if ic.is_settled() && ic.chained_to.is_none() {
        let result = mem::replace(&mut *inner.cur().borrow_mut(), Current::Taken);
        return Some(match result {
            Current::Value(_) | Current::Failure(_) => result,
            _ => Current::Failure(Failure::new(WaitError::ResultTaken)),
        });
    }
    c.paused += 1;
    c.chained_to = Some(inner.downgrade());
    c.rare = true;
    ic.set_tail(Tail::Continue(shared.clone()));
    None
}

/// A fired chain that waits on `inner`: what a callback run inline on a fired Deferred
/// leaves when it returns a Deferred with no final result yet. Called and paused, as the
/// same callback would leave a chain, so that the handle is not `inner`'s own (whose
/// `pause` would hold back `inner`'s callbacks, and which is not called yet).
pub(crate) fn waiting_on(created_at: &'static Location<'static>, inner: ChainRef) -> ChainRef {
    let outer = ChainRef::pending(created_at);
    let taken = {
        let mut c = outer.borrow_mut();
        c.called = true;
        wait_on(&outer, &mut c, inner)
    };
    if let Some(result) = taken {
        put(&mut outer.cur().borrow_mut(), result);
    }
    outer
}

/// Hands a result to the chain `target`, stored there as it is best stored (a word in
/// place, not built first and copied in whole). Returns whether `target` has anything to
/// run now.
fn deliver(target: &ChainRef, result: impl Firing, explicit: bool) -> bool {
    let mut t = target.borrow_mut();
    if explicit {
        if t.called {
            if !mem::take(&mut t.suppress_already_called) {
                log::error!(
                    "chain_deferred: target deferred (created at {}) was already called",
                    t.created_at
                );
            }
            return false;
        }
        t.called = true;
        t.canceller = None;
    } else {
        t.paused = t.paused.saturating_sub(1);
        t.chained_to = None;
    }
    result.store(&mut target.cur().borrow_mut());
    // Nothing to run and nobody to wake: the target is settled as it is.
    t.runnable() && (!t.steps.is_empty() || t.waker.is_some())
}

impl fmt::Debug for ChainRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(c) = self.try_borrow() else {
            return f.write_str("Deferred(running callbacks)");
        };
        f.write_str("Deferred(")?;
        if let Some(inner) = c.chained_to.as_ref().and_then(WeakChainRef::upgrade) {
            write!(f, "waiting on Deferred at {:p}", inner.as_ptr())?;
        } else if !c.called {
            f.write_str("pending")?;
        } else {
            match self.cur().try_borrow().as_deref() {
                Ok(Current::Pending) => f.write_str("pending")?,
                Ok(Current::Value(_)) => f.write_str("fired with a value")?,
                Ok(Current::Failure(fail)) => write!(f, "failed: {fail}")?,
                Ok(Current::Running | Current::Wait(_)) | Err(_) => {
                    f.write_str("running callbacks")?
                }
                Ok(Current::Taken) => f.write_str("result taken")?,
            }
        }
        if c.paused > 0 {
            write!(f, ", paused {}", c.paused)?;
        }
        if !c.steps.is_empty() {
            write!(f, ", {} callbacks pending", c.steps.len())?;
        }
        write!(f, ", created at {})", c.created_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: 'static + PartialEq + fmt::Debug + Clone>(v: T, inline: bool) {
        assert_eq!(
            Value::inlines::<T>(),
            inline,
            "{}",
            std::any::type_name::<T>()
        );
        let stored = Value::new(v.clone());
        assert_eq!(matches!(stored, Value::Boxed(_)), !inline);
        assert_eq!(stored.inspect::<T, _>(Clone::clone), Some(v.clone()));
        assert_eq!(stored.take::<T>(), v);
    }

    #[test]
    fn small_values_are_stored_inline_and_come_back_exactly() {
        round_trip((), true);
        round_trip(u8::MAX, true);
        round_trip(u16::MAX, true);
        round_trip(u32::MAX, true);
        round_trip(u64::MAX, true);
        round_trip(usize::MAX, true);
        round_trip(i8::MIN, true);
        round_trip(i16::MIN, true);
        round_trip(i32::MIN, true);
        round_trip(i64::MIN, true);
        round_trip(isize::MIN, true);
        round_trip(-1i32, true);
        round_trip(true, true);
        round_trip(false, true);
        round_trip('é', true);
        round_trip(char::MAX, true);
        round_trip(-0.5f64, true);
        round_trip(f64::INFINITY, true);
        round_trip(1.25f32, true);
        round_trip(String::from("boxed"), false);
        round_trip(Some(3u8), false);
        round_trip((1u8, 2u8), false);
    }

    #[test]
    fn a_dropped_unique_chain_is_recycled_empty() {
        let at = Location::caller();
        let a = ChainRef::pending(at);
        a.borrow_mut()
            .set_tail(Tail::ChainTo(ChainRef::pending(at)));
        let ptr = a.as_ptr();
        drop(a);
        let b = ChainRef::pending(at);
        assert_eq!(
            b.as_ptr(),
            ptr,
            "the pool hands back the last chain dropped"
        );
        let c = b.borrow();
        assert!(c.steps.is_empty() && !c.called);
    }

    #[test]
    fn a_recycled_chain_owns_nothing_and_reads_as_pending() {
        let at = Location::caller();
        for result in [
            Res::Value(Value::new(7u64)),
            Res::Value(Value::new("boxed")),
        ] {
            let a = ChainRef::fired(at, result);
            let ptr = a.as_ptr();
            drop(a);
            let b = ChainRef::pending(at);
            assert_eq!(b.as_ptr(), ptr);
            assert!(!b.cur().borrow().owns_something());
            assert!(format!("{b:?}").starts_with("Deferred(pending"), "{b:?}");
        }
    }

    #[test]
    fn a_thread_that_pooled_chains_exits_cleanly_even_dropping_one_late() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static DROPPED: AtomicUsize = AtomicUsize::new(0);
        /// Drops a chain while the thread's locals are being destroyed.
        struct Late(Option<ChainRef>);
        impl Drop for Late {
            fn drop(&mut self) {
                drop(self.0.take());
                DROPPED.fetch_add(1, Ordering::SeqCst);
            }
        }
        thread_local! {
            static LATE: RefCell<Late> = const { RefCell::new(Late(None)) };
        }
        std::thread::spawn(|| {
            let at = Location::caller();
            let chains: Vec<ChainRef> = (0..10).map(|_| ChainRef::pending(at)).collect();
            drop(chains);
            assert_eq!(POOL.with(|p| p.len.get()), 10);
            LATE.with(|l| l.borrow_mut().0 = Some(ChainRef::pending(at)));
        })
        .join()
        .expect("a thread that pooled chains exits cleanly");
        assert_eq!(DROPPED.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_chain_with_a_weak_reference_is_not_recycled() {
        let at = Location::caller();
        let a = ChainRef::pending(at);
        let weak = a.downgrade();
        drop(a);
        assert!(weak.upgrade().is_none());
    }
}
