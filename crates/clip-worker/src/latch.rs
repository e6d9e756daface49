//! A value that tasks wait for without polling: the device, which a model load may need while
//! `Init` is still starting it (and again after the GPU was lost).

use std::cell::RefCell;
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Set, cleared and awaited on the worker's one thread.
#[derive(Debug)]
pub struct Latch<T> {
    value: RefCell<Option<T>>,
    waiting: RefCell<Vec<Waker>>,
}

impl<T> Default for Latch<T> {
    fn default() -> Self {
        Self {
            value: RefCell::new(None),
            waiting: RefCell::new(Vec::new()),
        }
    }
}

impl<T: Clone> Latch<T> {
    /// Sets the value and wakes every waiting task.
    pub fn set(&self, value: T) {
        *self.value.borrow_mut() = Some(value);
        for waker in self.waiting.take() {
            waker.wake();
        }
    }

    /// Forgets the value: later waits wait for the next [`Self::set`].
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))] // only a lost GPU clears it
    pub fn clear(&self) {
        self.value.borrow_mut().take();
    }

    /// The value, if set.
    pub fn get(&self) -> Option<T> {
        self.value.borrow().clone()
    }

    /// The value, once set.
    pub async fn wait(&self) -> T {
        poll_fn(|cx| match self.get() {
            Some(value) => Poll::Ready(value),
            None => {
                self.waiting.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;

    #[test]
    fn waiters_wake_on_set_and_clear_makes_them_wait_again() {
        let latch = std::rc::Rc::new(Latch::default());
        let waiter = {
            let latch = latch.clone();
            async move { latch.wait().await }
        };
        let mut waiter = Box::pin(waiter);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(waiter.as_mut().poll(&mut cx).is_pending());
        latch.set(7);
        assert_eq!(waiter.as_mut().poll(&mut cx), Poll::Ready(7));
        latch.clear();
        assert_eq!(latch.get(), None);
    }
}
