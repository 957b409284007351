//! Requests across slots the proxy computes (`compute`): reads answered from each key's
//! value, and writes (`cross_slot_writes`) run in stages, each stage's replies deciding the
//! next. A staged write takes its client's reply place like any request; the client's
//! later requests wait for it (`Lane::Staged`), as one Redis would have run them after it.

use bytes::Bytes;
use slab::Slab;

use crate::compute::{self, Computed, Request};
use crate::conn::client::Client;
use crate::error::ProxyError;
use crate::inflight::{ClientRef, Owner};
use crate::input::FrameArgs;
use crate::reactor::Core;
use crate::route::split::Merge;

impl Core {
    /// A read across slots computed by the proxy, or the first stage of a write: each key
    /// read from its owner (a read from the replica `read_from` picks).
    pub(crate) fn compute(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        args: &FrameArgs<'_>,
        mut computed: Box<Computed>,
    ) {
        let write = computed.is_write();
        if write && !self.cfg.cross_slot_writes {
            return c.reply_now(&ProxyError::CrossSlotWrite.to_frame());
        }
        if write {
            self.stats.cross_slot_writes += 1;
        } else {
            self.stats.cross_slot_computed += 1;
        }
        computed.style = compute::double::DoubleStyle::for_version(&self.server_version);
        let requests = compute::parts(&computed, args);
        let seq = c.reserve_parts(requests.len(), Merge::Compute(computed));
        self.send_stage(c, cref, seq, requests, !write);
    }

    /// One stage's requests, as parts of the reply place `seq`.
    fn send_stage(
        &mut self,
        c: &mut Client,
        cref: ClientRef,
        seq: u64,
        requests: Vec<Request>,
        read: bool,
    ) {
        for (k, r) in requests.into_iter().enumerate() {
            let part = k as u32;
            let node = match self.topo.owner(r.slot) {
                Some(m) if read => self.read_node(m).map(Some),
                other => Ok(other),
            };
            let node = match node {
                Ok(n) => n,
                Err(e) => {
                    c.complete(seq, part, Bytes::from(e.to_frame()));
                    continue;
                }
            };
            if r.pre.is_empty() {
                self.send_part(c, cref, seq, part, node, r.frame, Some(r.slot));
                continue;
            }
            // A MULTI ... EXEC: its requests back to back on one connection, so no other
            // request comes between them; never held (held, the EXEC would travel alone).
            let Some(node) = node else {
                c.complete(
                    seq,
                    part,
                    Bytes::from(ProxyError::SlotUnserved(r.slot.0).to_frame()),
                );
                continue;
            };
            let req = crate::inflight::InFlight {
                owner: Owner::Client {
                    client: cref,
                    seq,
                    part,
                },
                req: r.frame,
                slot: Some(r.slot),
                attempt: crate::inflight::Attempt::Sent { redirects: 0 },
                sent_at: self.now,
                role: crate::conn::role::BackendRole::Shared,
                held_since: None,
                family: crate::latency::OTHER,
                write: false,
            };
            if let Err(failed) = self.send(node, c.proto, cref.idx, req, r.pre) {
                c.complete(seq, part, Bytes::from(failed.0.to_frame()));
            }
        }
    }

    /// Runs the next stage of the staged writes whose replies are all in.
    pub(crate) fn run_staged(&mut self, clients: &mut Slab<Client>) {
        // A stage can complete at once (a node unknown): bounded by the stages of a write.
        for _ in 0..8 {
            let ready = std::mem::take(&mut self.wake.staged);
            if ready.is_empty() {
                return;
            }
            for cref in ready {
                let Some(c) = clients.get_mut(cref.idx).filter(|c| c.gen == cref.gen) else {
                    continue;
                };
                for seq in std::mem::take(&mut c.staged) {
                    self.next_stage(c, cref, seq);
                }
                if !c.staged.is_empty() {
                    self.wake.staged.push(cref);
                }
                if !c.dirty {
                    c.dirty = true;
                    self.wake.dirty_clients.push(cref.idx);
                }
            }
        }
    }

    fn next_stage(&mut self, c: &mut Client, cref: ClientRef, seq: u64) {
        let Some((Merge::Compute(mut computed), replies)) = c.take_stage(seq) else {
            return;
        };
        let compute::Op::Write(w) = &mut computed.op else {
            return;
        };
        match w.step(&replies, c.proto) {
            compute::write::Step::Answer(frame) => c.answer_stage(seq, frame),
            compute::write::Step::Send(requests) => {
                c.restart_stage(seq, requests.len(), Merge::Compute(computed));
                self.send_stage(c, cref, seq, requests, false);
            }
        }
    }
}
