//! A small promise-style wrapper around IndexedDB: one database per storage name, one
//! object store of keyed records. Values go through the structured clone, which keeps
//! `CryptoKey`s non-extractable.

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use web_sys::{
    Event, IdbDatabase, IdbFactory, IdbOpenDbRequest, IdbRequest, IdbTransaction,
    IdbTransactionMode,
};

use super::js;
use crate::ClientError;

/// The one object store.
const STORE: &str = "kv";

/// An open keybound database.
pub(crate) struct Db {
    db: IdbDatabase,
}

fn storage_error(op: &'static str) -> impl Fn(JsValue) -> ClientError {
    move |_| ClientError::Storage { op }
}

/// Resolves on an IDB request's `success`, rejects on its `error`.
async fn request_done(request: &IdbRequest, op: &'static str) -> Result<JsValue, ClientError> {
    let promise = Promise::new(&mut |resolve, reject| {
        // One handler for both events: exactly one of them fires, so the closure runs
        // once and frees itself.
        let handler = Closure::once_into_js(move |event: Event| {
            let settle = if event.type_() == "success" {
                resolve
            } else {
                reject
            };
            let _ = settle.call0(&JsValue::UNDEFINED);
        });
        request.set_onsuccess(Some(handler.unchecked_ref()));
        request.set_onerror(Some(handler.unchecked_ref()));
    });
    js::wait(promise).await.map_err(storage_error(op))?;
    request.result().map_err(storage_error(op))
}

/// Resolves when a transaction commits; rejects when it fails or aborts.
async fn transaction_done(tx: &IdbTransaction, op: &'static str) -> Result<(), ClientError> {
    let promise = Promise::new(&mut |resolve, reject| {
        let handler = Closure::once_into_js(move |event: Event| {
            let settle = if event.type_() == "complete" {
                resolve
            } else {
                reject
            };
            let _ = settle.call0(&JsValue::UNDEFINED);
        });
        tx.set_oncomplete(Some(handler.unchecked_ref()));
        tx.set_onerror(Some(handler.unchecked_ref()));
        tx.set_onabort(Some(handler.unchecked_ref()));
    });
    js::wait(promise).await.map(drop).map_err(storage_error(op))
}

impl Db {
    /// Opens (creating on first use) the database `name`.
    pub(crate) async fn open(name: &str) -> Result<Self, ClientError> {
        let factory = js::global("indexedDB");
        if factory.is_undefined() || factory.is_null() {
            return Err(ClientError::Unsupported {
                missing: "IndexedDB",
            });
        }
        let factory: IdbFactory = factory.unchecked_into();
        let request: IdbOpenDbRequest = factory
            .open_with_u32(name, 1)
            .map_err(storage_error("open"))?;
        let upgrade = Closure::<dyn FnMut(Event)>::new(move |event: Event| {
            let Some(target) = event.target() else { return };
            let request: IdbOpenDbRequest = target.unchecked_into();
            if let Ok(db) = request.result() {
                // Version 1 is the only schema: an upgrade means a new, empty database.
                let db: IdbDatabase = db.unchecked_into();
                let _ = db.create_object_store(STORE);
            }
        });
        request.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
        let db = request_done(&request, "open").await;
        request.set_onupgradeneeded(None);
        drop(upgrade);
        let db: IdbDatabase = db?.unchecked_into();
        // If another tab ever upgrades the schema, step aside instead of blocking it.
        let close = Closure::<dyn FnMut(Event)>::new({
            let db = db.clone();
            move |_: Event| db.close()
        });
        db.set_onversionchange(Some(close.as_ref().unchecked_ref()));
        close.forget();
        Ok(Self { db })
    }

    fn tx(
        &self,
        mode: IdbTransactionMode,
        op: &'static str,
    ) -> Result<IdbTransaction, ClientError> {
        self.db
            .transaction_with_str_and_mode(STORE, mode)
            .map_err(storage_error(op))
    }

    /// The record under `key` (`undefined` when there is none).
    pub(crate) async fn get(&self, key: &str) -> Result<JsValue, ClientError> {
        let tx = self.tx(IdbTransactionMode::Readonly, "read")?;
        let store = tx.object_store(STORE).map_err(storage_error("read"))?;
        let request = store
            .get(&JsValue::from_str(key))
            .map_err(storage_error("read"))?;
        request_done(&request, "read").await
    }

    /// Writes `value` under `key`, replacing what was there; resolves once committed.
    pub(crate) async fn put(&self, key: &str, value: &JsValue) -> Result<(), ClientError> {
        let tx = self.tx(IdbTransactionMode::Readwrite, "write")?;
        let store = tx.object_store(STORE).map_err(storage_error("write"))?;
        store
            .put_with_key(value, &JsValue::from_str(key))
            .map_err(storage_error("write"))?;
        transaction_done(&tx, "write").await
    }

    /// Writes `value` under `key` only if nothing is there; `false` when another writer
    /// (another tab) got there first.
    pub(crate) async fn add(&self, key: &str, value: &JsValue) -> Result<bool, ClientError> {
        let tx = self.tx(IdbTransactionMode::Readwrite, "write")?;
        let store = tx.object_store(STORE).map_err(storage_error("write"))?;
        let request = store
            .add_with_key(value, &JsValue::from_str(key))
            .map_err(storage_error("write"))?;
        let added = request_done(&request, "write").await.is_ok();
        let committed = transaction_done(&tx, "write").await;
        match (added, committed) {
            (true, result) => result.map(|()| true),
            // The key existed: the request failed and aborted the transaction.
            (false, _) => Ok(false),
        }
    }

    /// Deletes the records under `keys` in one transaction.
    pub(crate) async fn delete(&self, keys: &[&str]) -> Result<(), ClientError> {
        let tx = self.tx(IdbTransactionMode::Readwrite, "delete")?;
        let store = tx.object_store(STORE).map_err(storage_error("delete"))?;
        for key in keys {
            store
                .delete(&JsValue::from_str(key))
                .map_err(storage_error("delete"))?;
        }
        transaction_done(&tx, "delete").await
    }
}
