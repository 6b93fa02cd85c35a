//! No stack growth: long chains run in a loop (Twisted `test_boundedStackDepth` at scale,
//! and the `chainDeferred` recursion that overflows Twisted's stack at ~330 links).

use ropewalk_deferred::{Deferred, Resolver};

const N: usize = 1_000_000;

/// Runs `f` on a thread with the default 2 MiB stack.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn million_callbacks_fired_at_the_end() {
    on_small_stack(|| {
        let (mut d, r) = Deferred::<u64>::pending();
        for _ in 0..N {
            d = d.add_callback(|n| Ok(n + 1));
        }
        r.callback(0).unwrap();
        assert_eq!(d.wait().unwrap(), N as u64);
    });
}

/// `d[i]`'s callback returns `d[i+1]`; returns `d[0]` and the resolvers in order.
fn ladder() -> (Deferred<u64>, Vec<Resolver<u64>>) {
    let mut resolvers = Vec::with_capacity(N);
    let (mut next, r_last) = Deferred::<u64>::pending();
    resolvers.push(r_last);
    for _ in 1..N {
        let (d, r) = Deferred::<u64>::pending();
        let inner = next;
        next = d.add_callback(move |n| inner.add_callback(move |m| Ok(n + m + 1)));
        resolvers.push(r);
    }
    resolvers.reverse();
    (next, resolvers)
}

/// Each outer fires first and waits on its unfired inner; the innermost fires last and
/// the result walks back out through a million continuations.
#[test]
fn million_nested_deferreds_innermost_fired_last() {
    on_small_stack(|| {
        let (d, resolvers) = ladder();
        let mut rs = resolvers.into_iter();
        let last = rs.next_back().unwrap();
        for r in rs {
            r.callback(0).unwrap();
        }
        last.callback(0).unwrap();
        assert_eq!(d.wait().unwrap(), (N - 1) as u64);
    });
}

/// The innermost fires first: each outer then takes an already-fired inner's result.
#[test]
fn million_nested_deferreds_innermost_fired_first() {
    on_small_stack(|| {
        let (d, resolvers) = ladder();
        for r in resolvers.into_iter().rev() {
            r.callback(0).unwrap();
        }
        assert_eq!(d.wait().unwrap(), (N - 1) as u64);
    });
}

/// A million explicit `chain_deferred` links (Twisted's recursion breaks at ~330).
#[test]
fn million_chain_deferred_links() {
    on_small_stack(|| {
        let (first, r0) = Deferred::<u64>::pending();
        let mut prev = first;
        for _ in 0..N {
            let (d, r) = Deferred::<u64>::pending();
            prev.chain_deferred(r);
            prev = d.add_callback(|n| Ok(n + 1));
        }
        r0.callback(0).unwrap();
        assert_eq!(prev.wait().unwrap(), N as u64);
    });
}
