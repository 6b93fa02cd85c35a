//! Worker-pool jobs in flight: the reactor's side of `defer_to_thread`.
//!
//! [`Jobs`] is a value the reactor owns: for each job submitted and not yet back, the
//! Deferred's resolver (not `Send`, so it stays on the reactor's thread) and the job's
//! cell. A [`JobCell`] is one allocation shared with the pool: the function, then its
//! result; the worker that ran it sends it back through `W: JobDone` (the reactor's
//! cross-thread queue), and the reactor's turn [`finish`](Finished::finish)es it.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ropewalk_deferred::{Failure, Resolver};

use crate::pool::{Job, Task};
use crate::slab::{Key, Slab};

/// Where a job that has run goes: the reactor's cross-thread queue.
pub(crate) trait JobDone: Send + Sync + 'static {
    /// Queues `job` for the reactor's next turn, waking the reactor if it sleeps.
    fn job_done(&self, job: Arc<dyn Finished>);
}

/// The `defer_to_thread` jobs of a reactor whose result has not come back yet.
pub(crate) struct Jobs {
    entries: RefCell<Slab<JobEntry>>,
}

impl Jobs {
    pub(crate) fn new() -> Jobs {
        Jobs {
            entries: RefCell::new(Slab::new()),
        }
    }

    /// Jobs in flight.
    pub(crate) fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// The key the next [`insert`](Self::insert) will take.
    pub(crate) fn next_key(&self) -> Key {
        self.entries.borrow().next_key()
    }

    /// Records `f`'s job under `key` (from [`next_key`](Self::next_key)); its result
    /// will go to `resolver`. Returns the job to submit to the pool.
    pub(crate) fn insert<T, F, W>(
        &self,
        key: Key,
        f: F,
        resolver: Resolver<T>,
        done: &Arc<W>,
    ) -> Job
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, Failure> + Send + 'static,
        W: JobDone,
    {
        let cell = Arc::new(JobCell {
            key,
            done: done.clone(),
            cancelled: AtomicBool::new(false),
            stage: Mutex::new(Stage::Queued(f)),
        });
        let inserted = self.entries.borrow_mut().insert(JobEntry {
            resolver: Box::new(resolver),
            job: cell.clone(),
        });
        debug_assert_eq!(inserted, key);
        Job::Shared(cell)
    }

    /// The Deferred of `key` was cancelled: the job, if not started, will not run.
    pub(crate) fn cancel(&self, key: Key) {
        let removed = self.entries.borrow_mut().remove(key);
        if let Some(entry) = &removed {
            entry.job.cancel();
        }
        // Dropped outside the borrow: dropping the resolver may run callbacks.
        drop(removed);
    }

    /// The pool refused the job `key`: its Deferred fails with `error`.
    pub(crate) fn refused<T: 'static>(&self, key: Key, error: impl Into<Failure>) {
        let entry = self.entries.borrow_mut().remove(key);
        if let Some(r) = entry.and_then(|e| e.resolver.downcast::<Resolver<T>>().ok()) {
            let _ = r.errback(error);
        }
    }
}

/// A `defer_to_thread` job as the pool and the queue back to the reactor see it: one
/// allocation holding the function, then its result, and the way back.
pub(crate) struct JobCell<T, F, W> {
    key: Key,
    done: Arc<W>,
    cancelled: AtomicBool,
    stage: Mutex<Stage<T, F>>,
}

enum Stage<T, F> {
    /// Not started.
    Queued(F),
    /// Taken by a worker, running.
    Running,
    /// Run; the reactor has not taken the result yet.
    Done(Result<T, Failure>),
}

/// The reactor's side of a job in flight: [`Jobs`] holds one per pending
/// `defer_to_thread`.
struct JobEntry {
    /// The `Resolver<T>`: not `Send`, so it stays here, on the reactor's thread.
    resolver: Box<dyn Any>,
    job: Arc<dyn Finished>,
}

/// What the reactor does with a job cell, on its own thread.
pub(crate) trait Finished: Send + Sync {
    /// A job not yet started will not run.
    fn cancel(&self);
    /// The result is there: fire the Deferred, unless it was cancelled.
    fn finish(&self, jobs: &Jobs);
}

impl<T, F, W> Task for JobCell<T, F, W>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Failure> + Send + 'static,
    W: JobDone,
{
    fn run(self: Arc<Self>) {
        let f = {
            let mut stage = self.stage.lock().unwrap_or_else(|e| e.into_inner());
            match std::mem::replace(&mut *stage, Stage::Running) {
                Stage::Queued(f) => f,
                other => {
                    *stage = other;
                    return;
                }
            }
        };
        if self.cancelled.load(Ordering::Acquire) {
            return;
        }
        let result =
            catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(Failure::from_panic(p)));
        *self.stage.lock().unwrap_or_else(|e| e.into_inner()) = Stage::Done(result);
        let done = self.done.clone();
        done.job_done(self);
    }
}

impl<T, F, W> Finished for JobCell<T, F, W>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Failure> + Send + 'static,
    W: JobDone,
{
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    fn finish(&self, jobs: &Jobs) {
        let entry = jobs.entries.borrow_mut().remove(self.key);
        let Some(entry) = entry else {
            return; // cancelled
        };
        let stage = std::mem::replace(
            &mut *self.stage.lock().unwrap_or_else(|e| e.into_inner()),
            Stage::Running,
        );
        if let (Ok(r), Stage::Done(result)) = (entry.resolver.downcast::<Resolver<T>>(), stage) {
            let _ = r.resolve(result);
        }
    }
}
