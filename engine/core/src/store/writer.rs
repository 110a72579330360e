//! The group-committing store writer.
//!
//! Every write (a received message with its deliveries, or a batch of delivery outcomes) is a
//! request on one bounded queue. The writer takes a request, drains whatever else is already
//! queued (so batches form under load, with no timer adding latency when idle), writes them all
//! in **one transaction**, and only then answers each waiter and wakes the delivery workers
//! concerned. A failed transaction fails every request in it, and nothing of it is stored.
//! A message whose (channel, origin) is already stored is not an error: the backend skips it
//! and its waiter gets the existing message's id, so the rest of the batch commits normally.
//!
//! The writer stops when every [`WriterHandle`] is dropped, after finishing its last batch.

use super::{DeliveryOutcome, Store, StoreError};
use crate::message::NewMessage;
use std::sync::Arc;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

// Messages are the common request; boxing them would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
enum WriteRequest {
    Message {
        message: NewMessage,
        wake: Vec<Arc<Notify>>,
        done: oneshot::Sender<Result<i64, Arc<StoreError>>>,
    },
    Outcomes {
        outcomes: Vec<DeliveryOutcome>,
        done: oneshot::Sender<Result<(), Arc<StoreError>>>,
    },
}

/// A cheap, cloneable way to submit writes to the [`StoreWriter`].
#[derive(Clone)]
pub struct WriterHandle {
    queue: mpsc::Sender<WriteRequest>,
}

impl WriterHandle {
    /// Commits one message and its deliveries; returns its id once the commit is durable.
    /// `wake` are the delivery workers to notify after the commit.
    pub async fn commit(
        &self,
        message: NewMessage,
        wake: Vec<Arc<Notify>>,
    ) -> Result<i64, Arc<StoreError>> {
        let (done, answer) = oneshot::channel();
        self.queue
            .send(WriteRequest::Message {
                message,
                wake,
                done,
            })
            .await
            .map_err(|_| Arc::new(StoreError::WriterClosed))?;
        answer
            .await
            .map_err(|_| Arc::new(StoreError::WriterClosed))?
    }

    /// Records delivery outcomes durably.
    pub async fn record(&self, outcomes: Vec<DeliveryOutcome>) -> Result<(), Arc<StoreError>> {
        let (done, answer) = oneshot::channel();
        self.queue
            .send(WriteRequest::Outcomes { outcomes, done })
            .await
            .map_err(|_| Arc::new(StoreError::WriterClosed))?;
        answer
            .await
            .map_err(|_| Arc::new(StoreError::WriterClosed))?
    }
}

/// Owns the write side of the store. See the module docs.
pub struct StoreWriter {
    store: Arc<dyn Store>,
    queue: mpsc::Receiver<WriteRequest>,
    max_batch: usize,
}

impl StoreWriter {
    /// Starts the writer task. `queue_len` bounds the requests waiting (back-pressure on
    /// sources); `max_batch` bounds the messages in one transaction.
    pub fn spawn(
        store: Arc<dyn Store>,
        max_batch: usize,
        queue_len: usize,
    ) -> (WriterHandle, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(queue_len.max(1));
        let writer = Self {
            store,
            queue: rx,
            max_batch: max_batch.max(1),
        };
        (WriterHandle { queue: tx }, tokio::spawn(writer.run()))
    }

    async fn run(mut self) {
        let mut batch: Vec<WriteRequest> = Vec::with_capacity(self.max_batch);
        let mut messages: Vec<NewMessage> = Vec::with_capacity(self.max_batch);
        let mut outcomes: Vec<DeliveryOutcome> = Vec::new();
        while let Some(first) = self.queue.recv().await {
            batch.push(first);
            while batch.len() < self.max_batch {
                match self.queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            // Move the payloads out; keep the answer channels in order.
            let mut answers = Vec::with_capacity(batch.len());
            for request in batch.drain(..) {
                match request {
                    WriteRequest::Message {
                        message,
                        wake,
                        done,
                    } => {
                        messages.push(message);
                        answers.push(Answer::Message { wake, done });
                    }
                    WriteRequest::Outcomes {
                        outcomes: mut more,
                        done,
                    } => {
                        outcomes.append(&mut more);
                        answers.push(Answer::Outcomes { done });
                    }
                }
            }
            let result = self.store.write_batch(&messages, &outcomes).await;
            tracing::trace!(
                messages = messages.len(),
                outcomes = outcomes.len(),
                ok = result.is_ok(),
                "group commit"
            );
            messages.clear();
            outcomes.clear();
            match result {
                Ok(ids) => {
                    let mut ids = ids.into_iter();
                    for answer in answers {
                        match answer {
                            Answer::Message { wake, done } => {
                                let id = ids.next().ok_or_else(|| {
                                    Arc::new(StoreError::Setup("missing message id".into()))
                                });
                                let _ = done.send(id);
                                for worker in wake {
                                    worker.notify_one();
                                }
                            }
                            Answer::Outcomes { done } => {
                                let _ = done.send(Ok(()));
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "group commit failed; every request in it is refused");
                    let error = Arc::new(error);
                    for answer in answers {
                        match answer {
                            Answer::Message { done, .. } => {
                                let _ = done.send(Err(error.clone()));
                            }
                            Answer::Outcomes { done } => {
                                let _ = done.send(Err(error.clone()));
                            }
                        }
                    }
                }
            }
        }
        tracing::debug!("store writer stopped after its last batch");
    }
}

enum Answer {
    Message {
        wake: Vec<Arc<Notify>>,
        done: oneshot::Sender<Result<i64, Arc<StoreError>>>,
    },
    Outcomes {
        done: oneshot::Sender<Result<(), Arc<StoreError>>>,
    },
}
