//! One operation in flight per tab: the first caller starts it, later callers wait for
//! the same outcome.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use wasm_bindgen_futures::spawn_local;

struct Slot<T> {
    outcome: Option<T>,
    waiting: Vec<Waker>,
}

/// A running operation whose outcome several callers can wait for.
pub(crate) struct Flight<T> {
    slot: Rc<RefCell<Slot<T>>>,
}

impl<T: Clone + 'static> Flight<T> {
    /// Starts `work` on the event loop; it runs to the end even if nobody waits.
    pub(crate) fn start(work: impl Future<Output = T> + 'static) -> Self {
        let slot = Rc::new(RefCell::new(Slot {
            outcome: None,
            waiting: Vec::new(),
        }));
        let done = Rc::clone(&slot);
        spawn_local(async move {
            let outcome = work.await;
            let waiting = {
                let mut slot = done.borrow_mut();
                slot.outcome = Some(outcome);
                std::mem::take(&mut slot.waiting)
            };
            waiting.into_iter().for_each(Waker::wake);
        });
        Self { slot }
    }

    /// A future resolving to the outcome.
    pub(crate) fn wait(&self) -> Wait<T> {
        Wait {
            slot: Rc::clone(&self.slot),
        }
    }
}

/// Waits for a [`Flight`]'s outcome.
pub(crate) struct Wait<T> {
    slot: Rc<RefCell<Slot<T>>>,
}

impl<T: Clone> Future for Wait<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.slot.borrow_mut();
        match &slot.outcome {
            Some(outcome) => Poll::Ready(outcome.clone()),
            None => {
                slot.waiting.push(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
