//! A namespace as a block device (`nvme0n1`).

use crate::command::{Command, io};
use crate::controller::{Controller, Data, Transfer};
use crate::error::NvmeError;
use crate::identify::NamespaceIdentity;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use stratus_driver_api::{BlockDevice, BlockError, BlockRequest, RequestEvent};

/// Blocks one Read or Write names at most (CDW12.NLB is 16 bits, 0-based).
const MAX_BLOCKS_PER_COMMAND: usize = 1 << 16;

/// One active namespace of a controller.
#[derive(Debug)]
pub struct NvmeNamespace {
    controller: Arc<Controller>,
    nsid: u32,
    name: String,
    identity: NamespaceIdentity,
}

impl NvmeNamespace {
    /// Namespace `nsid` of `controller`, described by `identity`.
    pub fn new(controller: Arc<Controller>, nsid: u32, identity: NamespaceIdentity) -> Self {
        let name = alloc::format!("{}n{nsid}", controller.name());
        Self {
            controller,
            nsid,
            name,
            identity,
        }
    }

    /// The namespace id.
    pub fn nsid(&self) -> u32 {
        self.nsid
    }

    /// The controller it belongs to.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// Bytes one command moves at most: the controller's limit, whole
    /// blocks.
    fn chunk_bytes(&self) -> usize {
        let block = self.identity.block_size as usize;
        let blocks = (self.controller.max_transfer() / block).clamp(1, MAX_BLOCKS_PER_COMMAND);
        blocks * block
    }

    /// Read or Write commands covering `buffer` from `lba`, one per chunk.
    fn commands(&self, opcode: u8, lba: u64, len: usize) -> impl Iterator<Item = Command> + use<> {
        let chunk = self.chunk_bytes();
        let block = self.identity.block_size as usize;
        let nsid = self.nsid;
        (0..len).step_by(chunk).map(move |offset| {
            let bytes = chunk.min(len - offset);
            Command::read_write(
                opcode,
                nsid,
                lba + (offset / block) as u64,
                (bytes / block) as u32,
            )
        })
    }

    /// The first error of `transfers`, if any.
    fn outcome(transfers: &[Transfer<'_>]) -> Result<(), BlockError> {
        for transfer in transfers {
            if let Err(e) = transfer.result {
                return Err(e.into());
            }
        }
        Ok(())
    }
}

impl BlockDevice for NvmeNamespace {
    fn name(&self) -> &str {
        &self.name
    }

    fn block_size(&self) -> u32 {
        self.identity.block_size
    }

    fn capacity_blocks(&self) -> u64 {
        self.identity.blocks
    }

    fn queue_count(&self) -> usize {
        self.controller.io_queue_count()
    }

    fn read(&self, lba: u64, buffer: &mut [u8]) -> Result<(), BlockError> {
        let mut request = [BlockRequest {
            lba,
            buffer,
            result: Ok(()),
        }];
        self.read_batch(&mut request);
        request[0].result
    }

    fn write(&self, lba: u64, buffer: &[u8]) -> Result<(), BlockError> {
        self.check_request(lba, buffer.len())?;
        let chunk = self.chunk_bytes();
        let mut transfers: Vec<Transfer<'_>> = self
            .commands(io::WRITE, lba, buffer.len())
            .zip(buffer.chunks(chunk))
            .map(|(command, part)| Transfer::new(command, Data::ToDevice(part)))
            .collect();
        self.controller.run_io(&mut transfers);
        Self::outcome(&transfers)
    }

    fn flush(&self) -> Result<(), BlockError> {
        let mut transfers = [Transfer::new(
            Command::new(io::FLUSH, self.nsid),
            Data::None,
        )];
        self.controller.run_io(&mut transfers);
        Self::outcome(&transfers)
    }

    /// Every chunk of every valid request goes to the queue before the
    /// driver waits: up to the queue's depth (63) in flight at once.
    fn read_batch(&self, requests: &mut [BlockRequest<'_>]) {
        self.read_queued(requests, usize::MAX, &mut |_, _| {});
    }

    /// As `read_batch`, with at most `depth` commands in flight: a freed
    /// slot takes the next command at once. A request longer than one
    /// command counts as submitted with its first command and completed
    /// with its last.
    fn read_queued(
        &self,
        requests: &mut [BlockRequest<'_>],
        depth: usize,
        observer: &mut dyn FnMut(usize, RequestEvent),
    ) {
        let chunk = self.chunk_bytes();
        let mut owners = Vec::new();
        let mut transfers = Vec::new();
        // Commands of each request still to end.
        let mut pending: Vec<usize> = alloc::vec![0; requests.len()];
        let mut started: Vec<bool> = alloc::vec![false; requests.len()];
        for (index, request) in requests.iter_mut().enumerate() {
            if let Err(e) = self.check_request(request.lba, request.buffer.len()) {
                request.result = Err(e);
                observer(index, RequestEvent::Completed);
                continue;
            }
            request.result = Ok(());
            let commands = self.commands(io::READ, request.lba, request.buffer.len());
            for (command, part) in commands.zip(request.buffer.chunks_mut(chunk)) {
                owners.push(index);
                pending[index] += 1;
                transfers.push(Transfer::new(command, Data::FromDevice(part)));
            }
        }
        self.controller
            .run_io_queued(&mut transfers, depth, &mut |transfer, event| {
                let owner = owners[transfer];
                match event {
                    RequestEvent::Submitted if !started[owner] => {
                        started[owner] = true;
                        observer(owner, event);
                    }
                    RequestEvent::Submitted => {}
                    RequestEvent::Completed => {
                        pending[owner] -= 1;
                        if pending[owner] == 0 {
                            observer(owner, event);
                        }
                    }
                }
            });
        let results: Vec<Result<(), NvmeError>> =
            transfers.iter().map(|t| t.result.map(|_| ())).collect();
        drop(transfers);
        for (index, result) in owners.into_iter().zip(results) {
            if let (Err(e), Ok(())) = (result, requests[index].result) {
                requests[index].result = Err(e.into());
            }
        }
    }
}
