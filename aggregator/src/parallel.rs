//! Mapping a slice on several threads, keeping the order: how parents and
//! auditors check many signatures at once.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, mpsc},
};

/// `items.iter().map(f)` on up to `threads` scoped threads, in order.
pub fn map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads.max(1);
    if threads == 1 || items.len() < 2 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Threads applying one function to a stream of items, handing the results
/// back in the order the items came in, while the caller goes on reading:
/// how an auditor keeps every core verifying signatures while one thread
/// reads the bundle and checks the arithmetic. Items travel in batches; at
/// most a few batches per thread are in flight, so memory stays bounded.
pub struct Pool<T, R> {
    jobs: Option<mpsc::SyncSender<(u64, Vec<T>)>>,
    results: mpsc::Receiver<(u64, std::thread::Result<Vec<R>>)>,
    workers: Vec<std::thread::JoinHandle<()>>,
    batch: Vec<T>,
    batch_size: usize,
    /// Batches sent, and the number of the next one to hand back.
    sent: u64,
    next: u64,
    /// Batches finished before an earlier one.
    early: BTreeMap<u64, Vec<R>>,
}

impl<T: Send + 'static, R: Send + 'static> Pool<T, R> {
    /// `threads` threads applying `f`, to batches of `batch_size` items.
    pub fn new(
        threads: usize,
        batch_size: usize,
        f: impl Fn(T) -> R + Send + Sync + 'static,
    ) -> Pool<T, R> {
        let threads = threads.max(1);
        // Two batches queued per thread: one being worked on, one waiting.
        let (jobs, queue) = mpsc::sync_channel::<(u64, Vec<T>)>(2 * threads);
        let (done, results) = mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        let f = Arc::new(f);
        let workers = (0..threads)
            .map(|_| {
                let (queue, done, f) = (Arc::clone(&queue), done.clone(), Arc::clone(&f));
                std::thread::Builder::new()
                    .name("tallytree-verify".into())
                    .spawn(move || {
                        loop {
                            let job = queue.lock().map_or(None, |q| q.recv().ok());
                            let Some((n, items)) = job else { return };
                            let out =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    items.into_iter().map(&*f).collect::<Vec<R>>()
                                }));
                            if done.send((n, out)).is_err() {
                                return;
                            }
                        }
                    })
                    .expect("the system starts a thread")
            })
            .collect();
        Pool {
            jobs: Some(jobs),
            results,
            workers,
            batch: Vec::with_capacity(batch_size),
            batch_size: batch_size.max(1),
            sent: 0,
            next: 0,
            early: BTreeMap::new(),
        }
    }

    /// Hands an item to the threads (in a batch, once the batch is full).
    /// Waits while the threads are a full queue behind.
    pub fn push(&mut self, item: T) {
        self.batch.push(item);
        if self.batch.len() >= self.batch_size {
            self.send();
        }
    }

    fn send(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.batch_size));
        let jobs = self.jobs.as_ref().expect("the pool is open until dropped");
        // A full queue blocks here: the back-pressure that bounds memory.
        if jobs.send((self.sent, batch)).is_err() {
            panic!("verification threads stopped");
        }
        self.sent += 1;
    }

    fn receive(&mut self, (n, out): (u64, std::thread::Result<Vec<R>>)) {
        match out {
            Ok(results) => {
                self.early.insert(n, results);
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// The results of the next batch in order, if it is done (never waits).
    pub fn ready(&mut self) -> Option<Vec<R>> {
        while let Ok(message) = self.results.try_recv() {
            self.receive(message);
        }
        let results = self.early.remove(&self.next)?;
        self.next += 1;
        Some(results)
    }

    /// Sends what is left and waits for every result, in order.
    pub fn finish(&mut self) -> Vec<R> {
        self.send();
        let mut all = Vec::new();
        while self.next < self.sent {
            if let Some(results) = self.early.remove(&self.next) {
                self.next += 1;
                all.extend(results);
                continue;
            }
            let message = self.results.recv().expect("a verification thread stopped");
            self.receive(message);
        }
        all
    }
}

impl<T, R> Drop for Pool<T, R> {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl<T, R> std::fmt::Debug for Pool<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.workers.len())
            .field("in_flight", &(self.sent - self.next))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_the_order() {
        let items: Vec<u32> = (0..1000).collect();
        assert_eq!(
            super::map(&items, 3, |x| x * 2),
            items.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
        assert!(super::map(&[] as &[u32], 2, |x| *x).is_empty());
    }
    #[test]
    fn the_pool_hands_results_back_in_order() {
        let mut pool = super::Pool::new(3, 7, |x: u32| {
            // Uneven work, so batches finish out of order.
            if x.is_multiple_of(13) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            x * 2
        });
        let mut out = Vec::new();
        for x in 0..1000 {
            pool.push(x);
            while let Some(r) = pool.ready() {
                out.extend(r);
            }
        }
        out.extend(pool.finish());
        assert_eq!(out, (0..1000).map(|x| x * 2).collect::<Vec<_>>());
        assert!(pool.finish().is_empty(), "nothing left after finishing");
    }

    #[test]
    #[should_panic(expected = "bad item")]
    fn a_panic_on_a_thread_reaches_the_caller() {
        let mut pool = super::Pool::new(2, 4, |x: u32| {
            assert!(x != 5, "bad item");
            x
        });
        for x in 0..10 {
            pool.push(x);
        }
        pool.finish();
    }
}
