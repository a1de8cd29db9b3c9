//! Spreading independent, CPU-bound work over the machine's cores, in order.
//!
//! Rendering 10,000 objects is mostly work on one object at a time (reading, checking, writing YAML), so
//! the stages split their objects into one contiguous chunk per core and join the results in the
//! original order. Small inputs stay on the calling thread, where starting threads would cost more
//! than it saves. A panic in a worker is carried to the caller, as if the work had run there.

/// Below this many items per extra thread, the work stays on the calling thread.
const MIN_ITEMS_PER_THREAD: usize = 64;

fn threads_for(len: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(len / MIN_ITEMS_PER_THREAD).max(1)
}

fn join<R>(handle: std::thread::ScopedJoinHandle<'_, R>) -> R {
    handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// `f` applied to every item, results in the items' order.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads_for(items.len());
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles.into_iter().flat_map(join).collect()
    })
}

/// `f` applied to every item, which it may change; results in the items' order.
pub fn map_mut<T: Send, R: Send>(items: &mut [T], f: impl Fn(&mut T) -> R + Sync) -> Vec<R> {
    let threads = threads_for(items.len());
    if threads == 1 {
        return items.iter_mut().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks_mut(chunk)
            .map(|part| scope.spawn(|| part.iter_mut().map(&f).collect::<Vec<R>>()))
            .collect();
        handles.into_iter().flat_map(join).collect()
    })
}

/// `f` applied to every item, taking it; results in the items' order.
pub fn map_owned<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = threads_for(items.len());
    if threads == 1 {
        return items.into_iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let mut parts = Vec::with_capacity(threads);
    let mut rest = items;
    while rest.len() > chunk {
        let tail = rest.split_off(chunk);
        parts.push(rest);
        rest = tail;
    }
    parts.push(rest);
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(|| part.into_iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles.into_iter().flat_map(join).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_order_of_the_items_at_every_size() {
        for len in [0, 1, 63, 64, 129, 1000, 4097] {
            let items: Vec<usize> = (0..len).collect();
            let expected: Vec<usize> = items.iter().map(|i| i * 3).collect();
            assert_eq!(map(&items, |i| i * 3), expected, "map, {len} items");
            assert_eq!(map_owned(items.clone(), |i| i * 3), expected, "map_owned, {len} items");
            let mut changed = items.clone();
            let returned = map_mut(&mut changed, |i| {
                *i *= 3;
                *i + 1
            });
            assert_eq!(changed, expected, "map_mut changes, {len} items");
            assert_eq!(
                returned,
                expected.iter().map(|i| i + 1).collect::<Vec<_>>(),
                "map_mut results, {len} items"
            );
        }
    }

    #[test]
    fn a_panic_in_a_worker_reaches_the_caller() {
        let items: Vec<usize> = (0..1000).collect();
        let outcome = std::panic::catch_unwind(|| map(&items, |i| if *i == 900 { panic!("item 900") } else { *i }));
        let panic = outcome.unwrap_err();
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"item 900"));
    }
}
