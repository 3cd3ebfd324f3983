//! The controller's queue: the channel that carries triggered flows to the controller while
//! this replica leads, and the flows triggered and not yet reconciled (the work queue depth).

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use futures::channel::mpsc;
use jobflow::api::JobFlow;
use kube::runtime::reflector::ObjectRef;

/// A reference to a flow to reconcile.
pub type FlowRef = ObjectRef<JobFlow>;

/// The controller's trigger channel, attached only while a controller runs (a standby's
/// triggers are dropped: a new leader reconciles every flow first anyway), and the flows that
/// were triggered and not yet reconciled (the work queue depth).
#[derive(Debug, Default)]
pub struct Queue {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tx: Option<mpsc::UnboundedSender<FlowRef>>,
    pending: HashSet<FlowRef>,
}

impl Queue {
    /// Opens the channel; every trigger from now on goes to the returned receiver.
    pub fn attach(&self) -> mpsc::UnboundedReceiver<FlowRef> {
        let (tx, rx) = mpsc::unbounded();
        let mut state = self.lock();
        state.tx = Some(tx);
        state.pending.clear();
        rx
    }

    /// Closes the channel: triggers are dropped again.
    pub fn detach(&self) {
        let mut state = self.lock();
        state.tx = None;
        state.pending.clear();
    }

    /// Sends `flows` to the controller, if one runs.
    pub fn send(&self, flows: impl IntoIterator<Item = FlowRef>) {
        let mut state = self.lock();
        let State { tx, pending } = &mut *state;
        let Some(sender) = tx else { return };
        for flow in flows {
            if sender.unbounded_send(flow.clone()).is_ok() {
                pending.insert(flow);
            }
        }
    }

    /// The controller started reconciling `flow`.
    pub fn started(&self, flow: &FlowRef) {
        self.lock().pending.remove(flow);
    }

    /// `flow` is gone: it will never be reconciled.
    pub fn forget(&self, flow: &FlowRef) {
        self.lock().pending.remove(flow);
    }

    /// Flows triggered and not yet reconciled.
    pub fn depth(&self) -> usize {
        self.lock().pending.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[test]
    fn triggers_flow_only_while_attached_and_count_pending() {
        let t = Queue::default();
        let a: FlowRef = ObjectRef::new("a").within("ns");
        t.send([a.clone()]);
        assert_eq!(t.depth(), 0, "no controller: dropped");
        let mut rx = t.attach();
        t.send([a.clone(), a.clone()]);
        assert_eq!(t.depth(), 1);
        t.started(&a);
        assert_eq!(t.depth(), 0);
        t.detach();
        let received: Vec<FlowRef> = futures::executor::block_on(rx.by_ref().collect());
        assert_eq!(received.len(), 2);
    }
}
