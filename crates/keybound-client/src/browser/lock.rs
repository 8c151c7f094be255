//! Cross-tab mutual exclusion with the Web Locks API.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::js;

#[wasm_bindgen]
extern "C" {
    type LockManager;

    #[wasm_bindgen(method, catch)]
    fn request(
        this: &LockManager,
        name: &str,
        callback: &js_sys::Function,
    ) -> Result<Promise, JsValue>;
}

type Work<T> = Pin<Box<dyn Future<Output = T>>>;

/// Runs `work` while holding the origin-wide lock `name`, so at most one tab runs it at
/// a time. Without Web Locks (old browsers, opaque origins) `work` runs unguarded: the
/// refresh-token grace period on the server still covers a rare double refresh.
pub(crate) async fn with_lock<T: 'static>(name: &str, work: Work<T>) -> T {
    let locks = js::get(&js::global("navigator"), "locks");
    let work = Rc::new(RefCell::new(Some(work)));
    if locks.is_object() {
        let locks: LockManager = locks.unchecked_into();
        let result = Rc::new(RefCell::new(None));
        let callback = {
            let work = Rc::clone(&work);
            let result = Rc::clone(&result);
            Closure::once(move |_lock: JsValue| -> Promise {
                let job = work.borrow_mut().take();
                future_to_promise(async move {
                    if let Some(job) = job {
                        let out = job.await;
                        *result.borrow_mut() = Some(out);
                    }
                    Ok(JsValue::UNDEFINED)
                })
            })
        };
        if let Ok(granted) = locks.request(name, callback.as_ref().unchecked_ref()) {
            // The lock is released when the callback's promise settles, which is after
            // the work finished.
            let _ = js::wait(granted).await;
        }
        drop(callback);
        if let Some(out) = result.borrow_mut().take() {
            return out;
        }
    }
    let job = work.borrow_mut().take();
    match job {
        Some(job) => job.await,
        // The callback took the job, and the lock request only settles after the job
        // stored its result: getting here means the browser broke that contract (or the
        // page is going away). There is nothing to return, so wait forever.
        None => std::future::pending().await,
    }
}
